"""Streaming detection: learn and score one historian row at a time, for the live range.

``HalfSpaceTreesDetector`` wraps river's ``HalfSpaceTrees`` (Tan et al., IJCAI 2011; river is
maintained and pure Python plus numpy/scipy), so no tree code is written here. It offers both
forms: ``learn_one(row)`` / ``score_one(row)`` on a ``{tag: value}`` mapping, as a live feed
delivers it, and the batch API of ``ProcessDetector`` (``fit`` = ``learn_one`` over the training
rows; ``score`` = ``score_one`` over the rows *without* learning, so that scoring stays a pure
function of the fitted model and benchmarks cannot learn from attack rows).

Half-space trees cut the unit cube, so each tag is scaled by its training range widened by
``margin`` on both sides (``limits``); a value beyond the training range lands in an extreme
leaf, which is what makes it anomalous. river's trees give no per-tag attribution, so the blame
is the tag's distance outside (or, if inside, from the middle of) its training range.

``RowByRow`` gives the same streaming form to a fitted batch detector, so the live range can run
the detector that scored best on the benchmarks, the default ensemble included, with exactly its
batch scores. It learns nothing online. A detector with a ``_row_scorer()`` method is scored
through it: a callable (``base.RowScorer``) that takes one raw row and keeps whatever state the
score needs, with the fitted matrices prepared once: the lag rows (``pca``, ``residual``), the
filters' memory and the raw alarm episode (``cva``), each tag's current run (``frozen``), the
window hashes seen so far (``replay``), the previous row and the trees as plain lists
(``control``), or its members' own streams (``ensemble``). Any other detector falls back to a
ring buffer of the rows its score depends on (``row_memory`` or ``lags``, default 0), scoring
the newest with a batch ``_score`` over the buffer.

``OnlineMonitor`` glues any streaming detector to a live source: it assembles the latest value of
every tag polled at one plant time into a row, scores it against the threshold learned on normal
data, and optionally keeps learning on rows that did not alarm (so slow, normal drift is
absorbed while an attack is not learned).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import Alert, FloatArray, ProcessDetector, RowScorer


class StreamingDetector(Protocol):
    tags_: tuple[str, ...]
    threshold_: float

    def learn_one(self, row: Mapping[str, float]) -> None: ...

    def score_one(self, row: Mapping[str, float]) -> float: ...

    def explain_one(self, row: Mapping[str, float]) -> list[tuple[str, float]]: ...


class HalfSpaceTreesDetector(ProcessDetector):
    name = "hst"

    def __init__(
        self,
        n_trees: int = 25,
        height: int = 8,
        window_size: int = 250,
        margin: float = 0.1,
        seed: int = 0,
        quantile: float = 0.99,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.margin = margin
        self.seed = seed

    # --- streaming form ---
    def learn_one(self, row: Mapping[str, float]) -> None:
        self.model_.learn_one({t: float(row[t]) for t in self.tags_})

    def score_one(self, row: Mapping[str, float]) -> float:
        return float(self.model_.score_one({t: float(row[t]) for t in self.tags_}))

    def explain_one(self, row: Mapping[str, float]) -> list[tuple[str, float]]:
        x = np.array([[float(row[t]) for t in self.tags_]])
        w = self._blame(x, np.array([0]))[0]
        return sorted(zip(self.tags_, map(float, w), strict=True), key=lambda kv: -kv[1])

    # --- batch form ---
    def _fit(self, x: FloatArray) -> None:
        from river.anomaly import HalfSpaceTrees  # loaded on first use, as scikit-learn is

        lo, hi = x.min(axis=0), x.max(axis=0)
        span = np.where(hi - lo > 1e-12, hi - lo, 1.0)  # a constant tag gets a unit range
        self.low_ = lo - self.margin * span
        self.high_ = hi + self.margin * span
        limits: dict[Hashable, tuple[float, float]] = {
            t: (float(a), float(b)) for t, a, b in zip(self.tags_, self.low_, self.high_, strict=True)
        }
        self.model_ = cast(Any, HalfSpaceTrees)(
            n_trees=self.n_trees,
            height=self.height,
            window_size=self.window_size,
            limits=limits,
            seed=self.seed,
        )
        for row in x:
            self.model_.learn_one(dict(zip(self.tags_, map(float, row), strict=True)))

    def _score(self, x: FloatArray) -> FloatArray:
        score = self.model_.score_one
        return np.array([score(dict(zip(self.tags_, map(float, row), strict=True))) for row in x])

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        v = x[rows]
        span = self.high_ - self.low_
        outside = np.maximum(self.low_ - v, 0) + np.maximum(v - self.high_, 0)
        centre = np.abs(v - (self.low_ + self.high_) / 2) / span
        # Outside the training range dominates; inside, the distance from the middle ranks tags.
        return np.asarray(np.where(outside > 0, 1 + outside / span, centre), dtype=np.float64)


class RowByRow:
    """A fitted batch detector scored one row at a time (see the module docstring).

    ``memory``: rows before the current one the score depends on (``lags`` for ``residual``,
    0 for a row-wise detector); ``smooth`` is applied as in batch scoring. ``fast``: score through
    the detector's ``_row_scorer`` when it has one (and ``memory`` is its own); ``False`` forces
    the generic path.
    """

    def __init__(self, detector: ProcessDetector, memory: int | None = None, fast: bool = True) -> None:
        if not hasattr(detector, "threshold_"):
            raise ValueError(f"{type(detector).__name__} is not fitted: call fit(train) first")
        self.detector = detector
        own = int(getattr(detector, "row_memory", getattr(detector, "lags", 0)))
        self.memory = own if memory is None else memory
        self.tags_ = detector.tags_
        self.threshold_ = detector.threshold_
        self._rows: deque[FloatArray] = deque(maxlen=self.memory + 1)
        make = getattr(detector, "_row_scorer", None)
        self._scorer: Callable[[FloatArray], float] | None = (
            make() if fast and make is not None and self.memory == own else None
        )
        smoothed = bool(getattr(self._scorer, "smoothed", False))
        self._raw: deque[float] = deque(maxlen=1 if smoothed else max(1, detector.smooth))
        # A scorer that blames its own last row needs no buffer of rows.
        scorer = self._scorer
        self._blamer = scorer if isinstance(scorer, RowScorer) and scorer.own_blame else None
        self._scored = 0

    def _vector(self, row: Mapping[str, float]) -> FloatArray:
        return np.array([float(row[t]) for t in self.tags_])

    def learn_one(self, row: Mapping[str, float]) -> None:
        """A fixed model: nothing is learned online."""

    def score_one(self, row: Mapping[str, float]) -> float:
        return self.score_row(self._vector(row))

    def score_row(self, v: FloatArray) -> float:
        """``score_one`` of a row already in tag order."""
        self._scored += 1
        if self._blamer is None:
            self._rows.append(v)  # weights() reads the window
        if self._scorer is not None:
            raw = _finite(self._scorer(v))
        else:
            x = np.vstack(self._rows)
            raw = float(np.nan_to_num(self.detector._score(x)[-1], nan=0.0, posinf=1e12, neginf=0.0))
        if self._raw.maxlen == 1:
            return raw
        self._raw.append(raw)
        return sum(self._raw) / len(self._raw)

    def weights(self) -> FloatArray:
        """The tags' blame at the last row scored."""
        if self._blamer is not None:
            return np.asarray(self._blamer.blame(), dtype=np.float64)
        x = np.vstack(self._rows)  # the ring buffer holds the last row (score_row came first)
        return np.asarray(self.detector._blame(x, np.array([len(x) - 1]))[0], dtype=np.float64)

    def explain_one(self, row: Mapping[str, float]) -> list[tuple[str, float]]:
        """The blame at the row just scored (``score_one(row)`` comes first, as in OnlineMonitor;
        a stream not started yet scores ``row`` first)."""
        if not self._scored:
            self.score_one(row)
        return sorted(zip(self.tags_, map(float, self.weights()), strict=True), key=lambda kv: -kv[1])


