"""Added latency and throughput of ``interlock firewall``: a pymodbus client through it vs direct.

One run starts a real pymodbus server and ``interlock firewall --mode enforce`` (with a policy
that allows the benchmark's reads after checking every rule field), each in its own process, on
127.0.0.42. The same pymodbus client then, against the server directly and through the
firewall:

1. paced: ``--rate`` FC3 reads per second for ``--seconds``; latency per request -> p50/p99;
2. flat out: as many FC3 reads as it can in ``--seconds``; requests per second.

Added latency is through-firewall minus direct, per percentile. Every response is checked
against the server's values, so a lost or wrong answer fails the run.

    python benchmarks/firewall.py [--rate 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HOST = "127.0.0.42"
UNIT = 1
VALUES = [1000 + i for i in range(100)]

SERVER = textwrap.dedent(f"""
    import asyncio
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def main(port):
        regs = [SimData(0, values={VALUES!r}, datatype=DataType.REGISTERS)]
        bits = [SimData(0, values=[False] * 100, datatype=DataType.BITS)]
        server = ModbusTcpServer(SimDevice({UNIT}, simdata=(bits, bits, regs, regs)),
                                 address=("{HOST}", port))
        await server.serve_forever()

    import sys
    asyncio.run(main(int(sys.argv[1])))
""")

POLICY = f"""\
default: deny
max_rate: 100000
rules:
  - name: no-writes-from-anyone
    action: deny
    functions: [5, 6, 15, 16]
  - name: hmi-reads
    clients: [{HOST}/32]
    units: [{UNIT}]
    functions: [read_holding_registers]
    addresses: [0-99]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def percentile(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=1000, method="inclusive")[round(q * 10) - 1]


def run(port: int, rate: float, seconds: float) -> tuple[list[float], float]:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(HOST, port=port, timeout=3, retries=0, source_address=(HOST, 0))
    if not client.connect():
        raise SystemExit(f"cannot connect to {HOST}:{port}")
    try:
        def read() -> None:
            rr = client.read_holding_registers(10, count=10, device_id=UNIT)
            if rr.isError() or rr.registers != VALUES[10:20]:
                raise SystemExit(f"wrong answer through port {port}: {rr}")

        for _ in range(200):  # warm up: connections, caches, the firewall's first decisions
            read()
        latencies, n = [], int(rate * seconds)
        start = time.perf_counter()
        for i in range(n):
            due = start + i / rate
            while (now := time.perf_counter()) < due:
                pass  # spin: sleep() overshoots by more than the budget we measure
            read()
            latencies.append(time.perf_counter() - now)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            read()
            done += 1
        return latencies, done / (time.perf_counter() - start)
    finally:
        client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="paced requests per second")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    args = ap.parse_args()

    server_port, fw_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        policy, alerts = Path(tmp) / "policy.yaml", Path(tmp) / "alerts.jsonl"
        policy.write_text(POLICY)
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(server_port)])
        fw = subprocess.Popen([sys.executable, "-m", "interlock.cli", "firewall",
                               "--listen", f"{HOST}:{fw_port}", "--upstream",
                               f"{HOST}:{server_port}", "--policy", str(policy),
                               "--alerts", str(alerts)], stderr=subprocess.PIPE, text=True)
        try:
            wait_port(server_port)
            wait_port(fw_port)
            direct, direct_rps = run(server_port, args.rate, args.seconds)
            through, fw_rps = run(fw_port, args.rate, args.seconds)
        finally:
            fw.terminate()
            _, fw_err = fw.communicate(timeout=10)
            server.terminate()
            server.wait(timeout=10)
        blocked = alerts.read_text().count("\n")

    print(f"paced at {args.rate:g} req/s for {args.seconds:g} s, {len(direct)} requests each; "
          f"no request lost or wrong; {blocked} alerts")
    print(f"{'':22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s flat out':>15}")
    for name, lat, rps in (("direct", direct, direct_rps), ("through firewall", through, fw_rps)):
        ms = [x * 1000 for x in lat]
        print(f"{name:22} {percentile(ms, 50):8.3f} {percentile(ms, 99):8.3f} {max(ms):8.3f} "
              f"{rps:15,.0f}")
    d = [x * 1000 for x in direct]
    t = [x * 1000 for x in through]
    print(f"{'added by firewall':22} {percentile(t, 50) - percentile(d, 50):8.3f} "
          f"{percentile(t, 99) - percentile(d, 99):8.3f}")
    print(fw_err.strip().splitlines()[-1] if fw_err.strip() else "")


if __name__ == "__main__":
    main()
