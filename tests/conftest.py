"""Shared pytest hooks: the agreement table with tshark at the end of the run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter

from tests.conformance import agreement


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if agreement.RESULTS:
        terminalreporter.section("agreement with tshark (frames where both decode the protocol)")
        for line in agreement.table():
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True, scope="session")
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Commands that record to the per-user ledger by default write to a test folder instead
    of the home of whoever runs the tests (subprocesses inherit the variable)."""
    home = tmp_path_factory.mktemp("xdg-data")
    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(home)
    yield home
    if old is None:
        del os.environ["XDG_DATA_HOME"]
    else:
        os.environ["XDG_DATA_HOME"] = old
