"""A separate process that writes to a ledger, for the concurrency and crash tests.

writer.py loop LEDGER KEY ACTOR COUNT EVERY [GO_FILE]  append COUNT entries, print each seq
writer.py stall LEDGER KEY                             stop for good inside an append's transaction
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from interlock.evidence.ledger import Ledger


def loop(path: Path, key: Path, actor: str, count: int, every: int, go: Path | None, pause_s: float) -> None:
    if go is not None:  # start together with the other writers
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.0005)
    with Ledger(path, key=key, checkpoint_every=every) as led:
        for i in range(count):
            entry = led.append("alert", {"writer": actor, "i": i}, actor=actor)
            print(entry.seq, flush=True)  # acknowledged: committed before this line is printed
            if pause_s:
                # Alerts come apart; back to back, SQLite's busy backoff lets one writer run alone.
                time.sleep(pause_s)


def stall(path: Path, key: Path) -> None:
    calls = 0

    def clock() -> datetime:
        # Called once per entry inside the write transaction: the second call comes after the
        # first entry's INSERT and before COMMIT, the middle of an append.
        nonlocal calls
        calls += 1
        if calls == 2:
            print("inside", flush=True)
            time.sleep(3600)
        return datetime.now(UTC)

    with Ledger(path, key=key, clock=clock) as led:
        led.extend([("alert", {"n": n}) for n in range(3)], actor="stall")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "loop":
        go = Path(args[5]) if len(args) > 5 else None
        pause_s = float(args[6]) / 1000 if len(args) > 6 else 0.0
        loop(Path(args[0]), Path(args[1]), args[2], int(args[3]), int(args[4]), go, pause_s)
    else:
        stall(Path(args[0]), Path(args[1]))