def _finite(score: float) -> float:
    """As ``np.nan_to_num`` in batch scoring: NaN and -inf to 0, +inf to 1e12."""
    if score != score or score == -np.inf:
        return 0.0
    return 1e12 if score == np.inf else score


@dataclass
class OnlineMonitor:
    """Score rows as a live feed delivers them; alert above the training threshold.

    ``adapt``: keep learning on rows that did not alarm (absorbs slow normal drift).
    """

    detector: StreamingDetector
    adapt: bool = False

    def __post_init__(self) -> None:
        self.rows_scored = 0

    def update(self, row: Mapping[str, float], at: int | None = None) -> Alert | None:
        """Score one complete row ``{tag: value}``; an ``Alert`` when it exceeds the threshold."""
        score = self.detector.score_one(row)
        index = self.rows_scored if at is None else at
        self.rows_scored += 1
        if score <= self.detector.threshold_:
            if self.adapt:
                self.detector.learn_one(row)
            return None
        ranked = [kv for kv in self.detector.explain_one(row)[:3] if kv[1] > 0]
        tags = tuple(t for t, _ in ranked)
        why = ", ".join(f"{t} {w:.3g}" for t, w in ranked)
        return Alert(index, score, tags, f"stream: {why}")

    def feed(self, records: Iterable[Mapping[str, Any]], source: str = "hmi") -> list[Alert]:
        """Historian records (``plant_time_s``, ``tag``, ``value``, ``source``) in time order.

        A row is scored when the plant time moves on and every tag has been seen; the row index
        of an alert is the count of rows scored before it.
        """
        latest: dict[str, float] = {}
        current: float | None = None
        alerts: list[Alert] = []
        tags = set(self.detector.tags_)

        def flush() -> None:
            if tags <= latest.keys():
                alert = self.update(latest)
                if alert is not None:
                    alerts.append(alert)

        for rec in records:
            if rec.get("source", source) != source or rec["tag"] not in tags:
                continue
            t = float(rec["plant_time_s"])
            if current is not None and t != current:
                flush()
            current = t
            latest[str(rec["tag"])] = float(rec["value"])
        if current is not None:
            flush()
        return alerts
