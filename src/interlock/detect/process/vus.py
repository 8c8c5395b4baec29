"""VUS-PR (Paparrizos et al., PVLDB 15(11) 2022): volume under the range-based PR surface.

Written by hand, following the paper and its reference code (TheDatumOrg/VUS, as ported to
aeon's ``range_pr_vus_score``), because none of the packages installs lightly here: ``vus`` 0.0.6
pulls TensorFlow, Keras, numba, tsfresh and statsmodels; ``TSB-AD`` 1.5 pulls torch, CUDA and
downgrades numpy to 1.26; ``aeon`` 1.6 pulls numba and downgrades numpy to 2.3. The test checks
this module against values computed by aeon 1.6.0 in a throwaway virtualenv.

For each buffer length b in 0..max_buffer, every attack is widened by ``b // 2`` rows on each
side with the soft label sqrt(1 - d / b) at distance d; at 250 thresholds sampled uniformly from
the sorted scores, range recall = min(TP / P, 1) x (share of attacks touched by an alarm) and
range precision = TP / alarms, with TP the sum of soft labels alarmed and P the mean of the hard
and soft label mass; the PR area is the trapezoid rule over thresholds. VUS-PR is the mean area
over all buffer lengths. Unlike the reference's loop (thresholds x rows per buffer), the counts
come from one sort and cumulative sums, so a 4,000-row file takes milliseconds per buffer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray

N_THRESHOLDS = 250  # the reference's fixed number of sampled thresholds
MAX_BUFFER = 100  # rows; one setting for every file of every benchmark


def _bounds(flags: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Starts and (exclusive) stops of the runs of True."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _soft_labels(y: FloatArray, buffer: int) -> tuple[FloatArray, list[tuple[int, int]]]:
    """Labels widened by sqrt slopes of buffer // 2 rows, and the widened runs (inclusive)."""
    starts, stops = _bounds(y > 0)
    if buffer <= 1:
        return y, [(int(s), int(e) - 1) for s, e in zip(starts, stops, strict=True)]
    soft = y.copy()
    half, n = buffer // 2, len(y)
    for s, e in zip(starts, stops, strict=True):
        last = e - 1
        after = np.arange(last, min(last + half, n))
        soft[after] += np.sqrt(1 - (after - last) / buffer)
        before = np.arange(max(s - half, 0), s)
        soft[before] += np.sqrt(1 - (s - before) / buffer)
    soft = np.clip(soft, 0, 1)
    starts, stops = _bounds(soft > 0)
    return soft, [(int(s), int(e) - 1) for s, e in zip(starts, stops, strict=True)]


def range_pr_auc(label: npt.ArrayLike, score: npt.ArrayLike, buffer: int) -> float:
    """Area under the range-based PR curve for one buffer length."""
    y = np.asarray(label, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    soft, runs = _soft_labels(y, buffer)
    thresholds = np.sort(s)[::-1][np.linspace(0, len(s) - 1, N_THRESHOLDS, dtype=np.intp)]
    order = np.argsort(-s, kind="stable")
    sorted_desc = s[order]
    # alarms(t) = rows with score >= t; tp(t) = soft label mass among them.
    alarms = np.searchsorted(-sorted_desc, -thresholds, side="right")
    tp = np.concatenate([[0.0], np.cumsum(soft[order])])[alarms]
    p = (y.sum() + soft.sum()) / 2
    run_max = np.array([s[a : b + 1].max() for a, b in runs])
    existence = (run_max[None, :] >= thresholds[:, None]).mean(axis=1)
    recall = np.concatenate([[0.0], np.minimum(tp / p, 1) * existence, [1.0]])
    precision = np.concatenate([[1.0], tp / alarms])
    return float(np.sum((recall[1:-1] - recall[:-2]) * (precision[1:] + precision[:-1]) / 2))


def vus_pr(label: npt.ArrayLike, score: npt.ArrayLike, max_buffer: int = MAX_BUFFER) -> float:
    """Mean range-based PR area over buffer lengths 0..max_buffer; 0 for a constant score."""
    y = np.asarray(label, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"label and score lengths differ ({y.size} vs {s.size})")
    if not (y > 0).any():
        raise ValueError("VUS-PR needs at least one attack in the labels")
    if np.unique(s).size == 1:
        return 0.0  # as the reference: a constant score ranks nothing
    return float(np.mean([range_pr_auc(y, s, b) for b in range(max_buffer + 1)]))
