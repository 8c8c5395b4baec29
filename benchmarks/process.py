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
4. with ``--wide ROWS``: a wide synthetic plant (60 coupled analog tags at 3 decimals and 10
   on/off tags, ROWS training rows and 50,000 test rows, as long as SWaT's normal week):
   fit + score time and peak memory of the ensemble, its members and the scikit-learn
   baselines (``pca``, ``iforest``), each in its own process. ``--tags N`` (over 70) adds
   N - 70 analog tags from a second plant of the same kind: ``--wide 1200000 --tags 127`` is
   as large as WADI's normal fortnight. ``--only`` limits the detectors.

    python benchmarks/process.py [--shared ../shared] [--wide 400000 [--tags 70] [--only ensemble,pca]]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
    # cva as the default ensemble runs it (its filters and their erasure are the streamed state)
    member: dict[str, dict[str, object]] = {
        "cva": {"ewma": 0.2, "keep_raw": True, "restart": 2.0, "forget": True},
        "innovation": {"forget": True},
    }
    members = ("cva", "frozen", "replay", "control", "innovation", "limits", "switches")
    for name in ("hst", "pca", "residual", *members, "ensemble"):
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


WIDE_CHILD = """
import resource, sys, time
import numpy as np
from interlock.detect.process import DETECTORS, Frame
train, test = np.load(sys.argv[2]), np.load(sys.argv[3])
tags = tuple(f"T{i}" for i in range(train.shape[1]))
t0 = time.perf_counter()
det = DETECTORS[sys.argv[1]]().fit(Frame(tags, train))
fit = time.perf_counter() - t0
t0 = time.perf_counter()
alarms = int((det.score(Frame(tags, test)) > det.threshold_).sum())
score = time.perf_counter() - t0
print(fit, score, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, alarms)
"""


def wide_plant(rows: int, seed: int) -> Any:
    """60 analog tags of a stable linear process (one coupling matrix for every seed) at 3
    decimals, and 10 on/off tags switched by the first 10."""
    import numpy as np

    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (60, 60))
    a *= 0.95 / np.abs(np.linalg.eigvals(a)).max()
    noise = np.random.default_rng(seed).normal(0, 1, (rows, 60))
    x = np.zeros((rows, 60))
    for t in range(1, rows):
        x[t] = a @ x[t - 1] + noise[t]
    x = np.round(x, 3)
    return np.hstack([x, (x[:, :10] > 0.3).astype(float)])


WIDE_DETECTORS = ("pca", "iforest", "replay", "cva", "control", "frozen", "innovation", "ensemble")


def wider_plant(rows: int, seed: int, tags: int) -> Any:
    """``wide_plant`` with ``tags`` - 70 more analog tags from a second plant (seed + 10)."""
    import numpy as np

    first = wide_plant(rows, seed)
    if tags <= first.shape[1]:
        return first
    return np.hstack([first, wide_plant(rows, seed + 10)[:, : tags - first.shape[1]]])


def wide(
    rows: int, tags: int = 70, detectors: tuple[str, ...] = WIDE_DETECTORS
) -> list[tuple[str, float, float, float, int]]:
    """Per detector: fit s, score s, peak RSS in GB and alarms on the 50,000 normal test rows."""
    import tempfile

    import numpy as np

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        train, test = Path(tmp) / "train.npy", Path(tmp) / "test.npy"
        np.save(train, wider_plant(rows, 11, tags))
        np.save(test, wider_plant(50_000, 12, tags))
        for name in detectors:
            done = subprocess.run(
                [sys.executable, "-c", WIDE_CHILD, name, str(train), str(test)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            fit, score, rss, alarms = done.stdout.split()
            out.append((name, float(fit), float(score), int(rss) / 1e6, int(alarms)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--wide", type=int, default=0, help="rows of the wide synthetic plant (0: skip)")
    parser.add_argument("--tags", type=int, default=70, help="tags of the wide plant (at least 70)")
    parser.add_argument("--only", default="", help="with --wide only: these detectors, comma-separated")
    args = parser.parse_args()
    if not 70 <= args.tags <= 130:
        parser.error(f"--tags {args.tags}: give 70 to 130 (10 on/off tags and up to 120 analog ones)")
    unknown = [d for d in args.only.split(",") if args.only and d not in WIDE_DETECTORS]
    if unknown or (args.only and not args.wide):
        parser.error(f"--only goes with --wide and takes {', '.join(WIDE_DETECTORS)}")
    console = Console()
    if args.wide and args.only:
        wide_table(console, args.wide, args.tags, tuple(args.only.split(",")))
        return
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
    if args.wide:
        wide_table(console, args.wide, args.tags, WIDE_DETECTORS)


def wide_table(console: Console, rows: int, tags: int, detectors: tuple[str, ...]) -> None:
    table = Table(title=f"Wide plant: {rows:,} training rows x {tags} tags, 50,000 test rows")
    for col in ("detector", "fit s", "score s", "peak GB", "alarms / 50,000 normal", "fit+score / pca"):
        table.add_column(col, justify="right")
    results = wide(rows, tags, detectors)
    base = next((f + s for name, f, s, _, _ in results if name == "pca"), None)
    for name, fit, score, gb, alarms in results:
        ratio = f"{(fit + score) / base:.0f}x" if base else "-"
        table.add_row(name, f"{fit:.1f}", f"{score:.1f}", f"{gb:.2f}", str(alarms), ratio)
    console.print(table)


if __name__ == "__main__":
    main()
