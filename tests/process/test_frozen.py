"""The frozen-tag detector: a stuck valve or a held sensor value, calibrated on normal runs."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from interlock.cli import main
from interlock.detect.process import EnsembleDetector, Frame, FrozenDetector
from interlock.detect.process.frozen import _run_lengths
from tests.process.conftest import plant, shared


def test_run_lengths_count_rows_held_and_nan_breaks_a_run() -> None:
    x = np.array([[1.0], [1.0], [2.0], [2.0], [2.0], [np.nan], [np.nan], [2.0]])
    np.testing.assert_array_equal(_run_lengths(x)[:, 0], [1, 2, 1, 2, 3, 1, 1, 1])


def test_a_stuck_valve_is_found_after_its_limit_and_nothing_else() -> None:
    train, held = plant(2000, 0), plant(600, 1)
    det = FrozenDetector().fit(train)
    assert not det.predict(held).any()  # normal noise never holds still
    x = held.values.copy()
    j = held.tags.index("F_PUMP")
    x[300:400, j] = x[300, j]  # the pump's flow freezes at its last value
    flagged = np.flatnonzero(det.predict(Frame(held.tags, x)))
    limit = int(det.limits_[j])
    assert limit >= 3
    np.testing.assert_array_equal(flagged, np.arange(300 + limit - 1, 400))
    alert = det.alerts(Frame(held.tags, x))[0]
    assert alert.tags == ("F_PUMP",) and alert.explanation.startswith("frozen: F_PUMP")


def test_sampled_and_switching_tags_are_not_mistaken_for_frozen() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    noisy = rng.normal(0, 1, n)
    analyser = np.repeat(rng.normal(0, 1, n // 5), 5)  # a new sample every fifth row
    status = (np.arange(n) // 200 % 2).astype(float)  # a pump that runs for 200 rows at a time
    train = Frame(("noisy", "analyser", "status"), np.column_stack([noisy, analyser, status]))
    det = FrozenDetector().fit(train)
    # The analyser holds 5 rows by design: two equal samples (10 rows) are chance, not a fault;
    # it repeats its last row 4 times in 5, so chance alone sets its limit (0.8^(L-1) < 1e-6).
    assert det.limits_[0] <= 2 * 2 + 2 and 60 <= det.limits_[1] <= 65 and det.limits_[2] == 0
    limit = int(det.limits_[1])
    test = train.values[:600].copy()
    test[100:110, 1] = test[100, 1]
    test[:, 2] = 1.0  # the pump runs the whole time: normal for a status
    assert not det.predict(Frame(train.tags, test)).any()
    test[200 : 200 + limit - 1, 1] = test[200, 1]  # long, but within the analyser's chance
    assert not det.predict(Frame(train.tags, test)).any()
    test[200 : 200 + limit, 1] = test[200, 1]
    assert np.flatnonzero(det.predict(Frame(train.tags, test))).tolist() == [200 + limit - 1]


def test_default_ensemble_alarms_on_a_frozen_tag_through_its_frozen_member() -> None:
    train, held = plant(2000, 0), plant(600, 1)
    ens = EnsembleDetector().fit(train)
    frozen = [d for d in ens.detectors_ if d.name == "frozen"]
    assert frozen and frozen[0].quantile == 1.0  # keeps its own: any frozen tag alarms
    x = held.values.copy()
    x[300:400, 2] = x[300, 2]
    assert ens.predict(Frame(held.tags, x))[320:400].all()


def test_tep_fault_21_is_the_stuck_stream_4_valve() -> None:
    tep = shared("tep")
    args = ["eval", "process", str(tep / "d00.dat"), str(tep), "--benchmark", "tep",
            "--detector", "frozen", "--json"]  # fmt: skip
    out = CliRunner().invoke(main, args)
    report = json.loads(out.output)
    rates = {f["fault"]: f["detection_rate"] for f in report["faults"]}
    # Fault 21 fixes the stream 4 valve (XMV 4) at its steady-state position: frozen from the
    # first faulty row, found a limit later; the plant shutdowns of faults 6 and 18 freeze
    # every tag. Nothing else holds still, and neither does normal operation.
    assert rates[21] > 99 and rates[6] > 50 and rates[18] > 50
    assert all(rates[f] == 0 for f in rates if f not in (6, 18, 21))
    assert report["false_alarm_rate"] == 0


def test_bad_parameters_are_refused() -> None:
    import pytest

    for kwargs in ({"odds": 0.0}, {"odds": 1.5}, {"margin": 0}):
        with pytest.raises(ValueError, match="odds must be in"):
            FrozenDetector(**kwargs).fit(plant(100, 0))  # type: ignore[arg-type]


def test_a_short_training_set_without_a_repeat_does_not_make_a_hair_trigger() -> None:
    """30 rows in which a slow tag never repeated bound its repeat rate by 3/29 (the rule of
    three), not by 0: its limit is the run whose odds are under 1e-6 at that rate (8 rows), not
    2 x 1 + 2 = 4, so four equal readings of a slow PID output (a live watch's first 30 polls)
    are not a frozen tag."""
    x = np.arange(30, dtype=np.float64)[:, None] * 0.01  # moves every row, never repeats
    det = FrozenDetector().fit(Frame(("speed_output",), x))
    assert det.limits_.tolist() == [8]
    held = np.concatenate([x, np.full((5, 1), x[-1, 0])])  # the last value held 5 more rows (6 in all)
    assert det.predict(Frame(("speed_output",), held)).sum() == 0
