"""Replay detection: a sensor stream that repeats, value for value, a window seen before.

Stuxnet-style attacks record a stretch of normal sensor values and play it back to hide the
manipulation. Real measurements carry noise, so an exact (to the historian's resolution) repeat
of a long, non-flat window is very unlikely unless someone replays it. Each tag's windows of
w rows are rounded to ``decimals`` and hashed; a window whose hash was seen at least w rows
earlier (in training or earlier in the scored data) is a repeat. How long is long enough
depends on the tag: a noisy pressure never repeats 3 rows, a slow level may repeat 6. So each
tag gets the shortest window (``min_window`` .. ``max_window``) that never repeats in the normal
training data, plus ``margin`` rows: the chance of a false repeat is set from normal data, not
from attacks, and a replay is found after w rows rather than after the longest window.
``window`` > 0 fixes one window for all. Tags that repeat in normal data even at
``max_window`` (schedules, on/off statuses, flat lines) cannot reveal a replay and are left
out. The score is the number of tags repeating at a row.

A short training file says little about chance: TEP's 500 rows hold no repeat of 3 rows of an
analyser sampled every 5 rows, yet its 960-row normal test run repeated such windows (0.94% of
its rows alarmed). So the window is also at least the length at which the estimated chance of
two given windows being equal is under ``chance``: the tag's collision probability (the sum
of squared value frequencies) times that of its one-row steps for each further row, as if
steps were independent. A held value makes the zero step frequent, so a sample-and-hold tag
needs a long window, or is left out when that is over ``max_window`` + ``margin``.

``horizon`` (rows, 0 = none): a window first seen in the scored stream more than ``horizon``
rows ago counts as new (windows of the training data always count). Streamed, the tables keep
one key per watched tag a row, about 5 kB a row on BATADAL; a horizon bounds them, for a live
monitor that runs for weeks (a day of one-second polls: ``horizon=86400``).

Written by hand: neither scikit-learn, river nor PyOD has an exact-repeat detector, and a hash of
each window costs O(rows x tags) where nearest-neighbour search over all windows would not.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, ProcessDetector, RowScorer


class ReplayDetector(ProcessDetector):
    name = "replay"

    def __init__(
        self,
        window: int = 0,
        decimals: int = 3,
        min_window: int = 3,
        max_window: int = 12,
        margin: int = 2,
        chance: float = 1e-12,
        horizon: int = 0,
        quantile: float = 1.0,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.window = window  # rows; 0: each tag its own (see _fit)
        self.decimals = decimals
        self.min_window = min_window
        self.max_window = max_window
        self.margin = margin
        self.chance = chance
        self.horizon = horizon

    def _repeats(
        self, x: FloatArray, tables: dict[int, dict[bytes, int]], w: int, offset: int, horizon: int = 0
    ) -> npt.NDArray[np.bool_]:
        """Rows x tags: True where the ``w``-row window ending at the row repeats an earlier one.

        ``tables`` maps a column to its window hashes (first position seen); only its columns are
        looked at, and it is updated in place. ``horizon`` > 0: a window first seen in the scored
        rows (after ``offset``) more than ``horizon`` rows ago counts as new again.
        """
        rounded = np.round(x, self.decimals)
        n = rounded.shape[0]
        out = np.zeros(rounded.shape, dtype=np.bool_)
        for j, table in tables.items():
            col = np.ascontiguousarray(rounded[:, j])
            for end in range(w, n + 1):
                win = col[end - w : end]
                if win[0] == win[-1] and np.all(win == win[0]):
                    continue  # a flat window repeats by nature and proves nothing
                key = win.tobytes()
                here = offset + end
                first = table.setdefault(key, here)
                if horizon and first > offset and here - first > horizon:
                    table[key] = first = here  # forgotten: seen too long ago in the stream
                if here - first >= w:
                    out[end - 1, j] = True
        return out

    def _fit(self, x: FloatArray) -> None:
        # Each tag watched with the shortest window it never repeats in normal data (so a repeat
        # is not chance there), or, with a fixed ``window``, that one; tags that repeat in normal
        # operation even at the longest window (schedules, on/off statuses) are left out.
        k = x.shape[1]
        sizes = [self.window] if self.window > 0 else range(self.min_window, self.max_window + 1)
        self.windows_ = np.zeros(k, dtype=np.int64)  # 0: tag not watched
        self.tables_: dict[int, dict[int, dict[bytes, int]]] = {}
        left = list(range(k))
        rounded = np.round(x, self.decimals)
        for w in sizes:
            natural = {j: _repeats_in(rounded[:, j], w) for j in left}
            quiet = [j for j in left if not natural[j]]
            left = [j for j in left if natural[j]]
            if quiet:
                # Longer than the first quiet length: normal data without a repeat at w leaves
                # chance repeats at w in new data possible (the more so the shorter the training
                # data: TEP's 500 rows); each extra row divides their odds by the tag's number
                # of distinct values.
                size = w + (self.margin if self.window == 0 else 0)
                self.windows_[quiet] = size
                self._grow(x, quiet, size)
            if not left:
                break
        if self.window == 0:
            self._widen(x)
        self.rows_seen_ = len(x)
        self.periodic_ = self.windows_ == 0

    def _widen(self, x: FloatArray) -> None:
        """Windows lengthened to where a chance match is under ``chance`` (see the docstring)."""
        if not 0 < self.chance < 1:
            raise ValueError(f"chance must be in (0, 1), not {self.chance}")
        rounded = np.round(x, self.decimals)
        longest = self.max_window + self.margin
        for j in np.flatnonzero(self.windows_):
            value = _collision(rounded[:, j])
            step = _collision(np.round(np.diff(rounded[:, j]), self.decimals))
            # log(value) + (w - 1) log(step) <= log(chance); a step that always repeats never gets there
            need = np.log(self.chance) - np.log(value)
            if need >= 0:
                continue  # one value alone is rarer than ``chance``
            # A step that always repeats (a counter, a ramp) never gets there: left out.
            w = 1 + need / np.log(step) if step < 1 else np.inf
            size = longest + 1 if w > longest else max(int(self.windows_[j]), int(np.ceil(w - 1e-9)))
            if size == self.windows_[j]:
                continue
            self.tables_[int(self.windows_[j])].pop(int(j), None)
            self.windows_[j] = size if size <= longest else 0
            if size <= longest:
                self._grow(x, [int(j)], size)
        self.tables_ = {w: t for w, t in self.tables_.items() if t}

    def _grow(self, x: FloatArray, cols: list[int], w: int) -> None:
        """The training windows of ``cols`` at length ``w``, hashed for scoring."""
        tables = self.tables_.setdefault(w, {})
        fresh: dict[int, dict[bytes, int]] = {j: {} for j in cols}
        self._repeats(x, fresh, w, 0)
        tables.update(fresh)

    def _train_scores(self, x: FloatArray) -> FloatArray:
        # Rescoring the training rows would find each window in the tables it filled; by
        # construction no kept tag repeats in training, so the threshold is 0 repeats.
        return np.zeros(len(x))

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._flags(x).sum(axis=1), dtype=np.float64)

    def _flags(self, x: FloatArray) -> npt.NDArray[np.bool_]:
        # Each scoring call looks back over training plus the frame itself, never over earlier
        # calls: scoring stays a pure function of (fitted model, frame).
        flags = np.zeros(x.shape, dtype=np.bool_)
        for w, tables in self.tables_.items():
            copies = {j: dict(t) for j, t in tables.items()}
            flags |= self._repeats(x, copies, w, self.rows_seen_, self.horizon)
        return flags

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        return np.asarray(self._flags(x)[rows], dtype=np.float64)

    def _row_scorer(self) -> RowScorer:
        return _ReplayRows(self)


class _ReplayRows(RowScorer):
    """``_flags`` one row at a time: copies of the training tables grow with the stream, as the
    batch scoring of the whole stream would grow them."""

    own_blame = True

    def __init__(self, det: ReplayDetector) -> None:
        self.decimals, self.offset = det.decimals, det.rows_seen_
        width = max(det.tables_, default=1)
        watched = sorted((j, w) for w, tables in det.tables_.items() for j in tables)
        self.cols = np.array([j for j, _ in watched], dtype=np.intp)
        self.windows = np.array([w for _, w in watched], dtype=np.int64)
        # per watched tag: its window length, its table, and where its window sits in the bytes
        # of the block of last rows (8 bytes a value, the newest last)
        self.watch = [
            (i, w, dict(det.tables_[w][j]), 8 * (i * width + width - w), 8 * (i + 1) * width)
            for i, (j, w) in enumerate(watched)
        ]  # fmt: skip
        # The last rows, one line per tag, so a tag's window is a contiguous slice.
        self.recent = np.full((len(det.tags_), width), np.nan)
        self.runs = np.zeros(len(det.tags_), dtype=np.int64)  # rows each tag has held its value
        self.rows = 0
        self.flags = np.zeros(len(det.tags_), dtype=np.bool_)
        self.horizon = det.horizon
        self.added: deque[tuple[int, dict[bytes, int], bytes]] = deque()  # (row, table, key) in order

    def __call__(self, row: FloatArray) -> float:
        now = np.round(row, self.decimals)
        self.runs = np.where(now == self.recent[:, -1], self.runs + 1, 1)  # NaN starts a new run
        self.recent[:, :-1] = self.recent[:, 1:]
        self.recent[:, -1] = now
        self.rows += 1
        here, rows = self.offset + self.rows, self.rows
        block = self.recent[self.cols].tobytes()  # one copy of every watched tag's last rows
        # Only windows inside the stream, as in the batch form; a flat one proves nothing.
        skip = ((self.runs[self.cols] >= self.windows) | (self.windows > rows)).tolist()
        if self.horizon:
            hits = self._bounded(here, block, skip)
        else:
            hits = [
                i for i, w, table, lo, hi in self.watch
                if not skip[i] and here - table.setdefault(block[lo:hi], here) >= w
            ]  # fmt: skip
        self.flags = np.zeros_like(self.flags)
        self.flags[self.cols[hits]] = True
        return float(len(hits))

    def _bounded(self, here: int, block: bytes, skip: list[bool]) -> list[int]:
        """The hits with a ``horizon``: windows the stream added more than ``horizon`` rows ago are
        dropped from the tables (the memory stays bounded) and count as new if they come again."""
        while self.added and here - self.added[0][0] > self.horizon:
            at, table, key = self.added.popleft()
            if table.get(key) == at:
                del table[key]
        hits = []
        for i, w, table, lo, hi in self.watch:
            if skip[i]:
                continue
            key = block[lo:hi]
            first = table.get(key)
            if first is None:
                table[key] = here
                self.added.append((here, table, key))
            elif here - first >= w:
                hits.append(i)
        return hits

    def blame(self) -> FloatArray:
        return self.flags.astype(np.float64)


def _collision(values: FloatArray) -> float:
    """The chance that two values drawn from ``values`` are equal."""
    _, counts = np.unique(values, return_counts=True)
    share = counts / max(int(counts.sum()), 1)
    return float(np.sum(share**2))


MIN_MOVING = 20  # changing windows a tag needs in training before its repeats mean anything


def _repeats_in(col: FloatArray, w: int) -> bool:
    """Whether a non-flat ``w``-row window of ``col`` equals one that started >= ``w`` rows earlier
    (True, too, for a tag that barely moves: it is as unusable as one that repeats).

    The same test as ``ReplayDetector._repeats`` on one column, vectorised for fitting: every
    window length is tried on every tag there.
    """
    if len(col) < w:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(np.ascontiguousarray(col), w)
    moving = np.flatnonzero(~np.all(windows == windows[:, :1], axis=1))
    if moving.size < MIN_MOVING or len(np.unique(col)) < 3:
        # Too little movement to judge (a flat tag, an on/off status that switched a few times):
        # its few changing windows being distinct says nothing of chance; not watched.
        return True
    keys = np.ascontiguousarray(windows[moving]).view(np.dtype((np.void, 8 * w))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return bool(np.any(moving - moving[first[inverse]] >= w))
