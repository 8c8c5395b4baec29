"""Metrics checked against hand-computed values and the BATADAL paper's reference points."""

from __future__ import annotations

import numpy as np
import pytest

from interlock.detect.process.metrics import episodes, evaluate


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
