"""Fixtures of the peer tests: a loopback capture around real protocol peers, and its decode.

Each test uses its own 127.0.0.x address and an unprivileged port, so the capture filter
``host 127.0.0.x and tcp port P`` sees that test's conversation and nothing else. Captures are
kept under ``/tmp/peer-captures/`` (``INTERLOCK_PEER_CAPTURES``) for a look with Wireshark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.peers.capture import CAPTURE_DIR, CaptureUnavailable, Dumpcap


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peers: real protocol peers on loopback, captured with dumpcap")


StartCapture = Callable[[str, list[tuple[str, int]]], Dumpcap]


@pytest.fixture(scope="module")
def capture() -> Iterator[StartCapture]:
    """``capture(name, [(host, port)])`` starts dumpcap on lo; stopped (SIGINT) at teardown.

    Call ``.stop()`` on the returned object to finish the file before decoding it. Skips the
    test when dumpcap is missing or cannot open ``lo`` (not root, no capture capability).
    """
    started: list[Dumpcap] = []

    def start(name: str, endpoints: list[tuple[str, int]]) -> Dumpcap:
        dumpcap = Dumpcap(CAPTURE_DIR / f"{name}.pcapng", endpoints)
        try:
            dumpcap.start()
        except CaptureUnavailable as exc:
            pytest.skip(str(exc))
        started.append(dumpcap)
        return dumpcap

    yield start
    for dumpcap in started:
        dumpcap.stop(settle=0.0)
