"""TCP payloads of a capture, per connection and direction, in frame order (a test stand-in for
the capture layer): segments that start before the next expected sequence number are dropped as
retransmissions (tshark does not dissect them either), gaps are passed over."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

SERVER_PORT = 20000


@dataclass
class _Conn:
    client: tuple[bytes, int]
    next_seq: dict[bool, int | None] = field(default_factory=lambda: {True: None, False: None})
    number: int = 0


def tcp_payloads(path: Path) -> Iterator[tuple[int, int, bool, bytes, tuple[int, int]]]:
    """(frame, connection number, from_client, new payload bytes, ports) per TCP segment."""
    conns: dict[tuple[tuple[bytes, int], tuple[bytes, int]], _Conn] = {}
    count = 0
    with path.open("rb") as f:
        reader = dpkt.pcap.UniversalReader(f)
        dlt = reader.datalink()
        for frame, (_, raw) in enumerate(reader, start=1):
            ip = _ip(raw, dlt)
            if ip is None or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            src, dst = (bytes(ip.src), tcp.sport), (bytes(ip.dst), tcp.dport)
            key = (min(src, dst), max(src, dst))
            syn = bool(tcp.flags & dpkt.tcp.TH_SYN) and not tcp.flags & dpkt.tcp.TH_ACK
            conn = conns.get(key)
            if conn is None or syn:
                # the SYN sender, else the side talking to port 20000, else the higher port
                server_side = dst[1] == SERVER_PORT or (src[1] != SERVER_PORT and dst[1] < src[1])
                client = src if syn or server_side else dst
                count += 1
                conn = conns[key] = _Conn(client, number=count)
            from_client = src == conn.client
            seq = tcp.seq
            data = bytes(tcp.data)
            expected = conn.next_seq[from_client]
            if tcp.flags & dpkt.tcp.TH_SYN:
                conn.next_seq[from_client] = (seq + 1) & 0xFFFFFFFF
                continue
            if expected is None:
                expected = seq
            delta = (seq - expected) & 0xFFFFFFFF
            if delta >= 0x80000000:  # retransmission: tshark does not dissect it either
                continue
            end = (seq + len(data)) & 0xFFFFFFFF
            if data:
                conn.next_seq[from_client] = end
                yield frame, conn.number, from_client, data, (tcp.sport, tcp.dport)
            elif conn.next_seq[from_client] is None:
                conn.next_seq[from_client] = seq


def _ip(raw: bytes, dlt: int) -> dpkt.ip.IP | dpkt.ip6.IP6 | None:
    try:
        if dlt == dpkt.pcap.DLT_NULL or dlt == dpkt.pcap.DLT_LOOP:
            fam = int.from_bytes(raw[:4], "little" if dlt == dpkt.pcap.DLT_NULL else "big")
            body = raw[4:]
            return dpkt.ip6.IP6(body) if fam in (socket.AF_INET6, 24, 28, 30) else dpkt.ip.IP(body)
        if dlt == dpkt.pcap.DLT_RAW or dlt == 101:
            return dpkt.ip.IP(raw)
        eth = dpkt.ethernet.Ethernet(raw)
        return eth.data if isinstance(eth.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    except (dpkt.UnpackError, ValueError):
        return None
