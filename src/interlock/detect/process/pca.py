"""PCA with Hotelling's T² and SPE (Q), the classic multivariate process-monitoring baseline.

scikit-learn fits the components; the two statistics and their combination are a few lines on
top. Each statistic is divided by its training quantile, so the score is the larger of the two
ratios and the alarm fires when either leaves its normal envelope (as in the published TEP
baseline, where the limits are 99% control limits).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from sklearn.decomposition import PCA  # type: ignore[import-untyped]

from interlock.detect.process.base import FloatArray, ProcessDetector, Standardizer

SPE_FLOOR = 1e-9  # per standardized tag: residuals below this are rounding, not process


class PCADetector(ProcessDetector):
    """T²/SPE on standardized tags. ``n_components``: an int, or a float share of variance."""

    name = "pca"

    def __init__(
        self, n_components: float = 0.9, quantile: float = 0.99, smooth: int = 1, seed: int = 0
    ) -> None:
        super().__init__(quantile, smooth)
        self.n_components = n_components
        self.seed = seed

    def _fit(self, x: FloatArray) -> None:
        self.scaler_ = Standardizer(x)
        z = self.scaler_(x)
        n = self.n_components if self.n_components < 1 else int(min(self.n_components, z.shape[1]))
        self.pca_ = PCA(n_components=n, svd_solver="full", random_state=self.seed).fit(z)
        t2, spe = self._stats(z)
        self.t2_limit_ = float(np.quantile(t2, self.quantile)) or 1.0
        # Every component kept leaves SPE at rounding noise (1e-30); a limit there would turn
        # noise into alarms, and stream and batch (summed in another order) would disagree.
        self.spe_limit_ = max(float(np.quantile(spe, self.quantile)), SPE_FLOOR * int(z.shape[1]))

    def _stats(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        t = self.pca_.transform(z)
        t2 = np.sum(t**2 / np.maximum(self.pca_.explained_variance_, 1e-12), axis=1)
        resid = z - self.pca_.inverse_transform(t)
        return t2, np.sum(resid**2, axis=1)

    def _score(self, x: FloatArray) -> FloatArray:
        t2, spe = self._stats(self.scaler_(x))
        return np.maximum(t2 / self.t2_limit_, spe / self.spe_limit_)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        # Contribution of each tag to SPE: its squared reconstruction error.
        z = self.scaler_(x[rows])
        resid = z - self.pca_.inverse_transform(self.pca_.transform(z))
        return np.asarray(resid**2, dtype=np.float64)

    def _row_scorer(self) -> Callable[[FloatArray], float]:
        """``_score`` of one raw row, for streaming: the fitted matrices once, then a few dot products."""
        if self.pca_.whiten:
            raise NotImplementedError("a whitened PCA has no row scorer")
        mean, scale = self.scaler_.mean, self.scaler_.scale
        centre = np.asarray(self.pca_.mean_, dtype=np.float64)
        comp = np.asarray(self.pca_.components_, dtype=np.float64)  # (k, tags)
        inv_var = 1.0 / np.maximum(self.pca_.explained_variance_, 1e-12)
        t2_limit, spe_limit = self.t2_limit_, self.spe_limit_

        def score(row: FloatArray) -> float:
            zc = (row - mean) / scale - centre
            t = comp @ zc
            resid = zc - t @ comp
            return max(float(t * t @ inv_var) / t2_limit, float(resid @ resid) / spe_limit)

        return score
