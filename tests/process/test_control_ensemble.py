"""The control-logic detector, the ensemble, and attack windows as ground truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from interlock.cli import main
from interlock.detect.process import ControlDetector, DynamicPCADetector, EnsembleDetector, Frame
from interlock.detect.process.data import MAX_DECIMALS, DataError, common_resolution, decimals, read_windows
from interlock.detect.process.metrics import evaluate
from tests.process.conftest import plant, shared

WINDOWS = Path(__file__).resolve().parents[2] / "benchmarks" / "truth" / "batadal_dataset04_attacks.csv"
TAGS = ("L_TANK", "F_DEMAND", "S_PUMP", "F_PUMP", "S_STANDBY")


def pumped_tank(rows: int, seed: int, forced: tuple[int, int] | None = None,
                standby: tuple[int, int] | None = None) -> Frame:  # fmt: skip
    """A tank its PLC keeps between 3 and 7 m: the pump starts below 3 and stops above 7.

    ``forced`` rows have the pump forced on by an attacker whatever the level says;
    ``standby`` rows have the standby pump running (never seen in normal operation).
    """
    rng = np.random.default_rng(seed)
    level, on = 5.0, 0.0
    out = []
    for t in range(rows):
        demand = 0.35 + 0.15 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.03)
        if level < 3.0:
            on = 1.0
        elif level > 7.0:
            on = 0.0
        pump_on = 1.0 if forced and forced[0] <= t < forced[1] else on
        spare = 1.0 if standby and standby[0] <= t < standby[1] else 0.0
        flow = pump_on * (0.9 + rng.normal(0, 0.02))
        level = level + flow - demand + 0.8 * spare
        out.append((level + rng.normal(0, 0.01), demand, pump_on, flow, spare))
    label = np.zeros(rows, dtype=np.int8)
    for window in (forced, standby):
        if window:
            label[window[0] : window[1]] = 1
    return Frame(TAGS, np.array(out), label=label)


def test_control_rule_learned_and_broken_pump_found() -> None:
    det = ControlDetector().fit(pumped_tank(3000, 0))
    assert det.threshold_ == 0.0  # held-out normal rows break no rule of this plant
    quiet = pumped_tank(800, 1)
    assert det.predict(quiet).mean() < 0.01
    # The attacker keeps the pump running while the tank is full: the level passes 7 m with
    # the pump on, which the learned stop rule forbids.
    attacked = pumped_tank(800, 1, forced=(400, 460))
    report = evaluate(attacked.label, det.predict(attacked))
    assert report.episodes[0].detected_at is not None
    assert report.false_alarm_rate < 0.01
    first = report.episodes[0].detected_at
    assert det.explain(attacked, first)[0][0] == "S_PUMP"


def test_control_flags_a_state_never_seen_in_training() -> None:
    det = ControlDetector().fit(pumped_tank(3000, 0))
    attacked = pumped_tank(800, 1, standby=(300, 320))
    flagged = np.flatnonzero(det.predict(attacked))
    assert set(range(300, 320)) <= set(flagged)
    alerts = [a for a in det.alerts(attacked) if 300 <= a.row < 320]
    assert alerts and alerts[0].tags[0] == "S_STANDBY"


def test_control_without_on_off_tags_stays_silent() -> None:
    det = ControlDetector().fit(plant(1000, 0))
    assert det.rules_ == [] and not det.predict(plant(300, 1)).any()


def test_ensemble_alarms_exactly_when_a_member_does() -> None:
    train, test = pumped_tank(3000, 0), pumped_tank(800, 1, forced=(400, 460))
    ens = EnsembleDetector(members="control+dpca").fit(train)
    control = ControlDetector().fit(train)
    dpca = DynamicPCADetector().fit(train)
    either = control.predict(test) | dpca.predict(test)
    np.testing.assert_array_equal(ens.predict(test), either)
    assert ens.threshold_ == 1.0
    alerts = ens.alerts(test)
    assert alerts and all(a.explanation.startswith(("ensemble/control:", "ensemble/dpca:")) for a in alerts)


def test_ensemble_refuses_an_unknown_member() -> None:
    with pytest.raises(ValueError, match="ensemble member 'nope'"):
        EnsembleDetector(members="replay+nope").fit(plant(200, 0))


def test_windows_label_the_rows_between_inclusive(tmp_path: Path) -> None:
    frame = Frame(("a",), np.zeros((6, 1)), timestamps=tuple(f"t{i}" for i in range(6)))
    path = tmp_path / "w.csv"
    path.write_text("# source: test\nstart,end\nt1,t2\n\nt4,t4\n")
    np.testing.assert_array_equal(read_windows(path, frame), [0, 1, 1, 0, 1, 0])
    path.write_text("t1,t9\n")
    with pytest.raises(DataError, match=r"w.csv:1: timestamp 't9' is not in the test file"):
        read_windows(path, frame)
    path.write_text("t3,t1\n")
    with pytest.raises(DataError, match="ends before it starts"):
        read_windows(path, frame)


def test_batadal_whole_windows_from_the_cli() -> None:
    data = shared("batadal/BATADAL_dataset04.csv")
    windows = WINDOWS
    args = ["eval", "process", str(data.parent / "BATADAL_dataset03.csv"), str(data),
            "--label", "ATT_FLAG", "--detector", "replay", "--json"]  # fmt: skip
    by_label = json.loads(CliRunner().invoke(main, args).output)
    by_window = json.loads(CliRunner().invoke(main, [*args, "--windows", str(windows)]).output)
    # The file labels five attacks in part; the organisers' windows are seven whole attacks.
    assert len(by_label["attacks"]) == 5 and len(by_window["attacks"]) == 7
    # Replay alarms fall inside the concealed parts, which the file's own labels call normal.
    assert by_window["precision"] > by_label["precision"]
    assert by_window["ground_truth"] == f"windows {windows.name}"
    bad = CliRunner().invoke(main, [*args, "--windows", str(data)])
    assert bad.exit_code == 2 and "start,end" in bad.output and "Traceback" not in bad.output


def test_common_resolution_rounds_each_tag_to_the_coarser_file() -> None:
    fine = Frame(
        ("p", "s", "idle"), np.array([[2.9763638, 1.0, 0.0], [2.98912, 0.0, 0.0], [2.9744, 1.0, 0.0]])
    )
    coarse = Frame(("p", "s", "idle"), np.array([[2.98, 1.0, 0.31], [2.97, 0.0, 0.4]]))
    # Whole numbers (a status, a pump idle all year) say nothing of a file's resolution.
    np.testing.assert_array_equal(decimals(fine.values), [MAX_DECIMALS + 1] * 3)
    np.testing.assert_array_equal(decimals(coarse.values), [2, MAX_DECIMALS + 1, 2])
    a, b, rounded = common_resolution(fine, coarse)
    assert rounded == {"p": 2, "idle": 2}
    np.testing.assert_allclose(a.values[:, 0], [2.98, 2.99, 2.97])
    np.testing.assert_array_equal(b.values, coarse.values)  # 0.31 and 0.4 are not rounded away
    assert common_resolution(coarse, coarse)[2] == {}


def test_batadal_years_are_compared_at_two_decimals() -> None:
    data = shared("batadal/BATADAL_dataset04.csv")
    args = ["eval", "process", str(data.parent / "BATADAL_dataset03.csv"), str(data),
            "--label", "ATT_FLAG", "--detector", "cva", "--json", "--windows", str(WINDOWS)]  # fmt: skip
    common = json.loads(CliRunner().invoke(main, args).output)
    keep = json.loads(CliRunner().invoke(main, [*args, "--resolution", "keep"]).output)
    # 2014 is stored at full precision, 2016 at two decimals: the analog tags are rounded.
    assert len(common["rounded"]) >= 25 and set(common["rounded"].values()) == {2}
    assert keep["rounded"] == {}
    # Fitted at full precision, cva alarms on the rounding itself in a fifth of normal 2016 rows.
    assert keep["false_alarm_rate"] > 0.15 > 0.05 > common["false_alarm_rate"]


def test_ensemble_members_take_their_own_parameters() -> None:
    ens = EnsembleDetector(members="replay+cva(ewma=0.2, keep_raw=1)").fit(plant(600, 0))
    cva = ens.detectors_[1]
    assert cva.get_params()["ewma"] == 0.2 and cva.get_params()["keep_raw"] is True
    for bad, message in (
        ("cva(ewma=0.2", "close its parameters"),
        ("cva(speed=2)", "'speed=2' is not NAME=VALUE"),
        ("cva(ewma=fast)", "'fast' is not a number"),
        ("cva(lags=2.5)", "'2.5' is not a whole number"),
        ("cva(keep_raw=maybe)", "'maybe' is not true/false"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            EnsembleDetector(members=bad).fit(plant(200, 0))


def test_windows_without_naming_the_label_column_are_refused() -> None:
    # Left unnamed, ATT_FLAG would be read as a tag: a constant 0 in training that is 1 in
    # the attacks, the answer handed to the detectors.
    data = shared("batadal/BATADAL_dataset04.csv")
    args = [
        "eval",
        "process",
        str(data.parent / "BATADAL_dataset03.csv"),
        str(data),
        "--windows",
        str(WINDOWS),
    ]
    result = CliRunner().invoke(main, args)
    assert (
        result.exit_code == 2 and "'ATT_FLAG' looks like ground truth: name it with --label" in result.output
    )


def test_a_two_valued_tag_with_fractional_values_is_learned_as_two_states() -> None:
    """A setpoint moved once (12.5 -> 13.0) has two values like a pump status; scikit-learn calls
    such labels "continuous" unless they are given as classes, which crashed the fit."""
    train = pumped_tank(3000, 0)
    x = train.values.copy()
    x[:, 2] = np.where(x[:, 2] > 0, 13.0, 12.5)  # the pump status, as two fractional values
    frame = Frame(train.tags, x)
    det = ControlDetector().fit(frame)
    forced = pumped_tank(600, 1, forced=(300, 340))
    y = forced.values.copy()
    y[:, 2] = np.where(y[:, 2] > 0, 13.0, 12.5)
    alarms = det.predict(Frame(forced.tags, y))
    assert alarms[300:340].mean() > 0.5 and alarms[:300].mean() < 0.02


@pytest.mark.parametrize("lo, hi", [(0, 40), (100, 160), (250, 300), (0, 300)])
def test_a_folds_sort_order_comes_from_the_whole_columns(lo: int, hi: int) -> None:
    """control sorts each input once; a held-out fold's order (rows lo..hi-1 left out) must be the
    stable argsort of the fold's own rows, ties included."""
    from interlock.detect.process.control import _without

    col = np.random.default_rng(lo + hi).integers(0, 12, 300).astype(float)  # many ties
    rest = np.concatenate([col[:lo], col[hi:]])
    got = _without(np.argsort(col, kind="stable").astype(np.int32), lo, hi)
    np.testing.assert_array_equal(got, np.argsort(rest, kind="stable"))
