"""The one API of the process detectors: fit on normal data, score each time step, explain.

Every detector follows the scikit-learn estimator conventions (parameters stored unchanged in
``__init__``, learned state ending in ``_``) so that ``clone`` and ``get_params`` work without
per-class code, and one shared test suite covers them all. Scores are "higher is more
anomalous"; the alarm threshold is a quantile of the scores on the *normal training data*, so no
test label ever sets it.
"""

from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Frame:
    """Historian data: one row per time step, one column per tag, and the label if known."""

    tags: tuple[str, ...]
    values: FloatArray  # shape (rows, len(tags))
    timestamps: tuple[str, ...] | None = None
    label: npt.NDArray[np.int8] | None = None  # 1 = attack/fault, 0 = normal
    # Several simulation runs in one file (the Rieth et al. TEP set's simulationRun): the run of
    # each row. Each run is scored from a fresh start, as its own file would be.
    runs: npt.NDArray[np.int64] | None = None
    # The label column's own number per row when it names several kinds of fault (TEP's
    # faultNumber 1..20), for a result per kind.
    kinds: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.tags):
            raise ValueError(f"values of shape {self.values.shape} do not match {len(self.tags)} tags")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def rows(self, start: int, stop: int) -> Frame:
        """A slice of the rows, labels and timestamps kept in step."""
        return Frame(
            self.tags,
            self.values[start:stop],
            self.timestamps[start:stop] if self.timestamps is not None else None,
            self.label[start:stop] if self.label is not None else None,
            self.runs[start:stop] if self.runs is not None else None,
            self.kinds[start:stop] if self.kinds is not None else None,
        )

    def run_bounds(self) -> list[tuple[int, int]]:
        """Row ranges of the runs, in order (one range when the frame has no runs)."""
        if self.runs is None or len(self) == 0:
            return [(0, len(self))]
        cuts = np.flatnonzero(np.diff(self.runs) != 0) + 1
        edges = [0, *cuts.tolist(), len(self)]
        return list(itertools.pairwise(edges))


@dataclass(frozen=True)
class Alert:
    """One alarmed time step: its score, the tags blamed (worst first) and why."""

    row: int
    score: float
    tags: tuple[str, ...]
    explanation: str


class NotFittedError(RuntimeError):
    """score or explain was called before fit."""


class RowScorer:
    """A fitted detector's raw score of one row at a time, with whatever state its score needs
    (lag rows, filter memory, run lengths, window hashes), as ``_row_scorer()`` returns it:
    fed a stream from its first row, it gives exactly ``_score`` of that stream, row by row.

    ``smoothed``: the score already carries the detector's ``smooth`` (an ensemble, whose
    members smooth their own). ``own_blame``: ``blame()`` gives the tags' weights at the last
    row, as ``_blame`` would; otherwise the caller keeps the rows it needs and asks ``_blame``.
    """

    smoothed = False
    own_blame = False

    def __call__(self, row: FloatArray) -> float:
        raise NotImplementedError

    def blame(self) -> FloatArray | None:
        return None


class ProcessDetector:
    """Base class: subclasses implement ``_fit``, ``_score`` and ``_blame``.

    ``quantile`` sets the threshold on training scores; ``smooth`` averages the raw score over
    that many past rows (causal, so an online detector could do the same), which trades a
    little time to detect for far fewer isolated false alarms on noisy plants.
    """

    name = "base"

    def __init__(self, quantile: float = 0.99, smooth: int = 1) -> None:
        self.quantile = quantile
        self.smooth = smooth

    # --- estimator plumbing (as sklearn.base.BaseEstimator, without the dependency on it) ---
    def get_params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def clone(self) -> Self:
        """A fresh, unfitted detector with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- the API ---
    def fit(self, train: Frame) -> Self:
        if len(train) < 2:
            raise ValueError("training data needs at least 2 rows")
        self.tags_ = train.tags
        self._fit(train.values)
        train_scores = _causal_mean(self._train_scores(train.values), self.smooth)
        self.threshold_ = float(np.quantile(train_scores, self.quantile))
        return self

    def score(self, frame: Frame) -> FloatArray:
        """One anomaly score per row (higher is more anomalous), finite."""
        self._check(frame)
        raw = np.nan_to_num(self._score(frame.values), nan=0.0, posinf=1e12, neginf=0.0)
        return _causal_mean(raw, self.smooth)

    def predict(self, frame: Frame) -> npt.NDArray[np.int8]:
        """1 where the score exceeds the threshold learned on normal data."""
        return (self.score(frame) > self.threshold_).astype(np.int8)

    def alerts(self, frame: Frame, limit: int | None = None) -> list[Alert]:
        """The alarmed rows with the tags blamed, worst first within each row."""
        scores = self.score(frame)
        rows = np.flatnonzero(scores > self.threshold_)[:limit]
        if not rows.size:
            return []
        blame = self._blame(frame.values, rows)
        out = []
        for row, weights in zip(rows, blame, strict=True):
            order = [i for i in np.argsort(-weights)[:3] if weights[i] > 0] or [int(np.argmax(weights))]
            tags = tuple(self.tags_[i] for i in order)
            why = ", ".join(f"{self.tags_[i]} {weights[i]:.3g}" for i in order)
            out.append(Alert(int(row), float(scores[row]), tags, f"{self.name}: {why}"))
        return out

    def explain(self, frame: Frame, row: int) -> list[tuple[str, float]]:
        """Every tag with its share of the blame at one row, worst first."""
        self._check(frame)
        weights = self._blame(frame.values, np.array([row]))[0]
        return sorted(zip(self.tags_, map(float, weights), strict=True), key=lambda kv: -kv[1])

    def _check(self, frame: Frame) -> None:
        if not hasattr(self, "tags_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(train) first")
        if frame.tags != self.tags_:
            missing = sorted(set(self.tags_) - set(frame.tags))
            raise ValueError(f"tags differ from training (missing: {', '.join(missing) or 'none'})")

    # --- what each detector supplies ---
    def _fit(self, x: FloatArray) -> None:
        raise NotImplementedError

    def _score(self, x: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _train_scores(self, x: FloatArray) -> FloatArray:
        """Scores of the training rows, from which the threshold is taken."""
        return np.nan_to_num(self._score(x), nan=0.0, posinf=1e12, neginf=0.0)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        """Per-tag weights, shape (len(rows), tags)."""
        raise NotImplementedError


def typed_param(default: Any, value: str) -> Any:
    """``value`` (text from the command line) as the type of the parameter's ``default``.

    Raises ValueError naming the problem: not a number, or not a whole number for an int (a
    window of 3.7 rows must not silently become 3).
    """
    if isinstance(default, bool):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on", "1.0"):
            return True
        if text in ("0", "false", "no", "off", "0.0"):
            return False
        raise ValueError(f"{value!r} is not true/false (or 1/0)")
    if isinstance(default, int | float):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if isinstance(default, int):
            if not number.is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            return int(number)
        return number
    return value


def _causal_mean(x: FloatArray, window: int) -> FloatArray:
    if window <= 1:
        return x
    c = np.cumsum(np.concatenate([[0.0], x]))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return np.asarray((c[idx] - c[lo]) / (idx - lo), dtype=np.float64)


class Standardizer:
    """Mean/scale of normal data; a constant tag keeps scale 1 so it cannot divide by zero."""

    def __init__(self, x: FloatArray) -> None:
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.scale = np.where(std > 1e-12, std, 1.0)

    def __call__(self, x: FloatArray) -> FloatArray:
        return np.asarray((x - self.mean) / self.scale, dtype=np.float64)
