"""The DNP3 object library (IEEE 1815-2012 Annex A) as data: the layout of each variation.

A :class:`Layout` says how the objects of one group/variation sit on the wire and which field is
the point value. Fixed-size objects are a little-endian ``struct`` format; a 48-bit DNP3 time
(ms since 1970-01-01 UTC, A.1 "DNP3 time") is written ``IH`` (low 32 bits, high 16 bits) in the
format and is one field in the decoded object. Binary objects with flags take their value from
the flags octet: bit 7 is the state (A.2, A.11), bits 7..6 the double-bit state (A.4).

Groups whose objects have no fixed size (g70 file control, g120 authentication, data sets...)
are ``VARIABLE``: they can be stepped over only when the qualifier gives each object's size
(0x5B); otherwise decoding of the fragment stops there, which is not malformed.
"""

from __future__ import annotations

import enum
import struct
from itertools import chain
from typing import NamedTuple

ObjectValue = int | float | bytes
_ONE_FORMAT_MAX = 32  # objects decoded with one struct format (see fixed_items)
DecodedObject = tuple[ObjectValue, ...]


class Kind(enum.IntEnum):
    """How the objects of a variation are laid out."""

    NONE = 0  # no object data: class objects (g60), "any variation" (variation 0)
    PACKED = 1  # 1 or 2 bits per point, packed from bit 0 of the first octet
    FIXED = 2  # one struct format per object
    ATTRIBUTE = 3  # g0 device attributes: data type, length, value
    VARIABLE = 4  # size only known from a size prefix


class Layout(NamedTuple):
    """Wire layout of one group/variation."""

    name: str  # readable name after Annex A
    kind: Kind
    fmt: str = ""  # struct format of one object, without byte order
    fields: tuple[str, ...] = ()  # names of the decoded fields
    size: int = 0  # octets per object (FIXED), bits per point (PACKED)
    value: int = -1  # index in ``fields`` of the field holding the point value, -1: none
    shift: int = 0  # point value = (field >> shift) & mask when mask != 0
    mask: int = 0
    time: int = -1  # index in ``fields`` of a 48-bit time, -1: none
    item_value: int = -1  # index of the value among the struct items of one object
    items: int = 0  # struct items per object (a 48-bit time is two)


_CODES = {"B": "B", "b": "b", "H": "H", "h": "h", "I": "I", "i": "i", "f": "f", "d": "d",
          "T": "IH", "Q": "Q"}


def _fixed(name: str, spec: str, value: str | None = "value", shift: int = 0,
           mask: int = 0) -> Layout:
    """A FIXED layout from ``"flags:B value:i time:T"`` (T is a 48-bit time)."""
    fields: list[str] = []
    fmt = ""
    time = -1
    item_value = -1
    items = 0
    for part in spec.split():
        fname, code = part.split(":")
        if fname == value:
            item_value = items
        if code == "T":
            time = len(fields)
        fields.append(fname)
        fmt += _CODES[code]
        items += len(_CODES[code])
    return Layout(name, Kind.FIXED, fmt, tuple(fields), struct.calcsize("<" + fmt),
                  fields.index(value) if value else -1, shift, mask, time, item_value, items)


def _binary(name: str, spec: str, double: bool = False) -> Layout:
    return _fixed(name, spec, "flags", 6 if double else 7, 3 if double else 1)


def _packed(name: str, bits: int = 1) -> Layout:
    return Layout(name, Kind.PACKED, "", ("value",), bits, 0)


_NONE = Layout("No object data", Kind.NONE)


