"""eTaPR and VUS-PR against published worked values: the faster-etapr docstring example (that
package is tested against ETRI's reference code) and aeon 1.6.0's range_pr_vus_score (computed
once in a separate virtualenv, since aeon would downgrade numpy here)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from interlock.detect.process.etapr import etapr, ranges
from interlock.detect.process.vus import range_pr_auc, vus_pr


def _flags(runs: list[tuple[int, int]], n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int8)
    for a, b in runs:
        out[a : b + 1] = 1
    return out


def test_etapr_matches_the_reference_example() -> None:
    # faster-etapr's documented example: predictions and labels as inclusive ranges.
    alarm = _flags([(1, 1), (3, 4), (7, 9), (11, 13)], 20)
    label = _flags([(1, 2), (5, 7), (10, 14), (16, 16)], 20)
    r = etapr(label, alarm)
    assert r.recall == pytest.approx(0.3875)
    assert r.precision == pytest.approx(0.46476766302377037)
    assert r.f1 == pytest.approx(0.4226312395393011)
    assert (r.detected, r.attacks) == (2, 4)
    assert "mlnext" not in sys.modules  # the placeholder package did not leak


def test_etapr_edge_cases() -> None:
    label = _flags([(5, 9)], 20)
    assert etapr(label, np.zeros(20)).f1 == 0.0
    assert etapr(label, label).f1 == pytest.approx(1.0)
    assert ranges([0, 1, 1, 0, 1]) == [(1, 2), (4, 4)]
    with pytest.raises(ValueError, match="at least one attack"):
        etapr(np.zeros(5), np.ones(5))


@pytest.mark.parametrize("seed", range(60))
def test_etapr_group_by_group_equals_one_call_on_the_whole_file(seed: int) -> None:
    """``etapr`` hands the package one group of overlapping ranges at a time (memory: its matrix
    is attacks x alarm ranges); the result must be the package's on the whole file, at the
    default thetas and at others, 0 included (the review: there an untouched attack scores 0.5)."""
    from interlock.detect.process.etapr import THETA_P, THETA_R, _load

    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    label = np.zeros(n, dtype=np.int8)
    for _ in range(int(rng.integers(1, 12))):
        start = int(rng.integers(0, n))
        label[start : start + int(rng.integers(1, 200))] = 1
    noise = rng.random(n) < rng.choice([0.0, 0.01, 0.1, 0.4])
    alarm = ((label.astype(bool) & (rng.random(n) < rng.random())) | noise).astype(np.int8)
    alarm[: int(rng.integers(0, 3))] = 1  # an alarm at row 0 sometimes
    if not alarm.any():
        alarm[n // 2] = 1
    theta_p, theta_r = (THETA_P, THETA_R) if seed < 20 else (float(rng.choice([0.0, 0.3, 1.0])),
                                                             float(rng.choice([0.0, 0.5, 1.0])))  # fmt: skip
    whole = _load().evaluate_from_ranges(preds=ranges(alarm), labels=ranges(label), theta_p=theta_p,
                                         theta_r=theta_r)  # fmt: skip
    got = etapr(label, alarm, theta_p, theta_r)
    assert got.recall == pytest.approx(float(whole["eta/recall"]), abs=1e-12)
    assert got.precision == pytest.approx(float(whole["eta/precision"]), abs=1e-12)
    assert got.f1 == pytest.approx(float(whole["eta/f1"]), abs=1e-12)
    assert (got.detected, got.attacks) == (int(whole["eta/detected_anomalies"]), int(whole["eta/anomalies"]))


def test_attacks_and_alarms_are_cut_where_a_new_run_starts() -> None:
    from interlock.detect.process.metrics import episodes, evaluate

    label = _flags([(2, 9)], 12)
    alarm = _flags([(3, 3), (7, 8)], 12)
    assert [(e.start, e.stop, e.detected_at) for e in episodes(label, alarm, cuts=[6])] == [
        (2, 6, 3), (6, 10, 7)]  # fmt: skip
    assert len(evaluate(label, alarm, cuts=[6]).episodes) == 2 and len(evaluate(label, alarm).episodes) == 1
    assert ranges(label, cuts=[6, 11]) == [(2, 5), (6, 9)]
    assert etapr(label, alarm, cuts=[6]).attacks == 2


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The series the aeon reference values below were computed on."""
    rng = np.random.default_rng(seed)
    n = 400
    y = np.zeros(n, dtype=int)
    for s, length in [(50, 20), (200, 5), (300, 40)][: seed + 1 + (seed == 2)]:
        y[s : s + length] = 1
    score = np.round(rng.normal(0, 1, n) + 1.5 * y + (np.arange(n) % 37 == 0), 2)
    return y, score


# aeon 1.6.0: range_pr_vus_score(y, s, max_buffer_size=20), range_pr_auc_score(y, s, buffer_size=0 / 15)
AEON = {
    0: (0.3426960854463564, 0.2919956753792427, 0.37108114126217373),
    1: (0.3805393522439052, 0.37883274125936267, 0.3835279260364331),
    2: (0.6172371346154941, 0.6012248480752338, 0.6179294342002025),
}


@pytest.mark.parametrize("seed", sorted(AEON))
def test_vus_pr_matches_aeon(seed: int) -> None:
    y, s = _case(seed)
    vus, auc0, auc15 = AEON[seed]
    assert vus_pr(y, s, max_buffer=20) == pytest.approx(vus, rel=1e-9)
    assert range_pr_auc(y, s, 0) == pytest.approx(auc0, rel=1e-9)
    assert range_pr_auc(y, s, 15) == pytest.approx(auc15, rel=1e-9)


def test_vus_pr_orders_detectors_and_handles_constants() -> None:
    y, s = _case(0)
    # A perfect point score loses only the soft buffer rows it leaves unalarmed.
    assert vus_pr(y, y.astype(float) + 0.01 * s) > 0.7 > 0.4 > vus_pr(y, s)
    assert vus_pr(y, np.ones(len(y))) == 0.0
    with pytest.raises(ValueError, match="lengths differ"):
        vus_pr(y, s[:-1])
