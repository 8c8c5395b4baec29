"""A small pcapng writer with a comment on every packet (``opt_comment`` of the EPB).

Hand-written rather than taken from scapy's ``RawPcapNgWriter`` (which can write comments): this
one writes to any binary stream, adds one interface per link type as packets need them, and is
byte-for-byte reproducible, so a case file made twice from the same evidence has the same hash.
Wireshark and tshark show the comments as ``frame.comment``; Interlock's own reader
(``interlock.capture.pcap.read_frames``) reads the result back.

Layout (draft-ietf-opsawg-pcapng): one Section Header Block (little endian, section length
unknown), an Interface Description Block per link type (``if_tsresol`` 6: microseconds), then one
Enhanced Packet Block per packet.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

SHB = 0x0A0D0D0A
IDB = 0x00000001
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_TSRESOL = 9
MAX_OPTION = 0xFFFF  # option length is 16 bits


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    if len(value) > MAX_OPTION:
        value = value[: MAX_OPTION - 3] + b"..."
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


class PcapngWriter:
    """Writes packets with comments; ``write(ts, linktype, data, comment)``."""

    def __init__(self, fh: BinaryIO, *, application: str = "Interlock", snaplen: int = 0) -> None:
        self.fh = fh
        self.snaplen = snaplen  # 0: no limit
        self._interfaces: dict[int, int] = {}  # linktype -> interface id
        options = _option(SHB_USERAPPL, application.encode("utf-8")) + _option(OPT_ENDOFOPT, b"")
        # Section length -1: unknown, so the writer can stream without seeking back.
        body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options
        fh.write(_block(SHB, body))

    def _interface(self, linktype: int) -> int:
        iface = self._interfaces.get(linktype)
        if iface is None:
            iface = self._interfaces[linktype] = len(self._interfaces)
            options = _option(IF_TSRESOL, b"\x06") + _option(OPT_ENDOFOPT, b"")
            self.fh.write(_block(IDB, struct.pack("<HHI", linktype, 0, self.snaplen) + options))
        return iface

    def write(self, ts: float, linktype: int, data: bytes, comment: str = "") -> None:
        iface = self._interface(linktype)
        ticks = round(ts * 1_000_000)  # if_tsresol 6
        head = struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
        options = b""
        if comment:
            options = _option(OPT_COMMENT, comment.encode("utf-8")) + _option(OPT_ENDOFOPT, b"")
        self.fh.write(_block(EPB, head + _pad(data) + options))
