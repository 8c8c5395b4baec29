"""Shared pytest hooks: the agreement table with tshark at the end of the run."""

from __future__ import annotations

from _pytest.terminal import TerminalReporter

from tests.conformance import agreement


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if agreement.RESULTS:
        terminalreporter.section("agreement with tshark (frames where both decode the protocol)")
        for line in agreement.table():
            terminalreporter.write_line(line)
