"""benchmarks/water_attacks.py: the PLCs, the attacker and the SCADA over EPANET, on wntr's Net1
(one pump, switched on the level of one tank: ``LINK 9 OPEN IF NODE 2 BELOW 110``, ``CLOSED ... ABOVE
140``, in feet). EPANET itself runs; nothing is mocked."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from interlock.detect.process.data import read_frame, read_windows

REPO = Path(__file__).resolve().parents[2]

wntr = pytest.importorskip("wntr")
NET1 = Path(wntr.__file__).parent / "library" / "networks" / "Net1.inp"


@pytest.fixture(scope="module")
def water() -> ModuleType:
    path = REPO / "benchmarks" / "water_attacks.py"
    spec = importlib.util.spec_from_file_location("water_attacks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def run(water: ModuleType, tmp_path: Path, attacks: list, hours: int = 300, seed: int = 1) -> tuple:
    plant = water.Plant(NET1, hours, seed, tmp_path)
    rows, _ = water.simulate(plant, attacks, tmp_path)
    cols = plant.signals()
    return plant, rows, {c: rows[:, i] for i, c in enumerate(cols)}


def test_the_rules_are_read_from_the_controls(water: ModuleType) -> None:
    rules = water.read_rules(NET1)
    assert [(r.link, r.on, r.tank, r.below, r.level) for r in rules] == [
        ("9", True, "2", True, 110.0),
        ("9", False, "2", False, 140.0),
    ]


def test_the_plcs_keep_the_tank_between_its_levels(water: ModuleType, tmp_path: Path) -> None:
    plant, rows, sig = run(water, tmp_path, [])
    assert plant.signals() == [
        "L_2",
        "F_9",
        "S_9",
        "P_10",
    ]  # P_: the pump's delivery (its suction is the reservoir)
    assert rows.shape == (300, len(plant.signals()))
    level, on = sig["L_2"], sig["S_9"]
    assert 0 < on.mean() < 1  # the pump cycles
    # hourly readings of a 5-minute control: within a few feet of the switching levels
    assert level.min() > 100 and level.max() < 150
    assert np.all(sig["F_9"][on == 0] == 0) and np.all(sig["F_9"][on == 1] > 0)


def test_a_false_level_to_the_plc_drains_the_tank(water: ModuleType, tmp_path: Path) -> None:
    # the PLC is told the tank is full: the pump stays off while the town draws the tank down
    attack = water.Attack("plc_input", "2", 50, 150, 145.0)
    _, _, sig = run(water, tmp_path, [attack])
    assert np.all(sig["S_9"][52:150] == 0)
    assert sig["L_2"][52:150].min() == 100  # empty (its floor), far under the PLC's 110 ft start
    _, _, normal = run(water, tmp_path, [])
    assert normal["S_9"][52:150].max() == 1


def test_thresholds_and_forced_actuators(water: ModuleType, tmp_path: Path) -> None:
    lowered = water.Attack("thresholds", "2", 0, 300, -20.0)  # switch at 90 / 120 ft
    _, _, sig = run(water, tmp_path, [lowered])
    assert sig["L_2"][30:].max() < 125
    forced = water.Attack("actuator", "9", 100, 200, 0.0)
    _, _, sig = run(water, tmp_path, [forced])
    assert np.all(sig["S_9"][101:200] == 0) and np.all(sig["F_9"][101:200] == 0)
    slowed = water.Attack("actuator", "9", 0, 300, 0.7)
    _, _, slow = run(water, tmp_path, [slowed])
    _, _, normal = run(water, tmp_path, [])
    assert slow["F_9"][slow["S_9"] == 1].mean() < 0.9 * normal["F_9"][normal["S_9"] == 1].mean()


def test_the_scada_is_shown_a_replay(water: ModuleType, tmp_path: Path) -> None:
    attack = water.Attack("plc_input", "2", 100, 200, 145.0, conceal=["L_2", "F_9", "S_9"], lag=48)
    _, _rows, sig = run(water, tmp_path, [attack])
    _, _, true = run(water, tmp_path, [water.Attack("plc_input", "2", 100, 200, 145.0)])
    shown = [52 + k % 48 for k in range(100)]  # the 48 hours before the attack, over and over
    for name in ("L_2", "F_9", "S_9"):
        assert np.array_equal(sig[name][100:200], true[name][shown])
        assert np.array_equal(sig[name][:100], true[name][:100])
    assert not np.array_equal(sig["L_2"][100:200], true["L_2"][100:200])


def test_a_hidden_attack_needs_a_window_to_replay(water: ModuleType) -> None:
    with pytest.raises(ValueError, match="lag must be at least 1 hour"):
        water.Attack("plc_input", "2", 100, 200, 145.0, conceal=["L_2"], lag=0)


def test_seeds_give_different_demands_and_attacks(water: ModuleType, tmp_path: Path) -> None:
    plant = water.Plant(NET1, 2089, 3, tmp_path)
    a3, a4 = water.random_attacks(plant, 3), water.random_attacks(plant, 4)
    assert len(a3) == 7 and a3 != a4
    assert water.random_attacks(plant, 3) == a3
    ends = [(a.start, a.end) for a in a3]
    assert all(e1 + 100 <= s2 for (_, e1), (s2, _) in itertools.pairwise(ends))  # apart, in order
    assert all(24 <= e - s <= 120 for s, e in ends) and ends[0][0] >= 150 and ends[-1][1] <= 2089
    _, _, s1 = run(water, tmp_path, [], 100, seed=1)
    _, _, s2 = run(water, tmp_path, [], 100, seed=2)
    assert not np.allclose(s1["P_10"], s2["P_10"])


def test_a_seed_has_the_same_demands_in_a_short_run(water: ModuleType, tmp_path: Path) -> None:
    # onsets reruns a test file's plant: its demands must not depend on the run's length
    _, long = water.simulate(water.Plant(NET1, 700, 5, tmp_path), [], tmp_path)
    _, short = water.simulate(water.Plant(NET1, 450, 5, tmp_path), [], tmp_path)
    np.testing.assert_array_equal(long[:450], short)


def test_only_attacks_that_move_the_plant_are_kept(water: ModuleType, tmp_path: Path) -> None:
    plant = water.Plant(NET1, 400, 1, tmp_path)
    _, normal = water.simulate(plant, [], tmp_path)
    drained = water.Attack("plc_input", "2", 50, 150, 145.0)
    _, true = water.simulate(plant, [drained], tmp_path)
    assert water.moved(plant, normal, true, drained)
    idle = water.Attack("thresholds", "2", 50, 150, 0.0)  # the PLC's own levels: nothing changes
    _, same = water.simulate(plant, [idle], tmp_path)
    assert not water.moved(plant, normal, same, idle)
    drawn = water.random_attacks(plant, 1, count=1, effective=lambda a: a.kind == "actuator")
    assert drawn[0].kind == "actuator"  # redrawn until the check passed


def test_onsets_find_the_first_hour_the_plant_differs(water: ModuleType, tmp_path: Path, capsys) -> None:
    out = tmp_path / "files"
    water.generate(NET1, out, [5], train_hours=300, test_hours=700)
    water.onsets(NET1, out, [5], None)
    text = capsys.readouterr().out
    hours = [int(h) for h in text.split("[", 1)[1].split("]", 1)[0].split(",")]
    assert len(hours) == 2 and all(
        h >= 1 for h in hours
    )  # the row at an attack's start is read before it acts
    assert "attack hours" in text


def test_evaluate_prints_each_kind_of_attack(water: ModuleType, tmp_path: Path, capsys) -> None:
    water.generate(NET1, tmp_path, [5], train_hours=1000, test_hours=700)
    water.evaluate(tmp_path, [5], ["--merge-gap", "0"])
    text = capsys.readouterr().out
    attacks = [water.Attack(**a) for a in json.loads((tmp_path / "test_5_attacks.json").read_text())]
    assert "seed 5: batadal_s" in text and "mean:" in text and "false alarms:" in text
    for kind in {water._kind(a) for a in attacks}:
        assert any(line.startswith(kind + " ") for line in text.splitlines())


def test_the_files_read_back_with_their_windows(water: ModuleType, tmp_path: Path) -> None:
    water.generate(NET1, tmp_path, [5], train_hours=300, test_hours=700)
    frame = read_frame(tmp_path / "test_5.csv", label="ATT_FLAG")
    windows = read_windows(tmp_path / "test_5_attacks.csv", frame)
    assert frame.label is not None and len(frame) == 700
    assert np.array_equal(np.asarray(windows, dtype=bool), frame.label.astype(bool))
    with (tmp_path / "test_5_attacks.csv").open() as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
    first = dt.datetime.strptime(rows[1][0], "%d/%m/%y %H")
    assert first >= dt.datetime(2018, 1, 1) + dt.timedelta(hours=150)
    assert len(read_frame(tmp_path / "train.csv", label="ATT_FLAG")) == 300
