"""The inline DNP3 firewall: an asyncio proxy that applies a ``protocol: dnp3`` policy per request.

DNP3 over TCP is not request-then-response like Modbus: the outstation sends unsolicited
responses and link-status frames whenever it likes. So each client connection gets its own
upstream connection at once and two pumps run side by side, each cutting its stream into whole
link frames (header CRC checked, then the length says where the frame ends):

- master -> outstation: user-data frames are held until their transport segments complete an
  application fragment (FIR ... FIN); the fragment is decoded with Interlock's codec and judged
  by :func:`~interlock.respond.dnp3_policy.decide_dnp3` on (client, destination address, function
  code, object group/variation, point indexes). Allowed: the held frames go upstream unchanged,
  byte for byte. Blocked: they are dropped. Link-layer frames (reset link states, link status)
  and application CONFIRMs pass: they acknowledge, they command nothing.
- outstation -> master: whole frames relayed unchanged (whole, so that an answer the firewall
  writes itself never lands inside one of the outstation's frames).

What a block does, by the policy's ``action``: ``drop`` (the default for DNP3, what a DNP3
gateway does: the master sees a timeout, the attacker learns nothing), ``exception`` (answer
with a RESPONSE carrying the IIN2 bit an outstation would set: NO_FUNC_CODE_SUPPORT,
OBJECT_UNKNOWN or PARAMETER_ERROR), ``reset`` (close both connections with a TCP reset).
Malformed frames (bad CRC, bad length, garbage between frames, a fragment the codec refuses,
segments out of sequence) are always dropped and alerted; the stream resynchronises on the next
0x05 0x64 start with a good header CRC. Failure behaviour follows ``FirewallConfig.fail`` and the
connection limits, as the Modbus firewall does (:mod:`interlock.respond.firewall`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from interlock.protocols.base import Malformed
from interlock.protocols.dnp3 import (
    ApplicationRequest,
    ApplicationResponse,
    FunctionCode,
    LinkFrame,
    TransportSegment,
    build,
    parse_fragment,
    parse_frame,
    parse_segment,
)
from interlock.protocols.dnp3.fields import HEADER_SIZE, MIN_LENGTH, START, PrimaryFunction
from interlock.protocols.dnp3.link import frame_size, header_crc_ok
from interlock.respond.dnp3_policy import (
    Dnp3Request,
    decide_dnp3,
    describe,
    request_of_fragment,
)
from interlock.respond.firewall import AlertSink, FirewallConfig, Proxy
from interlock.respond.learned import Dnp3PolicyLearner
from interlock.respond.limits import reset
from interlock.respond.policy import Verdict

DEFAULT_PORT = 20000
# Masters' requests are small (a CROB is 20 octets); outstations accept 2048-octet fragments by
# default. A longer "request" is a flood of segments, not a command.
MAX_FRAGMENT = 2048
MAX_PENDING = 16  # unfinished fragments (source, destination pairs) per connection
USER_DATA = (PrimaryFunction.CONFIRMED_USER_DATA, PrimaryFunction.UNCONFIRMED_USER_DATA)


class FrameReader:
    """Cuts a byte stream into DNP3 link frames; ``garbage`` counts octets skipped."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buf = bytearray()
        self.garbage = 0  # octets skipped since the last good frame header

    async def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = await self.reader.read(4096)
            if not chunk:
                return False
            self.buf += chunk
        return True

    async def next(self) -> bytes | None:
        """The next frame whose header is sound (its data CRCs are the caller's to check);
        None at end of stream."""
        while True:
            if not await self._fill(HEADER_SIZE):
                self.garbage += len(self.buf)
                return None
            if self.buf[:2] != START or not header_crc_ok(bytes(self.buf[:HEADER_SIZE]), 0) \
                    or self.buf[2] < MIN_LENGTH:
                # resynchronise: the next start octets after this position
                at = self.buf.find(START, 1)
                skip = at if at > 0 else max(len(self.buf) - 1, 1)
                del self.buf[:skip]
                self.garbage += skip
                continue
            size = frame_size(self.buf[2])
            if not await self._fill(size):
                self.garbage += len(self.buf)
                return None
            raw = bytes(self.buf[:size])
            del self.buf[:size]
            return raw


@dataclass
class _Fragment:
    """Segments of one application fragment being reassembled (master -> outstation)."""

    frames: list[bytes] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    seq: int = 0


