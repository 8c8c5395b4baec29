"""What detection adds to decoding: records per second through the rules and the baseline.

Builds (or reuses) the decode benchmark's capture (``gen_capture.py``) and, in one process, times
four passes over it, each the fastest of ``--repeat`` runs in CPU seconds: decoding alone (the
records are produced and dropped), decoding plus the shipped rules, decoding plus rules plus a
baseline learned beforehand on the first half of the same traffic, and the same with the
baseline's row-by-row reference (``BaselineDetector.process_rows``, its speed before the
columnar pass). Target (project issue "Detect on the wire"): detection adds
under 50 % to decode time.

    python benchmarks/detect.py [--packets 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from gen_capture import ensure_capture
from interlock.capture.decode import Decoder, decode_path
from interlock.capture.pcap import read_frames
from interlock.detect.cli import default_rules_dir
from interlock.detect.network.baseline import Baseline, BaselineDetector
from interlock.detect.network.rules import RuleEngine, load_rules


def timed(capture: Path, consume: Callable[[Iterable[pa.RecordBatch]], int]) -> tuple[float, int]:
    gc.collect()
    # CPU time of this process: the machine is shared, and wall time counts the others' work
    start = time.process_time()
    batches, _ = decode_path(capture)
    n = consume(batches)
    return time.process_time() - start, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each pass; the fastest counts (the machine is shared)")
    args = ap.parse_args()
    capture = ensure_capture(args.packets, args.seed)
    rules_dir = default_rules_dir()
    assert rules_dir is not None, "rules/ not found: run from a source checkout"
    rules = load_rules(rules_dir)

    # the baseline learns on the first half of the frames (not timed)
    baseline = Baseline()
    with capture.open("rb") as fh:
        half = itertools.islice(read_frames(fh, str(capture)), args.packets // 2)
        baseline.fit(Decoder().frames(half), source=str(capture))

    def decode_only(batches: Iterable[pa.RecordBatch]) -> int:
        return sum(b.num_rows for b in batches)

    def with_rules(batches: Iterable[pa.RecordBatch]) -> int:
        engine, n, alerts = RuleEngine(rules, capture=str(capture)), 0, 0
        for b in batches:
            n += b.num_rows
            alerts += len(engine.process(b))
        alerts += len(engine.finish())
        return n

    def with_rules_and_baseline(batches: Iterable[pa.RecordBatch]) -> int:
        engine, learned, n = RuleEngine(rules, capture=str(capture)), BaselineDetector(baseline), 0
        for b in batches:
            n += b.num_rows
            engine.process(b)
            learned.process(b)
        engine.finish()
        learned.finish()
        return n

    def with_rules_and_baseline_by_row(batches: Iterable[pa.RecordBatch]) -> int:
        # the baseline's row-by-row reference (its speed before the columnar pass), for comparison
        engine, learned, n = RuleEngine(rules, capture=str(capture)), BaselineDetector(baseline), 0
        for b in batches:
            n += b.num_rows
            engine.process(b)
            learned.process_rows(b)
        engine.finish()
        learned.finish()
        return n

    rows = []
    for name, fn in (("decode only", decode_only), ("decode + rules", with_rules),
                     ("decode + rules + baseline", with_rules_and_baseline),
                     ("decode + rules + baseline by row", with_rules_and_baseline_by_row)):
        runs = [timed(capture, fn) for _ in range(max(args.repeat, 1))]
        seconds, n = min(runs)
        rows.append((name, seconds, n))
    base = rows[0][1]
    table = Table(title=f"detection over {args.packets:,} packets ({rows[0][2]:,} records), "
                  f"best of {max(args.repeat, 1)}")
    for col in ("pass", "CPU seconds", "records/s", "added to decode"):
        table.add_column(col, justify="left" if col == "pass" else "right")
    for name, seconds, n in rows:
        added = "" if seconds is base else f"{100 * (seconds - base) / base:+.0f} %"
        table.add_row(name, f"{seconds:.2f}", f"{n / seconds:,.0f}", added)
    Console().print(table)
    print(f"{len(rules)} rules; baseline of {len(baseline.links_)} links and {len(baseline.points_)} points")


if __name__ == "__main__":
    main()
