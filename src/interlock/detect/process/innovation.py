"""Each tag's one-step law: its value predicted from every tag's recent past, charted per tag.

A controller computes its output from its measurement by a fixed law (a PI controller in
velocity form: u_t = u_{t-1} + Kc (e_t - e_{t-1}) + Kc Δt/Ti e_t), a valve position follows its
command, a tank level integrates its flows. Such laws are linear in the last few rows, so a
least-squares model of each tag from the tags at t (all but itself) and every tag at t-1 .. t-
``lags`` (itself included: the law has memory) learns them; where a law is near exact, its
one-step innovation is tiny in normal operation and a small break shows. A sticking valve, a
controller whose gain or setpoint was changed without an operator command, an actuator driven
while its sensor is held: each breaks one tag's law while every tag stays inside its range.
The multivariate charts (``cva``, ``dpca``) see the same break diluted in the norm of all tags'
residuals; here each tag keeps its own chart. TEP's fault 15 (the condenser cooling water valve
sticks) is the case in point: 14.6% with the ensemble's other members, 95.4% with this one
(docs/process-detection.md).

Only near-exact laws are charted: the held-out innovation at most ``tight`` (0.1) of the tag's
spread, on tags not ``switched`` (at one value in over half the training rows: a pump's state
or its flow, whose linear law holds between switches only). A loose law shifts from one normal
run to the next more than held-out blocks of one run show. Per tag j the innovation e_j is
divided by its spread on held-out normal rows (blocked folds, as ``dpca`` sets its limits;
in-sample residuals of a near-exact law would be too small), floored at the tag's resolution
(its smallest step between training values: an exact copy must survive another historian's
rounding). The chart is an EWMA of min(e_j², ``cap``²) with weight ``ewma``, started at its
in-control mean, so a sustained rise of the innovation variance adds up while single noisy rows
average out (Crowder and Hamilton 1992 chart variance the same way); each tag's chart is
centred and scaled by its held-out mean and spread and alarms over its held-out ``quantile``
limit *and* at ``ratio`` times the held-out variance (a normal run's innovation variance differs
from another's by up to about twice on TEP, which one training run cannot show). After a raw
episode that peaked at ``restart`` times the raw limit, the charts are clipped to the edge of
their alarm, so a large break that ended is not remembered for 1/λ rows (``forget``, which needs
``restart``: clipped down to their in-control mean instead, so the slow return of a process after
a loud break is not charted either; as ``cva``'s ``forget``; ``excise``, which needs ``restart``
too: also clipped to where the chart would stand had the episode's rows been in control, its
level before the episode decayed over the episode's rows towards the in-control mean, so the
loud rows are forgotten and a deviation charted before them is kept, up to the alarm's edge
and decayed: a meter grown noisy whose loudest rows end episodes stays charted, where
``forget`` would erase it at each; with ``forget`` as well, ``forget`` decides). An episode is
a run of rows where *some* tag is loud (runs at most ``confirm`` quiet rows apart are one, and
it is over ``confirm`` quiet rows after its last loud one: a lull inside an attack is not its
end), and excising drops those rows from every tag's chart: a
deviation building up on another tag during a long loud episode is forgotten with it (a
per-tag excision kept the after-attack false alarms on BATADAL). ``keep_raw`` adds the
largest |e_j| itself, a Shewhart chart for a single large break. Tags constant in training have
no law here (``frozen`` and ``control`` watch them), nor does any tag when the training run is
too short for held-out blocks (``folds`` x (2 ``lags`` + 10) rows). A missing reading counts as
the tag's training mean.

Blame (``_blame``, ``_faults``) asks which tag's fault explains the innovations: an offset of a
tag's reading moves its own law's innovation and, through the coefficients, every law that reads
it, so the flow meter behind an offset valve reading breaks its law loudest while the valve is
the cause. Each tag's signature in the charted innovations is fitted to them (the offset bounded
and weakly shrunk, ``_explained``) beside a break of its own law; the energy explained is its
blame (a reconstruction-based contribution, Alcala and Qin 2009).

Least squares is written out (one Gram matrix, one small solve per tag) because scikit-learn's
``Ridge`` would refit on the same rows once per tag and per held-out fold; each fold's laws come
from the Gram matrix of every row less those whose lag rows touch the fold, so the data is read
once, in blocks of rows (a WADI-sized plant does not need its lag rows in memory at once).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter  # type: ignore[import-untyped]

from interlock.detect.process.base import FloatArray, Frame, ProcessDetector, RowScorer, Standardizer
from interlock.detect.process.cva import _blocks  # rows in blocks of about BLOCK_ROWS
from interlock.detect.process.dpca import lagged


class _Law:
    """A fitted set of per-tag laws: scaler, the tags that have one, weights (features + 1, p)."""

    def __init__(self, scaler: Standardizer, varying: npt.NDArray[np.bool_], weights: FloatArray) -> None:
        self.scaler = scaler
        self.varying = varying
        self.weights = weights


OFFSET_MARGIN = 4.0  # training spreads: how far a true reading may lie from its mean, for blame
OFFSET_PRIOR = 1 / OFFSET_MARGIN**2  # for blame: offsets of the order of the margin


class InnovationDetector(ProcessDetector):
    name = "innovation"

    def __init__(
        self,
        lags: int = 2,
        ewma: float = 0.02,
        cap: float = 5.0,
        restart: float = 2.0,
        switched: float = 0.5,
        ratio: float = 3.0,
        keep_raw: bool = False,
        forget: bool = False,
        excise: bool = False,
        confirm: int = 0,
        tight: float = 0.1,
        ridge: float = 1e-6,
        min_sigma: float = 1e-3,
        folds: int = 5,
        quantile: float = 0.99,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.lags = lags
        self.ewma = ewma
        self.cap = cap
        self.restart = restart
        self.switched = switched
        self.ratio = ratio
        self.keep_raw = keep_raw
        self.forget = forget
        self.excise = excise
        self.confirm = confirm
        self.tight = tight
        self.ridge = ridge
        self.min_sigma = min_sigma
        self.folds = folds

    # --- the laws ---
    def _standardized(self, scaler: Standardizer, x: FloatArray) -> FloatArray:
        return np.nan_to_num(scaler(x), nan=0.0, posinf=0.0, neginf=0.0)

    def _features(self, z: FloatArray, a: int, b: int) -> FloatArray:
        """Rows a..b of the lag rows (every tag at t .. t - lags) with a constant column."""
        lo = max(a - self.lags, 0)
        rows = lagged(z[lo:b], self.lags)[a - lo :]
        return np.hstack([rows, np.ones((len(rows), 1))])

    def _gram(self, z: FloatArray, a: int, b: int) -> FloatArray:
        """The Gram matrix of the lag rows (and the constant) of rows a..b, built in blocks."""
        m = (self.lags + 1) * z.shape[1] + 1
        gram = np.zeros((m, m))
        for lo, hi in _blocks(b - a):
            f = self._features(z, a + lo, a + hi)
            gram += f.T @ f
        return gram

    def _solve(self, gram: FloatArray, rows: int, varying: npt.NDArray[np.bool_]) -> FloatArray:
        """Each varying tag's law from the Gram matrix of ``rows`` rows: weights (features + 1, p)."""
        m, p = len(gram), int(varying.size)
        weights = np.zeros((m, p))
        ridge = self.ridge * max(rows, 1)
        for j in np.flatnonzero(varying):
            keep = np.arange(m) != j  # tag j at t is what the law predicts
            g = gram[np.ix_(keep, keep)]
            g[np.diag_indices(m - 2)] += ridge  # the constant column (last) is not shrunk
            try:  # positive definite with the ridge: a direct solve, 50 times faster than lstsq
                weights[keep, j] = np.linalg.solve(g, gram[keep, j])
            except np.linalg.LinAlgError:  # ridge 0 and collinear tags
                weights[keep, j] = np.linalg.lstsq(g, gram[keep, j], rcond=None)[0]
        return weights

    def _innovations(self, z: FloatArray, weights: FloatArray, a: int, b: int) -> FloatArray:
        """Each tag's one-step innovation at rows a..b of the standardized ``z`` (the rows before
        a give the lags only); rows without a full history yet have no law to check (0)."""
        out = np.empty((b - a, z.shape[1]))
        for lo, hi in _blocks(b - a):
            out[lo:hi] = z[a + lo : a + hi] - self._features(z, a + lo, a + hi) @ weights
        out[: max(self.lags - a, 0)] = 0.0
        return out

    # --- the charts ---
    def _squares(self, e: FloatArray) -> FloatArray:
        """Squared innovations, capped: a break of any size adds at most ``cap``² to a chart."""
        return np.minimum(e * e, self.cap**2) if self.cap > 0 else e * e

    def _chart(self, e: FloatArray, clip: bool = True) -> FloatArray:
        """EWMA of the squared normalized innovations (capped), per tag, from its in-control mean;
        clipped down to ``clip_level_`` (its limit, or with ``forget`` its in-control mean) and,
        with ``excise``, to its level before the episode decayed over the episode's rows, after a
        raw episode that peaked at ``restart`` times the raw limit."""
        lam = self.ewma
        sq = self._squares(e)
        if lam <= 0 or not len(e):
            return np.asarray(sq, dtype=np.float64)
        start = np.array(self.start_, dtype=np.float64)
        state = start
        out = np.empty_like(sq)
        episodes = self._episodes(e) if clip and self.restart > 0 else []
        prev = 0
        for a, t in [*episodes, (len(sq), len(sq))]:
            if t > prev:
                zi = (1 - lam) * state[None, :]
                out[prev:t], _ = lfilter([lam], [1.0, lam - 1.0], sq[prev:t], axis=0, zi=zi)
                state = out[t - 1]
            if t < len(sq):
                state = np.minimum(state, self.clip_level_)
                if self.excise:
                    before = out[a - 1] if a > 0 else start
                    state = np.minimum(state, _excised(before, start, lam, t - a))
            prev = t
        return out

    def _episodes(self, e: FloatArray) -> list[tuple[int, int]]:
        """Raw episodes (rows a..b-1 with some |e| over the raw limit, runs at most ``confirm``
        quiet rows apart taken as one) whose peak reached ``restart`` times it, each with the row
        where it is over: ``confirm`` quiet rows after its last loud one, within the frame. That
        deviation was reported loudly, and the chart's memory of it would go on alarming after the
        process is back; a lull of a few rows inside an attack is not its end."""
        ratio = np.max(np.abs(e[:, self.law_.varying]), axis=1, initial=0.0) / self.limits_[1]
        above = np.concatenate([[False], ratio > 1, [False]])
        starts = np.flatnonzero(~above[:-1] & above[1:])
        ends = np.flatnonzero(above[:-1] & ~above[1:])  # one past the episode's last row
        runs: list[tuple[int, int]] = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            if runs and a - runs[-1][1] <= self.confirm:
                runs[-1] = (runs[-1][0], b)
            else:
                runs.append((a, b))
        over = max(self.confirm, 0)
        return [(a, b + over) for a, b in runs if b + over < len(e) and ratio[a:b].max() >= self.restart]

    def _per_tag(self, e: FloatArray, clip: bool = True) -> tuple[FloatArray, FloatArray]:
        """Chart and raw per tag, each over its limit."""
        level = self._chart(e, clip)
        chart = (level - self.chart_mean_) / self.chart_scale_ / self.limits_[0]
        if self.ratio > 0:
            # And the innovation variance at least ``ratio`` times its held-out value: from one
            # normal run to the next it moves by a fifth or so (TEP), which the held-out blocks
            # of a single run cannot show.
            chart = np.minimum(chart, level / self.ratio)
        raw = np.abs(e) / self.limits_[1]
        chart[:, ~self.law_.varying] = -np.inf  # no law, no chart
        raw[:, ~self.law_.varying] = -np.inf
        return chart, raw

    def _combine(self, e: FloatArray, clip: bool = True) -> FloatArray:
        chart, raw = self._per_tag(e, clip)
        out = chart.max(axis=1, initial=-np.inf)
        if self.keep_raw:
            out = np.maximum(out, raw.max(axis=1, initial=-np.inf))
        return np.asarray(out, dtype=np.float64)

    def _fit(self, x: FloatArray) -> None:
        if np.isnan(x).any():  # a missing reading counts as the tag's mean, in training too
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing tag: mean 0
                means = np.nan_to_num(np.nanmean(x, axis=0))
            x = np.where(np.isnan(x), means, x)
        scaler = Standardizer(x)
        z = self._standardized(scaler, x)
        n, lags = len(z), self.lags
        varying = x.std(axis=0) > 1e-12
        # Row ranges with a full history inside their run.
        starts = [int(v) for v in getattr(self, "run_starts_", [0]) if 0 <= v < n] or [0]
        spans = [(a + lags, b) for a, b in itertools.pairwise([*starts, n]) if b > a + lags]

        def gram(lo: int, hi: int) -> tuple[FloatArray, int]:
            """The Gram matrix of the full-history rows in lo..hi, and their count."""
            out = np.zeros(((lags + 1) * z.shape[1] + 1,) * 2)
            parts = [(max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo)]
            for a, b in parts:
                out += self._gram(z, a, b)
            return out, sum(b - a for a, b in parts)

        total, rows = gram(0, n)
        pieces: list[FloatArray] = []
        if self.folds >= 2 and rows >= self.folds * (2 * lags + 10):
            # Blocked K-fold in one pass over the data: a fold's law is fitted on the Gram matrix
            # of every row less the rows whose lag rows touch the held-out block. The held-out
            # pieces are the rows with a history in their run, one piece per run in the block,
            # each charted from a fresh start as a scored run is.
            for a, b in itertools.pairwise(np.linspace(0, n, self.folds + 1).astype(int)):
                out, dropped = gram(int(a), min(int(b) + lags, n))
                weights = self._solve(total - out, rows - dropped, varying)
                e = self._innovations(z, weights, int(a), int(b))
                for lo, hi in spans:
                    lo, hi = max(lo, int(a)), min(hi, int(b))
                    if hi > lo:
                        pieces.append(e[lo - a : hi - a])
        else:
            # Too few rows with a history for held-out blocks: in-sample residuals of a law fitted
            # on as many rows as it has terms are 0, and every tag would look exact. No law is
            # charted.
            varying = np.zeros_like(varying)
            pieces.append(np.zeros((n, z.shape[1])))
        law = _Law(scaler, varying, self._solve(total, rows, varying))
        self.law_ = law
        pieces = [np.where(varying, e, 0.0) for e in pieces]
        held = np.vstack(pieces)
        spread = held.std(axis=0)
        # Only near-exact laws are charted: a loose one (a correlation, not a law) shifts from one
        # normal run to the next more than its held-out blocks show, and its chart would alarm.
        if self.tight > 0:
            law.varying &= spread <= self.tight
        # Nor are switched tags (a pump's state, a flow that is zero while the pump is off): a
        # linear law holds between their switches only, and a rare switch would break it.
        share, step = _values(z)
        law.varying &= share <= self.switched
        floor = np.maximum(self.min_sigma, step)
        self.sigma_ = np.where(law.varying, np.maximum(spread, floor), 1.0)
        pieces = [e / self.sigma_ for e in pieces]
        held = np.vstack(pieces)
        sq = self._squares(held)
        self.start_ = sq.mean(axis=0)  # the chart's in-control mean, where every run starts it
        self.limits_ = np.ones(2)
        self.clip_level_ = np.full(len(self.sigma_), np.inf)
        # Limits from a first pass without clipping; each held-out block charted from a fresh
        # start, as every scored file is.
        charts = np.vstack([self._chart(e, clip=False) for e in pieces])
        self.chart_mean_ = charts.mean(axis=0)
        # At least the spread of the chart of unit white noise (2λ/(2 - λ) for a squared normal):
        # an exact law, quiet in training, must not alarm on another historian's rounding.
        lam = min(max(self.ewma, 0.0), 1.0) or 1.0
        self.chart_scale_ = np.maximum(charts.std(axis=0), np.sqrt(2 * lam / (2 - lam)))
        self._faults()
        if not law.varying.any():
            self.held_out_ = np.zeros(len(held))
            return
        on = law.varying
        chart_max = ((charts - self.chart_mean_) / self.chart_scale_)[:, on].max(axis=1)
        raw_max = np.abs(held[:, on]).max(axis=1)
        self.limits_ = np.array([
            max(float(np.quantile(chart_max, self.quantile)), 1e-12),
            max(float(np.quantile(raw_max, self.quantile)), 1e-12),
        ])  # fmt: skip
        # Where a chart is clipped to: the edge of its alarm (its limit, and ``ratio``), or with
        # ``forget`` its in-control mean (the memory erased).
        self.clip_level_ = np.maximum(self.chart_mean_ + self.chart_scale_ * self.limits_[0], self.ratio)
        if self.forget:
            self.clip_level_ = np.minimum(self.clip_level_, self.start_)
        self.held_out_ = np.concatenate([self._combine(e) for e in pieces])

    def fit(self, train: Frame) -> InnovationDetector:
        # Several runs in the training data (Rieth's 500 TEP runs, HAI's train1..train4): a lag
        # row that reaches across a run start is no row of any law.
        self.run_starts_ = np.array([a for a, _ in train.run_bounds()], dtype=np.int64)
        super().fit(train)
        # Each chart alarms over its own limit; the held-out quantile of the combined score may
        # lie below 1 (the ``ratio`` floor cuts it), and must not undo that floor.
        self.threshold_ = max(self.threshold_, 1.0)
        return self

    def _normalized(self, x: FloatArray) -> FloatArray:
        z = self._standardized(self.law_.scaler, x)
        e = self._innovations(z, self.law_.weights, 0, len(z)) / self.sigma_
        return np.asarray(np.where(self.law_.varying, e, 0.0), dtype=np.float64)

    def _score(self, x: FloatArray) -> FloatArray:
        if not self.law_.varying.any():
            return np.zeros(len(x))
        return self._combine(self._normalized(x))

    def _train_scores(self, x: FloatArray) -> FloatArray:
        return self.held_out_

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        """Per tag, the largest share of the charted innovations that one fault of that tag
        explains at the row (``_faults``), and for a charted tag its own chart (the memory of
        its law's breaks; the rows up to the last one asked are charted from the start). In
        squared held-out spreads of the innovations."""
        out = np.zeros((len(rows), len(self.sigma_)))
        on = self.law_.varying
        if not len(rows) or not on.any():
            return out
        upto = int(rows.max()) + 1
        e = self._normalized(x[:upto])
        chart = self._chart(e)[rows][:, on]
        now, level = e[rows][:, on], self._standardized(self.law_.scaler, x[rows])
        step = _explained(now @ self.step_.T, self.step_norm2_, level)
        out[:] = np.maximum(step, _explained(now @ self.held_.T, self.held_norm2_, level))
        out[:, on] = np.maximum.reduce([out[:, on], now * now, chart])
        return out

    def _faults(self) -> None:
        """The signature of each tag's fault in the charted innovations (in their held-out spreads).

        A tag whose reading is offset by b from row t on moves the innovation of its own law by b
        and that of every law it feeds by -b x its coefficients (at t only, the first row:
        ``step_``; at t .. t - lags, once the offset has filled the lags: ``held_``); a law that
        broke moves its own innovation only. Blame is the energy of the innovations each
        signature explains (``_explained``; the reconstruction-based contribution of Alcala and
        Qin, 2009): an offset sensor that feeds tight laws is blamed itself, not the laws it
        upsets, and a tag with a loose law (not charted) can still be blamed through the laws it
        feeds."""
        on = self.law_.varying
        p = on.size
        w = self.law_.weights[:-1][:, on]  # features x charted laws, the constant row dropped
        eye = np.eye(p)[:, on]
        total = sum((w[lag * p : (lag + 1) * p] for lag in range(self.lags + 1)), np.zeros_like(eye))
        sigma = self.sigma_[on]
        self.step_ = (eye - w[:p]) / sigma
        self.held_ = (eye - total) / sigma
        self.step_norm2_ = np.einsum("jk,jk->j", self.step_, self.step_) + OFFSET_PRIOR
        self.held_norm2_ = np.einsum("jk,jk->j", self.held_, self.held_) + OFFSET_PRIOR

    def _row_scorer(self) -> RowScorer:
        return _InnovationRows(self)


