"""Case files end to end: detect on the sample, bundle incident 2 (the S7 PLC stop), verify elsewhere.

Every command runs as a real process with its own XDG_DATA_HOME, as an analyst would run it; the
case file is made once per module (a Python start-up and a decode cost about a second each).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import stix2  # type: ignore[import-untyped]

from interlock.capture.packet import dissect
from interlock.capture.pcap import read_frames
from interlock.cli import sample_capture
from interlock.evidence import keys
from interlock.evidence.bundle import (
    EXCERPT,
    MANIFEST,
    SLICE,
    STIX,
    find_incident,
    load_alerts,
    verify_case,
)
from interlock.evidence.ledger import Ledger

INCIDENT = 2  # 127.0.0.1 identifies, stops and restarts the S7 CPU at 127.0.0.13
MARGIN_S = 60.0


def run(*args: str | Path, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(home / "xdg")}  # never the real user's ledger or key
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


class Case:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.alerts = root / "alerts.jsonl"
        self.ledger = root / "sensor" / "ledger.sqlite"
        self.key = root / "sensor" / "keys" / "ledger-ed25519.pem"
        self.zip = root / "case.zip"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    c = Case(tmp_path_factory.mktemp("case"))
    res = run("detect", "--sample", "-q", "-o", c.alerts, home=c.root)
    assert res.returncode == 0, res.stderr
    # The ledger already holds the stop alert (as a sensor that records alerts would) and an
    # unrelated entry before it: the excerpt must start at the alert and chain to the export.
    stop = next(a for a in load_alerts(c.alerts) if a.title == "S7 PLC stop")
    with Ledger(c.ledger, key=c.key) as led:
        led.append("system", {"note": "unrelated"}, actor="test")
        led.append("alert", {"id": stop.digest(), "title": stop.title}, actor="detect.network")
    res = run(
        "evidence",
        "bundle",
        str(INCIDENT),
        "--alerts",
        c.alerts,
        "--capture",
        sample_capture(),
        "-o",
        c.zip,
        "--ledger",
        c.ledger,
        "--key",
        c.key,
        "--margin",
        str(MARGIN_S),
        home=c.root,
    )
    assert res.returncode == 0, res.stderr
    assert "incident 2 (127.0.0.1 -> 127.0.0.13, 3 alerts)" in res.stdout
    return c


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rewrite(src: Path, dst: Path, name: str, offset: int) -> None:
    """The attacker's edit: one byte of one member changed, the zip rewritten (CRCs recomputed)."""
    files = members(src)
    data = bytearray(files[name])
    data[offset] ^= 0x01
    files[name] = bytes(data)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            zf.writestr(n, d)


def test_case_file_verifies_in_a_fresh_process_on_another_machine(case: Case, tmp_path: Path) -> None:
    # "Another machine": a copy of the zip and of the public key only, another data folder.
    elsewhere = tmp_path / "lab"
    elsewhere.mkdir()
    shutil.copy(case.zip, elsewhere / "case.zip")
    shutil.copy(keys.public_path(case.key), elsewhere / "sensor.pub.pem")
    res = run("evidence", "verify", "case.zip", "--pubkey", "sensor.pub.pem", home=elsewhere, cwd=elsewhere)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("case.zip: intact")
    assert "FAIL" not in res.stdout
    assert "ledger/excerpt.json: 2 entries chain to the checkpoint" in res.stdout
    assert "parses with stix2" in res.stdout


def test_zip_holds_every_file_and_the_ledger_recorded_the_export(case: Case) -> None:
    files = members(case.zip)
    assert set(files) == {
        SLICE,
        "records.jsonl",
        "alerts.jsonl",
        STIX,
        "summary.html",
        EXCERPT,
        "custody.jsonl",
        MANIFEST,
        "manifest.sig",
    }
    manifest = json.loads(files[MANIFEST])
    assert manifest["public_key"] == keys.load_public(keys.public_path(case.key)).hex()
    with Ledger(case.ledger, key=case.key, create=False) as led:
        assert led.verify().ok
        export = led.tail(1)[0]
    assert export.kind == "evidence" and export.body["incident"] == INCIDENT
    assert export.body["files"][SLICE] == manifest["files"][SLICE]["sha256"]
    alerts = [json.loads(line) for line in files["alerts.jsonl"].splitlines()]
    assert [a["title"] for a in alerts] == [
        "S7 module identification read (SZL 0x0011 / 0x001C)",
        "S7 PLC stop",
        "S7 PLC start or restart (PI service P_PROGRAM)",
    ]
    custody = json.loads(files["custody.jsonl"])
    assert custody["action"] == "exported" and custody["ledger"]["seq"] == export.seq == 3
    html = files["summary.html"].decode()
    assert "S7 PLC stop" in html and "T0858" in html