def _table() -> dict[tuple[int, int], Layout]:
    t: dict[tuple[int, int], Layout] = {}
    f = _fixed
    # A.2-A.5 binary and double-bit inputs
    t[1, 1] = _packed("Binary Input - Packed Format")
    t[1, 2] = _binary("Binary Input - With Flags", "flags:B")
    t[2, 1] = _binary("Binary Input Event - Without Time", "flags:B")
    t[2, 2] = _binary("Binary Input Event - With Absolute Time", "flags:B time:T")
    t[2, 3] = _binary("Binary Input Event - With Relative Time", "flags:B time:H")
    t[3, 1] = _packed("Double-bit Binary Input - Packed Format", 2)
    t[3, 2] = _binary("Double-bit Binary Input - With Flags", "flags:B", True)
    t[4, 1] = _binary("Double-bit Binary Input Event - Without Time", "flags:B", True)
    t[4, 2] = _binary("Double-bit Binary Input Event - With Absolute Time", "flags:B time:T", True)
    t[4, 3] = _binary("Double-bit Binary Input Event - With Relative Time", "flags:B time:H", True)
    # A.6-A.10 binary outputs and commands
    t[10, 1] = _packed("Binary Output - Packed Format")
    t[10, 2] = _binary("Binary Output - Output Status With Flags", "flags:B")
    t[11, 1] = _binary("Binary Output Event - Status Without Time", "flags:B")
    t[11, 2] = _binary("Binary Output Event - Status With Time", "flags:B time:T")
    crob = "control_code:B count:B on_time:I off_time:I status:B"
    t[12, 1] = f("Binary Command - Control Relay Output Block", crob, "control_code")
    t[12, 2] = f("Binary Command - Pattern Control Block", crob, "control_code")
    t[12, 3] = _packed("Binary Command - Pattern Mask")
    t[13, 1] = _binary("Binary Output Command Event - Command Status Without Time", "flags:B")
    t[13, 2] = _binary("Binary Output Command Event - Command Status With Time", "flags:B time:T")
    # A.11-A.14 counters
    counters = {1: "flags:B value:I", 2: "flags:B value:H", 3: "flags:B value:I",
                4: "flags:B value:H"}
    for v, spec in counters.items():
        t[20, v] = f(f"Counter - variation {v}", spec)
        t[21, v] = f(f"Frozen Counter - variation {v}", spec)
        t[22, v] = f(f"Counter Event - variation {v}", spec)
        t[23, v] = f(f"Frozen Counter Event - variation {v}", spec)
    for v, spec in {5: "value:I", 6: "value:H", 7: "value:I", 8: "value:H"}.items():
        t[20, v] = f(f"Counter - variation {v}", spec)
    for v, spec in {5: "flags:B value:I time:T", 6: "flags:B value:H time:T",
                    7: "flags:B value:I time:T", 8: "flags:B value:H time:T"}.items():
        t[21, v] = f(f"Frozen Counter - variation {v}", spec)
        t[22, v] = f(f"Counter Event - variation {v}", spec)
        t[23, v] = f(f"Frozen Counter Event - variation {v}", spec)
    for v, spec in {9: "value:I", 10: "value:H", 11: "value:I", 12: "value:H"}.items():
        t[21, v] = f(f"Frozen Counter - variation {v}", spec)
    # A.15-A.19 analog inputs
    for v, spec in {1: "flags:B value:i", 2: "flags:B value:h", 3: "value:i", 4: "value:h",
                    5: "flags:B value:f", 6: "flags:B value:d"}.items():
        t[30, v] = f(f"Analog Input - variation {v}", spec)
    for v, spec in {1: "flags:B value:i", 2: "flags:B value:h", 3: "flags:B value:i time:T",
                    4: "flags:B value:h time:T", 5: "value:i", 6: "value:h",
                    7: "flags:B value:f", 8: "flags:B value:d"}.items():
        t[31, v] = f(f"Frozen Analog Input - variation {v}", spec)
    events = {1: "flags:B value:i", 2: "flags:B value:h", 3: "flags:B value:i time:T",
              4: "flags:B value:h time:T", 5: "flags:B value:f", 6: "flags:B value:d",
              7: "flags:B value:f time:T", 8: "flags:B value:d time:T"}
    for v, spec in events.items():
        t[32, v] = f(f"Analog Input Event - variation {v}", spec)
        t[33, v] = f(f"Frozen Analog Input Event - variation {v}", spec)
        t[42, v] = f(f"Analog Output Event - variation {v}", spec)
        t[43, v] = f(f"Analog Output Command Event - variation {v}",
                     spec.replace("flags:", "status:"))
    for v, spec in {1: "value:H", 2: "value:I", 3: "value:f"}.items():
        t[34, v] = f(f"Analog Input Reporting Deadband - variation {v}", spec)
    # A.20-A.21 analog outputs
    for v, spec in {1: "flags:B value:i", 2: "flags:B value:h", 3: "flags:B value:f",
                    4: "flags:B value:d"}.items():
        t[40, v] = f(f"Analog Output Status - variation {v}", spec)
    for v, spec in {1: "value:i status:B", 2: "value:h status:B", 3: "value:f status:B",
                    4: "value:d status:B"}.items():
        t[41, v] = f(f"Analog Output - variation {v}", spec)
    # A.24-A.27 times
    t[50, 1] = f("Time and Date - Absolute Time", "time:T", "time")
    t[50, 2] = f("Time and Date - Absolute Time and Interval", "time:T interval:I", "time")
    t[50, 3] = f("Time and Date - Absolute Time at Last Recorded Time", "time:T", "time")
    t[50, 4] = f("Time and Date - Indexed Absolute Time and Long Interval",
                 "time:T interval:I units:B", "time")
    t[51, 1] = f("Time and Date CTO - Absolute Time, Synchronized", "time:T", "time")
    t[51, 2] = f("Time and Date CTO - Absolute Time, Unsynchronized", "time:T", "time")
    t[52, 1] = f("Time Delay - Coarse", "value:H")  # seconds
    t[52, 2] = f("Time Delay - Fine", "value:H")  # milliseconds
    for v in range(1, 5):
        t[60, v] = Layout(f"Class Objects - Class {v - 1} Data", Kind.NONE)
    t[80, 1] = _packed("Internal Indications - Packed Format")
    t[101, 1] = f("Binary-Coded Decimal Integer - Small", "bcd:H", None)
    t[101, 2] = f("Binary-Coded Decimal Integer - Medium", "bcd:I", None)
    t[101, 3] = f("Binary-Coded Decimal Integer - Large", "bcd:Q", None)
    t[102, 1] = f("Unsigned Integer - 8-bit", "value:B")
    t[121, 1] = f("Security Statistic - 32-bit With Flag", "flags:B association:H value:I")
    t[122, 1] = f("Security Statistic Event - 32-bit With Flag", "flags:B association:H value:I")
    t[122, 2] = f("Security Statistic Event - 32-bit With Flag and Time",
                  "flags:B association:H value:I time:T")
    for v in range(1, 256):
        t[0, v] = Layout("Device Attributes", Kind.ATTRIBUTE)
        for g in (110, 111, 112, 113):
            # A.34-A.37: the variation is the string length
            t[g, v] = Layout(f"Octet String group {g}", Kind.FIXED, f"{v}s", ("octets",), v,
                             items=1)
    for v in range(1, 9):
        t[70, v] = Layout("File-control", Kind.VARIABLE)
    for v in range(1, 16):
        t[120, v] = Layout("Authentication", Kind.VARIABLE)
    for g, v in ((82, 1), (83, 1), (85, 1), (86, 1), (86, 2), (86, 3), (87, 1), (88, 1),
                 (90, 1), (91, 1)):
        t[g, v] = Layout(f"Variable-size group {g}", Kind.VARIABLE)
    return t


