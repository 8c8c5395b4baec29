"""What detection adds to decoding: records per second through the rules and the baseline.

Builds (or reuses) the decode benchmark's capture (``gen_capture.py``) and, in one process and
one run, times three passes over it: decoding alone (the records are produced and dropped),
decoding plus the shipped rules, decoding plus rules plus a baseline learned beforehand on the
first half of the same traffic. Target (project issue "Detect on the wire"): detection adds
under 50 % to decode time.

    python benchmarks/detect.py [--packets 200000]
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
    start = time.perf_counter()
    batches, _ = decode_path(capture)
    n = consume(batches)
    return time.perf_counter() - start, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
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

    rows = []
    for name, fn in (("decode only", decode_only), ("decode + rules", with_rules),
                     ("decode + rules + baseline", with_rules_and_baseline)):
        seconds, n = timed(capture, fn)
        rows.append((name, seconds, n))
    base = rows[0][1]
    table = Table(title=f"detection over {args.packets:,} packets ({rows[0][2]:,} records), one run")
    for col in ("pass", "seconds", "records/s", "added to decode"):
        table.add_column(col, justify="left" if col == "pass" else "right")
    for name, seconds, n in rows:
        added = "" if seconds is base else f"{100 * (seconds - base) / base:+.0f} %"
        table.add_row(name, f"{seconds:.2f}", f"{n / seconds:,.0f}", added)
    Console().print(table)
    print(f"{len(rules)} rules; baseline of {len(baseline.links_)} links and {len(baseline.points_)} points")


if __name__ == "__main__":
    main()
