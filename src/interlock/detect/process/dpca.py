"""Dynamic PCA (Ku, Storer and Georgakis 1995): PCA on each row beside its ``lags`` past rows.

Plain PCA treats rows as independent; a controlled process is autocorrelated, so its normal
variation is only captured once the past rows sit beside the current one (the "time-lagged
data matrix"). Monitoring is the classic pair: Hotelling's T² on the retained scores and SPE (Q)
on the residual, each divided by its limit, the score being the larger ratio.

Limits are set out of sample, which an in-sample quantile is not: the normal training rows are
cut into ``folds`` contiguous blocks, each block scored by a model fitted on the other blocks,
and the ``quantile`` of those held-out statistics is each statistic's limit (the final model is
then fitted on every row). ``persist=k`` keeps an alarm only once the combined ratio has stayed
above the threshold for k consecutive rows (the score is its running minimum over k rows): a
standard way to cut isolated false alarms at the price of k - 1 rows of delay. The threshold on
that score is again the quantile of the held-out normal scores. No fault or attack data is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, ProcessDetector, Standardizer

M = TypeVar("M")  # a detector's fitted model


def lagged(z: FloatArray, lags: int) -> FloatArray:
    """Each row beside its ``lags`` predecessors, newest first; the first rows repeat row 0."""
    n, p = z.shape
    out = np.empty((n, (lags + 1) * p), dtype=np.float64)  # filled in place: no stacked copies
    out[:, :p] = z
    for k in range(1, lags + 1):
        block = out[:, k * p : (k + 1) * p]
        block[k:] = z[: max(n - k, 0)]
        block[: min(k, n)] = z[:1]
    return out


def running_min(x: FloatArray, k: int) -> FloatArray:
    """The minimum of each row and its k - 1 predecessors (fewer at the start): causal."""
    if k <= 1:
        return x
    out = np.array(x, copy=True)
    for i in range(1, k):
        out[i:] = np.minimum(out[i:], x[:-i])
    return out


def out_of_sample(
    x: FloatArray, folds: int, min_rows: int, fit: Callable[[FloatArray], M],
    stats: Callable[[M, FloatArray, int], FloatArray], models: dict[tuple[int, int], M] | None = None,
) -> FloatArray:  # fmt: skip
    """Statistics of every row from a model that did not see its block (blocked K-fold).

    ``fit(rows)`` returns a model; ``stats(model, x, start)`` returns the statistics (rows x s)
    of ``x`` scored with that model, whose first ``start`` rows only provide lagged history.
    Statistics are causal, so each block is scored on the rows up to its end only. ``models``
    keeps the fold models between calls on the same ``x`` (cva's two passes).
    """
    if folds < 2 or len(x) < folds * min_rows:
        model = fit(x)
        return stats(model, x, 0)
    edges = np.linspace(0, len(x), folds + 1).astype(int)
    out = []
    for a, b in itertools.pairwise(edges):
        key = (int(a), int(b))
        if models is not None and key in models:
            model = models[key]
        else:
            model = fit(np.vstack([x[:a], x[b:]]))
            if models is not None:
                models[key] = model
        out.append(stats(model, x[:b], a)[a:b])
    return np.vstack(out)


class HeldOutLimits(ProcessDetector, Generic[M]):
    """Detectors judged by several statistics (T2, SPE, ...), each with a limit at its
    ``quantile`` over held-out normal data (``out_of_sample``); the score is the largest
    statistic over its limit, kept only after ``persist`` rows in a row. Subclasses give
    ``_model``, ``_stats_of``, the smallest fold (``_min_fold_rows``) and the fields
    ``folds``, ``quantile``, ``persist``."""

    folds: int
    quantile: float
    persist: int
    model_: M

    def _model(self, x: FloatArray) -> M:
        raise NotImplementedError

    def _stats_of(self, model: M, x: FloatArray, start: int = 0) -> FloatArray:
        raise NotImplementedError

    def _min_fold_rows(self) -> int:
        raise NotImplementedError

    def _fit(self, x: FloatArray) -> None:
        held_out = out_of_sample(x, self.folds, self._min_fold_rows(), self._model, self._stats_of,
                                 getattr(self, "_fold_models", None))  # fmt: skip
        self.limits_ = np.maximum(np.quantile(held_out, self.quantile, axis=0), 1e-12)
        self.model_ = self._model(x)
        self.held_out_ = self._combine(held_out)

    def _combine(self, stats: FloatArray) -> FloatArray:
        return running_min(np.asarray((stats / self.limits_).max(axis=1), dtype=np.float64), self.persist)

    def _score(self, x: FloatArray) -> FloatArray:
        return self._combine(self._stats_of(self.model_, x))

    def _train_scores(self, x: FloatArray) -> FloatArray:
        return self.held_out_


class DynamicPCADetector(HeldOutLimits[tuple[Standardizer, FloatArray, FloatArray, FloatArray]]):
    """T²/SPE on standardized tags and their ``lags`` past rows.

    ``n_components``: an int, or a float share of the lagged variance to keep.
    """

    name = "dpca"

    def __init__(
        self,
        lags: int = 2,
        n_components: float = 0.9,
        folds: int = 5,
        persist: int = 1,
        quantile: float = 0.99,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.lags = lags
        self.n_components = n_components
        self.folds = folds
        self.persist = persist

    @property
    def row_memory(self) -> int:
        """Rows before the current one its score reads: the lags, and ``persist`` - 1 scores back."""
        return self.lags + self.persist - 1

    # A fitted model: scaler, mean, loadings (features x k), variances of the k scores.
    def _model(self, x: FloatArray) -> tuple[Standardizer, FloatArray, FloatArray, FloatArray]:
        scaler = Standardizer(x)
        a = lagged(scaler(x), self.lags)[self.lags :]
        mean = a.mean(axis=0)
        _, s, vt = np.linalg.svd(a - mean, full_matrices=False)
        var = s**2 / max(len(a) - 1, 1)
        if self.n_components < 1:
            share = np.cumsum(var) / max(float(var.sum()), 1e-12)
            k = int(np.searchsorted(share, self.n_components) + 1)
        else:
            k = int(self.n_components)
        k = max(1, min(k, len(var)))
        return scaler, mean, vt[:k].T, np.maximum(var[:k], 1e-12)

    def _stats_of(
        self, model: tuple[Standardizer, FloatArray, FloatArray, FloatArray], x: FloatArray, start: int = 0
    ) -> FloatArray:
        scaler, mean, p, var = model
        a = lagged(scaler(x), self.lags) - mean
        t = a @ p
        resid = a - t @ p.T
        return np.column_stack([np.sum(t**2 / var, axis=1), np.sum(resid**2, axis=1)])

    def _min_fold_rows(self) -> int:
        return 2 * self.lags + 10

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        # Each tag's share of SPE, summed over its lagged copies.
        scaler, mean, p, _ = self.model_
        a = lagged(scaler(x), self.lags) - mean
        resid = a - (a @ p) @ p.T
        per = resid[rows] ** 2
        return np.asarray(per.reshape(len(rows), self.lags + 1, x.shape[1]).sum(axis=1), dtype=np.float64)
