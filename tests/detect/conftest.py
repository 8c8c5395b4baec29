"""Shared fixtures of the detection tests: the shipped rules and the shared captures."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.detect.network.rules import Rule, load_rules

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "rules"
SHARED = REPO.parent / "shared" / "data"
PCAPS = SHARED / "pcaps"


def shared(relative: str) -> Path:
    """A shared capture, or skip the test when the shared data folder is absent."""
    path = PCAPS / relative
    if not path.exists():
        pytest.skip(f"shared capture {relative} absent (../shared/data not laid out)")
    return path


@pytest.fixture(scope="session")
def rules() -> tuple[Rule, ...]:
    return load_rules(RULES_DIR)
