"""Process detection: detectors over historian data (tags by time), one API, and their metrics.

``DETECTORS`` maps the names the CLI accepts to the classes; ``DEFAULT`` is the one that
scored best on the public benchmarks (docs/process-detection.md). The detector modules import
scikit-learn, which takes seconds; they load on first use so that every other ``interlock``
command starts without paying for it.
"""

from __future__ import annotations

import importlib
from typing import Any

from interlock.detect.process.base import Alert, Frame, NotFittedError, ProcessDetector
from interlock.detect.process.data import DataError, read_frame, read_training

_CLASSES = {
    "PCADetector": ("pca", "pca"),
    "IsolationForestDetector": ("iforest", "iforest"),
    "ResidualDetector": ("residual", "residual"),
    "ReplayDetector": ("replay", "replay"),
    "HalfSpaceTreesDetector": ("stream", "hst"),
    "InvariantDetector": ("invariants", "invariants"),
    "DynamicPCADetector": ("dpca", "dpca"),
    "CVADetector": ("cva", "cva"),
    "BalanceDetector": ("balance", "balance"),
    "ControlDetector": ("control", "control"),
    "FrozenDetector": ("frozen", "frozen"),
    "LimitsDetector": ("limits", "limits"),
    "SwitchesDetector": ("switches", "switches"),
    "InnovationDetector": ("innovation", "innovation"),
    "EnsembleDetector": ("ensemble", "ensemble"),
}
NAMES = tuple(sorted(name for _, name in _CLASSES.values()))
DEFAULT = "ensemble"


def detector_class(name: str) -> type[ProcessDetector]:
    """The detector class registered under ``name`` (a key of ``NAMES``)."""
    for cls, (module, key) in _CLASSES.items():
        if key == name:
            found: type[ProcessDetector] = getattr(
                importlib.import_module(f"interlock.detect.process.{module}"), cls
            )
            return found
    raise KeyError(f"no process detector {name!r}: choose one of {', '.join(NAMES)}")


def __getattr__(attr: str) -> Any:
    if attr in _CLASSES:
        return detector_class(_CLASSES[attr][1])
    if attr == "DETECTORS":
        return {name: detector_class(name) for name in NAMES}
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = [
    "DEFAULT",
    "DETECTORS",
    "NAMES",
    "Alert",
    "BalanceDetector",
    "CVADetector",
    "ControlDetector",
    "DataError",
    "DynamicPCADetector",
    "EnsembleDetector",
    "Frame",
    "FrozenDetector",
    "HalfSpaceTreesDetector",
    "InnovationDetector",
    "InvariantDetector",
    "IsolationForestDetector",
    "LimitsDetector",
    "NotFittedError",
    "PCADetector",
    "ProcessDetector",
    "ReplayDetector",
    "ResidualDetector",
    "SwitchesDetector",
    "detector_class",
    "read_frame",
    "read_training",
]
