"""Property tests: parse(build(x)) == x for every message kind; parsers and the session never
raise; chunking does not change what a session reports; the fast path agrees with parse."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from interlock.protocols.base import Malformed, Operation
from interlock.protocols.dnp3 import (
    ApplicationRequest,
    ApplicationResponse,
    DNP3Session,
    LinkFrame,
    ObjectHeader,
    TransportSegment,
    build,
    parse,
    parse_fragment,
    parse_segment,
    probe,
    scan_fragment,
)
from interlock.protocols.dnp3.codec import (
    _ADDRESS,
    _ALL,
    _ATTRIBUTE,
    _BADVAR,
    _FIXED,
    _NODATA,
    _PACKED,
    _QUALIFIERS,
    _REST,
    _SIZED,
    _START_STOP,
    _mode,
    build_fragment,
)
from interlock.protocols.dnp3.fields import (
    FREEZE_AT_TIME_FUNCTIONS,
    HEADERS_ONLY_FUNCTIONS,
    MAX_FRAME_SIZE,
    FunctionCode,
    PrimaryFunction,
    SecondaryFunction,
)
from interlock.protocols.dnp3.objects import LAYOUTS, Kind, Layout

from ._streams import frames

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# --------------------------------------------------------------------------- link and transport

user_function = st.sampled_from([PrimaryFunction.CONFIRMED_USER_DATA,
                                 PrimaryFunction.UNCONFIRMED_USER_DATA])
link_only = st.one_of(
    st.tuples(st.just(True), st.sampled_from([f for f in PrimaryFunction if f not in (3, 4)])),
    st.tuples(st.just(False), st.sampled_from(list(SecondaryFunction))))


@st.composite
def link_frames(draw: st.DrawFn) -> LinkFrame:
    flags = [draw(st.booleans()) for _ in range(3)]
    addr = st.integers(0, 0xFFFF)
    if draw(st.booleans()):
        return LinkFrame(flags[0], True, flags[1], flags[2], draw(user_function), draw(addr),
                         draw(addr), draw(st.binary(min_size=1, max_size=250)))
    prm, function = draw(link_only)
    return LinkFrame(flags[0], prm, flags[1], flags[2], function, draw(addr), draw(addr))


segments = st.builds(TransportSegment, st.booleans(), st.booleans(), st.integers(0, 63),
                     st.binary(max_size=249))


@SETTINGS
@given(link_frames())
def test_link_roundtrip(frame: LinkFrame) -> None:
    assert parse(build(frame)) == frame


@SETTINGS
@given(segments)
def test_segment_roundtrip(segment: TransportSegment) -> None:
    assert parse_segment(build(segment)) == segment


# --------------------------------------------------------------------------- application layer

_CODE: dict[str, st.SearchStrategy[Any]] = {
    "B": st.integers(0, 0xFF), "b": st.integers(-0x80, 0x7F),
    "H": st.integers(0, 0xFFFF), "h": st.integers(-0x8000, 0x7FFF),
    "I": st.integers(0, 0xFFFFFFFF), "i": st.integers(-(1 << 31), (1 << 31) - 1),
    "Q": st.integers(0, (1 << 64) - 1), "T": st.integers(0, (1 << 48) - 1),
    "f": st.floats(width=32, allow_nan=False), "d": st.floats(allow_nan=False),
}
# a spread of layouts: every kind, several groups each, plus objects Interlock cannot size
_GV = [*sorted({(g, v) for (g, v), lay in LAYOUTS.items()
                if g not in (0, 110, 111, 112, 113) or v in (1, 2, 3, 200)}),
       (1, 0), (30, 0), (99, 1), (1, 7)]
_PACKED_GV = [(1, 1), (3, 1), (10, 1), (12, 3), (80, 1)]
_QUALS = [q for q, d in enumerate(_QUALIFIERS) if d is not None]
_COMMON_QUALS = [0x00, 0x01, 0x06, 0x07, 0x08, 0x17, 0x28, 0x5B]
_REQUESTS = [f for f in FunctionCode if f < 129]
_RESPONSES = [f for f in FunctionCode if f >= 129]


def _object(lay: Layout) -> st.SearchStrategy[tuple[Any, ...]]:
    codes = lay.fmt.replace("IH", "T")
    if lay.fmt.endswith("s"):
        return st.tuples(st.binary(min_size=lay.size, max_size=lay.size))
    return st.tuples(*[_CODE[c] for c in codes])


@st.composite
def object_headers(draw: st.DrawFn, function: int, last: bool) -> ObjectHeader:
    g, v = draw(st.sampled_from(_GV) | st.sampled_from(_PACKED_GV))
    q = draw(st.sampled_from(_COMMON_QUALS) | st.sampled_from(_QUALS))
    _, rsize, kind, pf, psize, width = _QUALIFIERS[q]  # type: ignore[misc]
    mode, lay = _mode(function in HEADERS_ONLY_FUNCTIONS, function in FREEZE_AT_TIME_FUNCTIONS,
                      g, v, kind != _ALL, width > 0)
    assume(mode != _BADVAR and not (mode == _PACKED and pf) and (mode != _REST or last))
    top = (1 << (8 * (rsize // 2 if kind == _START_STOP else rsize))) - 1 if rsize else 0
    start = stop = count = None
    if kind == _START_STOP:
        n = draw(st.integers(1, 6))
        start = draw(st.integers(0, top - n + 1))
        stop = start + n - 1
    elif kind == _ADDRESS:
        n, start = 1, draw(st.integers(0, top))
    elif kind == _ALL:
        n = 0
    else:
        n = count = draw(st.integers(0, 6))
    indexes = None
    if pf and mode in (_NODATA, _FIXED, _ATTRIBUTE):
        indexes = tuple(draw(st.lists(st.integers(0, (1 << (8 * psize)) - 1), min_size=n,
                                      max_size=n)))
    objects: tuple[tuple[Any, ...], ...] = ()
    rest = b""
    if mode == _FIXED:
        objects = tuple(draw(st.lists(_object(lay), min_size=n, max_size=n)))  # type: ignore[arg-type]
    elif mode == _PACKED:
        top_bit = (1 << lay.size) - 1  # type: ignore[union-attr]
        objects = tuple((x,) for x in draw(st.lists(st.integers(0, top_bit), min_size=n,
                                                    max_size=n)))
    elif mode == _SIZED:
        objects = tuple((x,) for x in draw(st.lists(st.binary(max_size=30), min_size=n,
                                                    max_size=n)))
    elif mode == _REST:
        rest = draw(st.binary(max_size=40))
    elif mode == _ATTRIBUTE:  # g0 device attributes
        objects = tuple(draw(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)),
                                      min_size=n, max_size=n)))
    return ObjectHeader(g, v, q, start, stop, count, indexes, objects, rest)


@st.composite
def fragments(draw: st.DrawFn) -> ApplicationRequest | ApplicationResponse:
    function = draw(st.sampled_from(_REQUESTS) | st.sampled_from(_RESPONSES))
    k = draw(st.integers(0, 4))
    headers = tuple(draw(object_headers(function, i == k - 1)) for i in range(k))
    flags = [draw(st.booleans()) for _ in range(4)]
    seq = draw(st.integers(0, 15))
    if function >= 129:
        return ApplicationResponse(function, seq, draw(st.integers(0, 0xFFFF)), headers, *flags)
    return ApplicationRequest(function, seq, headers, *flags)


def _kind_of(lay: Layout | None) -> Kind | None:
    return None if lay is None else lay.kind


@SETTINGS
@given(fragments())
def test_fragment_roundtrip_and_fast_path(fragment: ApplicationRequest | ApplicationResponse) -> None:
    data = build_fragment(fragment)
    assert parse_fragment(data) == fragment
    s = scan_fragment(data)
    assert s.reason is None and s.function == fragment.function and s.seq == fragment.seq
    values = [x for h in fragment.headers for x in h.values]
    assert list(s.values or ()) == values
    assert s.label == (fragment.headers[0].label if fragment.headers else None)
    assert s.points == (sum(h.quantity for h in fragment.headers) if fragment.headers else None)
    assert [(d["group"], d["variation"], d["qualifier"]) for d in s.objects] == [
        (h.group, h.variation, h.qualifier) for h in fragment.headers]


# --------------------------------------------------------------------------- never raise


def _mutations(draw: Callable[[st.SearchStrategy[Any]], Any], data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        op = draw(st.sampled_from(["flip", "set", "cut", "dup"]))
        if op == "flip":
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            out[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del out[i:]
        else:
            out[i:i] = out[i : i + draw(st.integers(1, 8))]
    return bytes(out)


@st.composite
def mutated_fragments(draw: st.DrawFn) -> bytes:
    return _mutations(draw, build_fragment(draw(fragments())))


@st.composite
def valid_streams(draw: st.DrawFn) -> list[tuple[bytes, bool]]:
    """Up to four fragments each way, cut into link frames, as (bytes, from_client)."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        frag = draw(fragments())
        master = isinstance(frag, ApplicationRequest)
        size = draw(st.sampled_from([249, 40, 7]))
        tseq = draw(st.integers(0, 63))
        out += [(f, master) for f in frames(build_fragment(frag), master=master, size=size,
                                              tseq=tseq)]
    if draw(st.booleans()):
        prm, function = draw(link_only)
        out.append((build(LinkFrame(draw(st.booleans()), prm, False, False, function, 1, 10)),
                    draw(st.booleans())))
    return out


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    return _mutations(draw, build(draw(link_frames())))


