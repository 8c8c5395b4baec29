"""TCP reassembly: every byte once, in order, whatever the segments did on the way."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.capture.reassembly import MAX_PENDING_SEGMENTS, Direction


def run(segments: list[tuple[int, bytes]], isn: int = 1000) -> bytes:
    d = Direction()
    d.syn(isn - 1)
    out = b""
    for seq, data in segments:
        chunks, _gap = d.segment(seq, data)
        out += b"".join(c[0] for c in chunks)
    return out


def test_in_order() -> None:
    assert run([(1000, b"abc"), (1003, b"def")]) == b"abcdef"


def test_out_of_order_waits_for_the_hole() -> None:
    d = Direction()
    d.syn(999)
    assert d.segment(1003, b"def", 7) == ([], False)
    assert d.segment(1000, b"abc", 8) == ([(b"abc", 8, 0.0), (b"def", 7, 0.0)], False)


def test_retransmission_dropped_and_overlap_tail_kept() -> None:
    assert run([(1000, b"abc"), (1000, b"abc"), (1001, b"bcdef"), (1006, b"g")]) == b"abcdefg"


def test_sequence_wraps_around() -> None:
    assert run([(2**32 - 2, b"ab"), (0, b"cd")], isn=2**32 - 2) == b"abcd"


def test_mid_stream_start() -> None:
    d = Direction()
    assert d.segment(5555, b"xy")[0][0][0] == b"xy"
    assert d.segment(5557, b"z")[0][0][0] == b"z"


def test_lost_segment_is_skipped_after_enough_wait() -> None:
    d = Direction()
    d.syn(999)
    d.segment(1000, b"a")
    out: list[bytes] = []
    gap = False
    for i in range(MAX_PENDING_SEGMENTS + 1):
        chunks, g = d.segment(1002 + i, bytes([65 + i % 26]))
        out += chunks
        gap = gap or g
    assert gap and d.gaps == 1
    assert b"".join(c[0] for c in out) == bytes(65 + i % 26 for i in range(MAX_PENDING_SEGMENTS + 1))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.data())
def test_any_segmentation_and_order_gives_the_stream(stream: bytes, data: st.DataObject) -> None:
    cuts = sorted(
        set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=10)) if len(stream) > 1 else [])
    )
    bounds = [0, *cuts, len(stream)]
    segs = [(1000 + a, stream[a:b]) for a, b in itertools.pairwise(bounds)]
    # shuffle a little, duplicate some (retransmissions), never lose any
    shuffled = data.draw(st.permutations(segs))
    dups = data.draw(st.lists(st.sampled_from(segs), max_size=3))
    assert run([*shuffled, *dups]) == stream


def test_keep_alive_before_any_data_is_not_data() -> None:
    d = Direction()
    d.acked(5000)
    assert d.segment(4999, b"\x00") == ([], False)
    assert d.segment(5000, b"abc", 3)[0] == [(b"abc", 3, 0.0)]


def test_hole_the_peer_acknowledged_is_skipped_at_once() -> None:
    d = Direction()
    d.syn(999)
    d.segment(1000, b"a")
    d.acked(1010)  # the host got bytes 1001..1009 that the capture missed
    chunks, gap = d.segment(1010, b"z", 9)
    assert gap and chunks == [(b"z", 9, 0.0)]


def test_waiting_segments_released_when_the_peer_acknowledges_past_the_hole() -> None:
    d = Direction()
    d.syn(999)
    d.segment(1000, b"a")
    assert d.segment(1005, b"later", 4) == ([], False)
    assert d.acked(1010) == [(b"later", 4, 0.0)]
