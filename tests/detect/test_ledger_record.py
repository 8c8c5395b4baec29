"""`interlock detect --ledger PATH` appends its alerts to the tamper-evident ledger (issue contract)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interlock.cli", *args], capture_output=True, text=True)


def test_detect_records_alerts_and_the_ledger_verifies(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    out = tmp_path / "alerts.jsonl"
    res = run("detect", "--sample", "-o", str(out), "--ledger", str(ledger))
    assert res.returncode == 0, res.stderr
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert alerts and "recorded in the ledger" in res.stderr
    db = sqlite3.connect(ledger)
    stored = [json.loads(bytes(c)) for (c,) in db.execute("SELECT canonical FROM entries ORDER BY seq")]
    db.close()
    kinds = [e["kind"] for e in stored]
    n = len(alerts)
    assert kinds[:n] == ["alert"] * n and kinds[n:] and set(kinds[n:]) == {"incident"}
    assert [e["body"]["id"] for e in stored[:n]] == [a["id"] for a in alerts]
    grouped = [i for e in stored[n:] for i in e["body"]["alerts"]]
    assert sorted(grouped) == sorted(a["id"] for a in alerts)  # every alert in one incident
    assert run("evidence", "verify", "--ledger", str(ledger)).returncode == 0

    # any byte of a stored entry changed: verify names the entry and fails
    db = sqlite3.connect(ledger)
    (blob,) = db.execute("SELECT canonical FROM entries WHERE seq = 2").fetchone()
    changed = bytearray(blob)
    changed[len(changed) // 2] ^= 0x01
    db.execute("UPDATE entries SET canonical = ? WHERE seq = 2", (bytes(changed),))
    db.commit()
    db.close()
    res = run("evidence", "verify", "--ledger", str(ledger))
    assert res.returncode != 0 and "first bad entry seq 2" in res.stdout + res.stderr


def test_no_ledger_records_nothing(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    res = run(
        "detect", "--sample", "-q", "-o", str(tmp_path / "a.jsonl"), "--ledger", str(ledger), "--no-ledger"
    )
    assert res.returncode == 0, res.stderr
    assert not ledger.exists()
