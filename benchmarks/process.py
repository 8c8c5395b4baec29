"""Process detection speed: a whole benchmark, and rows per second when scoring one row at a time.

One run, on this machine:

1. train and score the Tennessee Eastman benchmark (``d00.dat`` for training, all 21 faults
   ``d01_te.dat`` .. ``d21_te.dat`` and ``d00_te.dat``) per detector, wall time (issue 7: under
   10 minutes on 2 cores);
2. streaming: rows per second through ``score_one`` of river's HalfSpaceTrees
   (``HalfSpaceTreesDetector``) and of fitted batch detectors wrapped in ``RowByRow`` (the
   default ensemble and its members among them), on the BATADAL test year (issue 7: at least
   10,000 rows per second), beside the same detector's batch
   ``score`` over the whole frame in the same run, as the ratio.

3. a long history (the BATADAL training year twelve times, 105,132 rows): fit and score time of
   the default ensemble and its members.

    python benchmarks/process.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def tep(shared: Path, detectors: list[str]) -> list[tuple[str, float]]:
    out = []
    for d in detectors:
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "interlock.cli",
                "eval",
                "process",
                str(shared / "data/tep/d00.dat"),
                str(shared / "data/tep"),
                "--benchmark",
                "tep",
                "--detector",
                d,
                "--json",
            ],
            check=True,
            capture_output=True,
        )
        out.append((d, time.perf_counter() - t0))
    return out


def streaming(shared: Path) -> list[tuple[str, int, float, float]]:
    from interlock.detect.process import DETECTORS
    from interlock.detect.process.data import read_frame
    from interlock.detect.process.stream import HalfSpaceTreesDetector, RowByRow

    train = read_frame(shared / "data/batadal/BATADAL_dataset03.csv", "ATT_FLAG")
    test = read_frame(shared / "data/batadal/BATADAL_dataset04.csv", "ATT_FLAG")
    rows = [dict(zip(test.tags, map(float, r), strict=True)) for r in test.values]
    results = []
    # cva as the default ensemble runs it (its filters and variance chart are the streamed state)
    member = {"cva": {"ewma": 0.2, "keep_raw": True, "var_ewma": 0.05}}
    for name in ("hst", "pca", "residual", "cva", "frozen", "replay", "control", "ensemble"):
        det = HalfSpaceTreesDetector() if name == "hst" else DETECTORS[name](**member.get(name, {}))
        det.fit(train)
        t0 = time.perf_counter()
        det.score(test)
        batch = time.perf_counter() - t0
        one = det if name == "hst" else RowByRow(det)
        t0 = time.perf_counter()
        for r in rows:
            one.score_one(r)
        results.append((name, len(rows), time.perf_counter() - t0, batch))
    return results


def long_history(shared: Path, copies: int = 12) -> list[tuple[str, int, float, float]]:
    """Fit and score on a long history: the BATADAL training year ``copies`` times, the analog
    tags with 0.1% noise so that no copy repeats another (replay would drop every tag)."""
    import numpy as np

    from interlock.detect.process import DETECTORS, Frame
    from interlock.detect.process.data import read_frame

    train = read_frame(shared / "data/batadal/BATADAL_dataset03.csv", "ATT_FLAG")
    rng = np.random.default_rng(0)
    analog = np.array([len(np.unique(c)) > 2 for c in train.values.T])
    parts = []
    for _ in range(copies):
        x = train.values.copy()
        x[:, analog] += rng.normal(0, 0.001, (len(x), int(analog.sum()))) * train.values[:, analog].std(0)
        parts.append(x)
    frame = Frame(train.tags, np.vstack(parts))
    out = []
    for name in ("replay", "cva", "control", "frozen", "ensemble"):
        det = DETECTORS[name]()
        t0 = time.perf_counter()
        det.fit(frame)
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        det.score(frame)
        out.append((name, len(frame), fit, time.perf_counter() - t0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = parser.parse_args()
    console = Console()
    table = Table(title="Tennessee Eastman, 21 faults + normal test: train and score (wall)")
    table.add_column("detector")
    table.add_column("seconds", justify="right")
    for d, s in tep(args.shared, ["pca", "residual", "dpca", "cva", "invariants", "frozen", "ensemble"]):
        table.add_row(d, f"{s:.1f}")
    console.print(table)
    table = Table(title="Streaming: BATADAL test year scored one row at a time (score_one)")
    for col in ("detector", "rows", "rows/s one at a time", "rows/s batch", "batch / streaming"):
        table.add_column(col, justify="right")
    for name, n, s, b in streaming(args.shared):
        table.add_row(name, str(n), f"{n / s:,.0f}", f"{n / b:,.0f}", f"{(n / b) / (n / s):.0f}x")
    console.print(table)
    table = Table(title="Long history: BATADAL training year x 12 (43 tags), fit and score (wall)")
    for col in ("detector", "rows", "fit s", "score s"):
        table.add_column(col, justify="right")
    for name, n, fit, score in long_history(args.shared):
        table.add_row(name, f"{n:,}", f"{fit:.1f}", f"{score:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
