"""Added latency of ``interlock firewall --protocol dnp3``: an integrity poll through it vs direct.

One run starts the range's DNP3 RTU (the dnp3py outstation of ``interlock.range.devices``) on
127.0.0.45 and ``interlock firewall --protocol dnp3 --mode enforce`` in its own process, with a
policy that allows the master's reads, on 127.0.0.46. The range's HMI master (Interlock's DNP3
codec over asyncio) then sends ``--count`` integrity polls (READ class 1, 2, 3, 0) to the RTU
directly and the same number through the firewall; each response is checked for every value.
Added latency is through minus direct per percentile, printed beside the ratio.

    python benchmarks/firewall_dnp3.py [--count 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from interlock.range.boundary import Boundary
from interlock.range.devices.base import build_device, load_device_specs
from interlock.range.devices.masters import Dnp3Master

RTU = ("127.0.0.45", 20045)
FIREWALL = ("127.0.0.46", 20046)
POLICY = """\
protocol: dnp3
default: deny
rules:
  - name: hmi reads
    clients: [127.0.0.0/8]
    functions: [1]
"""


def wait_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {host}:{port} after {timeout_s:g} s")


async def polls(host: str, port: int, spec: object, count: int, expect: int) -> list[float]:
    assert dataclasses.is_dataclass(spec) and not isinstance(spec, type)
    master = Dnp3Master(dataclasses.replace(spec, host=host, port=port), bind_host="127.0.0.2")
    await master.connect()
    out = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            values = await master.poll()
            out.append((time.perf_counter() - t0) * 1000)
            if len(values) < expect:
                raise SystemExit(f"a poll through {host}:{port} lost values: {len(values)} of {expect}")
    finally:
        await master.close()
    return out


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    spec = next(s for s in load_device_specs("gas-pipeline") if s.protocol == "dnp3")
    spec = dataclasses.replace(spec, host=RTU[0], port=RTU[1])
    rtu = build_device(spec, Boundary())
    rtu.start()
    rtu.publish({"delivery_kg_s": 100.0, "demand_kg_s": 100.0, "discharge_bar": 65.0, "delivery_valve": 1.0})
    expect = len([p for p in spec.points if p.type != "binary_output"])
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        fw = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interlock.cli",
                "firewall",
                "--protocol",
                "dnp3",
                "--mode",
                "enforce",
                "--listen",
                f"{FIREWALL[0]}:{FIREWALL[1]}",
                "--upstream",
                f"{RTU[0]}:{RTU[1]}",
                "--policy",
                str(policy),
                "--no-ledger",
                "--alerts",
                str(Path(tmp) / "alerts.jsonl"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_port(*FIREWALL)
            direct = asyncio.run(polls(*RTU, spec, args.count, expect))
            through = asyncio.run(polls(*FIREWALL, spec, args.count, expect))
        finally:
            fw.terminate()
            fw.wait(10)
            rtu.stop()
    table = Table(
        title=f"DNP3 integrity poll, {args.count} each, ms (range RTU on dnp3py, firewall in its own process)"
    )
    for col in ("", "p50", "p99", "mean"):
        table.add_column(col, justify="right")
    for name, xs in (("direct", direct), ("through the firewall", through)):
        table.add_row(name, f"{pct(xs, 50):.3f}", f"{pct(xs, 99):.3f}", f"{statistics.fmean(xs):.3f}")
    table.add_row(
        "added",
        f"{pct(through, 50) - pct(direct, 50):.3f}",
        f"{pct(through, 99) - pct(direct, 99):.3f}",
        f"{statistics.fmean(through) - statistics.fmean(direct):.3f}",
    )
    table.add_row(
        "ratio",
        f"{pct(through, 50) / pct(direct, 50):.2f}x",
        f"{pct(through, 99) / pct(direct, 99):.2f}x",
        "",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
