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
rows ago counts as new (windows of the training data always count). Streamed, the stream's
keys grow by one per watched tag a row, about 800 bytes a row on BATADAL; a horizon bounds them,
for a live monitor that runs for weeks (a day of one-second polls: ``horizon=86400``).

A window's key is a 64-bit rolling hash of its values' bits, salted per tag, so the training
windows of every tag fit in one sorted array of 8-byte keys (a table of window bytes took about
100 bytes a window: 6 GB on 400,000 rows x 70 tags) and scoring is a vectorised search.

Written by hand: neither scikit-learn, river nor PyOD has an exact-repeat detector, and a hash of
each window costs O(rows x tags) where nearest-neighbour search over all windows would not.
"""

from __future__ import annotations

from collections import deque
from functools import cache

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

    def _keys(self, col: FloatArray, j: int, w: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp]]:
        """The salted key of each non-flat ``w``-row window of tag ``j`` and the row it ends at."""
        hashes, moving = _moving_hashes(col, w)
        return _salted(hashes, j), moving + (w - 1)

    def _repeats(self, x: FloatArray) -> npt.NDArray[np.bool_]:
        """Rows x tags: True where the window ending at the row repeats one seen at least its
        length earlier, in training or earlier in ``x``.
        With ``horizon`` > 0, a window first seen in ``x`` more than ``horizon`` rows before
        counts as new again (training windows always count)."""
        rounded = _rounded(x, self.decimals)
        out = np.zeros(x.shape, dtype=np.bool_)
        for j in np.flatnonzero(self.windows_):
            w = int(self.windows_[j])
            keys, ends = self._keys(rounded[:, j], int(j), w)
            if not keys.size:
                continue
            known = _member(self.keys_, keys)
            out[ends[known], j] = True
            rest, at = keys[~known], ends[~known]
            _, first, inverse, counts = np.unique(rest, return_index=True, return_inverse=True,
                                                  return_counts=True)  # fmt: skip
            if not self.horizon:
                out[at[at - at[first[inverse]] >= w], j] = True
                continue
            # With a horizon each repeated key's occurrences are walked in order, from one sort
            # that puts them side by side (a replay makes most keys repeat).
            order = np.lexsort((at, inverse))
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for group in np.flatnonzero(counts > 1).tolist():
                since = -1
                for end in at[order[bounds[group] : bounds[group + 1]]].tolist():
                    if since < 0 or end - since > self.horizon:
                        since = end  # new, or forgotten: seen too long ago in the stream
                    elif end - since >= w:
                        out[end, j] = True
        return out

    def _fit(self, x: FloatArray) -> None:
        # Each tag watched with the shortest window it never repeats in normal data (so a repeat
        # is not chance there), or, with a fixed ``window``, that one; tags that repeat in normal
        # operation even at the longest window (schedules, on/off statuses) are left out.
        k = x.shape[1]
        sizes = [self.window] if self.window > 0 else range(self.min_window, self.max_window + 1)
        self.windows_ = np.zeros(k, dtype=np.int64)  # 0: tag not watched
        left = list(range(k))
        rounded = _rounded(x, self.decimals)
        for w in sizes:
            natural = {j: _repeats_in(rounded[:, j], w) for j in left}
            quiet = [j for j in left if not natural[j]]
            left = [j for j in left if natural[j]]
            if quiet:
                # Longer than the first quiet length: normal data without a repeat at w leaves
                # chance repeats at w in new data possible (the more so the shorter the training
                # data: TEP's 500 rows); each extra row divides their odds by the tag's number
                # of distinct values.
                self.windows_[quiet] = w + (self.margin if self.window == 0 else 0)
            if not left:
                break
        if self.window == 0:
            self._widen(rounded)
        # Every watched tag's training windows, as one sorted array of salted 64-bit keys: 8 bytes
        # a window where a table of window bytes took about 100.
        watched = np.flatnonzero(self.windows_)
        parts = [self._keys(rounded[:, j], int(j), int(self.windows_[j]))[0] for j in watched]
        self.keys_ = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        self.keys_.sort()  # a sort, not np.unique: numpy's hashing unique took 40 s on 24M keys
        self.rows_seen_ = len(x)
        self.periodic_ = self.windows_ == 0

    def _widen(self, rounded: FloatArray) -> None:
        """Windows lengthened to where a chance match is under ``chance`` (see the docstring)."""
        if not 0 < self.chance < 1:
            raise ValueError(f"chance must be in (0, 1), not {self.chance}")
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
            self.windows_[j] = size if size <= longest else 0

    def _train_scores(self, x: FloatArray) -> FloatArray:
        # Rescoring the training rows would find each window in the tables it filled; by
        # construction no kept tag repeats in training, so the threshold is 0 repeats.
        return np.zeros(len(x))

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._flags(x).sum(axis=1), dtype=np.float64)

    def _flags(self, x: FloatArray) -> npt.NDArray[np.bool_]:
        # Each scoring call looks back over training plus the frame itself, never over earlier
        # calls: scoring stays a pure function of (fitted model, frame).
        return self._repeats(x)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        return np.asarray(self._flags(x)[rows], dtype=np.float64)

    def _row_scorer(self) -> RowScorer:
        return _ReplayRows(self)


TRAINING_KEYS_IN_DICT = 4_000_000


class _ReplayRows(RowScorer):
    """``_flags`` one row at a time: the stream's windows in a dict that grows with the stream, as
    batch scoring would grow it, and the training keys in it too (at most 4 million of them; more
    are searched in their sorted array)."""

    own_blame = True

    def __init__(self, det: ReplayDetector) -> None:
        self.decimals, self.keys = det.decimals, det.keys_
        self.cols = np.flatnonzero(det.windows_)
        self.windows = det.windows_[self.cols]
        self.window_list = self.windows.tolist()
        width = int(self.windows.max(initial=1))
        # The last ``width`` value codes of each watched tag, the newest last, and per tag the
        # powers of the rolling hash over its own window (0 outside it): a window's hash is one
        # product and one sum, equal to ``_window_hashes`` on the same rows.
        self.codes = np.zeros((len(self.cols), width), dtype=np.uint64)
        self.powers = np.zeros((len(self.cols), width), dtype=np.uint64)
        for i, w in enumerate(self.windows):
            self.powers[i, width - w :] = _powers(int(w))[::-1]
        self.salts = _salts(self.cols)
        self.last = np.full(len(self.cols), np.nan)
        self.runs = np.zeros(len(self.cols), dtype=np.int64)  # rows each tag has held its value
        self.rows, self.offset = 0, det.rows_seen_
        self.tags, self.hits = len(det.tags_), list[int]()
        self.horizon = det.horizon
        # The stream's windows: salted key -> row first seen. The training keys go in too (at row
        # 0), when few enough: a dict lookup is 10 µs a row faster than a search of the sorted
        # array, and about 100 bytes a key is affordable up to a few million keys.
        self.seen: dict[int, int] = {}
        if len(det.keys_) <= TRAINING_KEYS_IN_DICT:
            self.seen = dict.fromkeys(det.keys_.tolist(), 0)
            self.keys = np.zeros(0, dtype=np.uint64)
        self.trained = len(self.seen)
        self.added: deque[tuple[int, int]] = deque()  # (row, key) in order, for the horizon

    def __call__(self, row: FloatArray) -> float:
        now = _rounded(row[self.cols], self.decimals)
        self.runs = np.where(now == self.last, self.runs + 1, 1)  # NaN starts a new run
        self.last = now
        self.codes[:, :-1] = self.codes[:, 1:]
        self.codes[:, -1] = _codes(now)
        self.rows += 1
        here = self.offset + self.rows
        keys = (self.codes * self.powers).sum(axis=1, dtype=np.uint64) ^ self.salts
        # Only windows inside the stream, as in the batch form; a flat one proves nothing.
        live = self.runs < self.windows
        if self.rows < self.codes.shape[1]:
            live &= self.windows <= self.rows
        if self.keys.size:  # training keys too many for the dict: searched in their array
            known = live & _member(self.keys, keys)
            hits, live = np.flatnonzero(known).tolist(), live & ~known
        else:
            hits = []
        if self.horizon:
            while self.added and here - self.added[0][0] > self.horizon:
                at, key = self.added.popleft()
                if self.seen.get(key) == at:
                    del self.seen[key]  # forgotten: it counts as new if it comes again
        listed, windows, seen = keys.tolist(), self.window_list, self.seen
        for i in np.flatnonzero(live).tolist():
            key = listed[i]
            first = seen.setdefault(key, here)
            if first == here and self.horizon:
                self.added.append((here, key))
            if here - first >= windows[i]:
                hits.append(i)
        self.hits = hits
        return float(len(hits))

    def blame(self) -> FloatArray:
        flags = np.zeros(self.tags, dtype=np.float64)
        flags[self.cols[self.hits]] = 1.0
        return flags


_PRIME = 0x100000001B3  # the 64-bit FNV prime: odd, so no power of it is 0 mod 2^64
@cache
def _powers(w: int) -> npt.NDArray[np.uint64]:
    """1, p, p², ... p^(w-1), mod 2^64."""
    return np.array([pow(_PRIME, k, 1 << 64) for k in range(w)], dtype=np.uint64)
_SALT = np.uint64(0x9E3779B97F4A7C15)


def _salts(cols: npt.NDArray[np.intp]) -> npt.NDArray[np.uint64]:
    """Each tag's salt (a multiple of the golden-ratio constant, wrapping), one per column."""
    return np.array([(int(_SALT) * (int(j) + 1)) % (1 << 64) for j in cols], dtype=np.uint64)