def test_slice_holds_only_the_incidents_flows_in_its_window(case: Case, tmp_path: Path) -> None:
    incident = find_incident(load_alerts(case.alerts), INCIDENT)
    flows = {frozenset({(a.flow.src, a.flow.sport), (a.flow.dst, a.flow.dport)}) for a in incident.alerts}
    with sample_capture().open("rb") as fh:
        original = {n: (ts, lt, data) for n, ts, lt, data in read_frames(fh)}
    (tmp_path / "slice.pcapng").write_bytes(members(case.zip)[SLICE])
    with (tmp_path / "slice.pcapng").open("rb") as fh:
        sliced = list(read_frames(fh))
    assert 0 < len(sliced) < len(original)
    for _n, ts, linktype, data in sliced:
        packet = dissect(linktype, data)
        assert not isinstance(packet, str)
        assert frozenset({(packet[0], packet[2]), (packet[1], packet[3])}) in flows
        assert incident.first_ts - MARGIN_S <= ts <= incident.last_ts + MARGIN_S
    # Completeness: every frame of those flows in the window of the original capture is there.
    expected = []
    for ts, lt, data in original.values():
        p = dissect(lt, data)
        in_window = incident.first_ts - MARGIN_S <= ts <= incident.last_ts + MARGIN_S
        if in_window and not isinstance(p, str) and frozenset({(p[0], p[2]), (p[1], p[3])}) in flows:
            expected.append(data)
    assert [d for _n, _ts, _lt, d in sliced] == expected
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed: per-packet comments not checked by Wireshark's reader")
    res = subprocess.run(
        [tshark, "-r", tmp_path / "slice.pcapng", "-T", "fields", "-e", "frame.comment"],
        capture_output=True,
        text=True,
        check=True,
    )
    comments = res.stdout.splitlines()
    assert len(comments) == len(sliced)
    # Each comment names the original frame, whose bytes are the sliced frame's bytes.
    for comment, (_n, _ts, _lt, data) in zip(comments, sliced, strict=True):
        number = int(comment.split()[1])
        assert comment.startswith(f"frame {number} of sample.pcap")
        assert original[number][2] == data
    stop = next(a for a in incident.alerts if a.title == "S7 PLC stop")
    assert any(
        c.startswith(f"frame {stop.frames[0]} of sample.pcap; evidence for T0858 S7 PLC stop")
        for c in comments
    )


def test_stix_bundle_validates_with_stix2(case: Case) -> None:
    bundle = stix2.parse(members(case.zip)[STIX].decode(), allow_custom=False, version="2.1")
    by_type: dict[str, list[Any]] = {}
    for obj in bundle.objects:
        by_type.setdefault(obj.type, []).append(obj)
    ids = {ref.external_id for ap in by_type["attack-pattern"] for ref in ap.external_references}
    assert ids == {"T0888", "T0858"}
    assert len(by_type["indicator"]) == len(by_type["sighting"]) == len(by_type["observed-data"]) == 3
    assert len(by_type["identity"]) == 1
    known = {obj.id for obj in bundle.objects}
    for s in by_type["sighting"]:
        assert s.sighting_of_ref in known and set(s.observed_data_refs) <= known
        assert s.where_sighted_refs == [by_type["identity"][0].id]


@pytest.mark.parametrize(
    ("name", "offset"),
    [(SLICE, 200), ("records.jsonl", 10), ("summary.html", 50), (EXCERPT, 30), (STIX, 40)],
)
def test_one_changed_byte_is_named(case: Case, tmp_path: Path, name: str, offset: int) -> None:
    bad = tmp_path / "bad.zip"
    rewrite(case.zip, bad, name, offset)
    report = verify_case(bad)
    assert not report.ok
    assert report.failures[0] == f"{name}: SHA-256 does not match the manifest (changed)"