@SETTINGS
@given(st.one_of(st.binary(max_size=600), mutated_fragments(), mutated_frames()))
def test_parsers_never_raise(data: bytes) -> None:
    for result in (parse(data), parse_segment(data), parse_fragment(data)):
        assert result is not None
    s = scan_fragment(data)
    typed = parse_fragment(data)
    assert (s.reason is None) == (not isinstance(typed, Malformed))
    assert probe(data, True) is not None


def _feed(chunks: list[tuple[bytes, bool]], cut: int) -> list[Operation]:
    """Feed each direction's bytes in pieces of ``cut`` octets (0: whole chunks)."""
    s = DNP3Session()
    ops: list[Operation] = []
    for data, from_client in chunks:
        if cut:
            for i in range(0, len(data), cut):
                ops += s.feed(data[i : i + cut], from_client)
        else:
            ops += s.feed(data, from_client)
        assert len(s._streams[from_client].buf) < MAX_FRAME_SIZE
    return ops


@SETTINGS
@given(valid_streams(), st.sampled_from([1, 3, 17, 100]))
def test_chunking_does_not_matter(chunks: list[tuple[bytes, bool]], cut: int) -> None:
    merged: list[tuple[bytes, bool]] = []  # several PDUs per chunk where a direction repeats
    for data, from_client in chunks:
        if merged and merged[-1][1] == from_client:
            merged[-1] = (merged[-1][0] + data, from_client)
        else:
            merged.append((data, from_client))
    whole = _feed(merged, 0)
    assert whole == _feed(chunks, 0) == _feed(chunks, cut)
    assert not any(op.malformed for op in whole)


@SETTINGS
@given(st.data())
def test_session_never_raises_on_noise(data: st.DataObject) -> None:
    chunks = data.draw(valid_streams())
    noisy = [(_mutations(data.draw, d) if data.draw(st.booleans()) else d, c) for d, c in chunks]
    noisy.append((data.draw(st.binary(max_size=400)), data.draw(st.booleans())))
    ops = _feed(noisy, 0)
    assert _feed(noisy, 1) == ops  # even on garbage, chunking does not change the report
    for op in ops:
        assert op.protocol == "dnp3"
        assert (op.malformed is None) == (op.op_class.value != "malformed")


def test_struct_layouts_are_consistent() -> None:
    for lay in LAYOUTS.values():
        if lay.kind == Kind.FIXED:
            assert struct.calcsize("<" + lay.fmt) == lay.size
            assert len(struct.unpack("<" + lay.fmt, bytes(lay.size))) == lay.items
