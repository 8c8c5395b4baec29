"""Streaming reader for pcap and pcapng files.

Hand-written rather than taken from dpkt or scapy: those raise on the first damaged record and
lose the frames read so far, and their per-packet objects cost more than the whole decode of a
Modbus PDU here. This reader keeps one bounded buffer (memory stays flat on any file size),
numbers frames as Wireshark does (every packet block counts) and reports a damaged file as a
:class:`CaptureError` naming the byte offset, after yielding every frame before it.

Formats: libpcap (both byte orders, micro- and nanosecond magic) and pcapng (SHB, IDB with
``if_tsresol``, EPB, SPB, the obsolete PB; other blocks are skipped; several sections with their
own byte order).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

# Link-layer header types (tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_LOOP = 108

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
CHUNK = 1 << 22  # 4 MiB reads keep syscalls rare and memory flat

Frame = tuple[int, float, int, bytes]  # frame number (1-based), epoch seconds, linktype, bytes


class CaptureError(Exception):
    """The file is not a readable capture; the message names the problem and the offset."""


class _Buffer:
    """A sliding window over the file: ``need(n)`` makes n bytes available at ``pos``."""

    __slots__ = ("base", "buf", "eof", "fh", "pos")

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.buf = b""
        self.pos = 0
        self.base = 0  # file offset of buf[0]
        self.eof = False

    def need(self, n: int) -> bool:
        if self.pos + n <= len(self.buf):
            return True
        if self.eof:
            return False
        rest = self.buf[self.pos :]
        chunks = [rest]
        have = len(rest)
        while have < n and not self.eof:
            chunk = self.fh.read(max(CHUNK, n - have))
            if not chunk:
                self.eof = True
                break
            chunks.append(chunk)
            have += len(chunk)
        self.base += self.pos
        self.buf = b"".join(chunks)
        self.pos = 0
        return n <= len(self.buf)

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def at_end(self) -> bool:
        return not self.need(1)


def read_frames(fh: BinaryIO, name: str = "capture") -> Iterator[Frame]:
    """Yield every frame of a pcap or pcapng stream; raise CaptureError on damage."""
    b = _Buffer(fh)
    if not b.need(4):
        raise CaptureError(f"{name}: empty or too short to be a capture (no pcap/pcapng magic)")
    magic = b.buf[0:4]
    if magic in PCAP_MAGICS:
        yield from _read_pcap(b, name)
    elif magic == PCAPNG_SHB:
        yield from _read_pcapng(b, name)
    else:
        raise CaptureError(
            f"{name}: not a pcap or pcapng file (magic {magic.hex()}); "
            "convert it with editcap or give a capture file"
        )


def _read_pcap(b: _Buffer, name: str) -> Iterator[Frame]:
    endian, scale = PCAP_MAGICS[b.buf[0:4]]
    if not b.need(24):
        raise CaptureError(f"{name}: truncated pcap header ({len(b.buf)} of 24 bytes)")
    snaplen, network = struct.unpack_from(endian + "II", b.buf, 16)
    linktype = network & 0x0FFFFFFF
    b.pos = 24
    unpack = struct.Struct(endian + "IIII").unpack_from
    frame = 0
    # Bounds well above any real snaplen; a larger record means the file is corrupt.
    limit = max(snaplen, 262144) if snaplen else 262144
    # The hot loop works on local copies of the window (buf, pos, its length n) and goes back
    # to ``b`` only to refill it or to name an offset in an error.
    buf = b.buf
    pos = b.pos
    n = len(buf)
    while True:
        if n - pos < 16:
            b.pos = pos
            if not b.need(16):
                if b.pos < len(b.buf):
                    raise CaptureError(
                        f"{name}: truncated record header at byte {b.offset} after frame {frame}"
                    )
                return
            buf = b.buf
            pos = b.pos
            n = len(buf)
        sec, frac, incl, _orig = unpack(buf, pos)
        if incl > limit:
            b.pos = pos
            raise CaptureError(
                f"{name}: corrupt record at byte {b.offset} after frame {frame} "
                f"(captured length {incl} exceeds snaplen {snaplen})"
            )
        start = pos + 16
        pos = start + incl
        if pos > n:
            b.pos = start - 16
            if not b.need(16 + incl):
                raise CaptureError(
                    f"{name}: truncated frame {frame + 1} at byte {b.offset} "
                    f"({len(b.buf) - b.pos - 16} of {incl} bytes present)"
                )
            buf = b.buf
            start = b.pos + 16
            pos = start + incl
            n = len(buf)
        frame += 1
        yield frame, sec + frac * scale, linktype, buf[start:pos]


_PCAPNG_EPB = 6
_PCAPNG_SPB = 3
_PCAPNG_PB = 2
_PCAPNG_IDB = 1
_PCAPNG_SHB_TYPE = 0x0A0D0D0A
_MAX_BLOCK = 1 << 24


def _read_pcapng(b: _Buffer, name: str) -> Iterator[Frame]:
    endian = "<"
    interfaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    frame = 0
    last_ts = 0.0
    while True:
        if b.at_end():
            return
        if not b.need(12):
            raise CaptureError(f"{name}: truncated block header at byte {b.offset}")
        raw_type = b.buf[b.pos : b.pos + 4]
        if raw_type == PCAPNG_SHB:
            bom = b.buf[b.pos + 8 : b.pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise CaptureError(f"{name}: bad pcapng byte-order magic at byte {b.offset}")
            interfaces = []
        btype, blen = struct.unpack_from(endian + "II", b.buf, b.pos)
        if blen < 12 or blen % 4 or blen > _MAX_BLOCK:
            raise CaptureError(
                f"{name}: corrupt pcapng block at byte {b.offset} after frame {frame} "
                f"(block length {blen})"
            )
        if not b.need(blen):
            raise CaptureError(
                f"{name}: truncated pcapng block at byte {b.offset} after frame {frame}"
            )
        body = b.pos + 8
        end = b.pos + blen - 4
        buf = b.buf
        if btype in (_PCAPNG_EPB, _PCAPNG_PB):
            if btype == _PCAPNG_EPB:
                iface, hi, lo, cap = struct.unpack_from(endian + "IIII", buf, body)
                data_at = body + 20
            else:
                iface, _drops, hi, lo, cap = struct.unpack_from(endian + "HHIII", buf, body)
                data_at = body + 20
            if iface >= len(interfaces) or data_at + cap > end:
                raise CaptureError(
                    f"{name}: corrupt packet block at byte {b.offset} after frame {frame}"
                )
            linktype, tick = interfaces[iface]
            last_ts = ((hi << 32) | lo) * tick
            frame += 1
            yield frame, last_ts, linktype, buf[data_at : data_at + cap]
        elif btype == _PCAPNG_SPB:
            if not interfaces:
                raise CaptureError(f"{name}: simple packet block before any interface")
            (orig,) = struct.unpack_from(endian + "I", buf, body)
            cap = min(orig, end - body - 4)
            frame += 1
            yield frame, last_ts, interfaces[0][0], buf[body + 4 : body + 4 + cap]
        elif btype == _PCAPNG_IDB:
            (linktype,) = struct.unpack_from(endian + "H", buf, body)
            interfaces.append((linktype, _tsresol(buf, body + 8, end, endian)))
        b.pos += blen


def _tsresol(buf: bytes, pos: int, end: int, endian: str) -> float:
    """Seconds per timestamp tick from the IDB options (if_tsresol, code 9); default 1 us."""
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = buf[pos + 4]
            return float(2.0 ** -(v & 0x7F)) if v & 0x80 else float(10.0 ** -v)
        pos += 4 + ((length + 3) & ~3)
    return 1e-6


class PcapWriter:
    """Writes a classic little-endian microsecond pcap (for samples, tests and benchmarks)."""

    def __init__(self, fh: BinaryIO, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 65535) -> None:
        self.fh = fh
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        self._rec = struct.Struct("<IIII")

    def write(self, ts: float, data: bytes) -> None:
        sec = int(ts)
        usec = round((ts - sec) * 1e6)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self.fh.write(self._rec.pack(sec, usec, len(data), len(data)))
        self.fh.write(data)
