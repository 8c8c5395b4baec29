"""TCP payloads of a capture per stream and direction, in frame order, for the Modbus tests.

A stand-in for the capture layer: retransmitted bytes are dropped (by sequence number) and
a segment after a hole is delivered as it comes, flagged ``gap``. Good enough for the shared
captures, which are short and mostly in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt

from interlock.protocols.base import Operation
from interlock.protocols.modbus import ModbusSession

MODBUS_PORT = 502
_MOD = 1 << 32


@dataclass(frozen=True, slots=True)
class Chunk:
    frame: int  # 1-based, as tshark numbers frames
    stream: int  # 0-based, in order of first appearance
    from_client: bool
    data: bytes
    gap: bool  # bytes were missing before this chunk
    port_502: bool  # one end is the Modbus port, the streams tshark decodes as Modbus


def _frames(path: Path) -> Iterator[tuple[int, bytes, int]]:
    with path.open("rb") as f:
        magic = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        for number, (_, buf) in enumerate(reader, start=1):
            yield number, buf, linktype


def _ip(buf: bytes, linktype: int) -> dpkt.Packet | None:
    try:
        if linktype == dpkt.pcap.DLT_EN10MB:
            pkt = dpkt.ethernet.Ethernet(buf).data
        elif linktype == dpkt.pcap.DLT_LINUX_SLL:
            pkt = dpkt.sll.SLL(buf).data
        elif linktype in (dpkt.pcap.DLT_RAW, 12, 14):
            pkt = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        elif linktype == dpkt.pcap.DLT_NULL:
            pkt = dpkt.loopback.Loopback(buf).data
        else:
            return None
    except (dpkt.UnpackError, IndexError):
        return None
    return pkt if isinstance(pkt, dpkt.ip.IP | dpkt.ip6.IP6) else None


def tcp_chunks(path: Path) -> Iterator[Chunk]:
    """Every TCP payload of ``path`` with its stream and direction, retransmissions removed."""
    streams: dict[frozenset[tuple[bytes, int]], int] = {}
    clients: dict[int, tuple[bytes, int]] = {}
    next_seq: dict[tuple[int, bool], int] = {}
    for number, buf, linktype in _frames(path):
        ip = _ip(buf, linktype)
        if ip is None or not isinstance(ip.data, dpkt.tcp.TCP):
            continue
        tcp = ip.data
        src, dst = (ip.src, tcp.sport), (ip.dst, tcp.dport)
        key = frozenset((src, dst))
        stream = streams.setdefault(key, len(streams))
        if stream not in clients:
            # Port 502 is the server, as tshark decides; else the SYN sender is the client,
            # else the side talking to the lower port.
            if MODBUS_PORT in (tcp.sport, tcp.dport) and tcp.sport != tcp.dport:
                clients[stream] = dst if tcp.sport == MODBUS_PORT else src
            elif tcp.flags & dpkt.tcp.TH_SYN:
                syn_ack = tcp.flags & dpkt.tcp.TH_ACK
                clients[stream] = dst if syn_ack else src
            else:
                clients[stream] = src if tcp.dport < tcp.sport else dst
        from_client = clients[stream] == src
        payload = bytes(tcp.data)
        if not payload:
            continue
        gap = False
        expected = next_seq.get((stream, from_client))
        seq = tcp.seq
        if expected is not None:
            rel = (seq - expected) % _MOD
            if rel >= _MOD // 2:  # starts before the expected byte: a retransmission
                behind = _MOD - rel
                if behind >= len(payload):
                    continue
                payload = payload[behind:]
                seq = expected
            elif rel:
                gap = True
        next_seq[(stream, from_client)] = (seq + len(payload)) % _MOD
        yield Chunk(number, stream, from_client, payload, gap,
                    MODBUS_PORT in (tcp.sport, tcp.dport))


def decode_capture(path: Path) -> dict[int, list[Operation]]:
    """Operations per frame number, from every stream on port 502, one session per stream.

    After a gap the stream gets a fresh session, as the capture layer does.
    """
    sessions: dict[int, ModbusSession] = {}
    per_frame: dict[int, list[Operation]] = {}
    for chunk in tcp_chunks(path):
        if not chunk.port_502:
            continue
        if chunk.gap or chunk.stream not in sessions:
            sessions[chunk.stream] = ModbusSession()
        ops = sessions[chunk.stream].feed(chunk.data, chunk.from_client)
        if ops:
            per_frame.setdefault(chunk.frame, []).extend(ops)
    return per_frame
