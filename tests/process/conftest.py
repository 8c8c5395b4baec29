"""Fixtures of the process-detection tests: synthetic plants with known ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from interlock.detect.process import Frame

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared data {relative} absent (../shared/data not laid out)")
    return path


def plant(rows: int, seed: int) -> Frame:
    """A small tank: inflow drives the level, a pump drives the outflow, pressure follows level.

    The physics ties the tags together so a tag changed on its own breaks the relations.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    inflow = 5 + 2 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 0.2, rows)
    pump = 4 + np.sin(2 * np.pi * t / 30 + 1) + rng.normal(0, 0.2, rows)
    level = 10 + 0.8 * (inflow - pump) + rng.normal(0, 0.1, rows)
    pressure = 2 + 0.5 * level + rng.normal(0, 0.05, rows)
    x = np.column_stack([inflow, pump, level, pressure])
    return Frame(("F_IN", "F_PUMP", "L_TANK", "P_OUT"), x, label=np.zeros(rows, dtype=np.int8))