def test_tampered_case_fails_in_a_fresh_process(case: Case, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    rewrite(case.zip, bad, MANIFEST, 5)  # the manifest itself: its signature no longer holds
    res = run("evidence", "verify", bad, home=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "TAMPERED" in res.stdout.splitlines()[0]
    assert "FAIL manifest.json: signature does not verify" in res.stdout


def test_damaged_zip_member_is_named_not_a_traceback(case: Case, tmp_path: Path) -> None:
    raw = bytearray(case.zip.read_bytes())
    with zipfile.ZipFile(case.zip) as zf:  # the first byte of records.jsonl's compressed data
        info = zf.getinfo("records.jsonl")
    header = info.header_offset
    name_len, extra_len = (
        int.from_bytes(raw[header + 26 : header + 28], "little"),
        int.from_bytes(raw[header + 28 : header + 30], "little"),
    )
    raw[header + 30 + name_len + extra_len + 5] ^= 0xFF
    bad = tmp_path / "crc.zip"
    bad.write_bytes(bytes(raw))
    report = verify_case(bad)
    assert not report.ok
    assert report.failures[0].startswith("records.jsonl: damaged in the zip")


def test_re_signed_case_fails_against_the_sensors_public_key(case: Case, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    keys.load_or_create(other)
    report = verify_case(case.zip, {keys.load_public(keys.public_path(other))})
    assert not report.ok and "not a trusted --pubkey" in report.failures[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["9"], "--incident 9: the alerts form incidents 1..3"),
        (["2", "--incident", "2"], "give the incident number once"),
        (["2", "--capture", "nothere.pcap"], "nothere.pcap: no such capture file"),
    ],
)
def test_bad_input_is_one_line_exit_2(case: Case, tmp_path: Path, args: list[str], words: str) -> None:
    res = run(
        "evidence",
        "bundle",
        *args,
        "--alerts",
        case.alerts,
        "-o",
        tmp_path / "c.zip",
        "--ledger",
        tmp_path / "l.sqlite",
        "--key",
        tmp_path / "k.pem",
        home=tmp_path,
        cwd=tmp_path,
    )
    assert res.returncode == 2
    assert res.stderr.startswith("interlock: error: ")
    assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.zip").exists()


def test_verify_of_a_non_zip_is_exit_2(case: Case, tmp_path: Path) -> None:
    res = run("evidence", "verify", case.alerts, home=tmp_path)
    assert res.returncode == 2
    assert "not a readable zip" in res.stderr and "Traceback" not in res.stderr


def test_bundle_an_incident_straight_from_the_ledger(tmp_path: Path) -> None:
    """The issue's form: `detect --ledger L`, then `evidence bundle INCIDENT -o case.zip`: the
    incident, its alerts and its capture all come from what detect recorded."""
    ledger = tmp_path / "ledger.sqlite"
    res = run("detect", "--sample", "-q", "-o", tmp_path / "alerts.jsonl", "--ledger", ledger, home=tmp_path)
    assert res.returncode == 0, res.stderr
    res = run(
        "evidence", "bundle", str(INCIDENT), "-o", tmp_path / "case.zip", "--ledger", ledger, home=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert "incident 2 (127.0.0.1 -> 127.0.0.13, 3 alerts)" in res.stdout
    bundled = [
        json.loads(line) for line in members(tmp_path / "case.zip")["alerts.jsonl"].decode().splitlines()
    ]
    recorded = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert {a["id"] for a in bundled} < {a["id"] for a in recorded}
    pub = keys.public_path(tmp_path / "xdg" / "interlock" / "keys" / "ledger-ed25519.pem")
    res = run("evidence", "verify", tmp_path / "case.zip", "--pubkey", pub, home=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    res = run("evidence", "bundle", "9", "-o", tmp_path / "x.zip", "--ledger", ledger, home=tmp_path)
    assert res.returncode == 2 and "no incident 9 recorded" in res.stderr
