"""The streaming form: river's half-space trees row by row, and the monitor a live feed drives."""

from __future__ import annotations

import numpy as np
import pytest

from interlock.detect.process import detector_class
from interlock.detect.process.stream import HalfSpaceTreesDetector, OnlineMonitor, RowByRow
from tests.process.conftest import plant


def test_score_one_equals_batch_score_and_flags_an_out_of_range_tag() -> None:
    train, test = plant(600, 0), plant(100, 1)
    det = HalfSpaceTreesDetector().fit(train)
    rows = [dict(zip(test.tags, map(float, r), strict=True)) for r in test.values]
    np.testing.assert_allclose([det.score_one(r) for r in rows], det.score(test))
    spoofed = dict(rows[10], L_TANK=rows[10]["L_TANK"] + 25.0)
    assert det.score_one(spoofed) > det.threshold_
    assert det.explain_one(spoofed)[0][0] == "L_TANK"


def test_monitor_feeds_on_historian_records_and_names_the_tag() -> None:
    train, test = plant(600, 0), plant(60, 1)
    det = HalfSpaceTreesDetector().fit(train)
    records = []
    for i, row in enumerate(test.values):
        for tag, value in zip(test.tags, row, strict=True):
            if i >= 40 and tag == "P_OUT":
                value += 30.0  # a spoofed pressure from row 40 on
            records.append({"plant_time_s": float(i), "tag": tag, "value": float(value), "source": "hmi"})
        records.append({"plant_time_s": float(i), "tag": "P_OUT", "value": 0.0, "source": "truth"})
    alerts = OnlineMonitor(det, adapt=True).feed(records)
    assert alerts and all(a.row >= 40 for a in alerts)
    # Half-space trees cut one tag at a time, so one spoofed tag of four alarms on a share of rows.
    assert len(alerts) >= 5
    assert alerts[0].tags[0] == "P_OUT"


@pytest.mark.parametrize("name", ["residual", "pca"])
def test_row_by_row_gives_the_batch_scores(name: str) -> None:
    train, test = plant(600, 0), plant(80, 1)
    det = detector_class(name)(smooth=3).fit(train)
    live = RowByRow(det)
    rows = [dict(zip(test.tags, map(float, r), strict=True)) for r in test.values]
    online = [live.score_one(r) for r in rows]
    # Batch scoring repeats row 0 for the lags before it; after that the two agree exactly.
    start = live.memory + det.smooth
    np.testing.assert_allclose(online[start:], det.score(test)[start:], rtol=1e-9, atol=1e-12)
    spoofed = dict(rows[-1], P_OUT=rows[-1]["P_OUT"] + 5.0)
    alert = OnlineMonitor(live).update(spoofed)
    assert alert is not None and "P_OUT" in alert.tags


@pytest.mark.parametrize("name", ["residual", "pca"])
def test_the_fast_row_scorer_matches_the_generic_path_from_the_first_row(name: str) -> None:
    train, test = plant(600, 0), plant(80, 1)
    det = detector_class(name)(smooth=2).fit(train)
    fast, generic = RowByRow(det), RowByRow(det, fast=False)
    assert fast._scorer is not None and generic._scorer is None
    rows = [dict(zip(test.tags, map(float, r), strict=True)) for r in test.values]
    rows[50] = dict(rows[50], L_TANK=rows[50]["L_TANK"] + 8.0)  # one spoofed row among normal ones
    scores = [fast.score_one(r) for r in rows]
    np.testing.assert_allclose(scores, [generic.score_one(r) for r in rows], rtol=1e-9, atol=1e-12)
    # The row scorer fills the lags with the first row, as batch scoring does: equal from row 0.
    batch = det.score(type(test)(test.tags, np.array([[r[t] for t in test.tags] for r in rows])))
    np.testing.assert_allclose(scores, batch, rtol=1e-9, atol=1e-12)
    assert max(scores) == max(scores[50:52]) > det.threshold_


def test_a_detector_without_a_row_scorer_keeps_the_generic_path() -> None:
    train, test = plant(300, 0), plant(40, 1)
    det = detector_class("iforest")().fit(train)
    live = RowByRow(det)
    assert live._scorer is None
    rows = [dict(zip(test.tags, map(float, r), strict=True)) for r in test.values]
    np.testing.assert_allclose([live.score_one(r) for r in rows], det.score(test), rtol=1e-9, atol=1e-12)
