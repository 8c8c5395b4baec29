"""The pcap/pcapng reader: frame numbers, times and link types agree with tshark; damage is named."""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.capture.pcap import CaptureError, PcapWriter, read_frames
from tests.conformance.tshark import require_tshark

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pcaps"


def all_shared() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(p for p in SHARED.rglob("*") if p.suffix in {".pcap", ".pcapng", ".cap"})


def _pcap(frames: list[bytes], linktype: int = 1) -> bytes:
    buf = io.BytesIO()
    w = PcapWriter(buf, linktype)
    for i, f in enumerate(frames):
        w.write(1_700_000_000 + i * 0.25, f)
    return buf.getvalue()


def _pcapng(frames: list[bytes], tsresol: int | None = None, big: bool = False) -> bytes:
    e = ">" if big else "<"

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)

    out = block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts = struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0" + struct.pack(e + "HH", 0, 0)
    out += block(1, struct.pack(e + "HHI", 1, 0, 65535) + opts)
    tick = 10.0 ** -(tsresol or 6)
    for i, f in enumerate(frames):
        t = round((1_700_000_000 + i) / tick)
        out += block(6, struct.pack(e + "IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(f), len(f)) + f)
    return out


def test_pcap_round_trip() -> None:
    frames = [bytes([i]) * (i + 1) for i in range(20)]
    got = list(read_frames(io.BytesIO(_pcap(frames))))
    assert [g[0] for g in got] == list(range(1, 21))
    assert [g[3] for g in got] == frames
    assert got[1][1] == pytest.approx(1_700_000_000.25)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("tsresol", [None, 9])
def test_pcapng_byte_orders_and_resolution(big: bool, tsresol: int | None) -> None:
    frames = [b"abc", b"defgh", b"i"]
    got = list(read_frames(io.BytesIO(_pcapng(frames, tsresol, big))))
    assert [g[3] for g in got] == frames
    assert [g[1] for g in got] == pytest.approx([1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.0])


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"GET / HTTP/1.1\r\n", "not a pcap"),
        (_pcap([b"x" * 40])[:30], "truncated record header"),
        (_pcap([b"x" * 40])[:50], "truncated frame 1"),
        (_pcap([b"x" * 40])[:24] + struct.pack("<IIII", 0, 0, 10_000_000, 10), "corrupt record"),
        (_pcapng([b"abc"])[:-3], "truncated pcapng block"),
    ],
)
def test_damage_is_named(data: bytes, words: str) -> None:
    with pytest.raises(CaptureError, match=words):
        list(read_frames(io.BytesIO(data), "x.pcap"))


def test_frames_before_damage_are_kept() -> None:
    data = _pcap([b"a" * 60, b"b" * 60, b"c" * 60])[:-10]
    got = []
    with pytest.raises(CaptureError, match="truncated frame 3"):
        for f in read_frames(io.BytesIO(data)):
            got.append(f)
    assert len(got) == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    for prefix in (b"", _pcap([])[:24], _pcapng([])[:60]):
        try:
            for _ in read_frames(io.BytesIO(prefix + data)):
                pass
        except CaptureError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_captures_never_escape_as_other_errors(data: st.DataObject) -> None:
    good = bytearray(
        _pcapng([b"abc" * 10, b"de" * 30]) if data.draw(st.booleans()) else _pcap([b"q" * 50] * 3)
    )
    for _ in range(data.draw(st.integers(1, 5))):
        i = data.draw(st.integers(0, len(good) - 1))
        good[i] = data.draw(st.integers(0, 255))
    try:
        for _ in read_frames(io.BytesIO(bytes(good))):
            pass
    except CaptureError:
        pass


@pytest.mark.parametrize("path", all_shared(), ids=lambda p: p.name)
def test_frame_count_and_times_agree_with_tshark(path: Path) -> None:
    exe = require_tshark()
    out = subprocess.run(
        [
            exe,
            "-n",
            "-r",
            str(path),
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.cap_len",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    theirs = [(int(out[i]), float(out[i + 1]), int(out[i + 2])) for i in range(0, len(out), 3)]
    with path.open("rb") as fh:
        ours = [(n, ts, len(data)) for n, ts, _lt, data in read_frames(fh, path.name)]
    assert len(ours) == len(theirs)
    for (n1, t1, l1), (n2, t2, l2) in zip(ours, theirs, strict=True):
        assert (n1, l1) == (n2, l2)
        assert t1 == pytest.approx(t2, abs=2e-6)