LAYOUTS: dict[tuple[int, int], Layout] = _table()
LAYOUT_BY_CODE: dict[int, Layout] = {g << 8 | v: lay for (g, v), lay in LAYOUTS.items()}


def layout(group: int, variation: int) -> Layout | None:
    """The layout of a group/variation, None if Interlock does not know its size."""
    if variation == 0:
        return _NONE  # "any variation": only ever a request without data
    return LAYOUTS.get((group, variation))


def packed_size(lay: Layout, n: int) -> int:
    """Octets taken by ``n`` packed points."""
    return (n * lay.size + 7) >> 3


def packed_values(lay: Layout, buf: bytes, off: int, n: int) -> tuple[int, ...]:
    """The ``n`` packed point values at ``off`` (A.2.1: point i is bit i % 8 of octet i // 8)."""
    if lay.size == 1:
        return tuple((buf[off + (i >> 3)] >> (i & 7)) & 1 for i in range(n))
    return tuple((buf[off + (i >> 2)] >> ((i & 3) << 1)) & 3 for i in range(n))


def fixed_items(lay: Layout, prefix: str, buf: bytes, off: int, n: int) -> tuple[ObjectValue, ...]:
    """All struct items of ``n`` objects (each after an index of format ``prefix``).

    One format for the whole run is fastest, but ``struct`` compiles and caches every format it
    sees: beyond a few dozen objects a repeat count or a per-object format keeps that cache small
    whatever counts a peer sends.
    """
    fmt = prefix + lay.fmt
    if n <= _ONE_FORMAT_MAX:
        return struct.unpack_from("<" + fmt * n, buf, off)
    if len(fmt) == 1:
        return struct.unpack_from(f"<{n}{fmt}", buf, off)
    one = struct.Struct("<" + fmt)
    return tuple(chain.from_iterable(one.iter_unpack(memoryview(buf)[off : off + n * one.size])))


