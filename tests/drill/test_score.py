"""Scoring on hand-made alert streams (perfect, late, missing, noisy), alert formats, impact."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from interlock.drill.model import (
    AlertSeen,
    DrillRecord,
    HazardEvent,
    Neutralization,
    Scenario,
    TruthAction,
)
from interlock.drill.scenario import parse_scenario
from interlock.drill.score import AlertFormatError, load_alerts, parse_time, score_drill

SCENARIO = """\
id: score-test
title: Score test
plant: gas-pipeline
based_on: "FrostyGoop (2024)"
seed: 1
duration: 30m
warmup: 5m
phases:
  - name: Recon
    injects:
      - id: recon
        at: 6m
        technique: modbus.read_device_id
        target: plc-1
        expect: [T0888]
  - name: Impact
    injects:
      - id: setpoint
        at: 10m
        technique: modbus.write_register
        target: plc-1
        params: {tag: discharge_sp_bar, value: 70}
        expect: [T0836]
      - id: flood
        at: 20m
        until: 22m
        technique: modbus.flood
        target: plc-1
        expect: [T0814]
"""


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return parse_scenario(SCENARIO, "score-test.yaml")


def truth() -> tuple[TruthAction, ...]:
    return (
        TruthAction("recon", "modbus.read_device_id", ("T0888",), 360.0, 360.5, "127.0.0.66", "plc-1", 1,
                    "ok"),
        TruthAction("setpoint", "modbus.write_register", ("T0836", "T0855"), 600.0, 600.1, "127.0.0.66",
                    "plc-1", 1, "ok"),
        TruthAction("flood", "modbus.flood", ("T0814",), 1200.0, 1320.0, "127.0.0.66", "plc-1", 500, "ok"),
    )


def record(alerts: list[AlertSeen], neutralizations: tuple[Neutralization, ...] | list[Neutralization] = (),
           hazards: tuple[HazardEvent, ...] = (), trends: pa.Table | None = None) -> DrillRecord:
    return DrillRecord("score-test", 1, truth(), tuple(alerts), tuple(neutralizations), trends=trends,
                       hazards=hazards, duration_s=1800.0)


def alert(t: float, *ids: str) -> AlertSeen:
    return AlertSeen(t, ids, "127.0.0.66", "127.0.0.11", "rule-1", "high", "x")


def test_perfect(scenario: Scenario) -> None:
    alerts = [alert(361.0, "T0888"), alert(600.5, "T0836"), alert(1205.0, "T0814")]
    neut = [Neutralization(601.0, "blocked", "setpoint", "firewall"),
            Neutralization(1210.0, "blocked", "flood")]
    s = score_drill(record(alerts, neutralizations=neut), scenario)
    assert [i.detected for i in s.injects] == [True, True, True]
    assert [i.time_to_detect_s for i in s.injects] == pytest.approx([1.0, 0.5, 5.0])
    assert s.false_alarms == 0 and s.detection_rate == 1.0
    assert [i.neutralized for i in s.injects] == [False, True, True]
    assert s.injects[1].time_to_neutralize_s == pytest.approx(1.0)
    assert s.injects[1].neutralized_by == "blocked"
    assert s.components["detection"] == 40.0 and s.components["speed"] == 20.0
    # no trends: impact credit is full
    assert s.score == pytest.approx(40 + 20 + 20 * 2 / 3 + 20, abs=0.05)
    doc = s.to_json()
    for key in ("scenario", "seed", "score", "false_alarms", "injects"):
        assert key in doc
    for inj in doc["injects"]:
        assert {"technique", "start", "detected", "time_to_detect_s", "neutralized",
                "time_to_neutralize_s"} <= set(inj)
    assert doc["injects"][1]["start"] == 600.0
    json.dumps(doc, allow_nan=False)


def test_late(scenario: Scenario) -> None:
    alerts = [alert(360 + 200, "T0888"), alert(600 + 299, "T0836"), alert(1320 + 301, "T0814")]
    s = score_drill(record(alerts), scenario)
    assert [i.detected for i in s.injects] == [True, True, False]
    assert s.injects[0].time_to_detect_s == pytest.approx(200.0)
    # 301 s after the flood's end is outside its window, and in no other inject's: a false alarm
    assert s.false_alarms == 1
    perfect = score_drill(record([alert(361.0, "T0888"), alert(600.5, "T0836"), alert(1205.0, "T0814")]),
                          scenario)
    assert s.components["speed"] < perfect.components["speed"]
    assert s.score < perfect.score


def test_missing(scenario: Scenario) -> None:
    s = score_drill(record([]), scenario)
    assert not any(i.detected for i in s.injects)
    assert s.detection_rate == 0.0 and s.mean_time_to_detect_s is None
    assert s.components["detection"] == 0.0 and s.components["speed"] == 0.0
    assert s.score == pytest.approx(20.0)  # impact credit only
    assert s.to_json()["injects"][0]["time_to_detect_s"] is None


def test_noisy(scenario: Scenario) -> None:
    noise = [alert(t, "T0801") for t in range(0, 300, 10)]  # 30 alerts during the warmup
    wrong = [alert(362.0, "T0846")]  # in the recon window but the wrong technique
    right = [alert(361.0, "T0888"), alert(600.5, "T0855"), alert(1205.0, "T0814")]
    s = score_drill(record(noise + wrong + right), scenario)
    assert [i.detected for i in s.injects] == [True, True, True]  # T0855 is the technique's own id
    assert s.false_alarms == 30
    assert s.false_alarms_per_hour == pytest.approx(60.0)
    assert s.components["false_alarm_penalty"] == -15.0  # capped
    assert s.alerts_total == 34 and s.alerts_matched == 3
    assert s.injects[0].alerts == 1 and s.injects[0].detected_any


def test_wrong_technique_is_detected_any_only(scenario: Scenario) -> None:
    s = score_drill(record([alert(601.0, "T0846")]), scenario)
    inj = s.injects[1]
    assert not inj.detected and inj.detected_any and s.false_alarms == 0


def test_sis_trip_neutralizes_within_window(scenario: Scenario) -> None:
    trip = HazardEvent(700.0, "sis_trip", "PSHH-901", "discharge_bar", 70.6, 70.5)
    s = score_drill(record([], hazards=(trip,)), scenario)
    assert s.injects[1].neutralized and s.injects[1].neutralized_by == "sis_trip"
    assert s.injects[1].time_to_neutralize_s == pytest.approx(100.0)
    assert not s.injects[2].neutralized
    assert s.impact.sis_trips == ("PSHH-901",)


def test_physical_impact_from_trends(scenario: Scenario) -> None:
    times = [float(t) for t in range(0, 1800, 10)]
    rows: dict[str, list[object]] = {c: [] for c in
                                     ("plant_time_s", "wall_time", "device", "tag", "value", "source")}

    def add(t: float, tag: str, value: float, source: str = "truth") -> None:
        for c, v in zip(rows, (t, 1e9 + t, "plc-1", tag, value, source), strict=True):
            rows[c].append(v)

    for t in times:
        # discharge climbs to 73 bar (over MAOP 72) between 12 and 15 minutes
        discharge = 73.0 if 720 <= t < 900 else 65.0
        add(t, "discharge_bar", discharge)
        add(t, "discharge_bar", 65.0, "hmi")  # the HMI saw nothing
        add(t, "suction_bar", 50.0)
        add(t, "delivery_kg_s", 0.0 if 900 <= t < 1200 else 100.0)
    table = pa.table(rows)
    s = score_drill(record([], trends=table), scenario)
    imp = s.impact
    over = next(p for p in imp.limits if p.hazard == "overpressure")
    assert over.peak == 73.0 and over.limit == 72.0 and over.exceeded and over.margin_pct < 0
    assert "overpressure" in imp.hazards
    assert imp.minutes_outside_envelope == pytest.approx(3.0)  # 58..70 bar envelope
    assert imp.product_tag == "delivery_kg_s"
    assert imp.product_lost == pytest.approx(100.0 * 300)  # 5 minutes without 100 kg/s
    assert imp.product_lost_pct == pytest.approx(100 * 30000 / (100 * 1500))
    assert imp.credit < 0.5
    json.dumps(s.to_json(), allow_nan=False)


# --- alert formats ----------------------------------------------------------------------------

T0 = 1_790_000_000.0  # wall epoch of plant time 0


def to_plant(epoch: float) -> float:
    return epoch - T0


def test_interlock_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "alerts.jsonl"
    p.write_text(json.dumps({"ts": T0 + 600.5, "technique": "T0836", "severity": "high", "src": "127.0.0.66",
                             "dst": "127.0.0.11", "rule": "abc", "frames": [3], "title": "setpoint write"})
                 + "\n\n", encoding="utf-8")
    [a] = load_alerts(p, to_plant)
    assert a.time_s == pytest.approx(600.5) and a.attack_ids == ("T0836",) and a.message == "setpoint write"
    assert a.source == "127.0.0.66" and a.destination == "127.0.0.11" and a.rule == "abc"


def test_eve_json(tmp_path: Path) -> None:
    p = tmp_path / "eve.json"
    lines = [
        {"timestamp": "2026-09-21T13:33:20.500000+0000", "event_type": "flow"},
        {"timestamp": "2026-09-21T13:33:20.500000+0000", "event_type": "alert", "src_ip": "10.0.0.5",
         "dest_ip": "10.0.0.11",
         "alert": {"signature_id": 9000001, "signature": "Modbus write", "severity": 1,
                   "metadata": {"mitre_technique_id": ["T0836"]}}},
        {"timestamp": "2026-09-21T13:33:21Z", "event_type": "alert",
         "alert": {"signature": "ICS T0814 Modbus flood (mitre t0814)", "signature_id": 2}},
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    alerts = load_alerts(p, lambda e: e)
    assert [a.attack_ids for a in alerts] == [("T0836",), ("T0814",)]
    assert alerts[0].time_s == pytest.approx(parse_time("2026-09-21T13:33:20.5Z") or 0)
    assert alerts[0].source == "10.0.0.5" and alerts[0].severity == "1"


def test_generic_format(tmp_path: Path) -> None:
    p = tmp_path / "team.jsonl"
    lines = [
        {"time": "2026-09-21T13:33:20Z", "technique": ["T0888", "T0846"], "source": "a", "destination": "b",
         "message": "scan"},
        {"time": T0 + 5, "technique": "T0856"},
        {"time": (T0 + 6) * 1000, "technique": "t0830"},  # epoch milliseconds
        {"plant_time_s": 42.0, "technique": "T0836"},
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    alerts = load_alerts(p, to_plant)
    by_id = {a.attack_ids[0]: a for a in alerts}
    assert by_id["T0888"].attack_ids == ("T0888", "T0846") and by_id["T0888"].message == "scan"
    assert by_id["T0856"].time_s == pytest.approx(5.0)
    assert by_id["T0830"].time_s == pytest.approx(6.0)
    assert by_id["T0836"].time_s == 42.0


def test_json_array(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text(json.dumps([{"plant_time_s": 1, "technique": "T0836"}]), encoding="utf-8")
    assert len(load_alerts(p, to_plant)) == 1


@pytest.mark.parametrize(("content", "expected"), [
    ('{"ts": 1, "technique": "T0836"}\nnot json\n', ":2: not JSON"),
    ('{"ts": 1}\n', ":1: no ATT&CK technique id"),
    ('{"technique": "T0836"}\n', ":1: no time"),
    ('{"time": "yesterday", "technique": "T0836"}\n', ":1: 'time' 'yesterday' is not an ISO-8601 time"),
    ('[1, 2]\n', ":1: expected a JSON object"),
])
def test_bad_alert_files(tmp_path: Path, content: str, expected: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(AlertFormatError) as info:
        load_alerts(p, to_plant)
    assert str(info.value).startswith(str(p)) and expected in str(info.value)


def test_missing_alert_file(tmp_path: Path) -> None:
    with pytest.raises(AlertFormatError, match=":0: cannot read"):
        load_alerts(tmp_path / "nope.jsonl", to_plant)


def test_worked_example_of_docs_scoring_md(scenario: Scenario) -> None:
    """The worked example of docs/scoring.md, number for number."""
    rows: dict[str, list[object]] = {c: [] for c in
                                     ("plant_time_s", "wall_time", "device", "tag", "value", "source")}
    for t in range(0, 1800, 10):
        for tag, v in (("discharge_bar", 73.0 if 720 <= t < 900 else 65.0), ("suction_bar", 50.0),
                       ("delivery_kg_s", 100.0)):
            for c, x in zip(rows, (float(t), 0.0, "plant", tag, v, "truth"), strict=True):
                rows[c].append(x)
    alerts = [alert(361, "T0888"), alert(645, "T0836"), alert(100, "T0801"), alert(200, "T0801"),
              alert(1700, "T0846")]
    s = score_drill(record(alerts, [Neutralization(602, "blocked", "setpoint", "firewall")],
                           trends=pa.table(rows)), scenario)
    assert [(i.detected, i.time_to_detect_s, i.neutralized) for i in s.injects] == [
        (True, 1.0, False), (True, 45.0, True), (False, None, False)]
    assert s.false_alarms == 3 and s.false_alarms_per_hour == pytest.approx(6.0)
    assert s.components["detection"] == pytest.approx(26.667, abs=1e-3)
    assert s.components["speed"] == pytest.approx(12.963, abs=1e-3)
    assert s.components["neutralization"] == pytest.approx(6.667, abs=1e-3)
    assert s.impact.credit == pytest.approx(0.425) and s.components["impact"] == pytest.approx(8.5)
    assert s.components["false_alarm_penalty"] == pytest.approx(-9.0)
    assert s.score == 45.8
