"""Detectors whose score needs more than a few rows of the past (filter memory, run lengths, window
hashes) stream one row at a time with exactly their batch scores, the default ensemble included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from interlock.detect.process import CVADetector, EnsembleDetector, Frame, detector_class
from interlock.detect.process.data import common_resolution, read_frame
from interlock.detect.process.stream import OnlineMonitor, RowByRow
from tests.process.conftest import plant, shared
from tests.process.test_control_ensemble import pumped_tank
from tests.process.test_cva_ewma import SHIFT, changed, linear_plant


def streamed(det: Any, frame: Frame) -> tuple[np.ndarray, RowByRow]:
    live = RowByRow(det)
    return np.array([live.score_row(v) for v in frame.values]), live


def attacked_tank() -> tuple[Frame, Frame]:
    """A pumped tank with every kind of trace: a forced pump, a replayed level, a held flow."""
    train, test = pumped_tank(3000, 0), pumped_tank(900, 1, forced=(300, 340))
    x = test.values.copy()
    x[500:560, 0] = x[100:160, 0]  # the level replays an hour seen before
    x[700:760, 1] = x[700, 1]  # the demand reading holds one value
    return train, Frame(test.tags, x)


@pytest.mark.parametrize("name", ["frozen", "replay", "control", "cva", "limits", "switches", "ensemble"])
def test_streaming_gives_the_batch_scores_from_the_first_row(name: str) -> None:
    train, test = attacked_tank()
    det = detector_class(name)().fit(train)
    scores, live = streamed(det, test)
    assert live._scorer is not None  # its own row scorer, not the window fallback
    batch = det.score(test)
    np.testing.assert_allclose(scores, batch, rtol=1e-9, atol=1e-9)
    assert (batch > det.threshold_).any()  # the comparison covers alarms, not only quiet rows


def test_limits_streams_an_alarm_of_a_mode() -> None:
    """A flow while its pump is off is in the flow's range, not in the pump's off state: the
    row scorer must find it through the stacked modes, as batch does."""
    from tests.process.test_limits import pumped_tank

    train = pumped_tank(8000, 0)
    x = pumped_tank(500, 1).values.copy()
    off = np.flatnonzero(x[:, 2] == 0)[:5]
    x[off, 1] = 30.0
    test = Frame(train.tags, x)
    det = detector_class("limits")().fit(train)
    scores, live = streamed(det, test)
    assert live._scorer is not None  # its own row scorer
    np.testing.assert_allclose(scores, det.score(test), rtol=1e-12, atol=0)
    assert np.flatnonzero(scores > det.threshold_).tolist() == off.tolist()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"ewma": 0.2, "keep_raw": True},
        {"ewma": 0.2, "keep_raw": True, "var_ewma": 0.05},
        {"ewma": 0.2, "keep_raw": True, "restart": 10, "var_ewma": 0.05, "persist": 2, "smooth": 3},
        {"ewma": 0.1, "var_ewma": 0.1, "var_restart": 0},
        {"ewma": 0.2, "keep_raw": True, "restart": 2, "var_ewma": 0.05, "var_restart": 2, "forget": True},
    ],
)
def test_cva_streams_its_filters_and_their_clipping(params: dict[str, Any]) -> None:
    train = linear_plant(3000, 100)
    # A gross spoof that ends (clipping), then extra noise on one sensor (the variance chart).
    spoof = np.concatenate([np.full(30, 15.0), np.zeros(100), np.random.default_rng(3).normal(0, 0.8, 300)])
    test = changed(linear_plant(1200, 200), spoof)
    det = CVADetector(**params).fit(train)
    scores, live = streamed(det, test)
    np.testing.assert_allclose(scores, det.score(test), rtol=1e-9, atol=1e-9)
    assert scores[SHIFT + 5 : SHIFT + 30].min() > det.threshold_  # persist and smooth delay it
    # The blame of a row is the filtered one-step error, as the batch blame gives it.
    np.testing.assert_allclose(live.weights(), det._blame(test.values, np.array([len(test) - 1]))[0])


def test_the_streamed_ensemble_blames_as_the_batch_alerts() -> None:
    train, test = attacked_tank()
    det = EnsembleDetector().fit(train)
    live = RowByRow(det)
    batch = {a.row: a for a in det.alerts(test)}
    rows = [dict(zip(test.tags, map(float, r), strict=True)) for r in test.values]
    monitor = OnlineMonitor(live)
    alerts = [a for i, r in enumerate(rows) if (a := monitor.update(r, at=i)) is not None]
    assert [a.row for a in alerts] == sorted(batch)
    for a in alerts:
        assert a.tags[0] == batch[a.row].tags[0]
    assert {"L_TANK", "F_DEMAND", "S_PUMP"} <= {a.tags[0] for a in alerts}


def test_two_streams_of_one_detector_share_no_state() -> None:
    """A detector fed a fresh stream starts afresh: a second RowByRow repeats the first."""
    train, test = plant(800, 0), plant(200, 1)
    det = detector_class("cva")(ewma=0.2, keep_raw=True).fit(train)
    first, _ = streamed(det, test)
    second, _ = streamed(det, test)
    np.testing.assert_array_equal(first, second)


def test_batadal_ensemble_streams_exactly() -> None:
    train = read_frame(shared("batadal/BATADAL_dataset03.csv"), label="ATT_FLAG")
    test = read_frame(shared("batadal/BATADAL_dataset04.csv"), label="ATT_FLAG")
    train, test, _ = common_resolution(train, test)
    det = EnsembleDetector().fit(train)
    scores, _ = streamed(det, test)
    batch = det.score(test)
    np.testing.assert_allclose(scores, batch, rtol=1e-9, atol=1e-9)
    assert np.array_equal(scores > 1.0, batch > 1.0) and (batch > 1.0).sum() > 400


def test_a_missing_reading_neither_blinds_cva_nor_splits_stream_from_batch() -> None:
    train, test = attacked_tank()
    x = test.values.copy()
    x[50, 1] = np.nan  # one missed demand reading, long before the forced pump at 300
    holed = Frame(test.tags, x)
    cva = CVADetector(ewma=0.2, keep_raw=True, var_ewma=0.05)
    for det in (cva.fit(train), EnsembleDetector().fit(train)):
        scores, _ = streamed(det, holed)
        batch = det.score(holed)
        np.testing.assert_allclose(scores, batch, rtol=1e-9, atol=1e-9)
        # Still alarms on the attack afterwards (a NaN in the filters' memory used to silence them).
        assert (batch[300:340] > det.threshold_).mean() > 0.8


def test_control_routes_a_missing_cause_as_scikit_learn_does() -> None:
    train, test = attacked_tank()
    x = test.values.copy()
    x[100:110, 0] = np.nan  # the level the pump rule reads
    holed = Frame(test.tags, x)
    det = detector_class("control")().fit(train)
    scores, _ = streamed(det, holed)
    np.testing.assert_array_equal(scores, det.score(holed))


@pytest.mark.parametrize("members", ["replay+balance", "dpca(persist=3)+frozen", "residual+control"])
def test_members_without_a_row_scorer_stream_exactly_too(members: str) -> None:
    train, test = attacked_tank()
    det = EnsembleDetector(members=members).fit(train)
    scores, _ = streamed(det, test)
    np.testing.assert_allclose(scores, det.score(test), rtol=1e-9, atol=1e-9)


def test_explain_before_any_score_and_empty_frames() -> None:
    train, test = attacked_tank()
    det = EnsembleDetector().fit(train)
    row = dict(zip(test.tags, map(float, test.values[320]), strict=True))
    ranked = RowByRow(det).explain_one(row)  # scores the row first
    assert len(ranked) == len(test.tags)
    empty = Frame(test.tags, test.values[:0])
    for d in (det, detector_class("control")().fit(train)):
        assert d.score(empty).shape == (0,)


def test_a_replay_horizon_bounds_the_stream_and_agrees_with_batch() -> None:
    train, held = pumped_tank(3000, 0), pumped_tank(900, 1)
    x = held.values.copy()
    x[500:560, 0] = x[100:160, 0]  # 400 rows after the original: beyond a 300-row horizon
    x[800:830, 0] = x[700:730, 0]  # 100 rows after: within it
    test = Frame(held.tags, x)
    det = detector_class("replay")(horizon=300).fit(train)
    scores, live = streamed(det, test)
    batch = det.score(test)
    np.testing.assert_array_equal(scores, batch)
    assert not (batch[500:560] > 0).any() and (batch[800:830] > 0).any()
    unbounded = detector_class("replay")().fit(train).score(test)
    assert (unbounded[500:560] > 0).any()  # without a horizon the old copy is found too
    scorer: Any = live._scorer
    # the stream's keys: at most a horizon's worth
    assert len(scorer.seen) - scorer.trained <= 301 * len(scorer.cols)


@pytest.mark.parametrize("horizon", [0, 300])
def test_replay_streams_alike_with_training_keys_in_the_dict_or_searched(
    horizon: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long training histories keep their keys in a sorted array only; short ones also in a dict.
    from interlock.detect.process import replay

    train, held = pumped_tank(3000, 0), pumped_tank(900, 1)
    x = held.values.copy()
    x[200:260, 0] = train.values[1000:1060, 0]  # a training window replayed
    x[800:830, 0] = x[700:730, 0]  # and one of the stream's own
    test = Frame(held.tags, x)
    det = detector_class("replay")(horizon=horizon).fit(train)
    batch = det.score(test)
    assert (batch[210:260] > 0).all() and (batch[810:830] > 0).any()
    in_dict, _ = streamed(det, test)
    monkeypatch.setattr(replay, "TRAINING_KEYS_IN_DICT", 0)
    searched, live = streamed(det, test)
    assert live._scorer.trained == 0 and live._scorer.keys.size > 0
    np.testing.assert_array_equal(in_dict, batch)
    np.testing.assert_array_equal(searched, batch)


def test_pca_with_every_component_kept_is_quiet_in_stream_and_batch() -> None:
    # SPE is rounding noise then (about 1e-30): its limit must not be noise too.
    train, test = plant(2000, 0), plant(500, 1)
    det = detector_class("pca")(n_components=len(train.tags)).fit(train)
    scores, _ = streamed(det, test)
    np.testing.assert_allclose(scores, det.score(test), rtol=1e-9, atol=1e-9)
    assert det.spe_limit_ >= 1e-9 * len(train.tags)


def test_streams_start_with_short_history_and_without_watched_tags() -> None:
    # Found in review: replay's stream failed when it watched no tag (the ensemble with it), and
    # lag matrices failed on fewer rows than lags (dpca streams from its first rows).
    statuses = Frame(("a", "b"), np.tile([[0.0, 1.0], [1.0, 0.0]], (50, 1)))
    replay = detector_class("replay")().fit(statuses)
    assert replay.windows_.tolist() == [0, 0]
    assert streamed(replay, statuses)[0].tolist() == [0.0] * 100
    train, test = plant(600, 0), plant(40, 1)
    for det in (detector_class("dpca")(lags=4).fit(train), CVADetector(lags=4).fit(train)):
        scores, _ = streamed(det, test)
        np.testing.assert_allclose(scores, det.score(test), rtol=1e-9, atol=1e-9)
        assert det.score(test.rows(0, 3)).shape == (3,)
    long = detector_class("replay")(window=70).fit(train)  # longer than the 64 powers once tabled
    assert long.windows_.tolist() == [70] * 4
