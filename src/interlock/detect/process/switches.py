"""Switches: a pump or valve that switched at a level it never switched at in normal operation.

A PLC starts a pump below one tank level and stops it above another. Change those levels (or
feed the PLC a level offset by half a metre) and the tank cycles a little higher or lower, every
reading in range and every law intact; only the levels at which the pump switches are new. An
hourly historian smears them: a tank filling 0.6 m an hour stands anywhere in that span at the
sample after the switch. Between the samples around a switch the level is a straight line that
bends once, at the switch, so the slope before it (two rows in the old state) and the slope
after it (two rows in the new state) place the bend, and the level there: on a simulated year of
BATADAL's C-Town, PU4's stop level (5.3 m) comes out at 5.27-5.44 m over 730 switches, where the
sample after the switch spans 4.93-5.38 m (1st to 99th percentile).

For each on/off tag (two values) and each direction, the driver is the tag whose level at the
bend spans the least of its 0.5-99.5 percentile span over the training switches (at most
``spread`` of it, from ``events`` switches on; a driver takes over 20 values, none of them in a
fifth of the rows, and does not mirror the switched tag: absolute correlation under 0.9). Its
limits are the training minimum and maximum widened on both sides by ``widen`` times their
distance (at least a thousandth of the span). A switch held two rows on either side is scored at
its second row in the new state (its slope needs it): the distance past a limit, in widenings;
any is an alarm. With ``2 * folds`` switches or more, a rule whose held-out switches (``folds``
blocks, each against the others' limits) fall outside more often than ``rate`` is dropped. A
switch needs its four rows in one run of the training data (files of several runs) and a
reading of the driver in each. The blame names the switched tag and its driver.

Written by hand: no library places a PLC's switching levels from sampled data.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, Frame, ProcessDetector, RowScorer

_CAP = 1e12  # an excess past this (a 1e308 glitch) counts as this, in batch and stream alike


@dataclass(frozen=True)
class Rule:
    switched: int  # the on/off tag
    before: float  # its state before and after the switch
    after: float
    driver: int
    low: float  # widened limits of the driver's level at the bend
    high: float
    unit: float  # the widening: what an excess is counted in
    seen: tuple[float, float]  # the training minimum and maximum, for the explanation


class SwitchesDetector(ProcessDetector):
    name = "switches"
    row_memory = 3  # a switch at t is scored at t + 1 from rows t - 2 .. t + 1

    def __init__(
        self,
        spread: float = 0.3,
        widen: float = 0.5,
        events: int = 8,
        folds: int = 5,
        rate: float = 0.02,
        quantile: float = 1.0,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.spread = spread
        self.widen = widen
        self.events = events
        self.folds = folds
        self.rate = rate

    def fit(self, train: Frame) -> SwitchesDetector:
        # Several runs in the training data (HAI's train1..train4): a pump on at the end of one
        # file and off at the start of the next is no switch.
        self.runs_ = train.runs
        super().fit(train)
        del self.runs_
        return self

    def _fit(self, x: FloatArray) -> None:
        if self.spread <= 0 or self.widen <= 0 or self.events < 2:
            raise ValueError(
                f"switches: spread and widen must be > 0 and events >= 2, not "
                f"{self.spread}, {self.widen}, {self.events}"
            )
        with warnings.catch_warnings():  # a constant column has no correlation: not a driver
            warnings.simplefilter("ignore", RuntimeWarning)
            self.rules_ = self._rules(x)

    def _rules(self, x: FloatArray) -> list[Rule]:
        states = {j: v for j in range(x.shape[1]) if len(v := _values(x[:, j])) == 2}
        onoff = list(states)
        runs = getattr(self, "runs_", None)  # set by fit for the length of the call
        # per column once (a WADI-sized plant has dozens of on/off tags): can it drive, and the
        # span its level is measured against
        able = [c for c in range(x.shape[1]) if c not in onoff and _varies(x[:, c])]
        spans = {c: float(np.subtract(*np.nanpercentile(x[:, c], [99.5, 0.5]))) for c in able}
        rules = []
        for j in onoff:
            lo, hi = states[j]
            drivers = [c for c in able if spans[c] > 0 and not _mirrors(x[:, c], x[:, j])]
            for before, after in ((lo, hi), (hi, lo)):
                t = _switches(x[:, j], before, after)
                if runs is not None:
                    t = t[runs[t - 2] == runs[t + 1]]
                if len(t) < self.events:
                    continue
                best: tuple[float, int, FloatArray] | None = None
                for c in drivers:
                    level = _bend(x[:, c], t)
                    level = level[np.isfinite(level)]
                    if len(level) < self.events:
                        continue
                    share = float((level.max() - level.min()) / spans[c])
                    if best is None or share < best[0]:
                        best = (share, c, level)
                if best is None or best[0] > self.spread or self._unsettled(best[2]):
                    continue
                _, c, level = best
                low, high = float(level.min()), float(level.max())
                width = max(self.widen * (high - low), 1e-3 * spans[c])
                rules.append(
                    Rule(j, float(before), float(after), c, low - width, high + width, width, (low, high))
                )
        return rules

    def _unsettled(self, level: FloatArray) -> bool:
        """Whether held-out switches often leave the limits the other blocks set."""
        if self.folds < 2 or len(level) < 2 * self.folds:
            return False
        out = 0
        bounds = np.linspace(0, len(level), self.folds + 1).astype(int)
        for a, b in itertools.pairwise(bounds):
            rest = np.concatenate([level[:a], level[b:]])
            width = self.widen * (rest.max() - rest.min())
            out += int(np.sum((level[a:b] < rest.min() - width) | (level[a:b] > rest.max() + width)))
        return out > self.rate * len(level)

    def _train_scores(self, x: FloatArray) -> FloatArray:
        return np.zeros(len(x))  # every training switch is inside its own limits: any excess alarms

    def _excess(self, x: FloatArray) -> list[tuple[Rule, npt.NDArray[np.intp], FloatArray]]:
        """Per rule: the rows scored (one after each switch) and each switch's excess."""
        out = []
        for rule in self.rules_:
            t = _switches(x[:, rule.switched], rule.before, rule.after)
            if not len(t):
                continue
            level = _bend(x[:, rule.driver], t)
            with np.errstate(invalid="ignore"):
                over = np.fmax(np.maximum(level - rule.high, rule.low - level), 0.0) / rule.unit
            out.append((rule, t + 1, np.nan_to_num(over, nan=0.0, posinf=_CAP)))
        return out

    def _score(self, x: FloatArray) -> FloatArray:
        score = np.zeros(len(x))
        for _, rows, over in self._excess(x):
            np.maximum.at(score, rows, over)
        return score

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        weights = np.zeros((len(x), x.shape[1]))
        for rule, at, over in self._excess(x):
            for col in (rule.switched, rule.driver):
                np.maximum.at(weights[:, col], at, over)
        return weights[rows]

    def _row_scorer(self) -> RowScorer:
        return _SwitchesRows(self.rules_, len(self.tags_))

    def describe(self) -> list[str]:
        """The rules, readable: which level switches what, and where it did in training."""
        names = self.tags_
        return [
            f"{names[r.switched]} {r.before:g}->{r.after:g} with {names[r.driver]} at "
            f"{r.seen[0]:.3g}..{r.seen[1]:.3g} (alarm outside {r.low:.3g}..{r.high:.3g})"
            for r in self.rules_
        ]


