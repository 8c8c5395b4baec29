"""Which tag does an alert blame? Synthetic faults in held-back normal data, blamed at first alarm.

Trains each detector on the first rows of a normal file (BATADAL ``dataset03``: 6,000 rows; TEP
``d00.dat``: 300), then injects 30 faults, one at a time, into the rows held back: a 3-spread
offset, a ramp to 5 spreads, or four times the noise, on a random continuous tag (48 rows on
BATADAL, 100 on TEP). At the first alarm inside the fault it asks whether the faulted tag is the
first tag blamed (top 1) or among the first three (top 3). Also: TEP's test faults whose root
tags are known, blamed at the first alarm after the fault starts (row 160).

    python benchmarks/blame.py                    # seed 1 (docs/process-detection.md, "Blame")
    python benchmarks/blame.py --seed 0 --detectors ensemble,innovation
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from interlock.detect.process import Frame, detector_class, read_frame, read_training

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TEP_NAMES = [f"XMEAS({i})" for i in range(1, 42)] + [f"XMV({i})" for i in range(1, 12)]
# Root tags of TEP faults (Downs and Vogel 1993; the loops that answer them).
TEP_ROOTS = {
    1: ("XMV(3)", "XMEAS(1)", "XMEAS(4)"),
    4: ("XMV(10)", "XMEAS(9)"),
    5: ("XMV(11)", "XMEAS(22)"),
    6: ("XMEAS(1)", "XMV(3)"),
    11: ("XMV(10)", "XMEAS(9)"),
    14: ("XMV(10)", "XMEAS(9)", "XMEAS(21)"),
    15: ("XMV(11)", "XMEAS(22)"),
}


def synthetic(name: str, detectors: list[str], seed: int) -> None:
    if name == "batadal":
        normal = read_training(DATA / "batadal" / "BATADAL_dataset03.csv", label="ATT_FLAG")
        split, length = 6000, 48
    else:
        normal = read_training(DATA / "tep" / "d00.dat")
        split, length = 300, 100
    x = normal.values
    train, held = Frame(normal.tags, x[:split]), x[split:]
    sd = x[:split].std(axis=0)
    continuous = [j for j in range(x.shape[1]) if len(np.unique(x[:split, j])) > 20 and sd[j] > 0]
    rng = np.random.default_rng(seed)
    faults = []
    for k in range(30):
        faults.append((int(rng.choice(continuous)), int(rng.integers(50, len(held) - length - 1)), k % 3))
    for det_name in detectors:
        det = detector_class(det_name)().fit(train)
        found = top1 = top3 = 0
        for tag, start, kind in faults:
            y = held.copy()
            rows = slice(start, start + length)
            if kind == 0:
                y[rows, tag] += 3 * sd[tag]
            elif kind == 1:
                y[rows, tag] += np.linspace(0, 5 * sd[tag], length)
            else:
                y[rows, tag] = y[rows, tag].mean() + (y[rows, tag] - y[rows, tag].mean()) * 4
            frame = Frame(normal.tags, y)
            alarms = np.flatnonzero(det.score(frame)[rows] > det.threshold_)
            if not alarms.size:
                continue
            found += 1
            blamed = [t for t, _ in det.explain(frame, start + int(alarms[0]))[:3]]
            top1 += blamed[0] == normal.tags[tag]
            top3 += normal.tags[tag] in blamed
        print(f"{name} {det_name}: found {found}/30, faulted tag blamed first {top1}/{found}, "
              f"among the first three {top3}/{found}", flush=True)


def tep_roots(detectors: list[str]) -> None:
    train = read_training(DATA / "tep" / "d00.dat")
    for det_name in detectors:
        det = detector_class(det_name)().fit(train)
        hits = []
        for fault, roots in TEP_ROOTS.items():
            test = read_frame(DATA / "tep" / f"d{fault:02d}_te.dat")
            alarms = np.flatnonzero(det.score(test)[160:] > det.threshold_)
            if not alarms.size:
                continue
            blamed = [TEP_NAMES[train.tags.index(t)] for t, _ in det.explain(test, 160 + int(alarms[0]))[:3]]
            if any(t in roots for t in blamed):
                hits.append(fault)
        print(f"tep faults {det_name}: a root tag among the first three in {len(hits)}/{len(TEP_ROOTS)} "
              f"(faults {', '.join(map(str, hits))})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--detectors", default="ensemble,cva,innovation")
    args = ap.parse_args()
    detectors = args.detectors.split(",")
    for name in ("batadal", "tep"):
        synthetic(name, detectors, args.seed)
    tep_roots(detectors)


if __name__ == "__main__":
    main()
