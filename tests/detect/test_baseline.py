"""The learned baseline on real plant traffic: silent on held-back benign polling, loud on
injected writes, and strict about the file an analyst edits.

The plant is ``modbus/ModbusTCP.pcap`` (85 s of one master polling 13 slaves). Learning takes
the first 70 % of its time span; the last 30 % is the held-back benign traffic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from interlock.capture.decode import decode_path
from interlock.capture.pcap import PcapWriter, read_frames
from interlock.capture.records import SCHEMA
from interlock.cli import main
from interlock.detect.network.baseline import Baseline, BaselineDetector, BaselineError
from interlock.protocols.modbus import (
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    build_adu,
)

from .captures import TcpFlow
from .conftest import shared

PLANT = "modbus/ModbusTCP.pcap"
MASTER, PLC = "141.81.0.10", "141.81.0.44"
REGISTER = 2100  # holding register the master wrote 3 to while learning (FC 16, frame 6023)
EVIL = 60000
NEW_MASTER = "141.81.0.99"


def _split(path: Path, train: Path, test: Path) -> float:
    """Write the first 70 % (by time) of ``path`` to ``train``, the rest to ``test``."""
    with path.open("rb") as fh:
        frames = list(read_frames(fh))
    cut = frames[0][1] + 0.7 * (frames[-1][1] - frames[0][1])
    with train.open("wb") as a, test.open("wb") as b:
        wa, wb = PcapWriter(a, frames[0][2]), PcapWriter(b, frames[0][2])
        for _, ts, _, data in frames:
            (wa if ts < cut else wb).write(ts, data)
    return frames[-1][1]


class Plant(NamedTuple):
    train: Path
    test: Path
    attack: Path  # test + two injected writes
    baseline: Path  # learned from train
    benign_frames: int  # frames of test, copied first into attack


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Plant:
    """train.pcap, test.pcap, attack.pcap (test + two injected writes) and the learned baseline."""
    src = shared(PLANT)
    d = tmp_path_factory.mktemp("plant")
    train, test, attack = d / "train.pcap", d / "test.pcap", d / "attack.pcap"
    end = _split(src, train, test)
    with test.open("rb") as fh:
        benign = list(read_frames(fh))
    with attack.open("wb") as fh:
        w = PcapWriter(fh)
        for _, ts, _, data in benign:
            w.write(ts, data)
        # frames n+1..n+4: the real master writes an out-of-range value; n+5..n+8: a new host does
        for i, client in enumerate((f"{MASTER}:50001", f"{NEW_MASTER}:50002")):
            t = end + 1 + i
            flow = TcpFlow(w, client, f"{PLC}:502", t)
            flow.client(t + 0.01, build_adu(900 + i, 255, WriteMultipleRegistersRequest(REGISTER, (EVIL,))))
            flow.server(t + 0.02, build_adu(900 + i, 255, WriteMultipleRegistersResponse(REGISTER, 1)))
    baseline = d / "baseline.yaml"
    result = CliRunner().invoke(main, ["learn", str(train), "-o", str(baseline)])
    assert result.exit_code == 0, result.output
    return Plant(train, test, attack, baseline, len(benign))


def _detect(capture: Path, baseline: Path, out: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["detect", str(capture), "--baseline", str(baseline), "-o",
                                       str(out), "-q"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_held_back_benign_traffic_raises_no_alert(plant: Plant, tmp_path: Path) -> None:
    assert _detect(plant.test, plant.baseline, tmp_path / "a.jsonl") == []


def test_learned_file_lists_the_plant(plant: Plant) -> None:
    b = Baseline.from_yaml(plant.baseline.read_text(), plant.baseline)
    link = b.links_[(MASTER, PLC, 502, 255)]
    assert link.writes[16] == [(100, 108), (116, 121), (2100, 2100), (2102, 2105), (2200, 2219)]
    assert {1, 2, 4, 15, 16} == link.functions
    point = b.points_[(PLC, 502, 255, "holding_registers", REGISTER)]
    assert (point.min, point.max) == (3.0, 3.0)
    # polling: the master reads input registers 1100-1214 about every 2 s
    median, tol = link.periods[(4, 1100)]
    assert 1.9 < median < 2.1 and tol == pytest.approx(median * 0.5, abs=1e-3)


def test_out_of_range_write_and_new_master_are_flagged(plant: Plant, tmp_path: Path) -> None:
    n = plant.benign_frames
    alerts = _detect(plant.attack, plant.baseline, tmp_path / "a.jsonl")
    # the benign polling ends where the injected writes begin (1-2 s later), so the fast polls
    # are seen to stop: missing-poll alerts, raised after the benign part, with its last polls
    stopped = [a for a in alerts if a["rule"] == "interlock-baseline/poll_missing"]
    assert all(a["ts"] > plant_end(plant) for a in stopped)
    alerts = [a for a in alerts if a not in stopped]
    # nothing else fires on the benign part of the capture: every alert points at an injected frame
    assert {f for a in alerts for f in a["frames"]} == {n + 3, n + 7}
    by_kind = {(a["rule"], a["src"]): a for a in alerts}
    modify = by_kind[("interlock-baseline/value", MASTER)]
    assert modify["technique"] == "T0836" and modify["frames"] == [n + 3]
    assert modify["asset"] == f"{PLC}:502/255"
    text = str(modify["explanation"])
    assert f"holding_registers {REGISTER}" in text and str(EVIL) in text and "range 2.94..3.06" in text
    new = by_kind[("interlock-baseline/new_master", NEW_MASTER)]
    assert new["technique"] == "T0855" and new["frames"] == [n + 7] and new["severity"] == "high"
    assert MASTER in str(new["explanation"])  # names who did write while learning
    # the real master's write is not a "new master" finding
    assert ("interlock-baseline/new_master", MASTER) not in by_kind


def plant_end(plant: Plant) -> float:
    with plant.test.open("rb") as fh:
        return max(ts for _, ts, _, _ in read_frames(fh))


def test_analyst_edit_widens_the_range(plant: Plant) -> None:
    text = plant.baseline.read_text()
    line = f"object: holding_registers, address: {REGISTER}, min: 3, max: 3,"
    assert line in text
    edited = Baseline.from_yaml(text.replace(line, line.replace("max: 3,", f"max: {EVIL},")))
    batches, _ = decode_path(plant.attack)
    table = pa.Table.from_batches(list(batches))
    writes = table.filter(pc.and_(pc.equal(table["src"], MASTER), pc.equal(table["function_code"], 16)))
    assert EVIL in [v for vs in writes["values"].to_pylist() if vs for v in vs]  # the write is there
    detector = BaselineDetector(edited)
    for batch in writes.to_batches():
        detector.process(batch)
    assert [a.rule for a in detector.finish()] == []


def test_broken_baseline_is_refused_with_file_and_line(plant: Plant, tmp_path: Path) -> None:
    lines = plant.baseline.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "port: 502")
    lines[at] = "    port: five"
    bad = tmp_path / "bad.yaml"
    bad.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["detect", str(plant.test), "--baseline", str(bad), "-q"])
    assert result.exit_code == 2
    assert f"{bad}:{at + 1}: port must be an integer, not 'five'" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(BaselineError, match=r":3: .*not an Interlock baseline"):
        Baseline.from_yaml("# a comment\nlinks: []\ninterlock_baseline: 2\n")


def test_learn_refuses_a_missing_capture(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["learn", str(tmp_path / "none.pcap"), "-o", str(tmp_path / "b.yaml")])
    assert result.exit_code == 2 and "none.pcap" in result.output
    assert not (tmp_path / "b.yaml").exists()


# (learning capture, judged captures): the columnar pass must give the row-by-row alerts exactly
SAME_OUTPUT = [
    ("modbus/moving_two_files_modbus_6RTU.pcap",
     ("modbus/send_a_fake_command_modbus_6RTU_with_operate.pcap",
      "modbus/characterization_modbus_6RTU_with_operate.pcap", "modbus/ModbusTCP.pcap")),
    ("modbus/ModbusTCP.pcap", ("modbus/moving_two_files_modbus_6RTU.pcap",)),
    ("dnp3/qut_dnp3_attacks_training_infrequent.pcap",
     ("dnp3/qut_dnp3_replay_training_frequent.pcap", "dnp3/qut_dnp3_masquerading_training_infrequent.pcap")),
    ("s7comm/s7comm_clean.pcap", ("s7comm/Plant1_S7comm.pcap",)),
]


@pytest.mark.parametrize(("learn", "judged"), SAME_OUTPUT, ids=[c[0].split("/")[1] for c in SAME_OUTPUT])
def test_columnar_process_gives_the_row_by_row_alerts(learn: str, judged: tuple[str, ...]) -> None:
    batches, _ = decode_path(shared(learn))
    baseline = Baseline().fit(batches)
    for capture in judged:
        alerts = []
        for how in ("process", "process_rows"):
            detector = BaselineDetector(baseline, capture=capture)
            batches, _ = decode_path(shared(capture))
            for batch in batches:
                getattr(detector, how)(batch)
            alerts.append(detector.finish())
        assert alerts[0] == alerts[1], capture


def test_columnar_process_on_edge_values() -> None:
    """Rising counters, enumerated states, an empty states list, null values, odd addresses."""
    b = Baseline()
    base = dict(src="10.0.0.1", dst="10.0.0.2", dport=502, sport=40000, unit=1, direction="response",
                op_class="read", function_code=3, address=10, count=3, object="holding_registers",
                frame=1, protocol="modbus", transport="tcp")
    for t in range(6):
        b.learn_one({**base, "src": "10.0.0.2", "dst": "10.0.0.1", "dport": 40000, "sport": 502,
                     "values": [float(t), float(t % 2), 5.0], "ts": float(t)})
    b._finalize()
    b.points_[("10.0.0.2", 502, 1, "holding_registers", 12)].states = ()
    resp = {**base, "src": "10.0.0.2", "dst": "10.0.0.1", "dport": 40000, "sport": 502}
    recs = [
        {**resp, "values": [7.0, 1.0, None], "ts": 8.0, "frame": 2},       # counter climbed: fine
        {**resp, "values": [90.0, 1.0, None], "ts": 9.0, "frame": 3},      # counter too high
        {**resp, "values": [6.0, 0.5, None], "ts": 9.0, "frame": 4},       # not a state
        {**resp, "values": [6.0, 1.0, 5.0], "ts": 9.0, "frame": 5},        # empty states: never
        {**resp, "values": [1.0], "address": -3, "ts": 9.0, "frame": 6},  # odd address
        {**resp, "values": [float("nan")], "ts": 9.0, "frame": 7},
        {**resp, "values": None, "ts": 9.0, "frame": 8},
    ]
    schema = pa.schema([f for f in SCHEMA if f.name in {*recs[0], "ts"}])
    batch = pa.RecordBatch.from_pylist([{**r, "ts": int(r["ts"] * 1e6)} for r in recs], schema=schema)
    got = []
    for how in ("process", "process_rows"):
        d = BaselineDetector(b)
        getattr(d, how)(batch)
        got.append(d.finish())
    assert got[0] == got[1]
    assert sorted(f for a in got[0] for f in a.frames) == [3, 4, 5, 7]


def _poll_batch(times: list[float], first_frame: int, src: str = "10.0.0.1") -> pa.RecordBatch:
    recs = [dict(frame=first_frame + i, ts=int(t * 1e6), src=src, dst="10.0.0.2", sport=40000,
                 dport=502, transport="tcp", protocol="modbus", direction="request", unit=1,
                 op_class="read", function_code=3, address=100, count=10)
            for i, t in enumerate(times)]
    return pa.RecordBatch.from_pylist(recs, schema=pa.schema([f for f in SCHEMA if f.name in recs[0]]))


def test_learned_poll_that_stops_or_floods_is_reported_once() -> None:
    b = Baseline()
    for batch in [_poll_batch([float(t) for t in range(30)], 1)]:  # a poll every second
        for rec in batch.to_pylist():
            b.learn_one({**rec, "ts": rec["ts"].timestamp()})
    b._finalize()
    assert b.links_[("10.0.0.1", "10.0.0.2", 502, 1)].gaps[(3, 100)] == (29, 1.0)
    d = BaselineDetector(b)
    # as learned: silent, across batches
    assert d.process(_poll_batch([100.0 + t for t in range(10)], 100)) == []
    assert d.process(_poll_batch([110.0 + t for t in range(10)], 200)) == []
    # the poll stops; another host's traffic shows 20 s pass: one alert, raised at 4 periods
    other = _poll_batch([125.0, 140.0], 300, src="10.0.0.7")
    missing = d.process(other)
    assert [a.rule for a in missing] == ["interlock-baseline/poll_missing"]
    assert missing[0].technique == "T0815" and missing[0].frames == (209,)
    assert missing[0].ts == pytest.approx(119.0 + 4.0)
    # it resumes: no second alert for the same silence; then 60 requests in 1.5 s
    assert d.process(_poll_batch([141.0], 400)) == []
    burst = d.process(_poll_batch([142.0 + i * 0.025 for i in range(60)], 500))
    assert [a.rule for a in burst] == ["interlock-baseline/poll_burst"]
    assert burst[0].technique == "T0814" and burst[0].count == 40 and burst[0].frames[-1] == 538
    assert d.tick(1000.0)[0].rule == "interlock-baseline/poll_missing"
    # the file keeps what the watch needs
    again = Baseline.from_yaml(b.to_yaml())
    assert again.links_[("10.0.0.1", "10.0.0.2", 502, 1)].gaps[(3, 100)] == (29, 1.0)
    assert again.missing_periods == 4.0 and again.burst_factor == 10.0
