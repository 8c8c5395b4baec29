"""TCP payloads of a capture, per connection and in frame order, for feeding sessions.

A stand-in for the capture layer: dpkt reads pcap or pcapng (Ethernet or Linux cooked),
retransmitted bytes are dropped by sequence number, gaps are fed through as they come.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import dpkt

CAPTURES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pcaps" / "s7comm"


@dataclass
class _Flow:
    client: tuple[bytes, int]
    next_seq: dict[bool, int | None] = field(default_factory=lambda: {True: None, False: None})
    index: int = 0


@dataclass(frozen=True)
class Segment:
    frame: int  # 1-based, as tshark numbers frames
    flow: int  # connection index in order of appearance
    from_client: bool
    payload: bytes
    server_port: int


def _reader(f: BinaryIO) -> Any:
    magic = f.read(4)
    f.seek(0)
    if magic == b"\x0a\x0d\x0d\x0a":
        return dpkt.pcapng.Reader(f)
    return dpkt.pcap.Reader(f)


def _ip_of(buf: bytes, linktype: int) -> Any:
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if linktype in (dpkt.pcap.DLT_RAW, 12, 14):
        return dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    return dpkt.ethernet.Ethernet(buf).data


def segments(path: Path, server_ports: frozenset[int] = frozenset({102})) -> Iterator[Segment]:
    """Every TCP payload of the capture with its frame number and connection."""
    flows: dict[tuple[tuple[bytes, int], tuple[bytes, int]], _Flow] = {}
    count = 0
    with path.open("rb") as f:
        reader = _reader(f)
        linktype = reader.datalink()
        for frame, (_ts, buf) in enumerate(reader, start=1):
            try:
                ip = _ip_of(buf, linktype)
            except (dpkt.UnpackError, IndexError):
                continue
            tcp = getattr(ip, "data", None)
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            src, dst = (ip.src, tcp.sport), (ip.dst, tcp.dport)
            key = (min(src, dst), max(src, dst))
            syn = tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK
            flow = flows.get(key)
            if flow is None or syn:
                if syn or dst[1] in server_ports or (src[1] not in server_ports and dst[1] < src[1]):
                    client = src
                else:
                    client = dst
                flow = flows[key] = _Flow(client, index=count)
                count += 1
            from_client = src == flow.client
            seq = tcp.seq + (1 if tcp.flags & dpkt.tcp.TH_SYN else 0)
            data = bytes(tcp.data)
            expected = flow.next_seq[from_client]
            if expected is not None and data:
                behind = (expected - seq) & 0xFFFFFFFF
                if behind and behind < 0x80000000:  # retransmitted bytes: keep what is new
                    if behind >= len(data):
                        continue
                    data = data[behind:]
                    seq = expected
            if data or tcp.flags & dpkt.tcp.TH_SYN:
                flow.next_seq[from_client] = (seq + len(data)) & 0xFFFFFFFF
            if data:
                server_port = dst[1] if from_client else src[1]
                yield Segment(frame, flow.index, from_client, data, server_port)


def addr(ip: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(ip) == 16 else socket.AF_INET, ip)
