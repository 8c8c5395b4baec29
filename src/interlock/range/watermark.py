"""Physical watermark: a small secret dither on one actuator, and a detector that finds it in the
sensors the HMI reads, so a replay of recorded sensor values gives itself away.

Replay attacks (Stuxnet; Mo and Sinopoli 2009, "Secure control against replay attacks") play
recorded normal sensor values to the operator while the plant is driven elsewhere. Recorded values
are plausible in every respect but one: they cannot carry the *current* response to a signal the
attacker does not know. So the control program adds a pseudo-random +-``amplitude`` dither to one
actuator (reactor jacket coolant +-0.2 K, pipeline recycle valve +-0.005, refinery fuel valve
+-0.005), switching every ``hold_s`` seconds of plant time, drawn from a key the defender holds.
The defender learns on normal data how a sensor answers the dither (a finite impulse response
over ``lags`` polls, by least squares) and then correlates, over a sliding window, the sensor
stream the HMI shows with the response the known dither should produce. Normally the correlation
is clearly positive; under replay it falls to noise around 0.

The dither is a keyed hash of (key, slot) rather than a random generator's stream, so that any
party holding the key can compute it at any plant time, in any order, without replaying a
generator from t = 0 (the PLC scans forward; the detector reads historian windows). Written by
hand: the method is a few lines of numpy, and no package implements physical watermarking.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# plant -> (actuator dithered, its amplitude, the HMI sensor that answers it first)
PLANT_WATERMARKS: dict[str, tuple[str, float, str]] = {
    "reactor": ("coolant_temp_k", 0.2, "coolant_temp_k"),
    "gas-pipeline": ("recycle_valve", 0.005, "recycle_flow_kg_s"),
    "refinery": ("fuel_valve", 0.005, "fuel_valve"),  # its position feedback; the heater outlet lags too much
}


@dataclass(frozen=True)
class Watermark:
    """A +-amplitude square dither, a new keyed-hash sign every ``hold_s`` plant seconds."""

    key: int
    amplitude: float
    hold_s: float = 5.0

    def __call__(self, plant_time_s: float) -> float:
        slot = math.floor(plant_time_s / self.hold_s + 1e-9)
        digest = hashlib.blake2b(f"{self.key}:{slot}".encode(), digest_size=1).digest()
        return self.amplitude if digest[0] & 1 else -self.amplitude

    def series(self, times: npt.ArrayLike) -> FloatArray:
        return np.array([self(float(t)) for t in np.asarray(times, dtype=np.float64)])

    @classmethod
    def for_plant(cls, plant_id: str, key: int) -> Self:
        _, amplitude, _ = PLANT_WATERMARKS[plant_id]
        return cls(key=key, amplitude=amplitude)


def _highpass(x: FloatArray, width: int) -> FloatArray:
    """x minus its trailing mean over ``width`` rows: removes the slow process movement."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - width, 0)
    return np.asarray(x - (c[idx] - c[lo]) / (idx - lo), dtype=np.float64)


def _lagged(d: FloatArray, lags: int) -> FloatArray:
    cols = [np.concatenate([np.zeros(k), d[: len(d) - k]]) for k in range(lags + 1)]
    return np.column_stack(cols)


@dataclass
class WatermarkDetector:
    """Correlate a sensor stream with the response the known dither should cause.

    ``window`` polls per correlation. Without the watermark (a replay) the correlation is noise of
    spread 1 / sqrt(window), so chance stays below 3 / sqrt(window); on normal data it stays above
    its ``quantile`` (low tail). The alarm threshold is midway between the two, and ``fit``
    refuses when normal data does not clear chance: the watermark would be too weak to tell.
    """

    watermark: Watermark
    sensor: str
    lags: int = 6
    window: int = 120
    highpass: int = 20
    quantile: float = 0.001

    def _signals(self, times: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        d = self.watermark.series(times)
        return _lagged(d, self.lags), _highpass(values, self.highpass)

    def fit(self, times: npt.ArrayLike, values: npt.ArrayLike) -> Self:
        t, v = np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
        lagged, y = self._signals(t, v)
        self.response_, *_ = np.linalg.lstsq(lagged[self.lags :], y[self.lags :], rcond=None)
        corr = self.correlation(t, v)
        normal = corr[np.isfinite(corr)]
        if normal.size == 0:
            raise ValueError(f"{len(t)} normal rows: need more than window={self.window}")
        low = float(np.quantile(normal, self.quantile))
        chance = 3.0 / math.sqrt(self.window)
        self.threshold_ = (low + chance) / 2
        if low <= chance:
            raise ValueError(
                f"watermark too weak on {self.sensor}: normal correlation {low:.2f} "
                f"at its {self.quantile:g} quantile, chance level {chance:.2f}"
            )
        return self

    def correlation(self, times: npt.ArrayLike, values: npt.ArrayLike) -> FloatArray:
        """Per row, the correlation over the trailing window (NaN until a window is full)."""
        t, v = np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
        lagged, y = self._signals(t, v)
        p = lagged @ self.response_
        out = np.full(len(t), np.nan)
        for end in range(self.window, len(t) + 1):
            a, b = p[end - self.window : end], y[end - self.window : end]
            sa, sb = a.std(), b.std()
            out[end - 1] = (
                float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb)) if sa > 0 and sb > 0 else 0.0
            )
        return out

    def alarms(self, times: npt.ArrayLike, values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """True where the watermark has vanished from the sensor stream."""
        corr = self.correlation(times, values)
        return np.asarray(np.nan_to_num(corr, nan=np.inf) < self.threshold_)


def sensor_series(
    table: Any, tag: str, device: str = "plc-1", source: str = "hmi"
) -> tuple[FloatArray, FloatArray]:
    """(plant times, values) of one tag from a historian table (pyarrow), in time order."""
    cols = {
        n: table.column(n).to_numpy(zero_copy_only=False)
        for n in ("plant_time_s", "device", "tag", "value", "source")
    }
    keep = (cols["device"] == device) & (cols["tag"] == tag) & (cols["source"] == source)
    t = cols["plant_time_s"][keep].astype(np.float64)
    order = np.argsort(t, kind="stable")
    return t[order], cols["value"][keep].astype(np.float64)[order]