def _rounded(x: FloatArray, decimals: int) -> FloatArray:
    return np.round(x, decimals) + 0.0  # + 0.0: -0.0 and 0.0 are one reading


def _codes(values: FloatArray) -> npt.NDArray[np.uint64]:
    """Each value's bits, multiplied and folded (a nonlinear step, so the sums of the rolling
    hash do not inherit the bits' structure); cheap, because the live monitor codes every row."""
    z = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64) * _SALT
    return np.asarray(z ^ (z >> np.uint64(29)), dtype=np.uint64)


def _window_hashes(col: FloatArray, w: int) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each ``w``-row window of ``col``: sum of code(t - k) · p^k, mod 2^64.

    Two different windows share a hash with odds of about 2^-64 (the codes are mixed), so among
    a million windows of a tag a chance collision has odds under 1e-7: equality of hashes
    stands in for equality of windows, as the bytes of every window did before at 12 times
    the memory.
    """
    codes, powers = _codes(col), _powers(w)
    n = len(col) - w + 1
    out = np.zeros(n, dtype=np.uint64)
    for k in range(w):
        out += codes[w - 1 - k : w - 1 - k + n] * powers[k]
    return out


def _salted(hashes: npt.NDArray[np.uint64], j: int) -> npt.NDArray[np.uint64]:
    """Keys of tag ``j``: its salt keeps them apart from every other tag's in one array."""
    return np.asarray(hashes ^ _salts(np.array([j]))[0], dtype=np.uint64)