def _explained(dot: FloatArray, norm2: FloatArray, z: FloatArray) -> FloatArray:
    """Per row and tag, the squared innovations that an offset b of the tag's reading explains
    along its signature (``dot``: the innovations projected on it; ``norm2``: its squared length
    plus ``OFFSET_PRIOR``), less b² ``OFFSET_PRIOR`` (b in training spreads: a prior that
    offsets are of the order of the margin, so a law that broke explains its own innovation
    before an offset of a tag it reads does), b bounded by the reading's distance ``z`` from its
    training mean plus ``OFFSET_MARGIN`` (an offset is in the reading; a tag with a tiny
    coefficient in a tight law would otherwise explain anything with a huge one)."""
    size = np.abs(dot)
    offset = np.minimum(size / norm2, np.abs(z) + OFFSET_MARGIN)  # the best b, within its bound
    return np.asarray(offset * (2 * size - offset * norm2), dtype=np.float64)


def _values(z: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per tag, from one sort of its training values: the share of rows at its most common value
    (a switched tag sits at one value most of the time), and its resolution, the smallest step
    between distinct values (an exact law, a tag copied into another, would otherwise have no
    spread, and another historian's rounding would break it)."""
    share, step = np.ones(z.shape[1]), np.zeros(z.shape[1])
    for j in range(z.shape[1]):
        values, counts = np.unique(z[:, j], return_counts=True)
        if counts.size:
            share[j] = counts.max() / len(z)
        gaps = np.diff(values)
        gaps = gaps[gaps > 0]
        step[j] = gaps.min() if gaps.size else 0.0
    return share, step


def _excised(before: FloatArray, start: FloatArray, lam: float, rows: int) -> FloatArray:
    """Where a chart would stand had the ``rows`` rows of an episode been in control: its level
    before the episode, gone that many EWMA steps towards the in-control mean."""
    return np.asarray(start + (before - start) * (1 - lam) ** rows, dtype=np.float64)


class _InnovationRows(RowScorer):
    """One row at a time: the lag rows in one rolling vector and the charts of the charted tags
    only (the others have no law to check)."""

    own_blame = True

    def __init__(self, det: InnovationDetector) -> None:
        law = det.law_
        self.det = det
        self.idx = np.flatnonzero(law.varying)
        self.mean, self.scale = law.scaler.mean, law.scaler.scale
        self.weights = law.weights[:, self.idx]
        self.sigma = det.sigma_[self.idx]
        self.centre = det.chart_mean_[self.idx]
        self.spread = det.chart_scale_[self.idx] * det.limits_[0]
        self.clip = det.clip_level_[self.idx]
        self.chart = np.array(det.start_[self.idx], dtype=np.float64)
        self.features = np.ones(law.weights.shape[0])  # every tag at t .. t - lags, then 1
        self.p = len(self.mean)
        self.peak = 0.0
        self.start = np.array(det.start_[self.idx], dtype=np.float64)
        self.before = self.chart.copy()  # the chart before the current raw episode (``excise``)
        self.rows = 0  # the current raw episode's rows so far (its lulls included)
        self.quiet = 0  # quiet rows since its last loud one
        self.seen = 0
        self.e = np.zeros(self.idx.size)  # the last innovations and readings, for blame
        self.z = np.zeros(self.p)

    def __call__(self, row: FloatArray) -> float:
        det, p = self.det, self.p
        if not self.idx.size:
            return 0.0
        z = (row - self.mean) / self.scale
        if not np.isfinite(z).all():  # a missing reading: the training mean (nan_to_num is slow per row)
            z = np.where(np.isfinite(z), z, 0.0)
        f = self.features
        if self.seen == 0:  # the first row stands in for the missing ones, as in ``lagged``
            f[:-1] = np.tile(z, det.lags + 1)
        else:
            f[p:-1] = f[: det.lags * p]  # numpy copies overlapping slices safely
            f[:p] = z
        e = (z[self.idx] - f @ self.weights) / self.sigma
        if self.seen < det.lags:  # no history yet, as in ``_innovations``
            e[:] = 0.0
        self.seen += 1
        self.e, self.z = e, z
        sq = det._squares(e)
        ratio = float(np.abs(e).max()) / det.limits_[1]
        if ratio <= 1:
            if self.rows and self.quiet < det.confirm:  # a lull: the episode may go on
                self.quiet += 1
                self.rows += 1
            elif self.rows:  # over, as in ``_episodes``
                if det.restart > 0 and self.peak >= det.restart:
                    np.minimum(self.chart, self.clip, out=self.chart)
                    if det.excise:
                        excised = _excised(self.before, self.start, det.ewma, self.rows)
                        np.minimum(self.chart, excised, out=self.chart)
                self.peak, self.rows, self.quiet = 0.0, 0, 0
        else:
            if self.rows == 0:
                self.before = self.chart.copy()
            self.peak = max(self.peak, ratio)
            self.rows += 1
            self.quiet = 0
        lam = det.ewma
        self.chart = (1 - lam) * self.chart + lam * sq if lam > 0 else sq
        weights = (self.chart - self.centre) / self.spread
        if det.ratio > 0:
            weights = np.minimum(weights, self.chart / det.ratio)
        if det.keep_raw:
            weights = np.maximum(weights, np.abs(e) / det.limits_[1])
        return float(weights.max())

    def blame(self) -> FloatArray:
        out = np.zeros(self.p)
        if not self.idx.size or not self.seen:
            return out
        det, e, z = self.det, self.e, self.z
        step = _explained(det.step_ @ e, det.step_norm2_, z)
        out[:] = np.maximum(step, _explained(det.held_ @ e, det.held_norm2_, z))
        out[self.idx] = np.maximum.reduce([out[self.idx], e * e, self.chart])
        return out