def fixed_values(lay: Layout, items: tuple[ObjectValue, ...], prefixed: bool) -> tuple[ObjectValue, ...]:
    """Point values out of :func:`fixed_items`."""
    if lay.value < 0:
        return ()
    w = lay.items + prefixed
    i = lay.item_value + prefixed
    if lay.mask:
        return tuple((f >> lay.shift) & lay.mask for f in items[i::w])  # type: ignore[operator]
    if lay.value == lay.time:
        return tuple(lo | hi << 32 for lo, hi in zip(items[i::w], items[i + 1 :: w],  # type: ignore[operator]
                                                    strict=True))
    return items[i::w]


def fixed_objects(lay: Layout, items: tuple[ObjectValue, ...], prefixed: bool,
                  n: int) -> tuple[DecodedObject, ...]:
    """Decoded objects (fields as in ``lay.fields``) out of :func:`fixed_items`."""
    w = lay.items + prefixed
    out = []
    t = lay.time
    for k in range(n):
        o = items[k * w + prefixed : (k + 1) * w]
        if t >= 0:
            o = (*o[:t], o[t] | o[t + 1] << 32, *o[t + 2 :])  # type: ignore[operator]
        out.append(o)
    return tuple(out)


def encode_fixed(lay: Layout, obj: DecodedObject) -> bytes:
    """One fixed-size object; ValueError when a field does not fit."""
    if len(obj) != len(lay.fields):
        raise ValueError(f"{lay.name} has fields {lay.fields}, got {len(obj)} values")
    items: list[ObjectValue] = list(obj)
    if lay.time >= 0:
        t = obj[lay.time]
        if not isinstance(t, int) or not 0 <= t < 1 << 48:
            raise ValueError("DNP3 time is an unsigned 48-bit count of milliseconds")
        items[lay.time : lay.time + 1] = [t & 0xFFFFFFFF, t >> 32]
    try:
        return struct.pack("<" + lay.fmt, *items)
    except struct.error as e:
        raise ValueError(f"{lay.name}: {e}") from None


def encode_packed(lay: Layout, values: tuple[ObjectValue, ...]) -> bytes:
    """Packed points (unused high bits zero); ValueError on a value that does not fit."""
    out = bytearray(packed_size(lay, len(values)))
    per = 8 // lay.size
    top = (1 << lay.size) - 1
    for i, v in enumerate(values):
        if not isinstance(v, int) or not 0 <= v <= top:
            raise ValueError(f"{lay.name}: point value {v!r} is not 0..{top}")
        out[i // per] |= v << ((i % per) * lay.size)
    return bytes(out)
