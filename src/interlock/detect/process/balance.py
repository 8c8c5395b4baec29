"""Balance residuals: each tag's change per step predicted from the other tags (mass balance).

A tank level is the integral of its inflows minus its outflows; a pressure follows the pumps and
valves feeding it. So the *change* of a tag from one row to the next, Δx_j(t), is modelled from
the values of every other tag at t and t - 1 (a linear model, scikit-learn ``Ridge``), which is
the discrete balance equation when x_j integrates flows. Working on changes, not levels, makes
the model blind to slow drift of the operating point (a year-on-year shift of pressures is not an
attack), while a spoofed level that moves against its flows, or a pump that runs without the
level answering, breaks it.

Only the relations that hold are kept: a model is used when it explains at least ``min_r2`` of
the variance of Δx_j on the held-back tail of the normal data (the last ``holdout`` share, never
seen by the fit). Residuals are scaled by a robust spread (1.4826 x the median absolute
deviation on that tail, floored at ``min_sigma`` of the tag's own standard deviation, as in
``residual``: a relation that holds almost exactly in simulation must not turn the smallest
change of operating point into an alarm), averaged over ``window`` rows (causal; the
persistence rule: a lasting imbalance accumulates, a single noisy step does not), and the score
is the largest over the kept tags. The threshold is the ``quantile`` of the scores on the
held-back tail, so both the spread and the threshold come from normal data the models did not
see.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import Ridge  # type: ignore[import-untyped]

from interlock.detect.process.base import FloatArray, ProcessDetector, Standardizer, _causal_mean


class BalanceDetector(ProcessDetector):
    name = "balance"

    def __init__(
        self,
        window: int = 6,
        min_r2: float = 0.5,
        alpha: float = 1.0,
        holdout: float = 0.25,
        min_sigma: float = 0.1,
        quantile: float = 0.99,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.window = window
        self.min_r2 = min_r2
        self.alpha = alpha
        self.holdout = holdout
        self.min_sigma = min_sigma

    @property
    def row_memory(self) -> int:
        """Rows before the current one its score reads: ``window`` changes, each from its previous row."""
        return self.window

    def _design(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(Δz, [z_t, z_{t-1}]) with row 0 repeated before the start (its change is zero)."""
        prev = np.vstack([z[:1], z[:-1]])
        return z - prev, np.hstack([z, prev])

    def _fit(self, x: FloatArray) -> None:
        self.scaler_ = Standardizer(x)
        z = self.scaler_(x)
        n = z.shape[1]
        cut = min(max(int(len(z) * (1 - self.holdout)), 2), len(z) - 2)
        dz, design = self._design(z)
        varying = np.flatnonzero(dz[1:cut].std(axis=0) > 1e-9)
        self.models_: list[tuple[int, npt.NDArray[np.intp], Ridge]] = []
        spreads = []
        for j in varying:
            cols = np.array([c for c in range(2 * n) if c % n != j], dtype=np.intp)
            model = Ridge(alpha=self.alpha).fit(design[1:cut, cols], dz[1:cut, j])
            resid = dz[cut:, j] - model.predict(design[cut:, cols])
            var = float(dz[cut:, j].var())
            if var <= 1e-12 or 1 - float(resid.var()) / var < self.min_r2:
                continue
            mad = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
            self.models_.append((int(j), cols, model))
            spreads.append(max(mad, self.min_sigma, 1e-6))
        self.sigma_ = np.array(spreads, dtype=np.float64)
        self.cut_ = cut

    def _normalized(self, x: FloatArray) -> FloatArray:
        """|residual| / robust spread, averaged over ``window`` rows, one column per tag."""
        z = self.scaler_(x)
        dz, design = self._design(z)
        out = np.zeros_like(z)
        for (j, cols, model), s in zip(self.models_, self.sigma_, strict=True):
            r = np.abs(dz[:, j] - model.predict(design[:, cols])) / s
            r[0] = 0.0  # no change is known for the first row
            out[:, j] = _causal_mean(r, self.window)
        return out

    def _score(self, x: FloatArray) -> FloatArray:
        if not self.models_:
            return np.zeros(len(x))
        return np.asarray(self._normalized(x).max(axis=1), dtype=np.float64)

    def _train_scores(self, x: FloatArray) -> FloatArray:
        # Only the held-back tail: in-sample residuals are too small to set a threshold on.
        return self._score(x)[self.cut_ :]

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        return np.asarray(self._normalized(x)[rows], dtype=np.float64)
