"""Limits: a tag outside every value it took in normal operation, by more than a margin.

The oldest check of process control (an alarm limit on each tag) still catches what the model
members pass over: a PLC whose level thresholds were raised fills its tank on a normal curve,
with normal pump flows and pressures, only higher than the tank ever stood. Every correlation
and every law holds; the level is simply where it never was. Each tag's limits are its training
minimum and maximum, widened on both sides by the larger of ``margin`` times its training range
and twice the farthest a held-out block of the training rows (``folds``) strays past the other
blocks' range, and by at least one step of its resolution (a historian that rounds to 0.01
shows 2.99 as 3.00). A tag whose held-out blocks leave the others' range more often than
``rate`` has no settled range and is not watched (500 rows of Tennessee Eastman settle none).
With ``modes``, each state of each on/off tag has ranges of its own (a flow while its pump is
off). A tag that never moved in training (a standby pump's flow) may move by a millionth of its
value (of 1 if it sat at 0). The score is the largest excess over a widened limit, counted in
widenings; any is an alarm.

Written by hand: a minimum and a maximum per column is one numpy call, and no library scores a
row against its columns' ranges with a resolution floor.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, ProcessDetector, RowScorer


@dataclass(frozen=True)
class _Envelope:
    tag: int  # the on/off tag whose state selects the rows (-1: every row)
    state: float
    low: FloatArray  # per tag (inf where unwatched)
    high: FloatArray
    unit: FloatArray  # what an excess is counted in: the widening


class LimitsDetector(ProcessDetector):
    name = "limits"

    def __init__(
        self,
        margin: float = 0.05,
        folds: int = 5,
        rate: float = 0.001,
        modes: bool = True,
        quantile: float = 1.0,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.margin = margin
        self.folds = folds
        self.rate = rate
        self.modes = modes

    def _fit(self, x: FloatArray) -> None:
        with warnings.catch_warnings():  # a column all NaN (in a mode) is unwatched, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            self._fit_ranges(x)

    def _fit_ranges(self, x: FloatArray) -> None:
        if self.margin < 0 or self.folds < 0 or self.folds == 1:
            got = f"{self.margin}, {self.folds}"
            raise ValueError(f"limits: margin must be >= 0 and folds 0 or >= 2, not {got}")
        steps = _steps(x)
        self.envelopes_ = [self._envelope(x, steps, -1, 0.0)]
        if self.modes:
            for j in range(x.shape[1]):
                values = np.unique(x[:, j][np.isfinite(x[:, j])])
                if len(values) == 2:  # an on/off tag: each state is a mode with its own ranges
                    for v in values:
                        self.envelopes_.append(self._envelope(x[x[:, j] == v], steps, j, float(v)))

    def _envelope(self, x: FloatArray, steps: FloatArray, tag: int, state: float) -> _Envelope:
        lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
        stray, often = _held_out(x, self.folds)
        width = np.maximum(np.maximum(self.margin, 2 * stray) * (hi - lo), steps)
        # a tag whose held-out rows often leave the others' range has no settled range, and too
        # few rows (a pump's rare state) show none: unwatched
        settled = (often <= self.rate) & (len(x) >= 2 * max(self.folds, 1))
        if tag >= 0:
            settled[tag] = False  # the state itself
        low, high = np.where(settled, lo - width, -np.inf), np.where(settled, hi + width, np.inf)
        return _Envelope(tag, state, low, high, np.maximum(width, 1e-9))

    def _train_scores(self, x: FloatArray) -> FloatArray:
        return np.zeros(len(x))  # inside its own limits by construction: any excess alarms

    def _excess(self, x: FloatArray) -> FloatArray:
        """Rows x tags: how far past its widened limit each tag is, in units of its widening, in
        the envelope of every mode the row is in (the largest)."""
        out = np.zeros(x.shape)
        for env in self.envelopes_:
            rows = np.ones(len(x), dtype=np.bool_) if env.tag < 0 else x[:, env.tag] == env.state
            if not rows.any():
                continue
            with np.errstate(invalid="ignore"):
                over = np.maximum(x[rows] - env.high, env.low - x[rows])
            out[rows] = np.maximum(out[rows], np.where(over > 0, over / env.unit, 0.0))  # NaN: none
        return out

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._excess(x).max(axis=1, initial=0.0), dtype=np.float64)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        return np.asarray(self._excess(x[rows]), dtype=np.float64)

    def _row_scorer(self) -> RowScorer:
        return _LimitsRows(self.envelopes_)


class _LimitsRows(RowScorer):
    """``_excess`` of one row with every envelope stacked: one numpy pass, not one per mode."""

    own_blame = True

    def __init__(self, envelopes: list[_Envelope]) -> None:
        self.tag = np.array([max(e.tag, 0) for e in envelopes])
        self.always = np.array([e.tag < 0 for e in envelopes])
        self.state = np.array([e.state for e in envelopes])
        self.low, self.high = np.vstack([e.low for e in envelopes]), np.vstack([e.high for e in envelopes])
        self.unit = np.vstack([e.unit for e in envelopes])
        self.last = np.zeros(self.low.shape[1])

    def __call__(self, row: FloatArray) -> float:
        active = self.always | (row[self.tag] == self.state)
        with np.errstate(invalid="ignore"):
            over = np.maximum(row - self.high, self.low - row)
        over[~active] = 0.0
        # fmax: a NaN reading has no excess, as in batch (np.maximum would carry the NaN)
        self.last = (np.fmax(over, 0.0) / self.unit).max(axis=0, initial=0.0)
        return float(self.last.max(initial=0.0))

    def blame(self) -> FloatArray:
        return self.last


def _held_out(x: FloatArray, folds: int) -> tuple[FloatArray, FloatArray]:
    """Per column, with the rows cut into ``folds`` blocks and each held out against the rest:
    how far a held-out row strays past the others' range at most, in ranges, and how often
    (the fraction of rows that do). A settled envelope (a year of a water network's hourly
    levels) is left one row in several thousand; a short run (500 rows of Tennessee Eastman,
    whose normal test run sits at other pressures) every few rows."""
    stray, often = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    n = len(x)
    if folds < 2 or n < 2 * folds:
        return stray, often
    bounds = np.linspace(0, n, folds + 1).astype(int)
    for a, b in itertools.pairwise(bounds):
        rest = np.vstack([x[:a], x[b:]])
        lo, hi = np.nanmin(rest, axis=0), np.nanmax(rest, axis=0)
        with np.errstate(invalid="ignore"):
            over = np.maximum(x[a:b] - hi, lo - x[a:b])
        span = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            far = np.where(span > 0, np.nanmax(np.where(over > 0, over, 0.0), axis=0) / span, 0.0)
        stray = np.maximum(stray, far)
        often += np.sum(over > 0, axis=0)
    return stray, often / n


def _steps(x: FloatArray) -> FloatArray:
    """Each column's resolution: the smallest gap between its distinct values (at 9 decimals,
    past float noise); for a column with one value, a millionth of it (of 1 if it is 0)."""
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        col = x[:, j]
        values = np.unique(np.round(col[np.isfinite(col)], 9))
        gaps = np.diff(values)
        top = float(np.abs(values).max(initial=0.0))
        out[j] = float(gaps.min()) if gaps.size else 1e-6 * max(top, 1.0)
    return out
