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
``restart`` (R > 0, with ``keep_raw``): when an episode of raw alarms whose peak reached R times
the raw limit ends, each filtered vector is shrunk onto its own limit (if above it). A control
chart is reset after it signals; here the raw chart has already reported the large deviation,
and the filter's memory of it would keep alarming for rows after the process is back (about 10
rows at λ 0.2: the largest source of false alarms after BATADAL's attacks). Clipped rather than
erased, so a shift that goes on is above the limit again a row later. The limits used (raw and
filtered) come from a first pass over the same held-out blocks without clipping. The price is
on faults whose small offset the filter only saw through the memory of large spikes (TEP fault
20), so it is off by default.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, Standardizer
from interlock.detect.process.dpca import HeldOutLimits, lagged, out_of_sample


class _Model:
    def __init__(
        self, scaler: Standardizer, whiten: FloatArray, v: FloatArray, k: int, c: FloatArray
    ) -> None:
        self.scaler, self.whiten, self.v, self.k, self.c = scaler, whiten, v, k, c


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
) -> FloatArray:
    """Causal EWMA of the rows from ``start`` on (z = 0 before it), each row divided by the square
    root of its start-up variance factor; the rows before ``start`` are returned unchanged. At a
    row where ``restarts`` is True, each ``caps`` group of columns whose scaled squared norm is
    over its cap is shrunk onto it before the row is taken in: the memory is clipped to the
    chart's limit, not erased, so a shift that goes on is still above it one row later."""
    if not 0 < lam <= 1:
        raise ValueError(f"ewma must be in (0, 1], not {lam}")
    out = np.array(x, dtype=np.float64, copy=True)
    z = np.zeros(x.shape[1])
    steps = np.arange(1, len(x) - start + 1)
    factor = lam / (2 - lam) * (1 - (1 - lam) ** (2 * steps))
    for t in range(start, len(x)):
        if restarts is not None and restarts[t] and t > start:
            f = factor[t - start - 1]
            for cols, cap in caps:
                size = float(z[cols] @ z[cols]) / f
                if size > cap:
                    z[cols] *= np.sqrt(cap / size)
        z = lam * x[t] + (1 - lam) * z
        out[t] = z
    out[start:] /= np.sqrt(factor)[:, None]
    return out


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

    def _model(self, x: FloatArray) -> _Model:
        scaler = Standardizer(x)
        z = scaler(x)
        h = self.lags
        past = lagged(z, h)[h : len(z) - h]
        future = np.hstack([z[h + i : len(z) - h + i] for i in range(1, h + 1)])
        n = max(len(past) - 1, 1)
        wp = _inv_sqrt(past.T @ past / n, self.ridge)
        wf = _inv_sqrt(future.T @ future / n, self.ridge)
        _, s, vt = np.linalg.svd(wf @ (future.T @ past / n) @ wp)
        k = int(np.sum(s >= self.n_states)) if self.n_states < 1 else int(self.n_states)
        k = max(1, min(k, len(s)))
        v = vt.T  # columns: canonical directions of the whitened past
        states = lagged(z, h) @ wp @ v[:, :k]
        # z_t from the states at t - 1 (and a constant), least squares on the training rows.
        design = np.hstack([states[h:-1], np.ones((len(z) - h - 1, 1))])
        c, *_ = np.linalg.lstsq(design, z[h + 1 :], rcond=None)
        return _Model(scaler, wp, v, k, np.asarray(c, dtype=np.float64))

    def _restarting(self) -> bool:
        return self.ewma > 0 and self.keep_raw and self.restart > 0

    def _fit(self, x: FloatArray) -> None:
        if self._restarting():
            # First pass, without clipping: the held-out limits of the raw statistics (where the
            # filters are clipped) and of the filtered ones (what they are clipped to).
            self.raw_limits_ = None
            first = out_of_sample(x, self.folds, self._min_fold_rows(), self._model, self._stats_of)
            limits = np.maximum(np.quantile(first, self.quantile, axis=0), 1e-12)
            self.raw_limits_, self.caps_ = limits[:3], limits[3:]
        super()._fit(x)

    def _restarts(self, raw: FloatArray) -> npt.NDArray[np.bool_] | None:
        limits = getattr(self, "raw_limits_", None)
        if not self._restarting() or limits is None:
            return None
        if len(raw) == 0:
            return np.zeros(0, dtype=np.bool_)
        ratio = (raw / limits).max(axis=1)
        alarm = ratio > 1.0
        # Episodes of raw alarms; reset after those whose peak reached ``restart`` times the limit.
        ends = np.flatnonzero(alarm[:-1] & ~alarm[1:]) + 1
        starts = np.flatnonzero(np.concatenate([[alarm[0]], ~alarm[:-1] & alarm[1:]]))
        out = np.zeros(len(raw), dtype=np.bool_)
        for a, b in zip(starts, ends, strict=False):
            if ratio[a:b].max() >= self.restart:
                out[b] = True
        return out

    def _vectors(self, m: _Model, x: FloatArray, start: int = 0) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The raw statistics, the whitened past in canonical coordinates (states first) and the
        one-step prediction error; the last two EWMA-filtered when ``ewma`` > 0."""
        z = m.scaler(x)
        w = lagged(z, self.lags) @ m.whiten
        proj = w @ m.v
        prev = np.vstack([proj[:1, : m.k], proj[:-1, : m.k]])
        err = z - np.hstack([prev, np.ones((len(z), 1))]) @ m.c
        t2s = np.sum(proj[:, : m.k] ** 2, axis=1)
        t2r = np.sum(w**2, axis=1) - t2s
        raw = np.column_stack([t2s, np.maximum(t2r, 0.0), np.sum(err**2, axis=1)])
        if self.ewma <= 0:
            return raw, proj, err
        # The rows before ``start`` only give lagged history; the filter starts at ``start``.
        restarts = self._restarts(raw)
        caps = self.caps_ if restarts is not None else np.full(3, np.inf)
        fp = _ewma(proj, self.ewma, start, restarts,
                   ((slice(0, m.k), float(caps[0])), (slice(m.k, None), float(caps[1]))))  # fmt: skip
        fe = _ewma(err, self.ewma, start, restarts, ((slice(None), float(caps[2])),))
        return raw, fp, fe

    def _stats_of(self, model: _Model, x: FloatArray, start: int = 0) -> FloatArray:
        raw, fp, fe = self._vectors(model, x, start)
        if self.ewma <= 0:
            return raw
        k = model.k
        filtered = np.column_stack([
            np.sum(fp[:, :k] ** 2, axis=1),
            np.sum(fp[:, k:] ** 2, axis=1),  # v is orthogonal: the residual part of |w|²
            np.sum(fe**2, axis=1),
        ])  # fmt: skip
        return np.hstack([raw, filtered]) if self.keep_raw else filtered

    def _min_fold_rows(self) -> int:
        return 4 * self.lags + 10

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        # Each tag's squared one-step prediction error (filtered, as the Q statistic was): the
        # tags the state model cannot explain.
        _, _, err = self._vectors(self.model_, x)
        return np.asarray(err[rows] ** 2, dtype=np.float64)
