"""The limits detector: a tag outside what it did in normal operation, overall and per mode."""

from __future__ import annotations

import numpy as np

from interlock.detect.process import EnsembleDetector, Frame, LimitsDetector
from tests.process.conftest import plant, shared


def pumped_tank(rows: int, seed: int, top: float = 5.0) -> Frame:
    """A tank filled by an on/off pump between 2 and ``top`` m (the PLC's levels), drawn on
    by a noisy demand; the pump's flow (within its curve's +-2) is 0 when it is off."""
    rng = np.random.default_rng(seed)
    level, on = 3.0, 0.0
    out = []
    for _ in range(rows):
        if level < 2.0:
            on = 1.0
        elif level > top:
            on = 0.0
        flow = on * (30 + rng.uniform(-2, 2))
        level += 0.01 * flow - 0.15 - rng.normal(0, 0.02)
        out.append((level, flow, on))
    return Frame(("L_T", "F_P", "S_P"), np.array(out))


def test_a_tank_filled_past_its_plc_level_is_found() -> None:
    det = LimitsDetector().fit(pumped_tank(8000, 0))
    assert not det.predict(pumped_tank(3000, 1)).any()  # normal cycles stay inside
    raised = pumped_tank(3000, 2, top=6.0)  # the PLC's stop level raised by 1 m
    flagged = det.predict(raised)
    assert flagged.any()
    first = int(np.flatnonzero(flagged)[0])
    assert raised.values[first, 0] > 5.0  # on the first rows above anything seen
    alert = det.alerts(raised)[0]
    assert alert.tags[0] == "L_T" and alert.explanation.startswith("limits: L_T")


def test_a_mode_has_its_own_ranges() -> None:
    det = LimitsDetector().fit(pumped_tank(8000, 0))
    x = pumped_tank(500, 1).values.copy()
    off = np.flatnonzero(x[:, 2] == 0)[:5]
    x[off, 1] = 30.0  # a flow while the pump is off: within the flow's range, not in this mode
    flagged = np.flatnonzero(det.predict(Frame(("L_T", "F_P", "S_P"), x)))
    np.testing.assert_array_equal(flagged, off)
    plain = LimitsDetector(modes=False).fit(pumped_tank(8000, 0))
    assert not plain.predict(Frame(("L_T", "F_P", "S_P"), x)).any()


def test_resolution_and_never_moving_tags() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    coarse = np.round(2.98 + 0.01 * np.sin(np.arange(n) / 50) + rng.normal(0, 0.002, n), 2)
    standby = np.zeros(n)  # a standby pump's flow: 0 all year
    train = Frame(("P", "F_STANDBY"), np.column_stack([coarse, standby]))
    det = LimitsDetector().fit(train)
    lo, hi = coarse.min(), coarse.max()
    test = np.array([[lo - 0.01, 0.0], [hi + 0.01, 0.0], [hi + 0.02001, 0.0], [lo, 1e-3]])
    # one step of the historian's rounding past the range is rounding, two are not; the standby
    # pump moving at all is out of what it ever did
    np.testing.assert_array_equal(det.predict(Frame(train.tags, test)), [0, 0, 1, 1])


def test_a_short_noisy_training_run_watches_nothing_it_cannot_bound() -> None:
    # 500 rows of noise: held-out blocks leave the others' range every few rows, so no limit is
    # set (Tennessee Eastman's d00.dat), while a year of a bounded level is watched
    short = LimitsDetector().fit(plant(500, 0))
    assert np.all(np.isinf(short.envelopes_[0].high))
    assert not short.predict(plant(2000, 1)).any()
    year = LimitsDetector().fit(pumped_tank(8000, 0))
    assert np.isfinite(year.envelopes_[0].high[0])


def test_unbounded_noise_passes_its_limits_rarely() -> None:
    # Gaussian tails have no end: a year of 8000 rows sets limits that 20,000 new rows of 20
    # such tags pass well under once per 10,000 tag-rows (limits are for bounded physics)
    rng = np.random.default_rng(5)
    tags = tuple(f"x{i}" for i in range(20))
    det = LimitsDetector().fit(Frame(tags, rng.normal(0, 1, (8000, 20))))
    passed = det._excess(rng.normal(0, 1, (20_000, 20))) > 0
    assert passed.mean() < 1e-4


def test_the_default_ensemble_has_a_limits_member() -> None:
    ens = EnsembleDetector().fit(pumped_tank(8000, 0))
    names = [d.name for d in ens.detectors_]
    assert "limits" in names
    raised = pumped_tank(3000, 2, top=6.0)
    first = int(np.flatnonzero(raised.values[:, 0] > 5.6)[0])
    assert ens._ratios(raised)[first, names.index("limits")] > 1  # the limits member itself alarms there


def test_tep_normal_test_run_stays_quiet() -> None:
    tep = shared("tep")
    from interlock.detect.process.data import read_frame

    det = LimitsDetector().fit(read_frame(tep / "d00.dat"))
    assert det.predict(read_frame(tep / "d00_te.dat")).mean() < 0.005