def _member(sorted_keys: npt.NDArray[np.uint64], keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Whether each key is in ``sorted_keys``."""
    if not sorted_keys.size:
        return np.zeros(len(keys), dtype=np.bool_)
    if len(keys) < 1000:  # a row of the live monitor
        at = np.searchsorted(sorted_keys, keys)
    else:  # sorted needles search 4 times faster: each search starts where the last one ended
        order = np.argsort(keys)
        at = np.empty(len(keys), dtype=np.intp)
        at[order] = np.searchsorted(sorted_keys, keys[order])
    return np.asarray(sorted_keys[np.minimum(at, len(sorted_keys) - 1)] == keys, dtype=np.bool_)


def _collision(values: FloatArray) -> float:
    """The chance that two values drawn from ``values`` are equal."""
    _, counts = np.unique(values, return_counts=True)
    share = counts / max(int(counts.sum()), 1)
    return float(np.sum(share**2))


MIN_MOVING = 20  # changing windows a tag needs in training before its repeats mean anything


def _moving_hashes(col: FloatArray, w: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp]]:
    """The hash of each non-flat ``w``-row window of ``col`` (a flat one repeats by nature and
    proves nothing) and where each starts."""
    if len(col) < w:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.intp)
    windows = np.lib.stride_tricks.sliding_window_view(np.ascontiguousarray(col), w)
    moving = np.flatnonzero(~np.all(windows == windows[:, :1], axis=1))
    return _window_hashes(col, w)[moving], moving


def _repeats_in(col: FloatArray, w: int) -> bool:
    """Whether a non-flat ``w``-row window of ``col`` equals one that ended >= ``w`` rows earlier
    (True, too, for a tag that barely moves: it is as unusable as one that repeats)."""
    if len(col) < w:
        return False
    keys, moving = _moving_hashes(col, w)
    if moving.size < MIN_MOVING or len(np.unique(col)) < 3:
        # Too little movement to judge (a flat tag, an on/off status that switched a few times):
        # its few changing windows being distinct says nothing of chance; not watched.
        return True
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return bool(np.any(moving - moving[first[inverse]] >= w))
