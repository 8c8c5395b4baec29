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
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, Standardizer
from interlock.detect.process.dpca import HeldOutLimits, lagged


class _Model:
    def __init__(
        self, scaler: Standardizer, whiten: FloatArray, v: FloatArray, k: int, c: FloatArray
    ) -> None:
        self.scaler, self.whiten, self.v, self.k, self.c = scaler, whiten, v, k, c


def _inv_sqrt(cov: FloatArray, ridge: float) -> FloatArray:
    w, u = np.linalg.eigh(cov)
    w = np.maximum(w, 0.0) + ridge * max(float(w.max()), 1e-12)
    return np.asarray((u / np.sqrt(w)) @ u.T, dtype=np.float64)


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
    ) -> None:
        super().__init__(quantile, smooth)
        self.lags = lags
        self.n_states = n_states
        self.ridge = ridge
        self.folds = folds
        self.persist = persist

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

    def _stats_of(self, model: _Model, x: FloatArray, start: int = 0) -> FloatArray:
        m = model
        z = m.scaler(x)
        w = lagged(z, self.lags) @ m.whiten
        proj = w @ m.v
        t2s = np.sum(proj[:, : m.k] ** 2, axis=1)
        t2r = np.sum(w**2, axis=1) - t2s
        prev = np.vstack([proj[:1, : m.k], proj[:-1, : m.k]])
        err = z - np.hstack([prev, np.ones((len(z), 1))]) @ m.c
        return np.column_stack([t2s, np.maximum(t2r, 0.0), np.sum(err**2, axis=1)])

    def _min_fold_rows(self) -> int:
        return 4 * self.lags + 10

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        # Each tag's squared one-step prediction error: the tags the state model cannot explain.
        m = self.model_
        z = m.scaler(x)
        proj = (lagged(z, self.lags) @ m.whiten @ m.v)[:, : m.k]
        prev = np.vstack([proj[:1], proj[:-1]])
        err = z - np.hstack([prev, np.ones((len(z), 1))]) @ m.c
        return np.asarray(err[rows] ** 2, dtype=np.float64)
