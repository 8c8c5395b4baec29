"""The drill's process defenders on every shipped scenario, and on benign runs.

Scores the process alerts alone (``process_alerts.jsonl``), with the inline firewall on and off,
as docs/process-detection.md's drill table gives them; ``--benign`` runs the plants without an
attacker (field devices on, watermark on) and counts the process alerts, which are all false.

    python benchmarks/drill_process.py                      # 15 scenarios x firewall on/off
    python benchmarks/drill_process.py --benign 13-30       # 3 plants x seeds 13..30, 25 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.progress import Progress

from interlock.drill.process_defender import process_alerts
from interlock.drill.runner import run_drill
from interlock.drill.scenario import find_scenario
from interlock.drill.score import score_drill

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
PLANTS = ("reactor", "gas-pipeline", "refinery")
WARMUP_S = 360.0


def scenarios(instance: int) -> None:
    names = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    rows = []
    with Progress() as bar, tempfile.TemporaryDirectory() as tmp:
        task = bar.add_task("drills", total=2 * len(names))
        for name in names:
            scenario = find_scenario(name)
            for firewall in (True, False):
                out = Path(tmp) / f"{name}-{firewall}"
                record, _ = run_drill(
                    scenario, out, progress=False, store=False, firewall=firewall, instance=instance
                )
                mine = tuple(a for a in record.alerts if a.rule.startswith("process."))
                score = score_drill(replace(record, alerts=mine), scenario)
                found = " ".join(
                    f"{i.inject_id} ({i.time_to_detect_s:g} s)" for i in score.injects if i.detected
                )
                rows.append(
                    f"{name} firewall {'on' if firewall else 'off'}: rate {score.detection_rate:.2f}, "
                    f"false alarms {score.false_alarms}; {found}"
                )
                bar.advance(task)
    print("\n".join(rows))


async def _benign(plant: str, seed: int, instance: int) -> Any:
    from interlock.range.runtime import Range

    async with Range(plant, seed=seed, instance=instance, watermark=True, field_devices=True) as rng:
        await rng.advance(1500.0)
        return rng.historian.table()


def benign(first: int, last: int, instance: int) -> None:
    total = 0
    with Progress() as bar:
        task = bar.add_task("benign runs", total=len(PLANTS) * (last - first + 1))
        for plant in PLANTS:
            for seed in range(first, last + 1):
                table = asyncio.run(_benign(plant, seed, instance))
                alerts = process_alerts(table, plant, WARMUP_S, seed=seed, watermark=True)
                total += len(alerts)
                for a in alerts:
                    bar.console.print(f"{plant} seed {seed}: {a.rule} at {a.time_s:g} s: {a.message[:100]}")
                bar.advance(task)
    runs = len(PLANTS) * (last - first + 1)
    print(f"{runs} benign runs of 25 minutes (seeds {first}-{last}): {total} process alerts")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benign", metavar="FIRST-LAST", help="benign runs of every plant at these seeds")
    ap.add_argument("--instance", type=int, default=7, help="loopback instance (default 7)")
    args = ap.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    if args.benign:
        first, _, last = args.benign.partition("-")
        benign(int(first), int(last or first), args.instance)
    else:
        scenarios(args.instance)


if __name__ == "__main__":
    main()
