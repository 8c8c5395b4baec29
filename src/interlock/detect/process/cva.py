"""Canonical variate analysis (Russell, Chiang and Braatz 2000): states of the process from its past.

The past vector p_t holds the standardized tags at t and at the ``lags`` rows before; the future
vector f_t the ``lags`` rows after. Training whitens both and takes the SVD of their
cross-covariance: the first ``n_states`` right singular vectors turn the whitened past into the
states that best predict the future, the rest span the residual space. Three statistics per row:

- T²s: the squared norm of the states (they have unit variance by construction);
- T²r: the squared norm of the whitened past outside the state space;
- Q: the one-step prediction error of the tags from the previous row's states (a linear
  state-space model fitted by least squares), in standardized units. It uses only rows already
  seen, so the detector stays causal; the future vector is needed in training only.

``n_states`` as an int, or a float: keep the states whose canonical correlation is at least that
value. The limits, the ``persist`` rule and the threshold work as in ``dpca`` (held-out blocks of
the normal training data, never fault data).

``ewma`` (λ, 0 = off): a multivariate EWMA (Lowry, Woodall, Champ and Rigdon 1992) of each of the
three vectors behind the statistics (the states, the whitened past in the residual space, the
one-step prediction error), z_t = λ x_t + (1 - λ) z_{t-1} from z = 0, causal; the statistics are
the squared norms of the filtered vectors. A small sustained shift adds up in the filter while
the noise averages out, at the price of delay (about 1/λ rows of memory). Each filtered vector
is divided by the square root of its exact start-up variance factor
λ/(2 - λ) · (1 - (1 - λ)^(2(t+1))) (the white-noise case), so the first rows, where the filter
has little history, are on the scale of the later ones. Every scoring run starts the filter
afresh, a held-out block as well as a test file, so the limits see the same start-up.
``keep_raw`` (with ``ewma`` > 0) monitors the three unfiltered statistics beside the three
filtered ones, each against its own held-out limit (a combined Shewhart-EWMA scheme, as in Lucas
and Saccucci 1990): the filter averages out fast, zero-mean changes such as an oscillation,
which the raw statistics still see.
``restart`` (R > 0, with ``ewma``): when an episode of raw alarms whose peak reached R times
the raw limit ends, each filtered vector is shrunk onto its own limit (if above it). A control
chart is reset after it signals; here the raw chart has already reported the large deviation,
and the filter's memory of it would keep alarming for rows after the process is back (about 10
rows at λ 0.2: the largest source of false alarms after BATADAL's attacks). Clipped rather than
erased, so a shift that goes on is above the limit again a row later. The limits used (raw and
filtered) come from a first pass over the same held-out blocks without clipping. The price is
on faults whose small offset the filter only saw through the memory of large spikes (TEP fault
20), so it is off by default.
``var_ewma`` (λv, 0 = off): a variance chart beside the mean charts. The EWMA filters above see a
shift of the mean; a fault that only adds variance (TEP's random-variation faults 10, 11, 16, 19)
leaves the mean where it was and shows in the raw statistics as scattered single rows. Following
Crowder and Hamilton (1992), who chart an EWMA of log sample variances, this is an EWMA of
log(1 + T²r/m) and log(1 + Q/m) (m: each statistic's mean on the training rows), centred on its
training mean: a sustained rise in the residual variance adds up. The states' T²s is left out:
the operating point moves within normal runs, and on TEP's normal test run its log variance
drifted far enough to alarm on 12% of the rows. Its memory of a large deviation is clipped as
``restart`` clips the mean charts, after raw alarm episodes that peaked at ``var_restart``
times the raw limit (default 10, on: the log of a 200-fold statistic would otherwise stay over
the limit for tens of rows after the deviation ended); the mean charts keep theirs by default.
``forget``: at the rows where ``restart`` (mean charts) and ``var_restart`` (variance chart) clip,
the filters are erased instead (z = 0: back at the training mean; the scaling goes on at its
steady value, not a new run's start-up); nothing happens without those. After a loud episode the
process often does not come back in one row (BATADAL's tanks refill for hours after an attack),
and a filter clipped to its limit keeps alarming on the slow return; erased, it has to add up
the return again from nothing. The price is a small shift that goes on after the loud episode:
the filter sees it about 1/λ rows later. Held-out limits are set on charts erased the same way,
so they are lower (threefold for the variance chart at ``var_restart`` 2 on BATADAL).
A missing reading (NaN) counts as the tag's training mean, so it cannot blind the filters.

Memory: the lag rows and their canonical coordinates are (lags + 1) times the data. They are
projected, squared and filtered in blocks of ``BLOCK_ROWS`` rows, and the filters work in place,
so a fit peaks at a few times the data rather than 16 times (22 GB for a WADI-sized plant,
1.2 million rows x 127 tags, on a 24 GB machine).
"""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter  # type: ignore[import-untyped]

