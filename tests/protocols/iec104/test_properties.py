"""Property tests: round trip over every message kind, no exception on any input, chunking
independence of the session, and agreement of the session's fast path with the parser."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.protocols.base import Direction, Malformed, Operation, Probe
from interlock.protocols.iec104 import Iec104Session, build, parse, probe
from interlock.protocols.iec104.codec import Apdu, IFormat, SFormat, UFormat, parse_asdu
from interlock.protocols.iec104.session import _FAST
from tests.protocols.iec104.strategies import apdus, asdus, seq

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(apdus())
def test_parse_build_round_trip(apdu: Apdu) -> None:
    data = build(apdu)
    assert parse(data) == apdu
    assert data[1] + 2 == len(data) <= 255


@SETTINGS
@given(asdus())
def test_asdu_round_trip(asdu: object) -> None:
    from interlock.protocols.iec104 import build_asdu
    assert parse_asdu(build_asdu(asdu)) == asdu  # type: ignore[arg-type]


@SETTINGS
@given(st.binary(max_size=300))
def test_parse_never_raises_on_random_bytes(data: bytes) -> None:
    assert isinstance(parse(data), IFormat | SFormat | UFormat | Malformed)
    framed = bytes([0x68, min(len(data), 253)]) + data[:253]
    result = parse(framed)
    assert isinstance(result, IFormat | SFormat | UFormat | Malformed)
    if isinstance(result, IFormat | SFormat | UFormat):
        assert parse(build(result)) == result


def _mutate(data: bytes, draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        pos = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del out[pos:pos + draw(st.integers(1, 8))]
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif out:
            out[pos] = draw(st.integers(0, 255))
    return bytes(out)


@SETTINGS
@given(apdus(), st.data())
def test_mutated_apdus_never_raise(apdu: Apdu, data: st.DataObject) -> None:
    mutated = _mutate(build(apdu), data.draw)
    result = parse(mutated)
    assert isinstance(result, IFormat | SFormat | UFormat | Malformed)
    session = Iec104Session()
    ops = session.feed(mutated, True) + session.feed(mutated, False)
    assert all(isinstance(op, Operation) for op in ops)
    assert probe(mutated, True) in set(Probe)


def _feed(chunks: list[bytes], from_client: bool = False) -> list[Operation]:
    session = Iec104Session()
    ops: list[Operation] = []
    for chunk in chunks:
        ops += session.feed(chunk, from_client)
        assert len(session._pending[from_client]) <= 255  # at most one partial APDU
    return ops


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Valid APDUs, now and then interleaved with garbage or a corrupted APDU."""
    parts = []
    for apdu in draw(st.lists(apdus(), min_size=1, max_size=12)):
        data = build(apdu)
        roll = draw(st.integers(0, 9))
        if roll == 0:
            data = draw(st.binary(min_size=1, max_size=30)) + data
        elif roll == 1:
            data = _mutate(data, draw)
        parts.append(data)
    return b"".join(parts)


@SETTINGS
@given(streams(), st.data())
def test_whole_and_chunked_feeds_agree(stream: bytes, data: st.DataObject) -> None:
    whole = _feed([stream])
    assert _feed([stream[i:i + 1] for i in range(len(stream))]) == whole
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(stream) - 1, 1)), max_size=10)))
    bounds = [0, *cuts, len(stream)]
    assert _feed([stream[a:b] for a, b in itertools.pairwise(bounds)]) == whole


@SETTINGS
@given(st.lists(apdus(), min_size=1, max_size=10))
def test_one_operation_per_valid_apdu(items: list[Apdu]) -> None:
    stream = b"".join(build(a) for a in items)
    ops = _feed([stream], from_client=True)
    assert len(ops) == len(items)
    assert all(op.direction is Direction.REQUEST for op in ops)
    for op, apdu in zip(ops, items, strict=True):
        if isinstance(apdu, IFormat):
            assert op.function_code == apdu.asdu.type_id
            assert op.transaction == apdu.send_seq
            assert op.unit == apdu.asdu.common_address
            assert op.count == len(apdu.asdu.objects)
        else:
            assert op.function_code is None and op.malformed is None


@SETTINGS
@given(st.lists(st.binary(max_size=80), max_size=20), st.booleans())
def test_session_never_raises_on_random_chunks(chunks: list[bytes], from_client: bool) -> None:
    _feed(chunks, from_client)


@SETTINGS
@given(st.builds(IFormat, seq, seq, asdus(sorted(_FAST))), st.booleans())
def test_fast_path_matches_parser(apdu: IFormat, from_client: bool) -> None:
    data = build(apdu)
    direction = Direction.REQUEST if from_client else Direction.RESPONSE
    fast = Iec104Session()._operation(data, from_client)
    slow = Iec104Session()._slow_operation(data, from_client, direction)
    assert fast == slow
    taken = Iec104Session()._fast_information(data, from_client, direction,
                                              _FAST[int(apdu.asdu.type_id)])
    assert (taken is None) == (not apdu.asdu.objects)


@SETTINGS
@given(apdus(), st.booleans())
def test_probe_accepts_every_valid_first_apdu(apdu: Apdu, from_client: bool) -> None:
    data = build(apdu)
    answer = probe(data, from_client)
    if isinstance(apdu, IFormat) and apdu.asdu.cot == 0:
        assert answer is Probe.NO  # cause 0 is "not used": not trusted as a first APDU
    else:
        assert answer is Probe.YES
        for cut in range(len(data)):
            assert probe(data[:cut], from_client) in (Probe.NEED_MORE, Probe.YES)


@SETTINGS
@given(st.binary(max_size=300), st.booleans())
def test_probe_yes_means_a_clean_first_apdu(data: bytes, from_client: bool) -> None:
    answer = probe(data, from_client)
    if answer is Probe.YES:
        body = data[1:] if data[:1] == b"\x00" else data
        assert not isinstance(parse(body[:body[1] + 2]), Malformed)
