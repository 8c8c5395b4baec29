"""How many times faster than real time a plant-hour runs on the range.

Two figures per plant, in one run:

- physics and PLC logic alone: the scan loop (inputs, PID, outputs) and RK4 physics at a 0.5 s
  scan, no sockets (target: at least 1000x real time);
- the whole range: the same plus pymodbus servers, the RTU and safety controller on their own
  libraries, and the HMI polling every device once a plant second over TCP on loopback. This sets
  how long a drill takes.

    python benchmarks/range.py [--plant reactor] [--minutes 60]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from rich.console import Console
from rich.table import Table

from interlock.range.logic import LOGIC, SisLogic
from interlock.range.plants import PLANTS
from interlock.range.plc import Logic, Plc
from interlock.range.points import load_point_list
from interlock.range.runtime import Range


def logic_only(plant_id: str, seconds: float, scan_s: float = 0.5) -> float:
    plant = PLANTS[plant_id](seed=1)
    plcs = []
    for device in load_point_list(plant_id).devices:
        if device.protocol == "modbus":
            logic: Logic = SisLogic() if device.role == "sis" else LOGIC[plant_id]()
            plcs.append(Plc(device, plant, logic))
    t0 = time.perf_counter()
    for _ in range(round(seconds / scan_s)):
        for plc in plcs:
            plc.scan(scan_s)
        plant.step(scan_s)
    return time.perf_counter() - t0


async def whole_range(plant_id: str, seconds: float) -> float:
    async with Range(plant_id, seed=1) as rng:
        t0 = time.perf_counter()
        await rng.advance(seconds)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plant", action="append", help="plant id (default: all)")
    parser.add_argument("--minutes", type=float, default=60.0, help="plant minutes per run")
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    seconds = args.minutes * 60
    table = Table(title=f"Range speed: {args.minutes:g} plant minutes per run, one core")
    for col in ("plant", "logic+physics s", "x real time", "whole range s", "x real time", "polls"):
        table.add_column(col, justify="right")
    for plant_id in args.plant or sorted(PLANTS):
        alone = logic_only(plant_id, seconds)
        full = asyncio.run(whole_range(plant_id, seconds))
        table.add_row(
            plant_id,
            f"{alone:.2f}",
            f"{seconds / alone:,.0f}",
            f"{full:.2f}",
            f"{seconds / full:,.0f}",
            f"{seconds:.0f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
