"""DNP3 data link frames (IEEE 1815-2012 clause 9) and transport segments (clause 8).

A link frame is a 10-octet header (start 0x05 0x64, length, control, destination, source, CRC)
followed by up to 250 octets of user data cut into blocks of 16, each block followed by its own
CRC. The CRC is DNP3's CRC-16 (polynomial 0x3D65, reflected as 0xA6BC, initial 0, final
complement), sent least significant octet first (9.2.4.1.6).

The CRC dominates the per-frame cost in pure Python, so it runs two octets per table lookup: for a
16-bit reflected CRC, feeding the word ``w`` (little endian) to the register ``r`` gives
``T16[r ^ w]``, so a full 16-octet block is 8 lookups. The 65,536-entry table is built once at
import (about 20 ms).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from interlock.protocols.base import Malformed

from .fields import (
    BLOCK_SIZE,
    HEADER_SIZE,
    LINK_DIR,
    LINK_FCB,
    LINK_FCV,
    LINK_FUNC,
    LINK_PRM,
    MAX_USER_DATA,
    MIN_LENGTH,
    START,
    TRANSPORT_FIN,
    TRANSPORT_FIR,
    TRANSPORT_SEQ,
    PrimaryFunction,
    Reason,
    SecondaryFunction,
)


def _byte_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA6BC if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_T8 = _byte_table()
# T16[x]: the register after two more octets, x = register ^ little-endian word (see docstring).
CRC_WORD_TABLE = tuple(
    (_T8[x & 0xFF] >> 8) ^ _T8[((x >> 8) ^ _T8[x & 0xFF]) & 0xFF] for x in range(65536)
)
_WORDS = tuple(struct.Struct(f"<{k}H") for k in range(10))  # k little-endian words
_FULL_WORDS = tuple(struct.Struct(f"<{9 * k}H") for k in range(16))  # k blocks of 16 + CRC
_FULL_DATA = tuple(struct.Struct("<" + "16s2x" * k) for k in range(16))  # their data
_HEADER = struct.Struct("<2sBBHHH")  # start, length, control, destination, source, CRC
HEADER_WORDS = struct.Struct("<5H")


def crc16(data: bytes) -> int:
    """DNP3 CRC-16 of ``data`` as an integer (send it little endian)."""
    r = 0
    t = _T8
    for b in data:
        r = (r >> 8) ^ t[(r ^ b) & 0xFF]
    return r ^ 0xFFFF


def header_crc_ok(buf: bytes, off: int) -> bool:
    """True if the 10-octet link header at ``off`` carries a correct CRC (caller checks length)."""
    w0, w1, w2, w3, crc = HEADER_WORDS.unpack_from(buf, off)
    t = CRC_WORD_TABLE
    return bool(t[t[t[t[w0] ^ w1] ^ w2] ^ w3] ^ 0xFFFF == crc)


def frame_size(length: int) -> int:
    """Octets on the wire of a frame whose length octet is ``length`` (>= 5)."""
    n = length - MIN_LENGTH
    return HEADER_SIZE + n + 2 * ((n + BLOCK_SIZE - 1) // BLOCK_SIZE)


def unblock(buf: bytes, off: int, n: int) -> bytes | int:
    """The ``n`` user data octets of the blocks at ``off``, or the offset of the first bad CRC.

    The caller guarantees that ``buf`` holds the whole frame.
    """
    t = CRC_WORD_TABLE
    full = n >> 4
    k = n & 15
    data = b""
    if full:
        it = iter(_FULL_WORDS[full].unpack_from(buf, off))
        for w0, w1, w2, w3, w4, w5, w6, w7, c in zip(it, it, it, it, it, it, it, it, it,
                                                     strict=True):
            if t[t[t[t[t[t[t[t[w0] ^ w1] ^ w2] ^ w3] ^ w4] ^ w5] ^ w6] ^ w7] ^ 0xFFFF != c:
                return _first_bad(buf, off, n)
        one = full == 1
        data = buf[off : off + 16] if one else b"".join(_FULL_DATA[full].unpack_from(buf, off))
        off += 18 * full
    if not k:
        return data
    if k & 1:
        r = _T8[buf[off]]
        *words, crc = _WORDS[(k + 1) >> 1].unpack_from(buf, off + 1)
    else:
        r = 0
        *words, crc = _WORDS[(k >> 1) + 1].unpack_from(buf, off)
    for w in words:
        r = t[r ^ w]
    if r ^ 0xFFFF != crc:
        return off + k
    return data + buf[off : off + k] if data else buf[off : off + k]


def _first_bad(buf: bytes, off: int, n: int) -> int:
    """Offset of the first block CRC that does not match (slow path)."""
    for i in range(0, n, BLOCK_SIZE):
        o = off + i + 2 * (i >> 4)
        k = min(BLOCK_SIZE, n - i)
        if crc16(buf[o : o + k]) != int.from_bytes(buf[o + k : o + k + 2], "little"):
            return o + k
    return off + n  # not reached: the fast path saw a bad block


def link_function_name(prm: bool, function: int) -> str | None:
    """Spec name of a link function code, None if reserved."""
    names = _PRIMARY_NAMES if prm else _SECONDARY_NAMES
    return names.get(function)


_PRIMARY_NAMES = {f.value: f.name for f in PrimaryFunction}
_SECONDARY_NAMES = {f.value: f.name for f in SecondaryFunction}
_USER_DATA = (PrimaryFunction.CONFIRMED_USER_DATA, PrimaryFunction.UNCONFIRMED_USER_DATA)


@dataclass(frozen=True, slots=True)
class LinkFrame:
    """9.2.4: one data link frame with its CRCs checked and removed.

    ``fcb`` is reserved and ``fcv`` means DFC (data flow control) in secondary frames (PRM 0).
    Only the user data functions (CONFIRMED/UNCONFIRMED_USER_DATA) carry ``user_data``, which
    starts with the transport header.
    """

    dir: bool  # True: sent by a master
    prm: bool
    fcb: bool
    fcv: bool
    function: int
    destination: int
    source: int
    user_data: bytes = b""


@dataclass(frozen=True, slots=True)
class TransportSegment:
    """8.2: the transport header octet and up to 249 octets of application fragment."""

    fin: bool
    fir: bool
    seq: int  # 0..63
    data: bytes = b""


def check_link_function(prm: bool, function: int, n: int) -> tuple[str, str] | None:
    """Reason and detail if a link function code or its user data length breaks 9.2.4."""
    if (_PRIMARY_NAMES if prm else _SECONDARY_NAMES).get(function) is None:
        kind = "primary" if prm else "secondary"
        return Reason.UNKNOWN_LINK_FUNCTION, f"reserved {kind} link function {function}"
    user = prm and function in _USER_DATA
    if user and n == 0:
        return Reason.BAD_LENGTH, "user data frame without user data"
    if not user and n:
        return Reason.BAD_LENGTH, f"{n} octets of user data on a link-only function"
    return None


def parse_frame(data: bytes) -> LinkFrame | Malformed:
    """Decode exactly one link frame; never raises."""
    if len(data) < HEADER_SIZE:
        if data[:2] != START[: len(data[:2])]:
            return Malformed(Reason.BAD_START, 0, data, "no 0x05 0x64 start octets")
        return Malformed(Reason.BAD_LENGTH, len(data), data, "shorter than a link header")
    start, length, control, dst, src, _ = _HEADER.unpack_from(data)
    if start != START:
        return Malformed(Reason.BAD_START, 0, data, "no 0x05 0x64 start octets")
    if not header_crc_ok(data, 0):
        return Malformed(Reason.BAD_HEADER_CRC, 8, data)
    if length < MIN_LENGTH:
        return Malformed(Reason.BAD_LENGTH, 2, data, f"length {length} < 5")
    size = frame_size(length)
    if len(data) != size:
        return Malformed(Reason.BAD_LENGTH, min(len(data), size), data,
                         f"length {length} means {size} octets, got {len(data)}")
    user = unblock(data, HEADER_SIZE, length - MIN_LENGTH)
    if isinstance(user, int):
        return Malformed(Reason.BAD_DATA_CRC, user, data)
    prm = bool(control & LINK_PRM)
    function = control & LINK_FUNC
    bad = check_link_function(prm, function, len(user))
    if bad is not None:
        return Malformed(bad[0], 3, data, bad[1])
    return LinkFrame(bool(control & LINK_DIR), prm, bool(control & LINK_FCB),
                     bool(control & LINK_FCV), function, dst, src, user)


def build_frame(frame: LinkFrame) -> bytes:
    """Encode a link frame with its CRCs; ValueError if a field is out of range."""
    if not 0 <= frame.destination <= 0xFFFF or not 0 <= frame.source <= 0xFFFF:
        raise ValueError("link addresses are 16-bit")
    if not 0 <= frame.function <= 15:
        raise ValueError("link function is 4-bit")
    n = len(frame.user_data)
    if n > MAX_USER_DATA:
        raise ValueError(f"at most {MAX_USER_DATA} octets of user data, got {n}")
    bad = check_link_function(frame.prm, frame.function, n)
    if bad is not None:
        raise ValueError(bad[1])
    control = (
        (LINK_DIR if frame.dir else 0) | (LINK_PRM if frame.prm else 0)
        | (LINK_FCB if frame.fcb else 0) | (LINK_FCV if frame.fcv else 0) | frame.function
    )
    head = START + struct.pack("<BBHH", n + MIN_LENGTH, control, frame.destination, frame.source)
    out = [head, crc16(head).to_bytes(2, "little")]
    for i in range(0, n, BLOCK_SIZE):
        block = frame.user_data[i : i + BLOCK_SIZE]
        out += (block, crc16(block).to_bytes(2, "little"))
    return b"".join(out)


def parse_segment(user_data: bytes) -> TransportSegment | Malformed:
    """Decode the transport header of a frame's user data; never raises."""
    if not user_data:
        return Malformed(Reason.BAD_LENGTH, 0, user_data, "no transport header")
    h = user_data[0]
    return TransportSegment(bool(h & TRANSPORT_FIN), bool(h & TRANSPORT_FIR), h & TRANSPORT_SEQ,
                            user_data[1:])


def build_segment(segment: TransportSegment) -> bytes:
    """Encode a transport segment; ValueError if it does not fit one link frame."""
    if not 0 <= segment.seq <= TRANSPORT_SEQ:
        raise ValueError("transport sequence is 6-bit")
    if len(segment.data) > MAX_USER_DATA - 1:
        raise ValueError(f"at most {MAX_USER_DATA - 1} octets per segment")
    h = (TRANSPORT_FIN if segment.fin else 0) | (TRANSPORT_FIR if segment.fir else 0) | segment.seq
    return bytes((h,)) + segment.data


def strip_crcs(buf: bytes, off: int, n: int) -> bytes:
    """The ``n`` user data octets of the blocks at ``off`` without checking CRCs (for reporting
    what a frame with a bad CRC said)."""
    return b"".join(buf[off + i + 2 * (i >> 4) : off + min(i + 16, n) + 2 * (i >> 4)]
                    for i in range(0, n, BLOCK_SIZE))
