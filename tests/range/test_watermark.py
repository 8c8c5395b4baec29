"""Physical watermark on a real range run: the dither is found in the HMI's coolant readings, and a
replay of an earlier window of HMI values (done on the historian table) loses it within minutes."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from interlock.range.watermark import Watermark, WatermarkDetector, sensor_series

pytest.importorskip("pymodbus")

TRAIN_S, REPLAY_FROM_S, END_S = 900, 1200, 1800


async def _run(watermark: bool) -> Any:
    from interlock.range.runtime import Range

    async with Range("reactor", seed=1, field_devices=False, watermark=watermark) as rng:
        await rng.advance(END_S)
        return rng.historian.table()


@pytest.fixture(scope="module")
def coolant() -> tuple[np.ndarray, np.ndarray]:
    return sensor_series(asyncio.run(_run(True)), "coolant_temp_k")


def test_the_dither_is_keyed_balanced_and_computable_at_any_time() -> None:
    wm = Watermark(key=1, amplitude=0.2, hold_s=5.0)
    values = wm.series(np.arange(0, 3000, 5.0))
    assert set(np.round(values, 6)) == {-0.2, 0.2}
    assert abs(values.mean()) < 0.03  # balanced signs
    assert wm(1234.5) == wm(1230.0) == Watermark(1, 0.2)(1232.0)  # one slot, any order
    assert not np.array_equal(values, Watermark(2, 0.2).series(np.arange(0, 3000, 5.0)))


def test_normal_operation_carries_the_watermark(coolant: tuple[np.ndarray, np.ndarray]) -> None:
    t, v = coolant
    det = WatermarkDetector(Watermark.for_plant("reactor", 1), "coolant_temp_k").fit(t[:TRAIN_S], v[:TRAIN_S])
    alarms = det.alarms(t, v)
    assert not alarms.any()
    assert np.nanmedian(det.correlation(t, v)[TRAIN_S:]) > det.threshold_ + 0.1


def test_replayed_hmi_values_are_detected_within_three_minutes(
    coolant: tuple[np.ndarray, np.ndarray],
) -> None:
    t, v = coolant
    det = WatermarkDetector(Watermark.for_plant("reactor", 1), "coolant_temp_k").fit(t[:TRAIN_S], v[:TRAIN_S])
    replayed = v.copy()
    n = END_S - REPLAY_FROM_S
    replayed[REPLAY_FROM_S:END_S] = v[REPLAY_FROM_S - n : REPLAY_FROM_S]  # the previous 10 minutes again
    alarms = det.alarms(t, replayed)
    assert not alarms[:REPLAY_FROM_S].any()
    first = float(t[np.flatnonzero(alarms)[0]])
    assert REPLAY_FROM_S <= first <= REPLAY_FROM_S + 180
    assert alarms[REPLAY_FROM_S + det.window :].mean() > 0.9  # and it stays detected


def test_without_the_watermark_the_key_finds_nothing(coolant: tuple[np.ndarray, np.ndarray]) -> None:
    t, v = coolant
    det = WatermarkDetector(Watermark.for_plant("reactor", 1), "coolant_temp_k").fit(t[:TRAIN_S], v[:TRAIN_S])
    t0, v0 = sensor_series(asyncio.run(_run(False)), "coolant_temp_k")
    assert det.alarms(t0, v0)[det.window :].mean() > 0.9
