"""Scenario loader: the schema, durations, and one-line errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.drill.scenario import (
    ScenarioError,
    format_duration,
    load_scenario,
    parse_duration,
    parse_scenario,
)

GOOD = """\
id: test-reactor
title: Test
plant: reactor
based_on: "Stuxnet (2010)"
seed: 3
speed: 10
duration: 30m
warmup: 8m
description: >
  A test.
objectives: [detect it]
phases:
  - name: Reconnaissance
    injects:
      - id: recon-fc43
        at: 9m
        technique: modbus.read_device_id
        target: plc-1
        params: {}
        expect: [T0888]
  - name: Manipulation
    injects:
      - id: mitm
        at: 12m
        until: 28m
        technique: mitm.replay
        target: plc-1
        params: {record: 2m}
        expect: [T0830, T0856]
      - id: setpoint
        at: 1h0m0s
        technique: modbus.write_register
        target: plc-1
        params: {tag: temp_sp_k, value: 345}
        expect: [t0836]
"""


def good(**replace: str) -> str:
    text = GOOD.replace("at: 1h0m0s", "at: 14m")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_good_scenario_parses() -> None:
    sc = parse_scenario(good(), "x.yaml")
    assert (sc.id, sc.plant, sc.seed, sc.speed, sc.duration_s, sc.warmup_s) == (
        "test-reactor", "reactor", 3, 10.0, 1800.0, 480.0)
    assert [i.id for i in sc.injects] == ["recon-fc43", "mitm", "setpoint"]
    mitm = sc.inject("mitm")
    assert (mitm.at_s, mitm.until_s, mitm.end_s, mitm.phase) == (720.0, 1680.0, 1680.0, "Manipulation")
    assert mitm.params["record"] == 120.0
    sp = sc.inject("setpoint")
    assert sp.expect == ("T0836",) and sp.params == {"tag": "temp_sp_k", "value": 345}
    assert sp.line == 30 and sp.end_s == sp.at_s
    assert sc.objectives == ("detect it",)


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90.0), ("12m", 720.0), ("1h", 3600.0), ("1h30m", 5400.0), (45, 45.0), ("2.5m", 150.0),
    ("1h0m5s", 3605.0), ("30", 30.0),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["12x", "", "m", "-5", "1m1h", True, None, [1]])
def test_bad_durations(text: object) -> None:
    assert parse_duration(text) is None


def test_format_duration() -> None:
    assert format_duration(750) == "12m30s" and format_duration(3600) == "1h" and format_duration(0) == "0s"


@pytest.mark.parametrize(("old", "new", "line", "expected"), [
    ("at: 9m", "at: 12x", 16, "field 'phases[0].injects[0].at': '12x' is not a duration like 90s"),
    ("plant: reactor", "plant: nuclear", 3, "field 'plant': 'nuclear' is not a plant"),
    ("target: plc-1\n        params: {}", "target: plc-9\n        params: {}", 18,
     "field 'phases[0].injects[0].target': 'plc-9' is not a device of reactor"),
    ("tag: temp_sp_k", "tag: temp_sp", 34, "field 'phases[1].injects[1].params.tag': 'temp_sp' is not a tag"),
    ("technique: modbus.read_device_id", "technique: modbus.read_devid", 17,
     "is not a technique of the library; did you mean 'modbus.read_device_id'?"),
    ("expect: [T0888]", "expect: [T9999]", 20, "'T9999' is not an ATT&CK for ICS technique id"),
    ("at: 9m", "at: 5m", 16, "is inside the warmup"),
    ("at: 14m", "at: 31m", 31, "is not before the end of the drill"),
    ("until: 28m", "until: 40m", 25, "must be after 'at'"),
    ("seed: 3", "sed: 3", 5, "field 'sed': unknown key; did you mean 'seed'?"),
    ("        params: {}\n", "        parms: {}\n", 19, "field 'phases[0].injects[0].parms': unknown key"),
    ("speed: 10", "speed: fast", 6, "must be 'max' or a real-time multiplier"),
    ("title: Test\n", "", 1, "field 'title': is required"),
    ("id: recon-fc43", "id: mitm", 23, "'mitm' is already used on line 15"),
    ("warmup: 8m", "warmup: 40m", 8, "leaves no time for injects"),
    ("params: {}", "params: {bogus: 1}", 19, "modbus.read_device_id takes no parameter 'bogus'"),
    ("target: plc-1\n        params: {}", "target: rtu-1\n        params: {}", 17,
     "modbus.read_device_id speaks modbus but rtu-1 speaks iec104"),
    ("params: {record: 2m}", "params: {record: 2y}", 28, "'2y' is not a duration"),
    ("seed: 3", "seed: -1", 5, "must be a whole number"),
    ("expect: [T0888]", "expect: []", 20, "must list at least one ATT&CK id"),
    ("phases:\n", "phases: []\nx:\n", 13, "field 'x': unknown key"),
])
def test_errors_name_file_line_and_field(old: str, new: str, line: int, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(good(**{old: new}), "bad.yaml")
    message = str(info.value)
    assert message.startswith(f"bad.yaml:{line}: "), message
    assert expected in message, message
    assert "\n" not in message


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(ScenarioError, match=r"^bad.yaml:\d+: YAML syntax error"):
        parse_scenario("id: x\n  title: [\n", "bad.yaml")


def test_empty_and_wrong_shape() -> None:
    with pytest.raises(ScenarioError, match="empty file"):
        parse_scenario("", "e.yaml")
    with pytest.raises(ScenarioError, match="must be a mapping"):
        parse_scenario("- a\n- b\n", "e.yaml")
    with pytest.raises(ScenarioError, match="duplicate key"):
        parse_scenario("id: a\nid: b\n", "e.yaml")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "nope.yaml")


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(good(), encoding="utf-8")
    sc = load_scenario(path)
    assert sc.path == path and sc.injects[0].line == 15


# --- CLI: list and validate --------------------------------------------------------------------


def test_cli_list() -> None:
    from click.testing import CliRunner

    from interlock.cli import main

    res = CliRunner().invoke(main, ["drill", "list"])
    assert res.exit_code == 0, res.output
    assert "stuxnet-reactor" in res.output and "gas-pipeline" in res.output


def test_cli_validate_good_and_bad(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from interlock.cli import main

    ok = tmp_path / "ok.yaml"
    ok.write_text(good(), encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(good(**{"at: 9m": "at: 12x"}), encoding="utf-8")
    res = CliRunner().invoke(main, ["drill", "validate", str(ok)])
    assert res.exit_code == 0 and f"ok {ok}" in res.output
    res = CliRunner().invoke(main, ["drill", "validate", str(ok), str(bad)])
    assert res.exit_code == 2
    assert (f"interlock: error: {bad}:16: field 'phases[0].injects[0].at': '12x' is not a duration"
            in res.output)
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["drill", "validate"])  # every shipped scenario
    assert res.exit_code == 0 and res.output.count("\nok ") + res.output.startswith("ok ") >= 12
