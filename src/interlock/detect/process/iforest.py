"""Isolation Forest (scikit-learn): the learned multivariate baseline of TSB-AD.

Trees isolate rare points in few splits; the score is the negated ``score_samples``. Isolation
Forest gives no per-tag attribution, so the blame is each tag's distance from its training
mean in standard deviations, which is what an operator checks first.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]

from interlock.detect.process.base import FloatArray, ProcessDetector, Standardizer


class IsolationForestDetector(ProcessDetector):
    name = "iforest"

    def __init__(
        self, n_estimators: int = 200, quantile: float = 0.99, smooth: int = 1, seed: int = 0
    ) -> None:
        super().__init__(quantile, smooth)
        self.n_estimators = n_estimators
        self.seed = seed

    def _fit(self, x: FloatArray) -> None:
        self.scaler_ = Standardizer(x)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed, n_jobs=1).fit(
            self.scaler_(x)
        )

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray(-self.forest_.score_samples(self.scaler_(x)), dtype=np.float64)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        return np.abs(self.scaler_(x[rows]))
