"""Frozen tags: a sensor or actuator that moves in normal operation and suddenly holds still.

A stuck valve, a frozen transmitter and the crudest spoof ("hold the last good value", ATT&CK
for ICS T0856 Spoof Reporting Message) all leave the same trace: a tag that never stays on one
value for long in normal data reads the same value row after row. Correlation models miss it
while the frozen value stays plausible, and ``replay`` skips flat windows on purpose (a flat
window repeats by nature). Each tag's longest run of one value (at ``decimals``) in the normal
training data sets its limit: twice that run plus ``margin`` rows, because sampled tags (an
analyser reporting every fifth row) hold for a whole sample period and two equal samples in a
row happen by chance. A short training set (a drill's six-minute warm-up) can miss how long a
coarse reading holds by chance, so the limit is at least the run whose odds are under ``odds``
per row if each row repeated the last one independently, at the rate seen in training (q^(L-1)
<= odds; a tag that never repeated in n rows is taken at 3/n, the rule of three). Tags that hold
longer than ``max_run`` rows in normal data (setpoints, on/off statuses, levels at a coarse
resolution) are left out: stillness is normal for them. The score is the number of tags whose
run has reached their limit at a row; any is an alarm.

Written by hand: scikit-learn, river and PyOD score values, not how long a value lasts, and a
run length is one pass of numpy per tag.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, ProcessDetector, RowScorer


class FrozenDetector(ProcessDetector):
    name = "frozen"

    def __init__(
        self,
        decimals: int = 3,
        margin: int = 2,
        max_run: int = 12,
        odds: float = 1e-6,
        quantile: float = 1.0,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.decimals = decimals
        self.margin = margin
        self.max_run = max_run
        self.odds = odds

    def _fit(self, x: FloatArray) -> None:
        if not 0 < self.odds < 1 or self.margin < 1:  # else training could reach its own limit
            got = f"{self.odds} and {self.margin}"
            raise ValueError(f"frozen: odds must be in (0, 1) and margin >= 1, not {got}")
        rounded = np.round(x, self.decimals)
        longest = _run_lengths(rounded).max(axis=0)
        distinct = np.array([len(np.unique(rounded[:, j])) for j in range(x.shape[1])])
        watched = (longest <= self.max_run) & (distinct >= 3)
        repeat = np.mean(rounded[1:] == rounded[:-1], axis=0) if len(x) > 1 else np.zeros(x.shape[1])
        # No repeat in n rows bounds the rate by about 3/n (the rule of three), not by 0: a short
        # training set (a live watch's 30 polls) must not take a slow tag for one that never holds.
        rate = np.clip(np.maximum(repeat, 3.0 / max(len(x) - 1, 1)), 1e-300, 0.999)
        chance = np.ceil(np.log(self.odds) / np.log(rate)) + 1
        limit = np.maximum(2 * longest + self.margin, chance)
        # 0: not watched (holds still in normal operation, or barely moves at all)
        self.limits_ = np.where(watched, limit, 0).astype(np.int64)

    def _train_scores(self, x: FloatArray) -> FloatArray:
        # No watched tag holds past its limit in training by construction: any frozen tag alarms.
        return np.zeros(len(x))

    def _runs_over(self, x: FloatArray) -> FloatArray:
        """Rows x tags: the current run over the tag's limit where it reaches it, else 0."""
        runs = _run_lengths(np.round(x, self.decimals))
        limits = self.limits_[None, :]
        frozen = (limits > 0) & (runs >= limits)
        return np.where(frozen, runs / np.maximum(limits, 1), 0.0)

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray((self._runs_over(x) > 0).sum(axis=1), dtype=np.float64)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        return np.asarray(self._runs_over(x)[rows], dtype=np.float64)

    def _row_scorer(self) -> RowScorer:
        return _FrozenRows(self.limits_, self.decimals)


class _FrozenRows(RowScorer):
    """Each tag's current run, one row at a time: ``_score`` of the stream so far."""

    own_blame = True

    def __init__(self, limits: npt.NDArray[np.int64], decimals: int) -> None:
        self.limits, self.decimals = limits, decimals
        self.watched = limits > 0
        self.prev: FloatArray | None = None
        self.runs = np.zeros(len(limits), dtype=np.int64)

    def __call__(self, row: FloatArray) -> float:
        now = np.round(row, self.decimals)
        # NaN never equals itself: a missing value starts a new run, as in _run_lengths.
        same = np.zeros(len(now), dtype=np.bool_) if self.prev is None else now == self.prev
        self.runs = np.where(same, self.runs + 1, 1)
        self.prev = now
        return float(np.count_nonzero(self.watched & (self.runs >= self.limits)))

    def _over(self) -> FloatArray:
        frozen = (self.limits > 0) & (self.runs >= self.limits)
        return np.where(frozen, self.runs / np.maximum(self.limits, 1), 0.0)

    def blame(self) -> FloatArray:
        return self._over()


def _run_lengths(x: FloatArray) -> npt.NDArray[np.int64]:
    """Rows x tags: how many rows, this one included, the tag has held its current value."""
    n = x.shape[0]
    if n == 0:
        return np.zeros(x.shape, dtype=np.int64)
    idx = np.arange(n)[:, None]
    # NaN never equals itself, so a missing value starts a new run rather than extending one.
    changed = np.vstack([np.ones((1, x.shape[1]), dtype=np.bool_), x[1:] != x[:-1]])
    start = np.maximum.accumulate(np.where(changed, idx, 0), axis=0)
    return np.asarray(idx - start + 1, dtype=np.int64)
