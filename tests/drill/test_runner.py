"""Every packaged scenario end to end in fast mode: a fresh range, real techniques over TCP on
loopback, the capture, Interlock's defenders, the score and the report.

Needs a packet socket on ``lo`` (root or CAP_NET_RAW) for the defenders' capture; without it the
tests that judge the capture skip with the reason.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from interlock.capture.decode import decode_records
from interlock.drill.runner import ATTACKER_HOST, run_drill
from interlock.drill.scenario import find_scenario, list_scenarios
from interlock.range.runtime import relocate

logging.getLogger("pymodbus").setLevel(logging.ERROR)

# Drills here run in their own loopback network (127.5.0.0/16), apart from other ranges on the host.
INSTANCE = 5
ATTACKER = relocate(ATTACKER_HOST, INSTANCE)
CONTRACT_INJECT_KEYS = {
    "technique",
    "start",
    "detected",
    "time_to_detect_s",
    "neutralized",
    "time_to_neutralize_s",
}


def _can_capture() -> bool:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    except (OSError, AttributeError):
        return False
    sock.close()
    return True


needs_capture = pytest.mark.skipif(not _can_capture(), reason="capturing on lo needs root or CAP_NET_RAW")


@needs_capture
@pytest.mark.parametrize("scenario_id", [s.id for s in list_scenarios()])
def test_scenario_runs_end_to_end(scenario_id: str, tmp_path: Path) -> None:
    scenario = find_scenario(scenario_id)
    record, _score = run_drill(scenario, tmp_path, progress=False, store=False, instance=INSTANCE)
    assert not record.meta["errors"], record.meta["errors"]
    data = json.loads((tmp_path / "score.json").read_text())
    assert data["scenario"] == scenario.id and data["seed"] == scenario.seed
    assert isinstance(data["score"], int | float) and 0 <= data["score"] <= 100
    assert isinstance(data["false_alarms"], int)
    assert len(data["injects"]) == len(scenario.injects)
    for inj in data["injects"]:
        assert set(inj) >= CONTRACT_INJECT_KEYS
    assert (tmp_path / "report.html").stat().st_size > 10_000
    # Every inject ran: one ground-truth action at least, at its scheduled plant time.
    ran = {a.inject_id for a in record.truth}
    assert ran == {i.id for i in scenario.injects}
    for inj in scenario.injects:
        starts = [a.start_s for a in record.truth if a.inject_id == inj.id]
        assert min(starts) == pytest.approx(inj.at_s, abs=1.0)


@needs_capture
def test_ground_truth_matches_the_packets_the_techniques_sent(tmp_path: Path) -> None:
    scenario = find_scenario("stuxnet-reactor")
    record, _ = run_drill(scenario, tmp_path, progress=False, store=False, instance=INSTANCE)
    rows = decode_records(tmp_path / "drill.pcap")
    sent: dict[str, int] = {}
    for r in rows:
        # ICS requests only: the decoder also records each connection attempt (protocol tcp).
        if r["src"] == ATTACKER and r["direction"] == "request" and r["protocol"] != "tcp":
            key = f"{r['src']}:{r['sport']}"
            sent[key] = sent.get(key, 0) + 1
    direct = [a for a in record.truth if a.source.startswith(ATTACKER + ":")]
    assert direct, "the scenario has direct attacker actions"
    for action in direct:
        assert sent.get(action.source) == action.requests, action
    # ...and nothing else came from the attacker's address.
    assert set(sent) == {a.source for a in direct}
    # The labels for `interlock eval network` are the ground truth; the warm-up capture is benign.
    labels = (tmp_path / "labels.csv").read_text().splitlines()
    assert labels[0] == "start,end,technique,source,destination" and len(labels) == len(record.truth) + 1
    warm = decode_records(tmp_path / "warmup.pcap")
    assert warm and all(r["src"] != ATTACKER for r in warm)
    assert max(r["ts"].timestamp() for r in warm) < 1_767_592_800.0 + scenario.warmup_s
    # The capture is on the plant's calendar: the first attacker request sits at its inject time.
    first = min(r["ts"] for r in rows if r["src"] == ATTACKER)
    assert first.timestamp() - 1_767_592_800.0 == pytest.approx(scenario.injects[0].at_s, abs=0.5)


@needs_capture
def test_without_the_firewall_the_stuxnet_class_attack_deceives_the_hmi_and_is_detected(
    tmp_path: Path,
) -> None:
    record, score = run_drill(
        find_scenario("stuxnet-reactor"),
        tmp_path,
        progress=False,
        store=False,
        firewall=False,
        instance=INSTANCE,
    )
    by_id = {i["id"]: i for i in score.to_json()["injects"]}
    assert by_id["recon-fc43"]["detected"]
    assert by_id["manual-mode"]["detected"]
    # The HMI saw a steady reactor while the truth ran to the SIS trip.
    table = record.trends.to_pydict()
    hmi = [
        v
        for d, t, v, s in zip(table["device"], table["tag"], table["value"], table["source"], strict=True)
        if s == "hmi" and d == "plc-1" and t == "reactor_temp_k"
    ]
    truth = [
        v
        for t, v, s in zip(table["tag"], table["value"], table["source"], strict=True)
        if s == "truth" and t == "reactor_temp_k"
    ]
    assert max(truth) > 345.0
    assert max(hmi) < 326.0


def test_external_alert_stream_is_scored_instead(tmp_path: Path) -> None:
    scenario = find_scenario("stuxnet-reactor")
    alerts = tmp_path / "team.jsonl"
    # The team's tool saw only the fingerprinting, 30 plant seconds late.
    alerts.write_text(
        json.dumps({"plant_time_s": scenario.injects[0].at_s + 30, "technique": "T0888"}) + "\n"
    )
    record, score = run_drill(
        scenario, tmp_path / "out", alerts_file=alerts, progress=False, store=False, instance=INSTANCE
    )
    data = score.to_json()
    first = data["injects"][0]
    assert first["detected"] and first["time_to_detect_s"] == pytest.approx(30.0, abs=0.01)
    assert not any(i["detected"] for i in data["injects"][1:])
    assert record.meta["defender"].startswith("external alerts")


@needs_capture
def test_the_inline_firewall_blocks_the_writes_it_never_saw_during_warm_up(tmp_path: Path) -> None:
    scenario = find_scenario("stuxnet-reactor")
    record, score = run_drill(scenario, tmp_path, progress=False, store=False, instance=INSTANCE)
    blocked = {n.inject_id for n in record.neutralizations if n.kind == "blocked"}
    assert {"manual-mode", "coolant-up", "setpoint-high"} <= blocked
    table = record.trends.to_pydict()
    truth = [
        v
        for t, v, s in zip(table["tag"], table["value"], table["source"], strict=True)
        if s == "truth" and t == "reactor_temp_k"
    ]
    assert max(truth) < 326.0  # the reactor never left its operating point
    by_id = {i["id"]: i for i in score.to_json()["injects"]}
    assert by_id["setpoint-high"]["neutralized"] and by_id["setpoint-high"]["time_to_neutralize_s"] == 0.0
    lines = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert any(x["rule"].startswith("firewall/") and x["dst"] == "127.5.0.31" for x in lines)
