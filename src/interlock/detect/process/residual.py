"""Physics residuals: each tag predicted from the tags that drive it, now and ``lags`` steps ago.

A per-tag linear ARX model (scikit-learn ``Ridge``) is learned on normal data from every *other*
tag, at the current step and the ``lags`` previous ones: a tank level from its inflow pumps and
outflow pressures, a reactor temperature from coolant flow. The tag's own past is left out on
purpose: with it the model learns "same as a moment ago" and a slow, smooth manipulation would
pass. The score is the largest residual in training standard deviations, so the alarm names the
tag whose physics no longer adds up. Tags constant in training are scored by their deviation
from that constant (any change is anomalous); they also feed no model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import Ridge  # type: ignore[import-untyped]

from interlock.detect.process.base import FloatArray, ProcessDetector, Standardizer


class ResidualDetector(ProcessDetector):
    name = "residual"

    def __init__(
        self,
        lags: int = 2,
        alpha: float = 10.0,
        holdout: float = 0.25,
        min_sigma: float = 0.1,
        quantile: float = 0.99,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.lags = lags
        self.alpha = alpha
        self.holdout = holdout
        self.min_sigma = min_sigma

    def _design(self, z: FloatArray) -> FloatArray:
        """Current values and ``lags`` past rows side by side; the first rows repeat row 0."""
        parts = [z]
        for k in range(1, self.lags + 1):
            parts.append(np.vstack([np.repeat(z[:1], k, axis=0), z[:-k]])[: len(z)])
        return np.hstack(parts)

    def _fit(self, x: FloatArray) -> None:
        self.scaler_ = Standardizer(x)
        z = self.scaler_(x)
        n_tags = z.shape[1]
        self.varying_ = np.flatnonzero(x.std(axis=0) > 1e-12)
        # Models learn on the first part of the normal data and the residual spread is measured on
        # the rest: in-sample residuals of near-collinear tags are tiny and would alarm on any drift.
        cut = max(int(len(z) * (1 - self.holdout)), 2) if self.holdout > 0 else len(z)
        design = self._design(z)[:cut]
        self.models_: list[tuple[int, npt.NDArray[np.intp], Ridge]] = []
        for j in self.varying_:
            # Every varying tag except j, at every lag.
            others = [t for t in self.varying_ if t != j]
            cols = np.array([lag * n_tags + t for lag in range(self.lags + 1) for t in others], dtype=np.intp)
            model = Ridge(alpha=self.alpha).fit(design[:, cols], z[:cut, j])
            self.models_.append((int(j), cols, model))
        resid = self._residuals(z)[cut:] if cut < len(z) else self._residuals(z)
        # A floor, in the tag's own standard deviations, so a near-perfect fit cannot make
        # measurement noise look like an attack.
        self.sigma_ = np.maximum(resid.std(axis=0), self.min_sigma)

    def _residuals(self, z: FloatArray) -> FloatArray:
        design = self._design(z)
        resid = np.array(z, copy=True)  # constant tags: deviation from their training value
        for j, cols, model in self.models_:
            resid[:, j] = z[:, j] - model.predict(design[:, cols])
        return resid

    def _normalized(self, x: FloatArray) -> FloatArray:
        return np.asarray(np.abs(self._residuals(self.scaler_(x))) / self.sigma_, dtype=np.float64)

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._normalized(x).max(axis=1), dtype=np.float64)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        # Lags need the rows before, so compute on the whole frame and pick the rows.
        return np.asarray(self._normalized(x)[rows], dtype=np.float64)

    def _row_scorer(self) -> Callable[[FloatArray], float]:
        """``_score`` of each row in turn, for streaming: it keeps the ``lags`` rows before it.

        Every tag model folds into one weight matrix over the design row (zero weights where a
        model does not look, and none for the constant tags), so a row costs one product. Before
        ``lags`` rows have been seen the first row stands in for the missing ones, as in ``_design``.
        """
        n_tags = len(self.scaler_.mean)
        weights = np.zeros(((self.lags + 1) * n_tags, n_tags))
        intercept = np.zeros(n_tags)
        for j, cols, model in self.models_:
            weights[cols, j] = model.coef_
            intercept[j] = model.intercept_
        mean, scale, sigma = self.scaler_.mean, self.scaler_.scale, self.sigma_
        design = np.zeros((self.lags + 1, n_tags))  # row k: the standardized row k steps ago
        flat = design.reshape(-1)
        seen = False

        def score(row: FloatArray) -> float:
            nonlocal seen
            z = (row - mean) / scale
            if seen:
                design[1:] = design[:-1]
                design[0] = z
            else:
                design[:] = z
                seen = True
            resid = z - (flat @ weights + intercept)
            return float(np.max(np.abs(resid) / sigma))

        return score
