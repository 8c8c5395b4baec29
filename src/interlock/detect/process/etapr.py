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
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

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


def ranges(flags: npt.ArrayLike) -> list[tuple[int, int]]:
    """Runs of 1 as inclusive (first, last) row pairs, the form eTaPR takes."""
    padded = np.concatenate([[0], np.asarray(flags, dtype=np.int8) != 0, [0]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def etapr(
    label: npt.ArrayLike, alarm: npt.ArrayLike, theta_p: float = THETA_P, theta_r: float = THETA_R
) -> ETaPR:
    """eTaPR of point-wise alarms against point-wise labels (1 = attack)."""
    y, a = ranges(label), ranges(alarm)
    if not y:
        raise ValueError("eTaPR needs at least one attack in the labels")
    if not a:  # nothing alarmed: the package divides by the empty prediction set
        return ETaPR(0.0, 0.0, 0.0, 0, len(y))
    out = _load().evaluate_from_ranges(preds=a, labels=y, theta_p=theta_p, theta_r=theta_r)
    return ETaPR(
        precision=float(out["eta/precision"]),
        recall=float(out["eta/recall"]),
        f1=float(out["eta/f1"]),
        detected=int(out["eta/detected_anomalies"]),
        attacks=int(out["eta/anomalies"]),
    )
