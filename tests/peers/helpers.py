"""Reading a peer capture back: Interlock's records, and tshark's view for cross-checks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any


def decode(path: Path) -> list[dict[str, Any]]:
    """Interlock's records of a capture (``ts`` as a datetime), in capture order."""
    from interlock.capture.decode import decode_records

    return list(decode_records(path))


def of(rows: list[dict[str, Any]], protocol: str, direction: str | None = None) -> list[dict[str, Any]]:
    return [r for r in rows
            if r["protocol"] == protocol and (direction is None or r["direction"] == direction)]


def norm(name: object) -> str:
    """A name without case and separators: ``ACTIVATION_CON`` and ``activation con`` compare equal."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def tshark_fields(path: Path, display_filter: str, fields: list[str],
                  decode_as: str | None = None) -> list[tuple[int, list[list[str]]]] | None:
    """Per matching frame: its number and, per field, all occurrences (``-E occurrence=a``).

    None when tshark is not installed.
    """
    exe = shutil.which("tshark")
    if exe is None:
        return None
    cmd = [exe, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=|", "-e", "frame.number"]
    if decode_as:
        cmd[2:2] = ["-d", decode_as]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = []
    for line in out.splitlines():
        if not line.strip():
            continue
        number, *cols = line.split("\t")
        rows.append((int(number), [c.split("|") if c else [] for c in cols]))
    return rows


def detail(row: dict[str, Any]) -> Any:
    """A record's ``detail`` as a Python object (it is JSON text in Arrow, an object in JSONL)."""
    import json

    value = row.get("detail")
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value or {}
