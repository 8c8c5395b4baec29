"""DNP3 codec (IEEE 1815-2012): link frames, transport segments, application fragments.

Spec sections followed: 9.2 (link frame, CRC), 8.2 (transport header), 4.2.2 (application
header: control, function code, IIN), 4.2.2.7 (object headers: qualifier, prefix and range codes)
and Annex A (object sizes and values, in :mod:`.objects`).

Hand-written rather than taken from a library: scapy ships no DNP3 layer; the pure-Python
``dnp3py`` package is a master/outstation stack (asyncio runners, a point database) whose parser
raises ``ParseError`` instead of returning the reason; opendnp3 bindings wrap a C++ stack that
owns its sockets and threads. A passive sensor needs every malformation as a value
(``Malformed``), resynchronisation instead of exceptions, and a few microseconds per fragment.

Layers: :func:`parse` / :func:`parse_frame` decode one link frame, :func:`parse_segment` its
transport header, :func:`parse_fragment` a (reassembled) application fragment. :func:`build`
encodes any of these values. :func:`scan_fragment` is the session's fast path: it walks the same
object headers as :func:`parse_fragment` (one walker, :func:`_walk`) but returns only what an
``Operation`` needs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from interlock.protocols.base import Malformed

from . import objects as obj
from .fields import (
    APP_CON,
    APP_FIN,
    APP_FIR,
    APP_SEQ,
    APP_UNS,
    FIRST_RESPONSE_FUNCTION,
    FREEZE_AT_TIME_FUNCTIONS,
    HEADERS_ONLY_FUNCTIONS,
    FunctionCode,
    Reason,
)
from .link import (
    LinkFrame,
    TransportSegment,
    build_frame,
    build_segment,
    parse_frame,
    parse_segment,
)
from .objects import DecodedObject, Kind, Layout

__all__ = [
    "ApplicationRequest",
    "ApplicationResponse",
    "LinkFrame",
    "ObjectHeader",
    "Summary",
    "TransportSegment",
    "build",
    "parse",
    "parse_fragment",
    "parse_frame",
    "parse_segment",
    "scan_fragment",
]

# How the objects after a header are laid out, given the function code (see _mode).
_NODATA, _FIXED, _PACKED, _SIZED, _ATTRIBUTE, _REST, _BADVAR = range(7)

# Range field by range code (4.2.2.7.3.3): struct and octets, None for reserved codes.
_RANGE: tuple[tuple[struct.Struct | None, int] | None, ...] = (
    (struct.Struct("<BB"), 2), (struct.Struct("<HH"), 4), (struct.Struct("<II"), 8),
    (struct.Struct("<B"), 1), (struct.Struct("<H"), 2), (struct.Struct("<I"), 4),
    (None, 0),
    (struct.Struct("<B"), 1), (struct.Struct("<H"), 2), (struct.Struct("<I"), 4),
    None, (struct.Struct("<B"), 1), None, None, None, None,
)
_PREFIX_FMT = ("", "B", "H", "I", "B", "H", "I")
_PREFIX_SIZE = (0, 1, 2, 4, 1, 2, 4)
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SIZE_STRUCT = {1: _U8, 2: _U16, 4: _U32}
_FUNCTIONS = {f.value: f for f in FunctionCode}
_ATTRIBUTE_HEAD = struct.Struct("<BB")

# One walked object header:
# (group, variation, qualifier, start, stop, count, n, index_fmt, layout, mode, data_off, data_end,
#  sized) where sized lists (index, off, length, data type) of size-prefixed or g0 objects.
_Hdr = tuple[int, int, int, int | None, int | None, int | None, int, str, Layout | None, int,
             int, int, tuple[tuple[int | None, int, int, int], ...]]


def _qualifiers() -> tuple[tuple[struct.Struct | None, int, int, str, int, int] | None, ...]:
    """Per qualifier octet: (range struct, range size, range kind, index prefix format, index
    prefix size, object size prefix width); None for reserved codes (4.2.2.7.3)."""
    table: list[tuple[struct.Struct | None, int, int, str, int, int] | None] = []
    for q in range(256):
        rc, pc = q & 0x0F, q >> 4
        rng = _RANGE[rc]
        if rng is None or pc > 6 or (rc == 0xB and pc == 0):
            table.append(None)
            continue
        kind = _START_STOP if rc <= 2 else _ADDRESS if rc <= 5 else _ALL if rc == 6 else _COUNT
        width = _PREFIX_SIZE[pc if pc >= 4 else pc + 3] if rc == 0xB or pc >= 4 else 0
        index = 1 <= pc <= 3 and rc != 0xB
        table.append((rng[0], rng[1], kind, _PREFIX_FMT[pc] if index else "",
                      _PREFIX_SIZE[pc] if index else 0, width))
    return tuple(table)


_START_STOP, _ADDRESS, _ALL, _COUNT = range(4)
_QUALIFIERS = _qualifiers()
_KIND_MODE = {Kind.NONE: _NODATA, Kind.PACKED: _PACKED, Kind.FIXED: _FIXED,
              Kind.ATTRIBUTE: _ATTRIBUTE, Kind.VARIABLE: _REST}
_LAYOUT = obj.LAYOUT_BY_CODE
_NO_DATA_LAYOUT = obj.layout(0, 0)


def _mode(headers_only: bool, freeze: bool, group: int, variation: int, ranged: bool,
          sized: bool) -> tuple[int, Layout | None]:
    """Data mode of an object header (4.2.2.7, Annex A).

    ``headers_only``/``freeze``: the function carries no object data (READ, freezes...) or only
    for g50 (FREEZE_AT_TIME); ``ranged``: the range names objects (not code 6); ``sized``:
    objects carry a size prefix.
    """
    if sized:
        return _SIZED, None
    lay = _LAYOUT.get(group << 8 | variation) if variation else _NO_DATA_LAYOUT
    if headers_only or (freeze and group != 50):
        return _NODATA, lay
    if lay is None:
        return _REST, None
    if variation == 0 and ranged and group != 60:
        return _BADVAR, lay  # "any variation" names no object size: nothing can follow
    return _KIND_MODE[lay.kind], lay


# _mode's answers, per (headers_only, freeze) and then per group, variation, ranged, sized
_MODES: tuple[dict[int, tuple[int, Layout | None]], ...] = ({}, {}, {}, {})


def _walk(frag: bytes, off: int, function: int) -> tuple[list[_Hdr], str | None, int, str]:
    """Object headers of a fragment from ``off``: (headers, reason, offset, detail)."""
    hdrs: list[_Hdr] = []
    end = len(frag)
    headers_only = function in HEADERS_ONLY_FUNCTIONS
    freeze = function in FREEZE_AT_TIME_FUNCTIONS
    modes = _MODES[headers_only << 1 | freeze]
    while off < end:
        if end - off < 3:
            return hdrs, Reason.TRUNCATED_OBJECT, off, "object header cut short"
        g = frag[off]
        v = frag[off + 1]
        q = frag[off + 2]
        qd = _QUALIFIERS[q]
        if qd is None:
            return hdrs, Reason.BAD_QUALIFIER, off + 2, f"g{g}v{v} qualifier 0x{q:02X}"
        rs, rsize, kind, pf, psize, width = qd
        off += 3
        if end - off < rsize:
            return hdrs, Reason.TRUNCATED_OBJECT, off, f"g{g}v{v} range field cut short"
        start: int | None = None
        stop: int | None = None
        count: int | None = None
        if rs is None:  # range code 6: no range field
            n = 0
        elif kind == _START_STOP:
            a, b = rs.unpack_from(frag, off)
            if b < a:
                return hdrs, Reason.BAD_RANGE, off, f"g{g}v{v} stop {b} < start {a}"
            start, stop, n = a, b, b - a + 1
        elif kind == _ADDRESS:
            (start,) = rs.unpack_from(frag, off)
            n = 1
        else:
            (n,) = rs.unpack_from(frag, off)
            count = n
        off += rsize
        key = g << 10 | v << 2 | (kind != _ALL) << 1 | (width > 0)
        cached = modes.get(key)
        if cached is None:
            if len(modes) >= 4096:
                modes.clear()
            cached = modes[key] = _mode(headers_only, freeze, g, v, kind != _ALL, width > 0)
        mode, lay = cached
        sized: tuple[tuple[int | None, int, int, int], ...] = ()
        data_off = off
        if mode == _FIXED:
            off += n * (psize + lay.size)  # type: ignore[union-attr]
        elif mode == _NODATA:
            off += n * psize
        elif mode == _PACKED:
            if psize:
                return hdrs, Reason.BAD_QUALIFIER, data_off - rsize - 1, (
                    f"g{g}v{v} is packed, qualifier 0x{q:02X} has an index prefix")
            off += obj.packed_size(lay, n)  # type: ignore[arg-type]
        elif mode == _REST:
            hdrs.append((g, v, q, start, stop, count, n, pf, lay, mode, off, end, ()))
            return hdrs, None, end, ""
        elif mode == _BADVAR:
            return hdrs, Reason.BAD_VARIATION, data_off - rsize - 2, (
                f"g{g}v0 names {n} objects in function {function}")
        else:
            res = _walk_variable(frag, off, n, width, psize, pf)
            if isinstance(res, int):
                return hdrs, Reason.TRUNCATED_OBJECT, res, f"g{g}v{v} object cut short"
            sized, off = res
        if off > end:
            return hdrs, Reason.TRUNCATED_OBJECT, end, (
                f"g{g}v{v}: {n} objects need {off - data_off} octets, {end - data_off} left")
        hdrs.append((g, v, q, start, stop, count, n, pf, lay, mode, data_off, off, sized))
    return hdrs, None, off, ""


def _walk_variable(frag: bytes, off: int, n: int, width: int, psize: int,
                   pf: str) -> tuple[tuple[tuple[int | None, int, int, int], ...], int] | int:
    """Step over size-prefixed objects (``width`` > 0) or g0 attribute objects (data type,
    length, value); an int is where they were cut short."""
    end = len(frag)
    out = []
    if width:
        ss = _SIZE_STRUCT[width]
        for _ in range(n):  # every object takes at least ``width`` octets: bounded by ``end``
            if end - off < width:
                return off
            (size,) = ss.unpack_from(frag, off)
            off += width
            if end - off < size:
                return off
            out.append((None, off, size, 0))
            off += size
        return tuple(out), off
    ix = struct.Struct("<" + pf) if pf else None
    for _ in range(n):  # g0: [index] data-type length value
        if end - off < psize + 2:
            return off
        index = ix.unpack_from(frag, off)[0] if ix is not None else None
        off += psize
        dtype, size = _ATTRIBUTE_HEAD.unpack_from(frag, off)
        off += 2
        if end - off < size:
            return off
        out.append((index, off, size, dtype))
        off += size
    return tuple(out), off


# --------------------------------------------------------------------------- typed values


# g0 attribute data types (IEEE 1815-2012 table 11-7): strings, unsigned and signed integers,
# floats, octet strings; anything else is shown as hex.
def attribute_value(data_type: int, octets: bytes) -> str | int | float:
    """The value of one g0 device attribute, by its data type code."""
    if data_type == 1:  # VSTR: visible string
        return octets.decode("latin-1").rstrip("\x00")
    if data_type in (2, 3) and octets:  # UINT, INT: little endian
        return int.from_bytes(octets, "little", signed=data_type == 3)
    if data_type == 4 and len(octets) in (4, 8):  # FLT
        return float(struct.unpack("<f" if len(octets) == 4 else "<d", octets)[0])
    return octets.hex()


@dataclass(frozen=True, slots=True)
class ObjectHeader:
    """4.2.2.7: one object header and the objects it introduces.

    ``start``/``stop`` hold a start-stop range (range codes 0x0-0x2; ``start`` alone is the
    obsolete absolute address of codes 0x3-0x5), ``count`` a count range (0x7-0x9, 0xB).
    ``objects`` holds one tuple per object with the fields of its layout
    (:data:`.objects.LAYOUTS`); packed points are 1-tuples, size-prefixed objects
    ``(octets,)``, g0 device attributes ``(data_type, octets)``. ``rest`` holds object data
    whose size Interlock does not know: decoding of the fragment stopped at this header.
    """

    group: int
    variation: int
    qualifier: int
    start: int | None = None
    stop: int | None = None
    count: int | None = None
    indexes: tuple[int, ...] | None = None
    objects: tuple[DecodedObject, ...] = ()
    rest: bytes = b""

    @property
    def prefix_code(self) -> int:
        return (self.qualifier >> 4) & 0x7

    @property
    def range_code(self) -> int:
        return self.qualifier & 0xF

    @property
    def quantity(self) -> int:
        """Number of objects (points) the range names."""
        rc = self.range_code
        if rc <= 2:
            return (self.stop or 0) - (self.start or 0) + 1
        if rc <= 5:
            return 1
        return self.count or 0

    @property
    def label(self) -> str:
        return f"g{self.group}v{self.variation}"

    @property
    def layout(self) -> Layout | None:
        return obj.layout(self.group, self.variation)

    @property
    def values(self) -> tuple[obj.ObjectValue, ...]:
        """The point value of each object (Operation.values), empty if none."""
        lay = self.layout
        qd = _QUALIFIERS[self.qualifier] if 0 <= self.qualifier <= 0xFF else None
        if lay is None or lay.value < 0 or not self.objects or qd is None or qd[5]:
            return ()  # nothing decoded, or size-prefixed objects kept as octets
        i, shift, mask = lay.value, lay.shift, lay.mask
        if mask:
            return tuple((o[i] >> shift) & mask for o in self.objects)  # type: ignore[operator]
        return tuple(o[i] for o in self.objects)


@dataclass(frozen=True, slots=True)
class ApplicationRequest:
    """4.2.2: a fragment sent by a master (function codes 0..33)."""

    function: FunctionCode
    seq: int = 0
    headers: tuple[ObjectHeader, ...] = ()
    fir: bool = True
    fin: bool = True
    con: bool = False
    uns: bool = False


@dataclass(frozen=True, slots=True)
class ApplicationResponse:
    """4.2.2: a fragment sent by an outstation (129..131), with its internal indications."""

    function: FunctionCode
    seq: int = 0
    iin: int = 0  # IIN1 << 8 | IIN2, see fields.IIN
    headers: tuple[ObjectHeader, ...] = ()
    fir: bool = True
    fin: bool = True
    con: bool = False
    uns: bool = False


def _object_header(frag: bytes, h: _Hdr) -> ObjectHeader:
    g, v, q, start, stop, count, n, pf, lay, mode, doff, dend, sized = h
    indexes: tuple[int, ...] | None = None
    objects: tuple[DecodedObject, ...] = ()
    rest = b""
    if mode == _FIXED:
        items = obj.fixed_items(lay, pf, frag, doff, n)  # type: ignore[arg-type]
        objects = obj.fixed_objects(lay, items, bool(pf), n)  # type: ignore[arg-type]
        if pf:
            indexes = items[:: lay.items + 1]  # type: ignore[union-attr, assignment]
    elif mode == _NODATA:
        if pf:
            indexes = struct.unpack_from(f"<{n}{pf}", frag, doff)
    elif mode == _PACKED:
        objects = tuple((x,) for x in obj.packed_values(lay, frag, doff, n))  # type: ignore[arg-type]
    elif mode == _SIZED:
        objects = tuple((frag[o : o + s],) for _, o, s, _ in sized)
    elif mode == _ATTRIBUTE:
        objects = tuple((t, frag[o : o + s]) for _, o, s, t in sized)
        if pf:
            indexes = tuple(i for i, _, _, _ in sized if i is not None)
    else:
        rest = frag[doff:dend]
    return ObjectHeader(g, v, q, start, stop, count, indexes, objects, rest)


def parse_fragment(frag: bytes) -> ApplicationRequest | ApplicationResponse | Malformed:
    """Decode one complete application fragment (transport headers removed); never raises."""
    if len(frag) < 2:
        return Malformed(Reason.BAD_APPLICATION_HEADER, len(frag), frag, "fragment < 2 octets")
    ctl = frag[0]
    function = _FUNCTIONS.get(frag[1])
    if function is None:
        return Malformed(Reason.UNKNOWN_FUNCTION, 1, frag, f"function code {frag[1]}")
    response = function >= FIRST_RESPONSE_FUNCTION
    if response and len(frag) < 4:
        return Malformed(Reason.BAD_APPLICATION_HEADER, len(frag), frag, "response without IIN")
    hdrs, reason, off, detail = _walk(frag, 4 if response else 2, function)
    if reason is not None:
        return Malformed(reason, off, frag, detail)
    headers = tuple(_object_header(frag, h) for h in hdrs)
    fir, fin, con, uns = bool(ctl & APP_FIR), bool(ctl & APP_FIN), bool(ctl & APP_CON), bool(
        ctl & APP_UNS)
    if response:
        return ApplicationResponse(function, ctl & APP_SEQ, frag[2] << 8 | frag[3], headers,
                                   fir, fin, con, uns)
    return ApplicationRequest(function, ctl & APP_SEQ, headers, fir, fin, con, uns)


# --------------------------------------------------------------------------- fast summary


class Summary(NamedTuple):
    """What an Operation needs from a fragment (:func:`scan_fragment`)."""

    function: int | None
    seq: int
    control: int
    iin: int | None  # responses only
    address: int | None  # first start index or index prefix
    points: int | None  # objects named by all headers, None without headers
    values: tuple[float, ...] | None
    label: str | None  # "g30v1" of the first header
    objects: list[dict[str, Any]]  # Operation.detail["objects"]
    reason: str | None  # a Reason when malformed
    offset: int
    detail: str  # what is wrong, or a note on undecoded objects


_new_summary = tuple.__new__  # NamedTuple's own __new__ costs 0.3 us per call
# _ALL_QUALIFIERS[k]: what every third octet of k request octets after the application header
# holds when they are k // 3 object headers of qualifier 0x06 (nothing for other lengths)
_ALL_QUALIFIERS = tuple(b"\x06" * (k // 3) if k % 3 == 0 else None for k in range(2048))


_RESPONSES = frozenset(f for f in _FUNCTIONS if f >= FIRST_RESPONSE_FUNCTION)


def scan_fragment(frag: bytes) -> Summary:
    """Fast path of :func:`parse_fragment` for sessions: never raises.

    On a malformed fragment the fields read before the fault are kept and ``reason`` is set.
    The two most common fragments of a polled outstation, a class poll (READ of headers with
    qualifier 0x06) and a null response (IIN only), are answered here; all others by
    :func:`_scan` (which gives the same answer for these two: tests/perf_paths checks it).
    """
    n = len(frag)
    if n >= 4:
        fc = frag[1]
        if fc in HEADERS_ONLY_FUNCTIONS:
            k = n - 2
            if k < 2048 and frag[4::3] == _ALL_QUALIFIERS[k]:
                # every header has qualifier 0x06: no range, no data, whatever the object
                ctl = frag[0]
                return _new_summary(Summary, (
                    fc, ctl & APP_SEQ, ctl, None, None, 0, None, f"g{frag[2]}v{frag[3]}",
                    [{"group": g, "variation": v, "qualifier": 6}
                     for g, v in zip(frag[2::3], frag[3::3], strict=True)], None, n, ""))
        elif n == 4 and fc in _RESPONSES:
            ctl = frag[0]
            return _new_summary(Summary, (fc, ctl & APP_SEQ, ctl, frag[2] << 8 | frag[3], None,
                                          None, None, None, [], None, 4, ""))
    return _scan(frag)


def _scan(frag: bytes) -> Summary:
    """The general path of :func:`scan_fragment`."""
    if len(frag) < 2:
        ctl = frag[0] if frag else 0
        return Summary(None, ctl & APP_SEQ, ctl, None, None, None, None, None, [],
                       Reason.BAD_APPLICATION_HEADER, len(frag), "fragment < 2 octets")
    ctl = frag[0]
    fc = frag[1]
    if fc not in _FUNCTIONS:
        return Summary(fc, ctl & APP_SEQ, ctl, None, None, None, None, None, [],
                       Reason.UNKNOWN_FUNCTION, 1, f"function code {fc}")
    iin = None
    if fc >= FIRST_RESPONSE_FUNCTION:
        if len(frag) < 4:
            return Summary(fc, ctl & APP_SEQ, ctl, None, None, None, None, None, [],
                           Reason.BAD_APPLICATION_HEADER, len(frag), "response without IIN")
        iin = frag[2] << 8 | frag[3]
        hdrs, reason, off, detail = _walk(frag, 4, fc)
    else:
        hdrs, reason, off, detail = _walk(frag, 2, fc)
    address = None
    count = 0
    values: list[Any] = []  # numbers only: value fields are ints and floats
    described: list[dict[str, Any]] = []
    for g, v, q, start, stop, cnt, n, pf, lay, mode, doff, dend, sized in hdrs:
        d: dict[str, Any] = {"group": g, "variation": v, "qualifier": q}
        if start is not None:
            d["start"] = start
            if stop is not None:
                d["stop"] = stop
            if address is None:
                address = start
        elif cnt is not None:
            d["count"] = cnt
        count += n
        indexes = None
        if mode == _FIXED:
            items = obj.fixed_items(lay, pf, frag, doff, n)  # type: ignore[arg-type]
            values += obj.fixed_values(lay, items, bool(pf))  # type: ignore[arg-type]
            if pf:
                indexes = items[:: lay.items + 1]  # type: ignore[union-attr]
            if g == 12:  # CROB/PCB: keep the timing and status the value does not carry
                d["crob"] = [list(o) for o in obj.fixed_objects(lay, items, bool(pf), n)]  # type: ignore[arg-type]
        elif mode == _PACKED:
            values += obj.packed_values(lay, frag, doff, n)  # type: ignore[arg-type]
        elif mode == _NODATA:
            if pf:
                indexes = struct.unpack_from(f"<{n}{pf}", frag, doff)
        elif mode == _ATTRIBUTE:
            if pf:
                indexes = tuple(i for i, _, _, _ in sized if i is not None)
            if sized and fc >= FIRST_RESPONSE_FUNCTION:  # a response carries the attribute values
                attrs = [attribute_value(dt, frag[o : o + size]) for _, o, size, dt in sized]
                d["value"] = attrs[0] if len(attrs) == 1 else attrs
        elif mode == _REST:
            detail = f"g{g}v{v}: object size unknown, {dend - doff} octets not decoded"
        if indexes is not None:
            d["indexes"] = list(indexes)
            if address is None and indexes:
                address = indexes[0]  # type: ignore[assignment]
        described.append(d)
    first = f"g{hdrs[0][0]}v{hdrs[0][1]}" if hdrs else None
    return _new_summary(Summary, (fc, ctl & APP_SEQ, ctl, iin, address, count if hdrs else None,
                                  tuple(values) if values else None, first, described, reason,
                                  off, detail))


# --------------------------------------------------------------------------- build


def _build_header(h: ObjectHeader, function: int, last: bool) -> bytes:
    for name, val in (("group", h.group), ("variation", h.variation), ("qualifier", h.qualifier)):
        if not 0 <= val <= 255:
            raise ValueError(f"{name} is one octet, got {val}")
    q = h.qualifier
    rc, pc = q & 0xF, q >> 4
    qd = _QUALIFIERS[q]
    if qd is None:
        raise ValueError(f"reserved qualifier 0x{q:02X}")
    rs, _, kind, pf, _, width = qd
    out = bytearray((h.group, h.variation, q))
    try:
        if rc <= 2:
            if h.start is None or h.stop is None or h.count is not None or h.stop < h.start:
                raise ValueError(f"range code {rc} needs start <= stop and no count")
            out += rs.pack(h.start, h.stop)  # type: ignore[union-attr]
        elif rc <= 5:
            if h.start is None or h.stop is not None or h.count is not None:
                raise ValueError(f"range code {rc} needs an address (start) only")
            out += rs.pack(h.start)  # type: ignore[union-attr]
        elif rc == 6:
            if h.start is not None or h.stop is not None or h.count is not None:
                raise ValueError("range code 6 has no range field")
        else:
            if h.count is None or h.start is not None or h.stop is not None:
                raise ValueError(f"range code {rc} needs a count only")
            out += rs.pack(h.count)  # type: ignore[union-attr]
    except struct.error as e:
        raise ValueError(f"range field: {e}") from None
    n = h.quantity
    mode, lay = _mode(function in HEADERS_ONLY_FUNCTIONS, function in FREEZE_AT_TIME_FUNCTIONS,
                      h.group, h.variation, kind != _ALL, width > 0)
    index = bool(pf)
    if mode == _BADVAR:
        raise ValueError(f"{h.label}: variation 0 cannot carry objects in function {function}")
    if mode != _REST and h.rest:
        raise ValueError(f"{h.label}: rest is only for objects of unknown size")
    if mode in (_NODATA, _FIXED, _ATTRIBUTE) and index:
        if h.indexes is None or len(h.indexes) != n:
            raise ValueError(f"{h.label}: qualifier 0x{q:02X} needs {n} indexes")
    elif h.indexes is not None:
        raise ValueError(f"{h.label}: qualifier 0x{q:02X} has no index prefix here")
    idx = struct.Struct("<" + pf) if pf else None
    try:
        if mode == _NODATA:
            if h.objects:
                raise ValueError(f"{h.label} carries no object data in function {function}")
            if idx is not None:
                out += b"".join(idx.pack(i) for i in h.indexes)  # type: ignore[union-attr]
        elif mode == _REST:
            if h.objects or not last:
                raise ValueError(f"{h.label}: unknown size, must be last and undecoded")
            out += h.rest
        elif len(h.objects) != n:
            raise ValueError(f"{h.label}: range names {n} objects, got {len(h.objects)}")
        elif mode == _FIXED:
            for k, o in enumerate(h.objects):
                if idx is not None:
                    out += idx.pack(h.indexes[k])  # type: ignore[index]
                out += obj.encode_fixed(lay, o)  # type: ignore[arg-type]
        elif mode == _PACKED:
            if pc:
                raise ValueError(f"{h.label} is packed: no prefix allowed")
            if any(len(o) != 1 for o in h.objects):
                raise ValueError("packed objects are 1-tuples")
            out += obj.encode_packed(lay, tuple(o[0] for o in h.objects))  # type: ignore[arg-type]
        elif mode == _SIZED:
            ss = _SIZE_STRUCT[width]
            for o in h.objects:
                if len(o) != 1 or not isinstance(o[0], bytes):
                    raise ValueError("size-prefixed objects are (octets,)")
                out += ss.pack(len(o[0])) + o[0]
        else:  # _ATTRIBUTE
            for k, o in enumerate(h.objects):
                dtype, value = o if len(o) == 2 else (None, None)
                if not isinstance(dtype, int) or not isinstance(value, bytes) or len(value) > 255:
                    raise ValueError("g0 attributes are (data_type, octets <= 255)")
                if idx is not None:
                    out += idx.pack(h.indexes[k])  # type: ignore[index]
                out += _ATTRIBUTE_HEAD.pack(dtype, len(value)) + value
    except struct.error as e:
        raise ValueError(f"{h.label}: {e}") from None
    return bytes(out)


def build_fragment(fragment: ApplicationRequest | ApplicationResponse) -> bytes:
    """Encode an application fragment; ValueError on out-of-range or inconsistent fields."""
    function = fragment.function
    if function not in _FUNCTIONS:
        raise ValueError(f"unknown function code {function}")
    response = isinstance(fragment, ApplicationResponse)
    if response != (function >= FIRST_RESPONSE_FUNCTION):
        raise ValueError(f"function {function} does not belong in a {type(fragment).__name__}")
    if not 0 <= fragment.seq <= APP_SEQ:
        raise ValueError("application sequence is 4-bit")
    ctl = ((APP_FIR if fragment.fir else 0) | (APP_FIN if fragment.fin else 0)
           | (APP_CON if fragment.con else 0) | (APP_UNS if fragment.uns else 0) | fragment.seq)
    out = [bytes((ctl, int(function)))]
    if isinstance(fragment, ApplicationResponse):
        if not 0 <= fragment.iin <= 0xFFFF:
            raise ValueError("IIN is 16-bit")
        out.append(fragment.iin.to_bytes(2, "big"))
    last = len(fragment.headers) - 1
    out += [_build_header(h, function, k == last) for k, h in enumerate(fragment.headers)]
    return b"".join(out)


def parse(data: bytes) -> LinkFrame | Malformed:
    """Decode one link frame (CRCs checked and removed); never raises.

    Its ``user_data`` goes to :func:`parse_segment`, and the data of the segments of one
    fragment, joined, to :func:`parse_fragment`.
    """
    return parse_frame(data)


def build(value: LinkFrame | TransportSegment | ApplicationRequest | ApplicationResponse) -> bytes:
    """Encode a frame, segment or fragment; ValueError on out-of-range fields."""
    if isinstance(value, LinkFrame):
        return build_frame(value)
    if isinstance(value, TransportSegment):
        return build_segment(value)
    return build_fragment(value)
