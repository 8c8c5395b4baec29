"""What an attacker with write access to the files does, done with sqlite3 directly."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from interlock.evidence.ledger import Checkpoint


def sql(path: Path, statement: str, *args: object) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute(statement, args)
    db.close()


def row(path: Path, seq: int) -> tuple[bytes, bytes, bytes]:
    db = sqlite3.connect(path)
    r = db.execute("SELECT prev_hash, hash, canonical FROM entries WHERE seq = ?", (seq,)).fetchone()
    db.close()
    return bytes(r[0]), bytes(r[1]), bytes(r[2])


def flip(path: Path, seq: int, column: str, index: int) -> None:
    """Change one bit of one byte of a stored column of entry ``seq``."""
    value = bytearray(row(path, seq)[("prev_hash", "hash", "canonical").index(column)])
    value[index] ^= 0x01
    sql(path, f"UPDATE entries SET {column} = ? WHERE seq = ?", bytes(value), seq)


def swap(path: Path, a: int, b: int) -> None:
    """Exchange the stored contents of two positions."""
    ra, rb = row(path, a), row(path, b)
    for seq, (prev, digest, stored) in ((a, rb), (b, ra)):
        sql(
            path,
            "UPDATE entries SET prev_hash = ?, hash = ?, canonical = ? WHERE seq = ?",
            prev,
            digest,
            stored,
            seq,
        )


def rewrite_from(path: Path, seq: int, note: str) -> None:
    """Change entry ``seq``'s body and re-hash it and every later entry: a consistent forgery."""
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT seq, prev_hash, canonical FROM entries WHERE seq >= ? ORDER BY seq", (seq,)
    ).fetchall()
    prev = bytes(rows[0][1])
    with db:
        for s, _, stored in rows:
            obj = json.loads(stored)
            if s == seq:
                obj["body"] = {"note": note}
            stored = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
            digest = hashlib.sha256(prev + stored).digest()
            db.execute(
                "UPDATE entries SET prev_hash = ?, hash = ?, canonical = ? WHERE seq = ?",
                (prev, digest, stored, s),
            )
            prev = digest
    db.close()


def checkpoint_lines(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    lines = [r[0] for r in db.execute("SELECT line FROM checkpoints ORDER BY id")]
    db.close()
    return lines


def set_checkpoints(path: Path, checkpoints: list[Checkpoint]) -> None:
    """Replace every copy of the checkpoints (table and side file)."""
    sql(path, "DELETE FROM checkpoints")
    for cp in checkpoints:
        sql(path, "INSERT INTO checkpoints (seq, line) VALUES (?, ?)", cp.seq, cp.to_line())
    side = path.with_name(path.name + ".checkpoints")
    side.write_text("".join(cp.to_line() + "\n" for cp in checkpoints))