class Dnp3Firewall(Proxy[Dnp3PolicyLearner]):
    """Serve ``config.listen`` in front of an outstation; ``sink`` receives every alert.

    The lifecycle, reload, limits and alerts are the Modbus firewall's (:class:`Proxy`)."""

    PROTOCOL = "dnp3"
    NAME = "DNP3"

    def __init__(self, config: FirewallConfig, sink: AlertSink,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, sink, clock)
        self.learner = Dnp3PolicyLearner(
            comment=f"learned live in front of {config.upstream[0]}:{config.upstream[1]}"
        ) if config.mode == "learn" else None
        self._tseq = 0  # transport sequence of the answers the firewall writes itself

    # --- one client connection (admitted by Proxy._serve)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       client: tuple[str, int]) -> None:
        up_writer: asyncio.StreamWriter | None = None
        try:
            host, port = self.config.upstream
            try:
                up_reader, up = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.config.connect_timeout)
                up_writer = up
            except (OSError, TimeoutError):
                # DNP3 has no gateway exception: the master sees the connection close and
                # reconnects, as it does when the outstation itself is down
                self.stats.upstream_failures += 1
                return
            requests = asyncio.ensure_future(self._requests(reader, writer, up, client))
            responses = asyncio.ensure_future(self._responses(up_reader, writer))
            try:
                done, _ = await asyncio.wait((requests, responses),
                                             return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # the server is closing; a handler task that ends cancelled makes Python 3.11's
                # asyncio.streams log an error for each open connection, so end normally
                done = set()
            finally:
                for task in (requests, responses):
                    task.cancel()
                await asyncio.gather(requests, responses, return_exceptions=True)
            if responses in done and requests not in done:
                self.stats.upstream_failures += 1  # the outstation closed on us
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    async def _responses(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                         ) -> None:
        frames = FrameReader(reader)
        with contextlib.suppress(ConnectionError, OSError):
            while (raw := await frames.next()) is not None:
                writer.write(raw)
                await writer.drain()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        upstream: asyncio.StreamWriter, client: tuple[str, int]) -> None:
        frames = FrameReader(reader)
        pending: dict[tuple[int, int], _Fragment] = {}  # (source, destination) -> fragment
        enforce = self.config.mode == "enforce"
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                raw = await frames.next()
                if frames.garbage:
                    self._malformed(client, 0, f"{frames.garbage} octets that are not a DNP3 "
                                    "frame skipped (no 0x05 0x64 start with a good header CRC)")
                    frames.garbage = 0
                if raw is None:
                    return
                frame = parse_frame(raw)
                if isinstance(frame, Malformed):
                    self._malformed(client, int.from_bytes(raw[4:6], "little"),
                                    f"link frame {frame.reason} {frame.detail}".strip())
                    continue
                if not (frame.prm and frame.function in USER_DATA):
                    upstream.write(raw)  # link layer only: reset, test, status, ACK
                    await upstream.drain()
                    continue
                out = self._segment(frame, raw, pending, client)
                if out is None:
                    continue
                held, fragment = out
                action = await self._judge(held, fragment, frame, client, writer, enforce)
                if action == "forward":
                    for r in held:
                        upstream.write(r)
                    await upstream.drain()
                    self.stats.forwarded += 1
                elif action == "reset":
                    reset(writer)
                    reset(upstream)
                    return

    def _segment(self, frame: LinkFrame, raw: bytes, pending: dict[tuple[int, int], _Fragment],
                 client: tuple[str, int]) -> tuple[list[bytes], bytes] | None:
        """Add one user-data frame to its fragment; the frames and data once FIN arrives."""
        seg = parse_segment(frame.user_data)
        key = (frame.source, frame.destination)
        if isinstance(seg, Malformed):
            self._malformed(client, frame.destination, f"transport {seg.reason} {seg.detail}")
            return None
        assert isinstance(seg, TransportSegment)
        frag = pending.get(key)
        if seg.fir:
            if frag is None and len(pending) >= MAX_PENDING:
                # one master talks to a few outstations; hundreds of half-sent fragments under
                # forged addresses are a memory flood: forget the oldest
                dropped = next(iter(pending))
                del pending[dropped]
                self._malformed(client, dropped[1], f"more than {MAX_PENDING} unfinished "
                                "fragments on one connection; the oldest dropped")
            if frag is not None:
                self._malformed(client, frame.destination, "new fragment before the previous "
                                "one's last segment; the unfinished one dropped")
            frag = pending[key] = _Fragment()
        elif frag is None or seg.seq != (frag.seq + 1) % 64:
            pending.pop(key, None)
            self._malformed(client, frame.destination, f"transport segment {seg.seq} out of "
                            "sequence or without a first segment; dropped")
            return None
        frag.frames.append(raw)
        frag.data += seg.data
        frag.seq = seg.seq
        if len(frag.data) > MAX_FRAGMENT:
            del pending[key]
            self._malformed(client, frame.destination, f"request fragment over {MAX_FRAGMENT} "
                            "octets; dropped")
            return None
        if not seg.fin:
            return None
        del pending[key]
        return frag.frames, bytes(frag.data)

    async def _judge(self, held: list[bytes], data: bytes, frame: LinkFrame,
                     client: tuple[str, int], writer: asyncio.StreamWriter, enforce: bool
                     ) -> Literal["forward", "drop", "reset"]:
        dest = frame.destination
        try:
            app = parse_fragment(data)
            if isinstance(app, Malformed):
                self._malformed(client, dest, f"application {app.reason} {app.detail}".strip())
                return "drop"  # in every mode: an outstation's parser is no place for it
            if isinstance(app, ApplicationRequest) and app.function == FunctionCode.CONFIRM:
                return "forward"  # acknowledges a response; commands nothing
            if isinstance(app, ApplicationResponse):
                # only outstations respond; a "response" from the master side is forged
                req = Dnp3Request(dest, int(app.function))
            else:
                req = request_of_fragment(dest, app)
            if self.learner is not None:
                self.learner.observe(client[0], dest, req.function, req.objects, req.indexes)
                return "forward"
            verdict = self._verdict(req, client[0])
        except Exception as exc:
            self.stats.engine_errors += 1
            opened = self.config.fail == "open" or not enforce
            fate = "forwarded" if opened else "dropped"
            self._emit("T0855", "high", client, dest, f"firewall/fail-{self.config.fail}",
                       f"DNP3 request {fate} after a firewall error (--fail {self.config.fail})",
                       f"from {client[0]}: {type(exc).__name__}: {exc}")
            if not opened:
                self.stats.blocked += 1
            return "forward" if opened else "drop"
        if verdict.allow:
            return "forward"
        self._alert(verdict, client, req, enforce)
        if not enforce:
            return "forward"
        self.stats.blocked += 1
        action = self.config.policy.action
        if action == "exception" and isinstance(app, ApplicationRequest):
            writer.write(self._iin_answer(frame, app.seq, verdict.iin))
            await writer.drain()
        return "reset" if action == "reset" else "drop"

    def _verdict(self, req: Dnp3Request, client: str) -> Verdict:
        if self._over_rate(client):
            return Verdict(False, "rate", f"{describe(req)} from {client}: exceeds "
                           f"{self.config.policy.max_rate:g} requests/s", None, "T0814")
        return decide_dnp3(req, client, self.config.policy)

    def _iin_answer(self, frame: LinkFrame, seq: int, iin: int) -> bytes:
        """A RESPONSE as the outstation would send it, with the refusal's IIN2 bit."""
        self._tseq = (self._tseq + 1) % 64
        app = build(ApplicationResponse(FunctionCode.RESPONSE, seq, iin))
        seg = build(TransportSegment(True, True, self._tseq, app))
        return build(LinkFrame(False, True, False, False, PrimaryFunction.UNCONFIRMED_USER_DATA,
                               frame.source, frame.destination, seg))

    # --- alerts

    def _alert(self, verdict: Verdict, client: tuple[str, int], req: Dnp3Request,
               enforce: bool) -> None:
        verb = {"exception": "refused", "drop": "dropped", "reset": "reset"}[
            self.config.policy.action] if enforce else "flagged (monitor mode, forwarded)"
        self._emit(verdict.technique, "high" if req.controls else "medium", client,
                   req.destination, f"firewall/{verdict.rule}",
                   f"DNP3 request {verb} by firewall policy", verdict.reason)

    def _malformed(self, client: tuple[str, int], destination: int, detail: str) -> None:
        self.stats.malformed += 1
        self._emit("T0855", "medium", client, destination, "firewall/malformed",
                   "Malformed DNP3 frame dropped", f"from {client[0]}: {detail}")
