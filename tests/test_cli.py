"""The `interlock` command as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from interlock.capture.pcap import PcapWriter

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pcaps"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_sample_decodes_every_protocol(tmp_path: Path) -> None:
    out = tmp_path / "ops.jsonl"
    res = run("decode", "--sample", "--format", "jsonl", "-o", str(out))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["protocol"] for r in rows} >= {"modbus", "dnp3", "s7comm", "iec104"}
    for r in rows:  # the contract outside tools rely on
        assert {"frame", "protocol", "ts", "src", "dst"} <= r.keys()
        assert isinstance(r["frame"], int) and r["frame"] >= 1
    assert any("function_code" in r and "address" in r for r in rows)
    assert "interlock decode" in res.stderr  # the summary table


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_other_formats_hold_the_same_rows(tmp_path: Path, fmt: str) -> None:
    ref = tmp_path / "ops.jsonl"
    out = tmp_path / f"ops.{fmt}"
    assert run("decode", "--sample", "-q", "-o", str(ref)).returncode == 0
    res = run("decode", "--sample", "-q", "--format", fmt, "-o", str(out))
    assert res.returncode == 0, res.stderr
    n = len(ref.read_text().splitlines())
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.num_rows == n
        assert table.column("frame").to_pylist() == [
            json.loads(line)["frame"] for line in ref.read_text().splitlines()
        ]
    else:
        assert len(out.read_text().splitlines()) == n + 1  # header


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello, this is not a capture\n"), "not a pcap or pcapng"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
    ids=["missing", "empty", "text", "directory"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, make: object, words: str) -> None:
    path = tmp_path / "bad.pcap"
    if make is not None:
        make(path)  # type: ignore[operator]
    res = run("decode", str(path), "-q")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "bad.pcap" in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_truncated_capture_keeps_what_was_decoded(tmp_path: Path) -> None:
    sample = run("decode", "--sample", "-q")
    full = [json.loads(line) for line in sample.stdout.splitlines()]
    from interlock.cli import sample_capture

    data = sample_capture().read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "ops.jsonl"
    res = run("decode", str(cut), "-q", "-o", str(out))
    assert res.returncode == 2
    assert "truncated" in res.stderr and "cut.pcap" in res.stderr
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(kept) < len(full)
    assert kept == full[: len(kept)]  # nothing decoded before the damage is lost or changed


def test_parquet_needs_an_output_file() -> None:
    res = run("decode", "--sample", "--format", "parquet")
    assert res.returncode == 2 and "-o" in res.stderr


def test_http_on_502_is_not_modbus_and_modbus_on_5020_is(tmp_path: Path) -> None:
    """Recognition by content, not by port, through the whole command."""
    import struct

    def frame(sport: int, dport: int, seq: int, payload: bytes) -> bytes:
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, 0x18, 8192, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp + payload

    path = tmp_path / "mixed.pcap"
    with path.open("wb") as fh:
        w = PcapWriter(fh)
        w.write(1.0, frame(40000, 502, 100, b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n"))
        w.write(2.0, frame(40001, 5020, 100, bytes.fromhex("000100000006010300100002")))
    res = run("decode", str(path), "-q")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(r["protocol"], r["dport"], r["function_code"], r["address"]) for r in rows] == [
        ("modbus", 5020, 3, 16)
    ]


@pytest.mark.skipif(not (SHARED / "modbus" / "modbus_test.pcap").exists(), reason="shared captures absent")
def test_vlan_tagged_and_pcapng_captures_decode() -> None:
    res = run("decode", str(SHARED / "s7comm" / "snap7_s300_everything.pcapng"), "-q")
    assert res.returncode == 0 and res.stdout.strip()