class _SwitchesRows(RowScorer):
    """``_score`` one row at a time: the last four rows as plain lists, each rule's states
    compared as floats, and the bend computed only at a switch (numpy per row costs more)."""

    own_blame = True

    def __init__(self, rules: list[Rule], tags: int) -> None:
        self.rules = rules
        self.tags = tags
        self.rows: list[list[float]] = []
        self.none = np.zeros(tags)
        self.none.flags.writeable = False  # the blame of a row without an alarm, shared
        self.last = self.none

    def __call__(self, row: FloatArray) -> float:
        self.rows.append(row.tolist())
        if len(self.rows) > 4:
            del self.rows[0]
        self.last = self.none  # a new array only for a row that alarms: blames handed out stay
        if len(self.rows) < 4:
            return 0.0
        a, b, c, d = self.rows  # t - 2, t - 1, t (the switch), t + 1 (this row)
        score = 0.0
        for r in self.rules:
            j = r.switched
            if not (a[j] == b[j] == r.before and c[j] == d[j] == r.after):
                continue
            k = r.driver
            level = _bend_one(a[k], b[k], c[k], d[k])
            over = max(level - r.high, r.low - level)
            if over > 0:  # False for NaN, as fmax in batch
                excess = min(over / r.unit, _CAP)
                score = max(score, excess)
                if self.last is self.none:
                    self.last = np.zeros(self.tags)
                for col in (j, k):
                    self.last[col] = max(self.last[col], excess)
        return score

    def blame(self) -> FloatArray:
        return self.last


