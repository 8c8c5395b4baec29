"""Metrics checked against hand-computed values and the BATADAL paper's reference points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.detect.process.metrics import episodes, evaluate, merge_gaps


def test_episodes_and_time_to_detect() -> None:
    label = np.array([0, 1, 1, 1, 1, 0, 0, 1, 1, 0], dtype=np.int8)
    alarm = np.array([1, 0, 0, 1, 1, 0, 0, 0, 0, 0], dtype=np.int8)
    eps = episodes(label, alarm)
    assert [(e.start, e.stop, e.detected_at) for e in eps] == [(1, 5, 3), (7, 9, None)]
    assert [e.time_to_detect for e in eps] == [2, 2]  # a missed attack counts its duration
    r = evaluate(label, alarm)
    assert r.precision == pytest.approx(2 / 3)
    assert r.recall == pytest.approx(2 / 6)
    assert r.s_ttd == pytest.approx(1 - (2 / 4 + 2 / 2) / 2)
    assert r.s_cm == pytest.approx((2 / 6 + 3 / 4) / 2)
    assert r.batadal_s == pytest.approx(0.5 * r.s_ttd + 0.5 * r.s_cm)


def test_always_alarm_scores_0_75_as_the_batadal_paper_says() -> None:
    label = np.zeros(500, dtype=np.int8)
    label[100:150] = 1
    label[300:320] = 1
    r = evaluate(label, np.ones(500, dtype=np.int8))
    assert r.batadal_s == pytest.approx(0.75)


def test_point_adjusted_f1_inflates_a_single_hit() -> None:
    label = np.zeros(100, dtype=np.int8)
    label[10:60] = 1
    alarm = np.zeros(100, dtype=np.int8)
    alarm[30] = 1
    r = evaluate(label, alarm)
    assert r.f1 < 0.05 and r.point_adjusted_f1 == pytest.approx(1.0)


def test_merge_gaps_fills_short_quiet_stretches_between_alarms_only() -> None:
    alarm = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0], dtype=np.int8)
    assert merge_gaps(alarm, 3).tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0]
    assert merge_gaps(alarm, 4).tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert merge_gaps(alarm, 0).tolist() == alarm.tolist()  # 0: each row's own alarm
    # Never before the first alarm nor after the last; never across the start of a new run.
    assert merge_gaps([1, 0, 0, 1], 5, cuts=[2]).tolist() == [1, 0, 0, 1]
    assert merge_gaps([1, 0, 0, 1], 5, cuts=[3]).tolist() == [1, 0, 0, 1]  # the alarm opens run 2
    assert merge_gaps([1, 0, 0, 1], 5, cuts=[1, 4]).tolist() == [1, 0, 0, 1]
    assert merge_gaps([1, 0, 0, 1, 0], 5, cuts=[0, 4]).tolist() == [1, 1, 1, 1, 0]
    assert merge_gaps([], 3).tolist() == [] and merge_gaps([0, 0, 0], 3).tolist() == [0, 0, 0]


@given(st.lists(st.booleans(), max_size=60), st.integers(0, 8), st.lists(st.integers(0, 60), max_size=4))
def test_merge_gaps_agrees_with_the_plain_definition(flags: list[bool], gap: int, cuts: list[int]) -> None:
    alarm = np.array(flags, dtype=np.int8)
    want = alarm.copy()
    hits = np.flatnonzero(alarm)
    for a, b in itertools.pairwise(hits):
        # b starts a new run when a cut falls in (a, b]: the two alarms are not one episode
        if b - a - 1 <= gap and not any(a < c <= b for c in cuts):
            want[a:b] = 1
    got = merge_gaps(alarm, gap, cuts)
    assert got.tolist() == want.tolist()
    assert (got >= alarm).all()  # only ever adds alarms


def test_time_to_detect_comes_from_the_live_alarms() -> None:
    """A false alarm 2 rows before an attack, merged with the attack's alarms, must not count as
    its detection: the first live alarm inside the attack does."""
    label = np.array([0, 0, 0, 1, 1, 1, 1, 0], dtype=np.int8)
    live = np.array([0, 1, 0, 0, 1, 1, 0, 0], dtype=np.int8)
    merged = merge_gaps(live, 2)
    assert merged.tolist() == [0, 1, 1, 1, 1, 1, 0, 0]
    r = evaluate(label, merged, live=live)
    assert r.episodes[0].detected_at == 4 and r.recall == pytest.approx(3 / 4)
    assert evaluate(label, merged).episodes[0].detected_at == 3  # without live: credited early


def test_the_loop_law_keeps_what_the_data_pin_down_and_draws_the_rest_to_one() -> None:
    """The ridge towards the programmed law: a well-excited P term keeps its fitted scale, an I
    term too small to see stays near 1, and all-zero terms give exactly (1, 1)."""
    from interlock.detect.process.tampering import ControllerTamperingDetector

    det = ControllerTamperingDetector("reactor", watched=())
    rng = np.random.default_rng(0)
    p = rng.normal(0, 1.0, 400)
    i = rng.normal(0, 1e-4, 400)
    du = 0.8 * p + 3.0 * i + rng.normal(0, 0.05, 400)
    alpha, beta = det._law_coefficients(p, i, du)
    assert abs(alpha - 0.8) < 0.02 and abs(beta - 1.0) < 0.05  # plain least squares: beta anywhere
    zero = np.zeros(50)
    assert det._law_coefficients(zero, zero, zero) == pytest.approx([1.0, 1.0])
