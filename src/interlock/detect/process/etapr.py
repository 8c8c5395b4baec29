"""eTaPR (Hwang et al., SAC 2022; the HAICon metric): time-series aware precision and recall.

Taken from the maintained package ``faster-etapr`` (MIT; tested by its author against ETRI's
reference code saurf4ng/eTaPR), not written here. Its one blocker is an import: its helper
package ``mlnext-framework`` runs ``mlnext/__init__.py``, which imports the private
``sklearn.metrics._ranking._binary_clf_curve`` that scikit-learn 1.9 removed. eTaPR itself only
needs ``mlnext.utils`` (two shape checks, numpy only), plus ``mlnext.find_anomalies`` for its
point-wise entry, which we do not use: we hand it the attack and alarm *ranges* ourselves. So
``_load`` imports ``faster_etapr`` with ``mlnext`` registered as a bare package (its
``__init__`` not run), which loads ``mlnext.utils`` from the real files, and then takes the
placeholder away again so nothing else sees it.

Defaults theta_p = 0.5 and theta_r = 0.1 are the paper's and HAICon's.

The package holds a dense attacks x alarm-ranges overlap matrix (three of them while it builds
it): 2,000 attacks among 19,000 scattered alarm ranges took 42 s, and a file of Rieth's TEP
testing runs (10,000 faulty runs) would not fit in memory. eTaPR only relates ranges that
overlap, so ``etapr`` hands the package one group of mutually overlapping ranges at a time
(shifted to start at 0) and combines the results as the definitions do: recall is the mean of
the attacks' scores, precision the mean of the alarm ranges' scores weighted by the square
root of their lengths. A group without an attack only adds its alarms' weight; a group without
an alarm only adds its missed attacks. The test compares this with one call on the whole file.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from interlock.detect.process.metrics import spans

THETA_P = 0.5
THETA_R = 0.1


@dataclass(frozen=True)
class ETaPR:
    precision: float  # TaP
    recall: float  # TaR
    f1: float
    detected: int  # attacks counted as detected (overlap >= theta_r)
    attacks: int


@cache
def _load() -> Any:
    if "mlnext" in sys.modules:  # the real package imported fine (an older scikit-learn)
        return importlib.import_module("faster_etapr")
    spec = importlib.util.find_spec("mlnext")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("faster-etapr needs mlnext-framework: pip install faster-etapr")
    bare = types.ModuleType("mlnext")
    bare.__path__ = list(spec.submodule_search_locations)
    sys.modules["mlnext"] = bare
    try:
        return importlib.import_module("faster_etapr")
    finally:
        # faster_etapr keeps its own reference; a later `import mlnext` gets the real package.
        del sys.modules["mlnext"]
        sys.modules.pop("mlnext.utils", None)


def ranges(flags: npt.ArrayLike, cuts: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Runs of 1 as inclusive (first, last) row pairs, the form eTaPR takes, cut at ``cuts``."""
    return [(a, b - 1) for a, b in spans(flags, cuts)]


def etapr(
    label: npt.ArrayLike, alarm: npt.ArrayLike, theta_p: float = THETA_P, theta_r: float = THETA_R,
    cuts: Sequence[int] = (),
) -> ETaPR:  # fmt: skip
    """eTaPR of point-wise alarms against point-wise labels (1 = attack); attacks and alarms are
    cut at each row of ``cuts`` (where a new simulation run starts)."""
    y, a = ranges(label, cuts), ranges(alarm, cuts)
    if not y:
        raise ValueError("eTaPR needs at least one attack in the labels")
    if not a:  # nothing alarmed: the package divides by the empty prediction set
        return ETaPR(0.0, 0.0, 0.0, 0, len(y))
    package = _load()
    recall_sum = precision_sum = 0.0
    detected = 0
    for attacks, alarms in _groups(y, a):
        # An attack no alarm touches, an alarm that touches no attack: 0, unless its theta is 0
        # (the package counts a share >= theta: then each scores (1 + 0) / 2).
        if not alarms:
            if theta_r <= 0:
                recall_sum, detected = recall_sum + 0.5 * len(attacks), detected + len(attacks)
            continue
        if not attacks:
            precision_sum += 0.5 * _weight(alarms) if theta_p <= 0 else 0.0
            continue
        first = min(attacks[0][0], alarms[0][0])
        out = package.evaluate_from_ranges(
            preds=[(s - first, e - first) for s, e in alarms],
            labels=[(s - first, e - first) for s, e in attacks],
            theta_p=theta_p,
            theta_r=theta_r,
        )
        recall_sum += float(out["eta/recall"]) * len(attacks)
        precision_sum += float(out["eta/precision"]) * _weight(alarms)
        detected += int(out["eta/detected_anomalies"])
    recall, precision = recall_sum / len(y), precision_sum / _weight(a)
    f1 = 2 * precision * recall / (precision + recall + 1e-16)  # the package's own eps
    return ETaPR(precision=precision, recall=recall, f1=f1, detected=detected, attacks=len(y))


def _weight(alarms: list[tuple[int, int]]) -> float:
    """The package's weight of alarm ranges: the sum of the square roots of their lengths."""
    return float(np.sqrt(np.array([e + 1 - s for s, e in alarms], dtype=np.float64)).sum())


def _groups(
    attacks: list[tuple[int, int]], alarms: list[tuple[int, int]]
) -> list[tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
    """The ranges in groups that share no row with one another (connected by overlaps)."""
    tagged = sorted([(r, 0) for r in attacks] + [(r, 1) for r in alarms])
    out: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]] = []
    end = -1
    for (start, stop), kind in tagged:
        if start > end:
            out.append(([], []))
        out[-1][kind].append((start, stop))
        end = max(end, stop)
    return out
