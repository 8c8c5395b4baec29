"""Real processes: two writers at once, and writers killed with SIGKILL in the middle of appends."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interlock.evidence.ledger import Ledger

WRITER = Path(__file__).with_name("writer.py")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and fork-free process tests need POSIX")


def writer(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_together(procs: list[subprocess.Popen[str]], go: Path) -> None:
    for p in procs:  # every interpreter up, imports done, waiting for the go file
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    go.touch()


def test_processes_creating_one_ledger_at_once_share_it(tmp_path: Path) -> None:
    """Four processes find no ledger and create it at the same moment, six times over."""
    key = tmp_path / "k.pem"
    for round_ in range(6):
        path, go = tmp_path / f"l{round_}.sqlite", tmp_path / f"go{round_}"
        procs = [writer("loop", path, key, f"w{i}", 1, 1, go) for i in range(4)]
        start_together(procs, go)
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        with Ledger(path, key=key, create=False) as led:
            report = led.verify()
        assert report.ok and report.entries == 4, report
        assert not list(tmp_path.glob(".*.tmp*"))  # no half-made ledger or key left behind


def test_two_writers_at_once_keep_one_chain(tmp_path: Path) -> None:
    path, key, go = tmp_path / "l.sqlite", tmp_path / "k.pem", tmp_path / "go"
    # Neither the ledger nor the key exists yet: both processes race to create them too.
    procs = [writer("loop", path, key, actor, 200, 50, go, 1) for actor in ("alpha", "beta")]
    start_together(procs, go)
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert len(out.split()) == 200
    with Ledger(path, key=key, create=False) as led:
        report = led.verify()
        entries = list(led)
    assert report.ok, report.findings
    assert report.entries == 400 and report.checkpoints == 8  # 50, 100, ..., 400
    assert sorted(e.seq for e in entries) == list(range(1, 401))
    for actor in ("alpha", "beta"):  # each writer's entries in its own order, none lost
        assert [e.body["i"] for e in entries if e.actor == actor] == list(range(200))
    switches = sum(a.actor != b.actor for a, b in itertools.pairwise(entries))
    assert switches > 3, "the writers did not overlap; the test proved nothing"


def test_sigkill_during_appends_leaves_a_ledger_that_verifies(tmp_path: Path) -> None:
    path, key = tmp_path / "l.sqlite", tmp_path / "k.pem"
    rng = random.Random(7)
    acked = 0
    for _round in range(4):
        # Checkpoint every 3 entries, so kills also land in signing and side-file writes.
        proc = writer("loop", path, key, "victim", 10**6, 3)
        assert proc.stdout is not None
        target = acked + rng.randint(20, 120)
        while acked < target:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            acked = int(line)
        time.sleep(rng.random() * 0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        rest = proc.stdout.read().split()
        acked = int(rest[-1]) if rest else acked
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
        with Ledger(path, key=key, create=False) as led:
            report = led.verify()
        assert report.ok, report.findings
        # Every acknowledged append survived; at most the one in flight also committed.
        assert acked <= report.entries <= acked + 1
        acked = report.entries


def test_kill_inside_the_append_transaction_leaves_no_partial_entry(tmp_path: Path) -> None:
    path, key = tmp_path / "l.sqlite", tmp_path / "k.pem"
    with Ledger(path, key=key) as led:
        led.append("alert", {"before": True}, actor="t")
    proc = writer("stall", path, key)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "inside"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    with Ledger(path, key=key, create=False, timeout_s=5) as led:
        assert led.verify().ok and len(led) == 1  # the first of three inserts was rolled back
        led.append("alert", {"after": True}, actor="t")  # the dead writer's lock is gone
        report = led.verify()
    assert report.ok and report.entries == 2