def _values(col: FloatArray) -> FloatArray:
    return np.unique(col[np.isfinite(col)])


def _varies(col: FloatArray) -> bool:
    """A driver varies: over 20 values, none in a fifth of the rows."""
    values, counts = np.unique(col[np.isfinite(col)], return_counts=True)
    return bool(len(values) > 20 and counts.max() < 0.2 * len(col))


def _mirrors(col: FloatArray, state: FloatArray) -> bool:
    """Whether ``col`` mirrors the switched tag (its own flow: absolute correlation 0.9 or more)."""
    ok = np.isfinite(col) & np.isfinite(state)
    r = np.corrcoef(col[ok], state[ok])[0, 1]
    return not bool(np.isfinite(r) and abs(r) < 0.9)


def _switches(state: FloatArray, before: float, after: float) -> npt.NDArray[np.intp]:
    """Rows t where the state was ``before`` at t - 2 and t - 1 and is ``after`` at t and t + 1."""
    n = len(state)
    if n < 4:
        return np.zeros(0, dtype=np.intp)
    t = np.arange(2, n - 1)
    ok = (state[t - 2] == before) & (state[t - 1] == before) & (state[t] == after) & (state[t + 1] == after)
    return np.asarray(t[ok], dtype=np.intp)


def _bend(level: FloatArray, t: npt.NDArray[np.intp]) -> FloatArray:
    """The level where the line through rows t - 2, t - 1 meets the line through t, t + 1 (the
    switch between t - 1 and t), the switch's moment kept within the row before it (the level
    there may lie past both samples: a tank that rose then fell); NaN without all four readings."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope_before = level[t - 1] - level[t - 2]
        slope_after = level[t + 1] - level[t]
        bend = slope_before - slope_after
        # the fraction of the row before the switch: level[t] = level[t-1] + f*before + (1-f)*after
        f = np.clip((level[t] - level[t - 1] - slope_after) / bend, 0.0, 1.0)
        f = np.where(np.abs(bend) > 1e-12, f, 0.5)  # no bend: the middle of the row
        out = level[t - 1] + f * slope_before
    whole = (
        np.isfinite(level[t - 2])
        & np.isfinite(level[t - 1])
        & np.isfinite(level[t])
        & np.isfinite(level[t + 1])
    )
    return np.asarray(np.where(whole, out, np.nan), dtype=np.float64)


def _bend_one(a: float, b: float, c: float, d: float) -> float:
    """``_bend`` of one switch (rows t - 2 .. t + 1), in Python floats: the same operations in
    the same order, so the same double; numpy on four values costs more than the sum."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c) and math.isfinite(d)):
        return math.nan
    slope_before, slope_after = b - a, d - c
    bend = slope_before - slope_after
    f = min(max((c - b - slope_after) / bend, 0.0), 1.0) if abs(bend) > 1e-12 else 0.5
    return b + f * slope_before
