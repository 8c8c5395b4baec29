"""The switches detector: the level at which a PLC switched a pump, placed between hourly samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.detect.process import Frame, SwitchesDetector
from interlock.detect.process.stream import RowByRow
from interlock.detect.process.switches import _bend, _bend_one, _switches


def plc_tank(hours: int, seed: int, start: float = 2.0, stop: float = 5.0) -> Frame:
    """A tank whose PLC starts a pump below ``start`` and stops it above ``stop``, scanned every
    5 minutes, with a demand that swings over the day; the historian keeps every 12th scan."""
    rng = np.random.default_rng(seed)
    level, on = 3.0, 0.0
    out = []
    for minute in range(0, hours * 60, 5):
        if level < start:
            on = 1.0
        elif level > stop:
            on = 0.0
        demand = 0.35 + 0.15 * np.sin(2 * np.pi * minute / 1440) + rng.normal(0, 0.02)
        flow = on * (60 + rng.uniform(-2, 2))
        level += (0.015 * flow - demand) / 12
        if minute % 60 == 0:
            out.append((level, flow, on, 50 + 3 * level + rng.normal(0, 0.3)))
    return Frame(("L_T", "F_P", "S_P", "P_J"), np.array(out))


def test_the_bend_places_the_switch_between_samples() -> None:
    # a level rising 0.6 an hour until a switch 0.25 into the hour, falling 0.4 after
    level = np.array([1.0, 1.6, 2.2, 2.2 + 0.25 * 0.6 - 0.75 * 0.4, 2.05 - 0.4])
    t = np.array([3])
    np.testing.assert_allclose(_bend(level, t), [2.2 + 0.25 * 0.6])
    state = np.array([1, 1, 1, 0, 0.0])
    assert _switches(state, 1.0, 0.0).tolist() == [3]
    assert _switches(np.array([1, 0, 1, 0, 0.0]), 1.0, 0.0).tolist() == []  # not held: no slope


def test_it_learns_the_plc_levels_tighter_than_the_samples_show() -> None:
    train = plc_tank(6000, 0)
    det = SwitchesDetector().fit(train)
    rules = {(det.tags_[r.switched], r.after): r for r in det.rules_}
    stop, begin = rules[("S_P", 0.0)], rules[("S_P", 1.0)]
    assert det.tags_[stop.driver] == "L_T" and det.tags_[begin.driver] == "L_T"
    assert stop.seen[0] >= 4.9 and stop.seen[1] <= 5.15  # the PLC's 5.0, within a scan's rise
    assert begin.seen[0] >= 1.85 and begin.seen[1] <= 2.1
    # the sample after each stop spreads much wider: the tank falls for up to an hour
    x = train.values
    after = x[_switches(x[:, 2], 1.0, 0.0), 0]
    assert after.max() - after.min() > 3 * (stop.seen[1] - stop.seen[0])
    assert any("S_P 1->0 with L_T" in line for line in det.describe())


def test_a_stop_level_lowered_half_a_metre_alarms_at_its_first_stop() -> None:
    det = SwitchesDetector().fit(plc_tank(6000, 0))
    assert not det.predict(plc_tank(2000, 1)).any()  # normal cycles switch where they always did
    lowered = plc_tank(500, 2, stop=4.5)  # every reading stays in its normal range
    assert lowered.values[:, 0].max() < 5.0
    flagged = np.flatnonzero(det.predict(lowered))
    stops = _switches(lowered.values[:, 2], 1.0, 0.0)
    assert flagged.size and flagged[0] == stops[0] + 1  # the row after the first stop
    alert = det.alerts(lowered)[0]
    assert set(alert.tags) == {"S_P", "L_T"} and alert.explanation.startswith("switches:")


def test_streaming_gives_the_batch_scores() -> None:
    det = SwitchesDetector().fit(plc_tank(6000, 0))
    test = plc_tank(400, 3, stop=4.4)
    live = RowByRow(det)
    scores = [live.score_one(dict(zip(test.tags, row, strict=True))) for row in test.values]
    np.testing.assert_allclose(scores, det.score(test), rtol=1e-12, atol=0)
    assert live._scorer is not None  # its own row scorer, not the window fallback
    assert (np.array(scores) > det.threshold_).any()
    alarm = int(np.flatnonzero(np.array(scores) > det.threshold_)[0])
    live = RowByRow(det)
    for row in test.values[: alarm + 1]:
        live.score_one(dict(zip(test.tags, row, strict=True)))
    np.testing.assert_allclose(live.weights(), det._blame(test.values, np.array([alarm]))[0])


def test_no_on_off_tag_or_no_driver_means_no_rule() -> None:
    rng = np.random.default_rng(0)
    noise = Frame(("a", "b"), rng.normal(0, 1, (3000, 2)))
    assert SwitchesDetector().fit(noise).rules_ == []
    # a pump switched at random: no level drives it, so nothing is watched
    x = plc_tank(3000, 0).values.copy()
    x[:, 2] = np.repeat(rng.integers(0, 2, len(x) // 6 + 1), 6)[: len(x)]
    det = SwitchesDetector().fit(Frame(("L_T", "F_P", "S_P", "P_J"), x))
    assert [r for r in det.rules_ if det.tags_[r.switched] == "S_P"] == []


def test_the_default_ensemble_has_a_switches_member() -> None:
    from interlock.detect.process import EnsembleDetector

    ens = EnsembleDetector().fit(plc_tank(6000, 0))
    names = [d.name for d in ens.detectors_]
    lowered = plc_tank(500, 2, stop=4.5)
    first = int(_switches(lowered.values[:, 2], 1.0, 0.0)[0]) + 1
    assert ens._ratios(lowered)[first, names.index("switches")] > 1  # the member itself alarms


def test_a_missing_reading_is_no_switch_level() -> None:
    train = plc_tank(6000, 0)
    det = SwitchesDetector().fit(train)
    test = plc_tank(2000, 1)
    x = test.values.copy()
    stops = _switches(x[:, 2], 1.0, 0.0)
    x[stops, 0] = np.nan  # the level unread at every stop: no level there, so no alarm
    assert not det.predict(Frame(test.tags, x)).any()
    # nor does a training year with gaps at its switches widen the limits
    y = train.values.copy()
    y[_switches(y[:, 2], 1.0, 0.0)[::4], 0] = np.nan
    gappy = SwitchesDetector().fit(Frame(train.tags, y))
    assert [(r.low, r.high) for r in gappy.rules_] == pytest.approx(
        [(r.low, r.high) for r in det.rules_], abs=0.05
    )


def test_separate_training_runs_make_no_switch_between_them() -> None:
    a, b = plc_tank(3000, 0), plc_tank(3000, 4)
    on = np.flatnonzero(a.values[:, 2] == 1)
    end = int(on[on > 2500][0]) + 3  # the first run ends with the pump on three rows
    first = a.values[:end]
    start = int(np.flatnonzero(b.values[:, 2] == 0)[5])  # the second starts with it off
    second = b.values[start:]
    x = np.vstack([first, second])
    runs = np.r_[np.zeros(len(first), np.int64), np.ones(len(second), np.int64)]
    joined = SwitchesDetector().fit(Frame(a.tags, x, runs=runs))
    seen = {(joined.tags_[r.switched], r.after): r.seen for r in joined.rules_}
    assert seen[("S_P", 0.0)][0] > 4.8  # no stop "at" the level where the first run ended


def test_a_switch_score_and_blame_use_no_later_row() -> None:
    det = SwitchesDetector().fit(plc_tank(6000, 0))
    test = plc_tank(300, 3, stop=4.4)
    full = det.score(test)
    alarms = np.flatnonzero(full > det.threshold_)
    assert alarms.size
    for row in alarms[:5]:
        prefix = Frame(test.tags, test.values[: row + 1])
        assert det.score(prefix)[row] == full[row]
        np.testing.assert_array_equal(
            det._blame(prefix.values, np.array([row])), det._blame(test.values, np.array([row]))
        )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=4, max_size=4))
def test_one_switch_in_floats_is_the_numpy_bend(four: list[float]) -> None:
    # the row scorer's scalar bend must be the batch's to the bit, whatever the readings
    expected = _bend(np.array(four), np.array([2]))[0]
    got = _bend_one(*four)
    assert (np.isnan(expected) and np.isnan(got)) or expected == got


def test_eval_process_json_lists_the_switching_rules(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from interlock.cli import main

    def write(frame: Frame, path: Path, attacked: bool) -> None:
        label = np.zeros(len(frame), dtype=int)
        if attacked:
            label[len(frame) // 2 :] = 1
        rows = np.column_stack([frame.values, label])
        np.savetxt(
            path, rows, delimiter=",", header=",".join([*frame.tags, "attack"]), comments="", fmt="%.6g"
        )

    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    write(plc_tank(3000, 0), train, False)
    normal, lowered = plc_tank(300, 1), plc_tank(300, 2, stop=4.5)
    write(Frame(normal.tags, np.vstack([normal.values, lowered.values])), test, True)
    args = ["eval", "process", str(train), str(test), "--label", "attack", "--detector", "switches", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert any(rule.startswith("S_P 1->0 with L_T at") for rule in out["switches"])
    assert out["attacks"][0]["detected_at"] is not None
