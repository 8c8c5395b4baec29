"""Replay detection: a sensor stream that repeats, value for value, a window seen before.

Stuxnet-style attacks record a stretch of normal sensor values and play it back to hide the
manipulation. Real measurements carry noise, so an exact (to the historian's resolution) repeat
of a long, non-flat window is very unlikely unless someone replays it. Each tag's windows of
``window`` rows are rounded to ``decimals`` and hashed; a window whose hash was seen at least
``window`` rows earlier (in training or earlier in the scored data) is a repeat. Tags whose
windows repeat in normal data (schedules, on/off statuses, flat lines) cannot reveal a replay
and are left out at fit time. The score is the number of tags repeating at a row.

Written by hand: neither scikit-learn, river nor PyOD has an exact-repeat detector, and a hash of
each window costs O(rows x tags) where nearest-neighbour search over all windows would not.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, ProcessDetector


class ReplayDetector(ProcessDetector):
    name = "replay"

    def __init__(self, window: int = 12, decimals: int = 3, quantile: float = 1.0, smooth: int = 1) -> None:
        super().__init__(quantile, smooth)
        self.window = window
        self.decimals = decimals

    def _repeats(self, x: FloatArray, seen: list[dict[bytes, int]] | None) -> npt.NDArray[np.bool_]:
        """Rows x tags: True where the window ending at the row repeats an earlier window."""
        rounded = np.round(x, self.decimals)
        n, k = rounded.shape
        out = np.zeros((n, k), dtype=np.bool_)
        tables = seen if seen is not None else [{} for _ in range(k)]
        offset = self.rows_seen_ if seen is not None else 0
        w = self.window
        for j in range(k):
            table = tables[j]
            col = np.ascontiguousarray(rounded[:, j])
            for end in range(w, n + 1):
                win = col[end - w : end]
                if win[0] == win[-1] and np.all(win == win[0]):
                    continue  # a flat window repeats by nature and proves nothing
                key = win.tobytes()
                here = offset + end
                first = table.setdefault(key, here)
                if here - first >= w:
                    out[end - 1, j] = True
        return out

    def _fit(self, x: FloatArray) -> None:
        self.rows_seen_ = 0
        self.tables_: list[dict[bytes, int]] = [{} for _ in range(x.shape[1])]
        natural = self._repeats(x, self.tables_)
        self.rows_seen_ = len(x)
        self.periodic_ = natural.any(axis=0)  # tags that repeat in normal operation

    def _train_scores(self, x: FloatArray) -> FloatArray:
        # Rescoring the training rows would find each window in the tables it filled; by
        # construction no kept tag repeats in training, so the threshold is 0 repeats.
        return np.zeros(len(x))

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._flags(x).sum(axis=1), dtype=np.float64)

    def _flags(self, x: FloatArray) -> npt.NDArray[np.bool_]:
        # Each scoring call looks back over training plus the frame itself, never over earlier
        # calls: scoring stays a pure function of (fitted model, frame).
        tables = [dict(t) for t in self.tables_]
        flags = self._repeats(x, tables)
        flags[:, self.periodic_] = False
        return flags

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        return np.asarray(self._flags(x)[rows], dtype=np.float64)
