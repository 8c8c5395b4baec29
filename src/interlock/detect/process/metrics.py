"""Time-series detection metrics: point-wise P/R/F1, time to detect, the BATADAL score S.

Point-wise metrics are the headline. Point-adjusted F1 (an episode counts as wholly detected if
any of its rows alarms) is given for comparison with papers only: a random score reaches 0.97
with it on SWaT. eTaPR is in ``etapr.py`` (faster-etapr) and VUS-PR in ``vus.py``.

BATADAL (Taormina et al. 2018, J. Water Resour. Plann. Manage. 144(8)):
S = gamma * S_TTD + (1 - gamma) * S_CM, gamma = 0.5,
S_TTD = 1 - mean_i(TTD_i / duration_i), a missed attack counting its whole duration,
S_CM = (TPR + TNR) / 2. Written by hand: no maintained package implements it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int8]


@dataclass(frozen=True)
class Episode:
    """One attack: rows [start, stop), and the first alarmed row inside it (None if missed)."""

    start: int
    stop: int
    detected_at: int | None

    @property
    def duration(self) -> int:
        return self.stop - self.start

    @property
    def time_to_detect(self) -> int:
        """Rows from the attack start to the first alarm; the whole duration when missed."""
        return self.duration if self.detected_at is None else self.detected_at - self.start


@dataclass(frozen=True)
class Report:
    precision: float
    recall: float
    f1: float
    false_alarm_rate: float  # share of normal rows alarmed (1 - TNR)
    batadal_s: float
    s_ttd: float
    s_cm: float
    point_adjusted_f1: float
    episodes: tuple[Episode, ...]


def episodes(label: IntArray, alarm: IntArray | None = None, cuts: Sequence[int] = ()) -> list[Episode]:
    """The runs of 1 in ``label``, each with its first alarm; a run is also cut at each row of
    ``cuts`` (where a new simulation run starts: an attack cannot go on into the next run)."""
    out = []
    for start, stop in spans(label, cuts):
        hit = None
        if alarm is not None:
            idx = np.flatnonzero(alarm[start:stop])
            hit = int(start + idx[0]) if idx.size else None
        out.append(Episode(int(start), int(stop), hit))
    return out


def spans(flags: npt.ArrayLike, cuts: Sequence[int] = ()) -> list[tuple[int, int]]:
    """The runs of nonzero ``flags`` as half-open row spans [start, stop), each also cut at the
    rows of ``cuts`` inside it (where a new simulation run starts)."""
    padded = np.concatenate([[0], np.asarray(flags) != 0, [0]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded)).tolist()
    cut = np.asarray(sorted(cuts), dtype=np.int64)
    out: list[tuple[int, int]] = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        inside = cut[np.searchsorted(cut, start, "right") : np.searchsorted(cut, stop, "left")].tolist()
        out.extend(itertools.pairwise([start, *inside, stop]))
    return out


def merge_gaps(alarm: npt.ArrayLike, gap: int, cuts: Sequence[int] = ()) -> IntArray:
    """``alarm`` with each quiet stretch of at most ``gap`` rows between two alarms marked too.

    Alarms that close together are one episode, as an analyst reading the alerts counts them: an
    attack's trace in the sensors can dip under the limit for a few rows without the attack
    having ended. Offline, as the BATADAL competition labelled its test set: the first alarm of
    an episode never moves (the time to detect is the same) and nothing is marked past its last
    alarm. Two alarms on either side of a row of ``cuts`` (a new simulation run starts there) are
    never joined.
    """
    out: IntArray = (np.asarray(alarm) != 0).astype(np.int8)
    if gap < 1:
        return out
    cut = np.sort(np.asarray(cuts, dtype=np.int64))
    for start, stop in spans(out == 0):  # the quiet stretches [start, stop)
        # A new run starting in (start - 1, stop] parts the two alarms.
        parted = np.searchsorted(cut, stop, "right") > np.searchsorted(cut, start - 1, "right")
        if start > 0 and stop < out.size and stop - start <= gap and not parted:
            out[start:stop] = 1
    return out


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(
    label: IntArray, alarm: IntArray, gamma: float = 0.5, cuts: Sequence[int] = (),
    live: IntArray | None = None,
) -> Report:  # fmt: skip
    """Row metrics of ``alarm``; times to detect from ``live`` when given: the alarms as they were
    raised, before ``merge_gaps`` (a false alarm just before an attack must not count as its
    detection once the rows between are merged)."""
    y = np.asarray(label, dtype=bool)
    a = np.asarray(alarm, dtype=bool)
    first = a if live is None else np.asarray(live, dtype=bool)
    if y.shape != a.shape or y.shape != first.shape:
        raise ValueError(f"label and alarm lengths differ ({y.size} vs {a.size} vs {first.size})")
    tp = int(np.sum(y & a))
    fp = int(np.sum(~y & a))
    fn = int(np.sum(y & ~a))
    tn = int(np.sum(~y & ~a))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    tnr = tn / (tn + fp) if tn + fp else 1.0
    eps = episodes(y.astype(np.int8), first.astype(np.int8), cuts)
    s_ttd = 1.0 - float(np.mean([e.time_to_detect / e.duration for e in eps])) if eps else 1.0
    s_cm = (recall + tnr) / 2 if eps else tnr
    # Point adjustment: every row of a detected episode counts as detected.
    adjusted = a.copy()
    for e in eps:
        if e.detected_at is not None:
            adjusted[e.start : e.stop] = True
    tp_a = int(np.sum(y & adjusted))
    pa_p = tp_a / (tp_a + fp) if tp_a + fp else 0.0
    pa_r = tp_a / int(y.sum()) if y.any() else 0.0
    return Report(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        false_alarm_rate=1 - tnr,
        batadal_s=gamma * s_ttd + (1 - gamma) * s_cm,
        s_ttd=s_ttd,
        s_cm=s_cm,
        point_adjusted_f1=_f1(pa_p, pa_r),
        episodes=tuple(eps),
    )
