"""From frames to ICS operation records: flows, reassembly, protocol recognition, sessions.

The protocol of a flow is found by content (each protocol's ``probe``), ports only decide the
order in which probes are tried, so Modbus on 5020 decodes and HTTP on 502 does not. Flows idle
for ``IDLE_TIMEOUT_S`` of capture time are dropped, so memory stays flat on long captures.
Whatever the port, TCP connection attempts and their refusals also become records (protocol
``tcp``, see ``docs/records.md``), so that port scans can be seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from interlock.capture.packet import TCP, Packet, dissect
from interlock.capture.pcap import CaptureError, Frame, read_frames
from interlock.capture.reassembly import Chunk
from interlock.capture.reassembly import Direction as TcpDirection
from interlock.capture.records import Endpoints, RecordBuilder
from interlock.protocols.base import Direction, OpClass, Operation, Probe, ProtocolSpec, Session
from interlock.protocols.registry import PROTOCOLS

IDLE_TIMEOUT_S = 600.0
SWEEP_EVERY = 50_000  # frames between sweeps of idle flows
PROBE_BUDGET = 512  # bytes seen in one direction without a YES before a flow is called not-ICS
NOT_ICS_ON_ICS_PORT = "not ICS, on an ICS port"
SYN, RST, FIN, ACK = 0x02, 0x04, 0x01, 0x10
# Connection records (protocol "tcp"): one per connection attempt (SYN without ACK) and one per
# RST sent by the host that received the SYN; never one per data packet. Port scans and host
# sweeps show only in these: they carry no ICS payload.
TCP_SYN = Operation("tcp", Direction.REQUEST, OpClass.SESSION, function="syn")
TCP_RST = Operation("tcp", Direction.RESPONSE, OpClass.SESSION, function="rst")


@dataclass
class Stats:
    """What a decode saw: shown as the summary table and kept for the tests."""

    frames: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    flows: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    tcp_gaps: int = 0


class Flow:
    """One conversation: its client, its protocol once recognised, and its stream state."""

    __slots__ = (
        "client",
        "ends",
        "last_ts",
        "probe_buf",
        "protocol",
        "session",
        "syn_from",
        "tcp",
        "undecided",
    )

    def __init__(self, client: tuple[str, int], tcp: bool) -> None:
        self.client = client
        self.protocol: ProtocolSpec | None = None
        self.session: Session | None = None
        self.undecided = True
        self.probe_buf: dict[bool, bytes] = {True: b"", False: b""}
        self.tcp = (TcpDirection(), TcpDirection()) if tcp else None
        self.last_ts = 0.0
        self.ends: dict[bool, Endpoints] = {}  # from_client -> endpoints of that direction
        self.syn_from: bool | None = None  # from_client of the last SYN without ACK seen


def _candidates(sport: int, dport: int, tcp: bool) -> list[ProtocolSpec]:
    """All protocols, those registered for one of the ports first."""
    def on_port(p: ProtocolSpec) -> bool:
        ports = p.tcp_ports if tcp else p.udp_ports
        return sport in ports or dport in ports

    return sorted(PROTOCOLS, key=lambda p: not on_port(p))


def _registered_side(sport: int, dport: int, tcp: bool) -> bool | None:
    """True when only dport is a registered ICS port, False when only sport is, else None."""
    for p in PROTOCOLS:
        ports = p.tcp_ports if tcp else p.udp_ports
        if (dport in ports) != (sport in ports):
            return dport in ports
    return None


class Decoder:
    """Feeds frames through flows and sessions; collects records into Arrow batches."""

    def __init__(self, batch_size: int = 65536) -> None:
        self.flows: dict[tuple[str, int, str, int, int], tuple[Flow, bool]] = {}
        self.builder = RecordBuilder(batch_size)
        self.stats = Stats()

    def frames(self, frames: Iterable[Frame]) -> Iterator[pa.RecordBatch]:
        """Decode frames; yield record batches as they fill up, then the rest.

        If the capture turns out damaged (``CaptureError``), everything decoded before the
        damage is yielded first, then the error is raised: no decoded record is lost.
        """
        try:
            for batch in self._frames(frames):
                yield self._counted(batch)
        except CaptureError:
            self.finish()
            batch = self.builder.flush()
            if batch is not None:
                yield self._counted(batch)
            raise
        self.finish()
        batch = self.builder.flush()
        if batch is not None:
            yield self._counted(batch)

    def _counted(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Operations and malformed PDUs per protocol, counted a batch at a time."""
        protocols = batch.column("protocol")
        for item in pc.value_counts(protocols).to_pylist():
            self.stats.operations[item["values"]] += item["counts"]
        bad = pc.filter(protocols, pc.is_valid(batch.column("malformed")))
        for item in pc.value_counts(bad).to_pylist():
            self.stats.malformed[item["values"]] += item["counts"]
        return batch

    def _frames(self, frames: Iterable[Frame]) -> Iterator[pa.RecordBatch]:
        stats = self.stats
        builder = self.builder
        packet = self._packet
        for number, ts, linktype, data in frames:
            stats.frames = number
            pkt = dissect(linktype, data)
            if pkt.__class__ is str:
                stats.skipped[pkt] += 1
                continue
            packet(number, ts, pkt)  # type: ignore[arg-type]
            if len(builder._rows) >= builder.batch_size:
                batch = builder.flush()
                if batch is not None:
                    yield batch
            if number % SWEEP_EVERY == 0:
                self._sweep(ts)

    def _packet(self, number: int, ts: float, pkt: Packet) -> None:
        src, dst, sport, dport, proto, seq, flags, payload, ack = pkt
        entry = self.flows.get((src, sport, dst, dport, proto))
        if entry is None:
            if not payload and not flags & SYN:
                return  # a bare ACK or FIN starts nothing
            entry = self._new_flow(src, dst, sport, dport, proto, flags)
        flow, from_client = entry
        flow.last_ts = ts
        if flags & (SYN | RST) and proto == TCP:
            self._connection(flow, from_client, flags, number, ts)
        if flow.session is None and not flow.undecided:
            return  # not an ICS conversation
        tcp = flow.tcp
        if tcp is not None:
            if flags & ACK:
                other = tcp[1] if from_client else tcp[0]
                if other.pending:
                    released = other.acked(ack)
                    if released:  # the peer acknowledged past a hole the capture never filled
                        self._after_gap(flow, released, not from_client)
                else:
                    other.peer_ack = ack  # inlined Direction.acked for the common case
            if flags & SYN:
                (tcp[0] if from_client else tcp[1]).syn(seq)
                return
            if not payload:
                return
            direction = tcp[0] if from_client else tcp[1]
            session = flow.session
            if session is not None and seq == direction.next_seq and not direction.pending:
                # the common case, inlined: the next bytes in order, for a known protocol
                direction.next_seq = (seq + len(payload)) & 0xFFFFFFFF
                ops = session.feed(payload, from_client)
                if ops:
                    ends = flow.ends[from_client]
                    append = self.builder._rows.append
                    for op in ops:
                        append((number, ts, ends, *op))
                return
            chunks, gap = direction.segment(seq, payload, number, ts)
            if gap:
                self._after_gap(flow, chunks, from_client)
            else:
                for chunk, frame, at in chunks:
                    self._deliver(flow, frame, at, chunk, from_client)
        elif payload:
            self._deliver(flow, number, ts, payload, from_client)

    def _connection(self, flow: Flow, from_client: bool, flags: int, number: int, ts: float) -> None:
        """A connection record: a SYN without ACK (an attempt), or a RST from the host that
        received the attempt (a refusal, or a reset of the connection it accepted)."""
        if flags & SYN:
            if not flags & ACK:
                flow.syn_from = from_client
                self.builder._rows.append((number, ts, flow.ends[from_client], *TCP_SYN))
        elif flow.syn_from is not None and from_client != flow.syn_from:
            self.builder._rows.append((number, ts, flow.ends[from_client], *TCP_RST))

    def _new_flow(
        self, src: str, dst: str, sport: int, dport: int, proto: int, flags: int
    ) -> tuple[Flow, bool]:
        is_tcp = proto == TCP
        # The side on a registered ICS port is the server; failing that the SYN tells (fuzzers
        # and scanners send SYNs from server ports), failing that the lower port is the server.
        on_port = _registered_side(sport, dport, is_tcp)
        if on_port is not None:
            client = (src, sport) if on_port else (dst, dport)
        elif is_tcp and flags & SYN:
            client = (dst, dport) if flags & ACK else (src, sport)
        else:
            client = (src, sport) if dport <= sport else (dst, dport)
        flow = Flow(client, is_tcp)
        from_client = client == (src, sport)
        t = "tcp" if is_tcp else "udp"
        flow.ends[from_client] = (src, dst, sport, dport, t)
        flow.ends[not from_client] = (dst, src, dport, sport, t)
        self.flows[(src, sport, dst, dport, proto)] = (flow, from_client)
        self.flows[(dst, dport, src, sport, proto)] = (flow, not from_client)
        return flow, from_client

    def _after_gap(self, flow: Flow, chunks: list[Chunk], from_client: bool) -> None:
        """Bytes that follow lost ones: the session drops that direction's partial PDU."""
        self.stats.tcp_gaps += 1
        if flow.session is not None:
            flow.session.lost(from_client)
        for chunk, frame, at in chunks:
            self._deliver(flow, frame, at, chunk, from_client)

    def _deliver(self, flow: Flow, number: int, ts: float, data: bytes, from_client: bool) -> None:
        session = flow.session
        if session is None:
            if not flow.undecided:
                return
            _src, _dst, sport, dport, transport = flow.ends[from_client]
            session = self._recognise(flow, sport, dport, transport == "tcp", data, from_client)
            if session is None:
                return
            data = flow.probe_buf[from_client]
            earlier = flow.probe_buf[not from_client]  # the other side spoke first
            flow.probe_buf = {True: b"", False: b""}
            if earlier:
                self._emit(session.feed(earlier, not from_client), number, ts, flow.ends[not from_client])
        ops = session.feed(data, from_client)
        if ops:
            self._emit(ops, number, ts, flow.ends[from_client])

    def _emit(self, ops: list[Operation], number: int, ts: float, ends: Endpoints) -> None:
        append = self.builder._rows.append
        for op in ops:
            append((number, ts, ends, *op))

    def _recognise(
        self, flow: Flow, sport: int, dport: int, tcp: bool, data: bytes, from_client: bool
    ) -> Session | None:
        buf = flow.probe_buf[from_client] + data
        flow.probe_buf[from_client] = buf
        waiting = False
        for spec in _candidates(sport, dport, tcp):
            answer = spec.probe(buf, from_client)
            if answer is Probe.YES:
                flow.protocol = spec
                flow.session = spec.session()
                flow.undecided = False
                self.stats.flows[spec.name] += 1
                return flow.session
            if answer is Probe.NEED_MORE:
                waiting = True
        if not waiting or len(buf) > PROBE_BUDGET:
            other = flow.probe_buf[not from_client]
            if not other or len(other) > PROBE_BUDGET:
                flow.undecided = False
                flow.probe_buf = {True: b"", False: b""}
                if _registered_side(sport, dport, tcp) is not None:
                    # e.g. HTTP on 502, or a stream that opens with garbage: worth a look
                    self.stats.flows[NOT_ICS_ON_ICS_PORT] += 1
        return None

    def _sweep(self, now: float) -> None:
        stale = [k for k, (f, _) in self.flows.items() if now - f.last_ts > IDLE_TIMEOUT_S]
        for k in stale:
            del self.flows[k]

    def finish(self) -> None:
        """End of input: release segments still waiting behind holes, then forget all flows."""
        seen: set[int] = set()
        for flow, _ in list(self.flows.values()):
            if id(flow) in seen or flow.tcp is None:
                continue
            seen.add(id(flow))
            for from_client, direction in ((True, flow.tcp[0]), (False, flow.tcp[1])):
                chunks = direction.flush()
                if chunks and (flow.session is not None or flow.undecided):
                    self._after_gap(flow, chunks, from_client)
        self.flows.clear()


def decode_path(path: Path, batch_size: int = 65536) -> tuple[Iterator[pa.RecordBatch], Decoder]:
    """Decode a capture file; the decoder's ``stats`` fill as the batches are consumed."""
    decoder = Decoder(batch_size)

    def batches() -> Iterator[pa.RecordBatch]:
        with open_capture(path) as fh:
            yield from decoder.frames(read_frames(fh, str(path)))

    return batches(), decoder


def open_capture(path: Path) -> BinaryIO:
    """Open a capture for reading, turning OS errors into CaptureError with the file named."""
    try:
        if path.is_dir():
            raise CaptureError(f"{path}: is a directory, give a capture file")
        return path.open("rb")
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such file") from None
    except PermissionError:
        raise CaptureError(f"{path}: permission denied") from None
    except OSError as exc:
        raise CaptureError(f"{path}: cannot be read ({exc.strerror})") from None


def decode_records(path: Path) -> list[dict[str, object]]:
    """All records of a capture as Python dicts (for tests and small files)."""
    batches, _ = decode_path(path)
    rows: list[dict[str, object]] = []
    for batch in batches:
        rows.extend(batch.to_pylist())
    return rows
