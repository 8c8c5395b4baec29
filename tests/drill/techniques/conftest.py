"""Fixtures of the technique tests: the peer tests' dumpcap fixture and helpers to read captures.

Each peer runs on its own 127.0.0.6x address and an unprivileged port; the attacker binds
127.0.0.66 (``execute``'s default), so a capture filter on the peer's address and port sees the
attack and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.capture.packet import TCP, dissect
from interlock.capture.pcap import read_frames
from tests.peers.conftest import capture  # noqa: F401  (re-exported fixture)

ATTACKER = "127.0.0.66"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peers: real protocol peers on loopback, captured with dumpcap")


def sent_payloads(path: Path, src: str, dst: str, dport: int) -> list[bytes]:
    """TCP payloads from ``src`` to ``dst:dport`` in capture order, retransmissions dropped."""
    seen: set[tuple[int, int]] = set()
    out = []
    with path.open("rb") as fh:
        for _, _, linktype, data in read_frames(fh):
            pkt = dissect(linktype, data)
            if isinstance(pkt, str):
                continue
            s, d, _sport, dp, proto, seq, _flags, payload, _ack = pkt
            if proto != TCP or s != src or d != dst or dp != dport or not payload:
                continue
            if (_sport, seq) in seen:
                continue
            seen.add((_sport, seq))
            out.append(payload)
    return out