from interlock.detect.process.base import FloatArray, RowScorer, Standardizer
from interlock.detect.process.dpca import HeldOutLimits, lagged, out_of_sample

BLOCK_ROWS = 65_536


def _blocks(n: int) -> list[tuple[int, int]]:
    """Row blocks of about ``BLOCK_ROWS``, differing by one row at most (a short last block would
    take BLAS's small-matrix path); one block up to ``BLOCK_ROWS``. Above it the products may
    round differently in the last bits (1e-13) from one product over every row."""
    if n <= 0:
        return []
    count = -(-n // BLOCK_ROWS)
    return list(itertools.pairwise(np.linspace(0, n, count + 1).astype(int).tolist()))


def _squared_norms(a: FloatArray, cols: slice = slice(None)) -> FloatArray:
    """Each row's squared norm over ``cols``, a block at a time (the squares are not kept)."""
    out = np.empty(len(a))
    for lo, hi in _blocks(len(a)):
        out[lo:hi] = np.sum(a[lo:hi, cols] ** 2, axis=1)
    return out


class _Model:
    def __init__(
        self, scaler: Standardizer, whiten: FloatArray, v: FloatArray, k: int, c: FloatArray
    ) -> None:
        self.scaler, self.whiten, self.v, self.k, self.c = scaler, whiten, v, k, c
        self.project = whiten @ v  # lag rows to canonical coordinates in one product
        # The variance chart's reference: mean T²r and Q on the training rows, and the mean of
        # their log ratio to it (set by ``CVADetector._model`` when ``var_ewma`` > 0).
        self.resid_mean = np.ones(2)
        self.log_mean = np.zeros(2)


def _inv_sqrt(cov: FloatArray, ridge: float) -> FloatArray:
    w, u = np.linalg.eigh(cov)
    w = np.maximum(w, 0.0) + ridge * max(float(w.max()), 1e-12)
    return np.asarray((u / np.sqrt(w)) @ u.T, dtype=np.float64)


def _ewma(
    x: FloatArray,
    lam: float,
    start: int,
    restarts: npt.NDArray[np.bool_] | None = None,
    caps: tuple[tuple[slice, float], ...] = (),
    inplace: bool = False,
) -> FloatArray:
    """Causal EWMA of the rows from ``start`` on (z = 0 before it), each row divided by the square
    root of its start-up variance factor; the rows before ``start`` are returned unchanged. At a
    row where ``restarts`` is True, each ``caps`` group of columns whose scaled squared norm is
    over its cap is shrunk onto it before the row is taken in: the memory is clipped to the
    chart's limit, so a shift that goes on is still above it one row later (a cap of 0, with
    ``forget``, erases it). With
    ``inplace`` the filter overwrites ``x``."""
    if not 0 < lam <= 1:
        raise ValueError(f"ewma must be in (0, 1], not {lam}")
    out = x if inplace else np.array(x, dtype=np.float64, copy=True)
    z = np.zeros(x.shape[1])
    steps = np.arange(1, len(x) - start + 1)
    factor = lam / (2 - lam) * (1 - (1 - lam) ** (2 * steps))
    # Runs between clipping rows go through scipy's lfilter (z_t = λ x_t + (1 - λ) z_{t-1}),
    # which is exact and about 50 times faster than a Python loop over the rows.
    clips = [] if restarts is None else [int(t) for t in np.flatnonzero(restarts) if t > start]
    for a, b in itertools.pairwise([start, *clips, len(x)]):
        if a > start:
            f = factor[a - start - 1]
            for cols, cap in caps:
                size = float(z[cols] @ z[cols]) / f
                if size > cap:
                    z[cols] *= np.sqrt(cap / size)
        for lo, hi in _blocks(b - a):  # the filter's state carries over: the same values, less memory
            rows = slice(a + lo, a + hi)
            out[rows] = lfilter([lam], [1.0, lam - 1.0], out[rows], axis=0, zi=((1 - lam) * z)[None, :])[0]
            z = out[a + hi - 1].copy()
    out[start:] /= np.sqrt(factor)[:, None]
    return out


def _finite(z: FloatArray) -> FloatArray:
    """A missing or infinite reading counts as the tag's training mean (0 once standardized):
    left as it is, one NaN would stay in the filters' memory and blind them for good."""
    if np.isfinite(z).all():  # the usual case, checked first: nan_to_num costs 5.6 µs a row, this 1
        return z
    return np.where(np.isfinite(z), z, 0.0)


class CVADetector(HeldOutLimits[_Model]):
    name = "cva"

    def __init__(
        self,
        lags: int = 2,
        n_states: float = 0.5,
        ridge: float = 1e-3,
        folds: int = 5,
        persist: int = 1,
        quantile: float = 0.99,
        smooth: int = 1,
        ewma: float = 0.0,
        keep_raw: bool = False,
        restart: float = 0.0,
        var_ewma: float = 0.0,
        var_restart: float = 10.0,
        forget: bool = False,
    ) -> None:
        super().__init__(quantile, smooth)
        self.lags = lags
        self.n_states = n_states
        self.ridge = ridge
        self.folds = folds
        self.persist = persist
        self.ewma = ewma
        self.keep_raw = keep_raw
        self.restart = restart
        self.var_ewma = var_ewma
        self.var_restart = var_restart
        self.forget = forget

    def _model(self, x: FloatArray) -> _Model:
        scaler = Standardizer(x)
        z = scaler(x)
        h = self.lags
        lags = lagged(z, h)
        past = lags[h : len(z) - h]
        future = np.hstack([z[h + i : len(z) - h + i] for i in range(1, h + 1)])
        n = max(len(past) - 1, 1)
        wp = _inv_sqrt(past.T @ past / n, self.ridge)
        wf = _inv_sqrt(future.T @ future / n, self.ridge)
        _, s, vt = np.linalg.svd(wf @ (future.T @ past / n) @ wp)
        del past, future
        k = int(np.sum(s >= self.n_states)) if self.n_states < 1 else int(self.n_states)
        k = max(1, min(k, len(s)))
        v = vt.T  # columns: canonical directions of the whitened past
        states = lags @ (wp @ v[:, :k])
        del lags
        # z_t from the states at t - 1 (and a constant), least squares on the training rows.
        design = np.hstack([states[h:-1], np.ones((len(z) - h - 1, 1))])
        c, *_ = np.linalg.lstsq(design, z[h + 1 :], rcond=None)
        model = _Model(scaler, wp, v, k, np.asarray(c, dtype=np.float64))
        del z, states, design  # before scoring the rows again
        if self.var_ewma > 0:
            resid = self._raw(model, x)[0][h:, 1:]
            model.resid_mean = np.maximum(resid.mean(axis=0), 1e-12)
            model.log_mean = np.log1p(resid / model.resid_mean).mean(axis=0)
        return model

    def _clipping(self) -> bool:
        """Whether some filter is clipped after large raw alarms: the fit then needs a first pass
        for the raw limits (where to clip) and the filtered ones (what to clip to)."""
        return (self.ewma > 0 and self.restart > 0) or (self.var_ewma > 0 and self.var_restart > 0)

    def _fit(self, x: FloatArray) -> None:
        need = 2 * self.lags + 3  # a past and a future window, and two rows for the state model
        if len(x) < need:
            raise ValueError(f"cva with lags={self.lags} needs at least {need} training rows, not {len(x)}")
        self.raw_limits_: FloatArray | None = None
        self._fold_models: dict[tuple[int, int], _Model] = {}  # fitted once for both passes
        if self._clipping():
            first = out_of_sample(x, self.folds, self._min_fold_rows(), self._model,
                                  lambda m, rows, start: np.hstack(self._charts(m, rows, start)),
                                  self._fold_models)  # fmt: skip
            limits = np.maximum(np.quantile(first, self.quantile, axis=0), 1e-12)
            self.raw_limits_ = limits[:3]
            self.caps_ = limits[3:6] if self.ewma > 0 else np.full(3, np.inf)
            self.var_caps_ = limits[-2:] if self.var_ewma > 0 else np.full(2, np.inf)
            if self.forget:  # shrunk onto 0: the memory erased, each filter back at its training mean
                self.caps_ = np.where(np.isfinite(self.caps_), 0.0, self.caps_)
                self.var_caps_ = np.where(np.isfinite(self.var_caps_), 0.0, self.var_caps_)
        super()._fit(x)
        del self._fold_models
        # Each tag's filtered one-step error in its own normal size: a tag the state model
        # predicts poorly has large errors in every row, and would be blamed for every alarm.
        _, _, err = self._vectors(self.model_, x)
        spread = err[self.lags + 1 :].std(axis=0)
        # A tag constant in training errs by nothing there: its error stays in training spreads
        # (as the scaler leaves it), or any move of it would take all the blame.
        self.err_scale_ = np.where(spread > 1e-9, spread, 1.0)

    def _restarts(self, raw: FloatArray, peak: float) -> npt.NDArray[np.bool_] | None:
        """True at the row after each episode of raw alarms whose peak reached ``peak`` times
        the raw limit; None when nothing is clipped (``peak`` 0, or the first pass)."""
        limits = getattr(self, "raw_limits_", None)
        if peak <= 0 or limits is None:
            return None
        if len(raw) == 0:
            return np.zeros(0, dtype=np.bool_)
        ratio = (raw / limits).max(axis=1)
        alarm = ratio > 1.0
        ends = np.flatnonzero(alarm[:-1] & ~alarm[1:]) + 1
        starts = np.flatnonzero(np.concatenate([[alarm[0]], ~alarm[:-1] & alarm[1:]]))
        out = np.zeros(len(raw), dtype=np.bool_)
        for a, b in zip(starts, ends, strict=False):
            if ratio[a:b].max() >= peak:
                out[b] = True
        return out

    def _raw(self, m: _Model, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The raw statistics (T²s, T²r, Q), the whitened past in canonical coordinates (states
        first) and the one-step prediction error."""
        z = _finite(m.scaler(x))
        proj = np.empty((len(z), m.project.shape[1]))
        for a, b in _blocks(len(z)):  # the lag rows of a block only (they are lags + 1 times z)
            first = max(a - self.lags, 0)
            proj[a:b] = lagged(z[first:b], self.lags)[a - first :] @ m.project
        prev = np.vstack([proj[:1, : m.k], proj[:-1, : m.k]])
        err = prev @ m.c[:-1]  # the states one row back, and the constant; in place, as
        err += m.c[-1]  # z - (prev @ c + c0) rounds
        np.subtract(z, err, out=err)
        t2s = _squared_norms(proj, slice(0, m.k))
        t2r = _squared_norms(proj) - t2s  # v is orthogonal: |whitened past|² = |proj|²
        return np.column_stack([t2s, np.maximum(t2r, 0.0), _squared_norms(err)]), proj, err

    def _vectors(self, m: _Model, x: FloatArray, start: int = 0) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The raw statistics, the whitened past in canonical coordinates (states first) and the
        one-step prediction error; the last two EWMA-filtered when ``ewma`` > 0."""
        raw, proj, err = self._raw(m, x)
        if self.ewma <= 0:
            return raw, proj, err
        # The rows before ``start`` only give lagged history; the filter starts at ``start``.
        restarts = self._restarts(raw, self.restart)
        caps = self.caps_ if restarts is not None else np.full(3, np.inf)
        # In place: proj and err are this call's own, and a copy of proj is (lags + 1) x the data.
        groups = ((slice(0, m.k), float(caps[0])), (slice(m.k, None), float(caps[1])))
        fp = _ewma(proj, self.ewma, start, restarts, groups, inplace=True)
        fe = _ewma(err, self.ewma, start, restarts, ((slice(None), float(caps[2])),), inplace=True)
        return raw, fp, fe

    def _charts(self, m: _Model, x: FloatArray, start: int = 0) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The raw statistics, the filtered ones and the variance chart (no columns when off)."""
        raw, fp, fe = self._vectors(m, x, start)
        none = np.zeros((len(x), 0))
        filtered = none
        if self.ewma > 0:
            filtered = np.column_stack([
                _squared_norms(fp, slice(0, m.k)),
                _squared_norms(fp, slice(m.k, None)),  # v is orthogonal: the residual part of |w|²
                _squared_norms(fe),
            ])  # fmt: skip
        if self.var_ewma <= 0:
            return raw, filtered, none
        # Centred on the training rows, so the EWMA from 0 is unbiased from its first row; the
        # signed value is the statistic, so only a rise alarms (its limit is an upper one).
        logs = np.log1p(raw[:, 1:] / m.resid_mean) - m.log_mean
        restarts = self._restarts(raw, self.var_restart)
        caps = self.var_caps_ if restarts is not None else np.full(2, np.inf)
        groups = tuple((slice(i, i + 1), float(c) ** 2) for i, c in enumerate(caps))  # clip z² onto c²
        return raw, filtered, _ewma(logs, self.var_ewma, start, restarts, groups)

    def _stats_of(self, model: _Model, x: FloatArray, start: int = 0) -> FloatArray:
        raw, filtered, var = self._charts(model, x, start)
        if self.ewma <= 0:
            return np.hstack([raw, var])
        return np.hstack([raw, filtered, var] if self.keep_raw else [filtered, var])

    def _min_fold_rows(self) -> int:
        return 4 * self.lags + 10

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        # Each tag's squared one-step prediction error (filtered, as the Q statistic was) over
        # its normal size: the tags the state model cannot explain, as far off as they are.
        _, _, err = self._vectors(self.model_, x)
        return np.asarray((err[rows] / self.err_scale_) ** 2, dtype=np.float64)

    def _row_scorer(self) -> RowScorer:
        return _CVARows(self)


class _Filter:
    """One EWMA of ``_ewma``, a row at a time: clipped onto ``caps`` when told, then scaled."""

    def __init__(self, lam: float, size: int, caps: tuple[tuple[slice, float], ...]) -> None:
        self.lam, self.caps = lam, caps
        self.z = np.zeros(size)
        self.t = 0

    def factor(self, t: int) -> float:
        return self.lam / (2 - self.lam) * (1 - (1 - self.lam) ** (2 * (t + 1)))

    def __call__(self, x: FloatArray, clip: bool) -> FloatArray:
        if clip and self.t > 0:
            f = self.factor(self.t - 1)
            for cols, cap in self.caps:
                size = float(self.z[cols] @ self.z[cols]) / f
                if size > cap:
                    self.z[cols] *= np.sqrt(cap / size)
        self.z = self.lam * x + (1 - self.lam) * self.z
        out = np.asarray(self.z / np.sqrt(self.factor(self.t)), dtype=np.float64)
        self.t += 1
        return out


class _CVARows(RowScorer):
    """``CVADetector._score`` one row at a time: the lag rows, the previous states, the filters'
    memory and the raw alarm episode (for clipping) are its state."""

    own_blame = True

    def __init__(self, det: CVADetector) -> None:
        self.det, self.m = det, det.model_
        m, k = det.model_, det.model_.k
        self.past: deque[FloatArray] = deque(maxlen=det.lags + 1)  # standardized rows, newest first
        self.prev: FloatArray | None = None  # the states at the previous row
        self.in_alarm, self.peak = False, 0.0
        self.combined: deque[float] = deque(maxlen=max(1, det.persist))
        self.project = m.project
        self.c_states, self.c_const = m.c[:k], m.c[k]
        self.err = np.zeros(len(m.c[0]))
        caps = getattr(det, "caps_", np.full(3, np.inf))
        # One filter over the canonical coordinates and the one-step error side by side: the same
        # λ and the same clipping rows, each part clipped onto its own limit.
        self.width = width = m.whiten.shape[0]
        parts = (
            (slice(0, k), float(caps[0])),
            (slice(k, width), float(caps[1])),
            (slice(width, None), float(caps[2])),
        )
        self.fpe = _Filter(det.ewma or 1.0, width + len(self.err), parts)
        # The variance chart's two values, in plain floats: numpy costs more than it saves on two.
        self.var_lam = det.var_ewma or 1.0
        self.var_caps = [float(c) ** 2 for c in getattr(det, "var_caps_", np.full(2, np.inf))]
        self.var_z, self.var_t = [0.0, 0.0], 0
        self.resid_mean, self.log_mean = m.resid_mean.tolist(), m.log_mean.tolist()
        self.stat_limits = det.limits_.tolist()
        raw_limits: FloatArray | None = getattr(det, "raw_limits_", None)
        self.raw_limits = None if raw_limits is None else raw_limits.tolist()

    def _clips(self, raw: list[float]) -> tuple[bool, bool]:
        """Whether this row ends a raw alarm episode whose peak reached ``restart`` (mean charts)
        or ``var_restart`` (variance chart) times the raw limit, as ``_restarts`` marks it."""
        if self.raw_limits is None:
            return False, False
        ratio = max(r / lim for r, lim in zip(raw, self.raw_limits, strict=True))
        alarm = ratio > 1.0
        ended = self.in_alarm and not alarm
        peak = self.peak
        self.peak = (max(self.peak, ratio) if self.in_alarm else ratio) if alarm else 0.0
        self.in_alarm = alarm
        det = self.det
        return (ended and det.restart > 0 and peak >= det.restart,
                ended and det.var_restart > 0 and peak >= det.var_restart)  # fmt: skip

    def __call__(self, row: FloatArray) -> float:
        det, m, k = self.det, self.m, self.m.k
        z = _finite((row - m.scaler.mean) / m.scaler.scale)
        if not self.past:
            self.past.extend([z] * (det.lags + 1))  # as ``lagged``: the first row stands for its past
        else:
            self.past.appendleft(z)
        proj = np.concatenate(self.past) @ self.project
        states = proj[:k]
        prev = states if self.prev is None else self.prev
        self.prev = states
        err = z - prev @ self.c_states - self.c_const
        t2s = float(states @ states)
        # v is orthogonal, so |w|² is |proj|²: the residual part is the rest of the norm
        raw = [t2s, max(float(proj @ proj) - t2s, 0.0), float(err @ err)]
        clip_mean, clip_var = self._clips(raw)
        self.err = err
        stats = raw
        if det.ewma > 0:
            both = self.fpe(np.concatenate([proj, err]), clip_mean)
            fp, fe = both[: self.width], both[self.width :]
            self.err = fe
            filtered = [float(fp[:k] @ fp[:k]), float(fp[k:] @ fp[k:]), float(fe @ fe)]
            stats = raw + filtered if det.keep_raw else filtered
        if det.var_ewma > 0:
            pairs = zip(raw[1:], self.resid_mean, self.log_mean, strict=True)
            logs = [math.log1p(r / mean) - log for r, mean, log in pairs]
            stats = stats + self._variance(logs, clip_var)
        self.combined.append(max(v / lim for v, lim in zip(stats, self.stat_limits, strict=True)))
        return min(self.combined)  # ``persist``: the running minimum

    def _variance(self, logs: list[float], clip: bool) -> list[float]:
        """``_Filter`` of the variance chart in floats (each value its own group)."""
        lam, z, t = self.var_lam, self.var_z, self.var_t
        if clip and t > 0:
            f = lam / (2 - lam) * (1 - (1 - lam) ** (2 * t))
            z = [
                v * math.sqrt(cap / (v * v / f)) if v * v / f > cap else v
                for v, cap in zip(z, self.var_caps, strict=True)
            ]  # fmt: skip
        z = [lam * x + (1 - lam) * v for x, v in zip(logs, z, strict=True)]
        self.var_z, self.var_t = z, t + 1
        scale = math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * (t + 1))))
        return [v / scale for v in z]

    def blame(self) -> FloatArray:
        return np.asarray((self.err / self.det.err_scale_) ** 2, dtype=np.float64)
