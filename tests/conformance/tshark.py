"""Run tshark as the reference decoder: one dict per frame with the requested fields.

Multi-occurrence fields come back as lists (tshark's ``-E occurrence=a`` with a separator
that cannot occur in decoded values).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SEP = "\x1f"
AGG = "\x1e"


def require_tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed (apt-get install tshark); .ci/run installs it")
    return exe


def tshark_fields(
    capture: Path,
    fields: list[str],
    display_filter: str,
    extra_args: list[str] | None = None,
) -> list[dict[str, list[str]]]:
    """Rows of ``tshark -T fields`` for frames matching ``display_filter``.

    Every row has ``frame.number`` plus the given fields, each a list of its occurrences.
    """
    exe = require_tshark()
    cols = ["frame.number", *fields]
    cmd = [exe, "-n", "-r", str(capture), "-Y", display_filter, "-T", "fields",
           "-E", f"separator={SEP}", "-E", f"aggregator={AGG}", "-E", "occurrence=a"]
    for c in cols:
        cmd += ["-e", c]
    cmd += extra_args or []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.split("\n"):
        if not line:
            continue
        parts = line.split(SEP)
        rows.append({c: (p.split(AGG) if p else []) for c, p in zip(cols, parts, strict=True)})
    return rows


def shared_captures(protocol_folder: str) -> list[Path]:
    """Captures under ../shared/data/pcaps/<folder>, or a skip when shared/ is absent."""
    root = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pcaps" / protocol_folder
    if not root.is_dir():
        pytest.skip(f"{root} is absent: the shared capture set is needed for conformance tests")
    return sorted(p for p in root.iterdir() if p.suffix in {".pcap", ".pcapng", ".cap"})
