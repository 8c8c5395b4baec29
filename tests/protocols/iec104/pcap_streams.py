"""TCP payloads of a capture in frame order, per stream and direction (a stand-in until the
capture layer's reassembly lands).

Segments are trimmed against the next expected sequence number (from the SYN, else from the
first segment, an empty one or the peer's acknowledgement number), so retransmissions and the
one-octet keep-alives Windows sends (sequence number one below the next) are dropped; a gap
(lost segment) is fed as it comes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt

SERVER_PORT = 2404
MOD = 1 << 32


@dataclass(frozen=True)
class Segment:
    frame: int  # 1-based, as tshark numbers frames
    stream: tuple[str, int, str, int]  # client ip, client port, server ip, server port
    from_client: bool
    payload: bytes


def _frames(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        reader = dpkt.pcapng.Reader(fh) if path.suffix == ".pcapng" else dpkt.pcap.Reader(fh)
        for number, (_, buf) in enumerate(reader, start=1):
            yield number, buf


def tcp_segments(path: Path) -> list[Segment]:
    """Payload-carrying, in-order TCP segments of every stream of ``path``."""
    roles: dict[frozenset[tuple[str, int]], tuple[str, int, str, int]] = {}
    next_seq: dict[tuple[str, int, str, int], int] = {}
    out: list[Segment] = []
    for number, buf in _frames(path):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP):
            src, dst = socket.inet_ntop(socket.AF_INET, ip.src), socket.inet_ntop(socket.AF_INET, ip.dst)
        elif isinstance(ip, dpkt.ip6.IP6):
            src, dst = socket.inet_ntop(socket.AF_INET6, ip.src), socket.inet_ntop(socket.AF_INET6, ip.dst)
        else:
            continue
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        a, b = (src, tcp.sport), (dst, tcp.dport)
        key = frozenset({a, b})
        if key not in roles:
            syn_only = tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK
            if syn_only or tcp.dport == SERVER_PORT:
                roles[key] = (src, tcp.sport, dst, tcp.dport)
            elif tcp.sport == SERVER_PORT or tcp.flags & dpkt.tcp.TH_SYN:
                roles[key] = (dst, tcp.dport, src, tcp.sport)
            else:  # no SYN seen: the lower port is the server's
                lo, hi = sorted([a, b], key=lambda e: e[1])
                roles[key] = (hi[0], hi[1], lo[0], lo[1])
        stream = roles[key]
        from_client = (src, tcp.sport) == (stream[0], stream[1])
        direction = (src, tcp.sport, dst, tcp.dport)
        seq = tcp.seq
        if tcp.flags & dpkt.tcp.TH_SYN:
            next_seq[direction] = (seq + 1) % MOD
            continue
        if tcp.flags & dpkt.tcp.TH_ACK:  # what the peer expects next, when nothing else tells
            next_seq.setdefault((dst, tcp.dport, src, tcp.sport), tcp.ack)
        payload = bytes(tcp.data)
        if not payload:
            next_seq.setdefault(direction, seq)
            continue
        expected = next_seq.get(direction)
        if expected is not None:
            ahead = (seq - expected) % MOD
            if ahead >= MOD // 2:  # starts before what was delivered
                behind = MOD - ahead
                if behind >= len(payload):
                    continue  # retransmission or keep-alive
                payload = payload[behind:]
                seq = expected
        next_seq[direction] = (seq + len(payload)) % MOD
        out.append(Segment(number, stream, from_client, payload))
    return out
