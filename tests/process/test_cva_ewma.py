"""CVA with a multivariate EWMA of its vectors: small sustained shifts are found, the rest unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from interlock.detect.process import CVADetector, Frame
from interlock.detect.process.cva import _ewma, _Model
from interlock.detect.process.dpca import lagged
from tests.process.test_dynamic import dynamic_plant

SHIFT = 600  # rows of held-back normal data before the injected change


def linear_plant(rows: int, seed: int) -> Frame:
    """A linear state-space process: three coupled AR states seen through six noisy sensors."""
    rng = np.random.default_rng(seed)
    a = np.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 0.7]])
    c = np.array([[1, 0, 0], [0.5, 1, 0], [0, 0.5, 1], [1, 1, 0], [0, 1, 1], [0.3, 0.3, 0.3]], float)
    state = np.zeros(3)
    out = np.empty((rows, 6))
    for t in range(rows):
        state = a @ state + rng.normal(0, 1, 3)
        out[t] = c @ state + rng.normal(0, 0.3, 6)
    return Frame(tuple(f"Y{i}" for i in range(6)), out, label=np.zeros(rows, dtype=np.int8))


def changed(frame: Frame, change: np.ndarray, tag: int = 5) -> Frame:
    x = frame.values.copy()
    x[SHIFT : SHIFT + len(change), tag] += change
    return Frame(frame.tags, x)


def reference_stats(det: CVADetector, model: _Model, x: np.ndarray) -> np.ndarray:
    """The statistics as computed before ``ewma`` existed (copied from the earlier cva.py)."""
    m = model
    z = m.scaler(x)
    w = lagged(z, det.lags) @ m.whiten
    proj = w @ m.v
    t2s = np.sum(proj[:, : m.k] ** 2, axis=1)
    t2r = np.sum(w**2, axis=1) - t2s
    prev = np.vstack([proj[:1, : m.k], proj[:-1, : m.k]])
    err = z - np.hstack([prev, np.ones((len(z), 1))]) @ m.c
    return np.column_stack([t2s, np.maximum(t2r, 0.0), np.sum(err**2, axis=1)])


def test_ewma_off_is_the_earlier_detector() -> None:
    train, test = dynamic_plant(1500, 0), dynamic_plant(600, 1)
    default = CVADetector(persist=3).fit(train)
    off = CVADetector(persist=3, ewma=0.0, keep_raw=True).fit(train)  # keep_raw means nothing at 0
    np.testing.assert_array_equal(default.score(test), off.score(test))
    np.testing.assert_array_equal(default.held_out_, off.held_out_)
    assert default.threshold_ == off.threshold_
    stats = default._stats_of(default.model_, test.values)
    # Equal to rounding: cva now projects once (|whitened past|² = |projection|², v orthogonal).
    reference = reference_stats(default, default.model_, test.values)
    np.testing.assert_allclose(stats, reference, rtol=1e-9, atol=1e-9)


def test_ewma_filter_is_causal_and_scaled_from_its_start() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (5000, 2))
    out = _ewma(x, 0.2, 10)
    np.testing.assert_array_equal(out[:10], x[:10])  # history rows are left alone
    np.testing.assert_allclose(out[10], x[10])  # one row of history: the row itself
    np.testing.assert_allclose(out[:100], _ewma(x[:100], 0.2, 10))  # later rows change nothing
    assert abs(float(out[10:].std()) - 1.0) < 0.05  # white noise keeps unit variance
    with pytest.raises(ValueError):
        _ewma(x, 1.5, 0)


def test_scores_do_not_depend_on_later_rows() -> None:
    det = CVADetector(ewma=0.2, keep_raw=True, persist=3).fit(linear_plant(2000, 0))
    test = linear_plant(400, 1)
    later = Frame(test.tags, np.vstack([test.values[:300], test.values[300:] + 5.0]))
    np.testing.assert_array_equal(det.score(test)[:300], det.score(later)[:300])


@pytest.mark.parametrize("keep_raw", [False, True])
def test_small_sustained_shift_is_found_more_completely_but_not_at_once(keep_raw: bool) -> None:
    train, held_back = linear_plant(3000, 100), linear_plant(1200, 200)
    # Sensor Y5 reads 0.4 high (a third of its standard deviation) from row 600 on.
    test = changed(held_back, np.full(len(held_back) - SHIFT, 0.4))
    plain = CVADetector().fit(train).predict(test)
    ewma = CVADetector(ewma=0.2, keep_raw=keep_raw).fit(train).predict(test)
    assert plain[SHIFT:].mean() < 0.15  # one row at a time, the shift is lost in the noise
    assert ewma[SHIFT:].mean() > 0.5  # accumulated, it is seen most of the time
    # The price: the filter needs a few rows to build up, so the first rows are missed.
    first = int(np.flatnonzero(ewma[SHIFT:])[0])
    assert first >= 2
    assert ewma[SHIFT : SHIFT + 5].mean() < ewma[SHIFT + 50 :].mean()
    # Quiet on the held-back normal rows before the shift: limits from held-out normal blocks.
    assert ewma[:SHIFT].mean() < 0.02


def test_keep_raw_still_sees_a_fast_oscillation_the_filter_averages_out() -> None:
    train, held_back = linear_plant(3000, 100), linear_plant(1200, 200)
    test = changed(held_back, 1.5 * (-1.0) ** np.arange(200))  # a sensor flipping every row
    filtered = CVADetector(ewma=0.2).fit(train).predict(test)
    both = CVADetector(ewma=0.2, keep_raw=True).fit(train).predict(test)
    assert filtered[SHIFT : SHIFT + 200].mean() < 0.2
    assert both[SHIFT : SHIFT + 200].mean() > 0.9


@pytest.mark.parametrize("keep_raw", [False, True])
def test_ewma_stays_quiet_on_normal_data(keep_raw: bool) -> None:
    det = CVADetector(ewma=0.2, keep_raw=keep_raw).fit(linear_plant(3000, 100))
    assert det.limits_.shape == ((6,) if keep_raw else (3,))
    for seed in (201, 202, 203):
        assert det.predict(linear_plant(1000, seed)).mean() < 0.03
    # The tank plant too (the plant of the other dynamic tests).
    det = CVADetector(ewma=0.2, keep_raw=keep_raw).fit(dynamic_plant(3000, 0))
    assert det.predict(dynamic_plant(1000, 1)).mean() < 0.03


def test_restart_clips_the_filters_memory_after_a_large_deviation_ends() -> None:
    train, held_back = linear_plant(3000, 100), linear_plant(1200, 200)
    test = changed(held_back, np.full(30, 15.0))  # 30 rows of a gross spoof, then back to normal
    plain = CVADetector(ewma=0.2, keep_raw=True).fit(train).predict(test)
    clipped = CVADetector(ewma=0.2, keep_raw=True, restart=10).fit(train).predict(test)
    assert plain[SHIFT : SHIFT + 30].all() and clipped[SHIFT : SHIFT + 30].all()
    after = slice(SHIFT + 30, SHIFT + 60)
    # Without the clip the filter remembers the spoof for many rows after it ends.
    assert plain[after].sum() >= 5
    assert clipped[after].sum() <= 2
    # A small shift that goes on is still seen: the memory is clipped to the limit, not erased.
    small = changed(held_back, np.concatenate([np.full(30, 15.0), np.full(len(held_back) - SHIFT - 30, 0.6)]))
    det = CVADetector(ewma=0.2, keep_raw=True, restart=10).fit(train)
    assert det.predict(small)[SHIFT + 60 :].mean() > 0.5


def test_forget_erases_the_memory_so_a_slow_return_is_not_charted() -> None:
    """After a gross spoof the process comes back slowly (a tank refilling): clipped to its limit,
    the filter sits on the edge and the slow return keeps it there; erased, it starts again from
    the training mean and the return does not add up to an alarm."""
    train, held_back = linear_plant(3000, 100), linear_plant(1200, 200)
    back = 0.6 * np.exp(-np.arange(120) / 30.0)  # 120 rows of a slowly fading offset
    test = changed(held_back, np.concatenate([np.full(30, 15.0), back]))
    params = {"ewma": 0.2, "keep_raw": True, "restart": 2, "var_ewma": 0.05, "var_restart": 2}
    clipped = CVADetector(**params).fit(train)
    erased = CVADetector(**params, forget=True).fit(train)
    assert np.array_equal(erased.caps_, np.zeros(3)) and np.array_equal(erased.var_caps_, np.zeros(2))
    a, b = clipped.predict(test), erased.predict(test)
    assert a[SHIFT : SHIFT + 30].all() and b[SHIFT : SHIFT + 30].all()
    after = slice(SHIFT + 30, SHIFT + 150)
    assert b[after].sum() <= a[after].sum() - 5
    assert b[SHIFT + 150 :].mean() < 0.03  # and normal afterwards
    # The price: a small shift that goes on after the spoof is seen later, but still seen.
    small = changed(held_back, np.concatenate([np.full(30, 15.0), np.full(len(held_back) - SHIFT - 30, 0.6)]))
    assert erased.predict(small)[SHIFT + 90 :].mean() > 0.5


def test_restart_scores_an_empty_frame() -> None:
    train = linear_plant(600, 0)
    det = CVADetector(ewma=0.2, keep_raw=True, restart=2).fit(train)
    assert det.score(Frame(train.tags, train.values[:0])).shape == (0,)


def test_blocks_of_rows_give_the_scores_of_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long history is projected, squared and filtered in blocks of rows (memory): blocks of
    97 rows, with filter clipping and the variance chart on, score as one block does."""
    import interlock.detect.process.cva as cva

    train, held_back = linear_plant(3000, 100), linear_plant(1200, 200)
    test = changed(held_back, np.full(30, 15.0))
    params = {"ewma": 0.2, "keep_raw": True, "restart": 10, "var_ewma": 0.05}
    whole = CVADetector(**params).fit(train)
    monkeypatch.setattr(cva, "BLOCK_ROWS", 97)
    assert len(cva._blocks(len(train))) == 31
    blocked = CVADetector(**params).fit(train)
    # BLAS rounds a 97-row product differently from a 3000-row one: equal to the last bits.
    np.testing.assert_allclose(blocked.limits_, whole.limits_, rtol=1e-9)
    np.testing.assert_allclose(blocked.score(test), whole.score(test), rtol=1e-9)
    np.testing.assert_array_equal(blocked.predict(test), whole.predict(test))
    assert whole.predict(test)[SHIFT : SHIFT + 30].all()
    worst = blocked.explain(test, SHIFT)[0][1], whole.explain(test, SHIFT)[0][1]
    np.testing.assert_allclose(*worst, rtol=1e-9)


