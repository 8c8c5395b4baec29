"""Small captures built in the tests: real codec output in TCP flows, written as pcap.

Each flow starts with a SYN so the decoder knows the client; sequence numbers advance with the
payload, so reassembly sees a clean stream. Checksums are left zero (the decoder, like most
capture tools on offloaded NICs, does not check them).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from interlock.capture.pcap import PcapWriter

SYN, ACK, PSH, RST = 0x02, 0x10, 0x08, 0x04


def _ip(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


class TcpFlow:
    """One TCP connection between ``client`` and ``server`` (``"ip:port"``), written to ``w``."""

    def __init__(self, w: PcapWriter, client: str, server: str, ts: float) -> None:
        self.w = w
        self.cip, cport = client.split(":")
        self.sip, sport = server.split(":")
        self.cport, self.sport = int(cport), int(sport)
        self.cseq, self.sseq = 1000, 5000
        self._frame(ts, True, SYN, b"")
        self.cseq += 1
        self._frame(ts, False, SYN | ACK, b"")
        self.sseq += 1

    def _frame(self, ts: float, from_client: bool, flags: int, payload: bytes) -> None:
        if from_client:
            src, dst, sp, dp, seq, ack = self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq
        else:
            src, dst, sp, dp, seq, ack = self.sip, self.cip, self.sport, self.cport, self.sseq, self.cseq
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 8192, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0,
                         _ip(src), _ip(dst))
        eth = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"
        self.w.write(ts, eth + ip + tcp + payload)

    def client(self, ts: float, payload: bytes) -> None:
        self._frame(ts, True, PSH | ACK, payload)
        self.cseq += len(payload)

    def server(self, ts: float, payload: bytes) -> None:
        self._frame(ts, False, PSH | ACK, payload)
        self.sseq += len(payload)


def tcp_segment(w: PcapWriter, ts: float, src: str, dst: str, flags: int, seq: int = 1000,
            ack: int = 0) -> None:
    """One bare TCP segment ``src`` -> ``dst`` (``"ip:port"``): a SYN, a RST, ..."""
    sip, sp = src.split(":")
    dip, dp = dst.split(":")
    tcp = struct.pack("!HHIIBBHHH", int(sp), int(dp), seq, ack, 5 << 4, flags, 8192, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, _ip(sip), _ip(dip))
    w.write(ts, b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp)


def write_capture(path: Path, build: Callable[[PcapWriter], None]) -> Path:
    """Run ``build`` with a writer on a new pcap at ``path``; return the path."""
    with path.open("wb") as fh:
        build(PcapWriter(fh))
    return path