def test_blocks_are_equal_in_size_and_cover_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import interlock.detect.process.cva as cva

    monkeypatch.setattr(cva, "BLOCK_ROWS", 100)
    assert cva._blocks(0) == [] and cva._blocks(100) == [(0, 100)]
    blocks = cva._blocks(1001)  # not 10 of 100 and one of 1: 11 of 91
    assert [b - a for a, b in blocks] == [91] * 10 + [91] and blocks[0][0] == 0 and blocks[-1][1] == 1001


def test_blame_is_each_tags_error_over_its_normal_size() -> None:
    """A sensor with no model behind it (pure noise) has a large one-step error on every row; an
    offset on a well-predicted sensor is what the alarm is about, and is blamed before it."""

    def with_noise(frame: Frame, seed: int) -> Frame:
        noise = np.random.default_rng(seed).normal(0, 1, len(frame))
        mode = np.zeros(len(frame))  # a mode switch constant in training
        return Frame((*frame.tags, "NOISE", "MODE"), np.column_stack([frame.values, noise, mode]))

    train = with_noise(linear_plant(3000, 100), 100)
    det = CVADetector(ewma=0.2, keep_raw=True).fit(train)
    test = with_noise(linear_plant(1200, 200), 200)
    x = test.values.copy()
    x[SHIFT : SHIFT + 100, 0] += 2.0  # Y0 reads 2 high
    x[SHIFT + 100 :, -1] = 1.0  # then the mode switches (never seen in training)
    offset = Frame(test.tags, x)
    alarms = np.flatnonzero(det.predict(offset)[SHIFT : SHIFT + 100]) + SHIFT
    assert len(alarms) > 50
    firsts = [det.explain(offset, int(r))[0][0] for r in alarms]
    # The offset moves the states, so the other sensors' predictions err too (Y5 reads all
    # three states): Y0 is blamed most often, not always. The noise, before: 22 of 99.
    assert firsts.count("NOISE") < 0.1 * len(firsts), firsts
    # The mode, constant in training, keeps its error in training spreads (a 1e-6 floor made
    # its switch weigh 1e12 and hid every other tag for as long as the filter remembered it).
    assert det.err_scale_[-1] == 1.0
    weight = dict(det.explain(offset, SHIFT + 105))["MODE"]
    assert 0.1 < weight < 100.0
    assert max(set(firsts), key=firsts.count) == "Y0" and firsts.count("Y0") > 0.4 * len(firsts), firsts
