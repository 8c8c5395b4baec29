"""Time ``interlock decode`` against tshark, Suricata, dpkt and a bare struct loop.

Builds (or reuses) a capture of ``--packets`` Modbus/TCP and DNP3 packets with gen_capture.py,
then runs each tool once, one after the other, pinned to CPU 0 with ``taskset -c 0``, in its own
process, and measures wall time and peak resident memory (GNU ``/usr/bin/time -v``, or
``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process when GNU time is missing). Prints
packets per second, peak memory, Interlock's speed-up over each peer and the number of Modbus and
DNP3 messages each tool reported.

Usage: ``python benchmarks/decode.py [--packets 1000000] [--keep] [--install]``
(``benchmarks/install-peers.sh`` installs tshark, GNU time and Suricata 7.)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gen_capture import default_dir, ensure_capture

HERE = Path(__file__).resolve().parent
SURICATA_DIR = HERE / "suricata"
console = Console(width=None if sys.stdout.isatty() else 120)

TSHARK_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "mbtcp.trans_id",
    "mbtcp.unit_id",
    "modbus.func_code",
    "modbus.reference_num",
    "modbus.word_cnt",
    "modbus.bit_cnt",
    "modbus.exception_code",
    "modbus.regval_uint16",
    "dnp3.src",
    "dnp3.dst",
    "dnp3.al.func",
    "dnp3.al.obj",
    "dnp3.al.index",
    "dnp3.al.bit",
    "dnp3.al.ana.int",
    "dnp3.al.ctrlstatus",
)
TSHARK_MODBUS_COL = TSHARK_FIELDS.index("modbus.func_code")
TSHARK_DNP3_COL = TSHARK_FIELDS.index("dnp3.al.func")

# Run the command given after the script, then report its peak RSS like GNU time -v does.
RUSAGE_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(f"Maximum resident set size (kbytes): {kb}\\n")
sys.exit(rc)
"""


@dataclass
class Result:
    tool: str
    seconds: float = 0.0
    peak_mb: float = 0.0
    modbus: str = "-"
    dnp3: str = "-"
    note: str = ""
    error: str = ""


@dataclass
class Tool:
    name: str
    argv: list[str]
    count: Callable[[], tuple[str, str, str]]  # (modbus, dnp3, note) read from the tool's output
    stdout: Path | None = None
    missing: str = ""  # why the tool cannot run, if it cannot


def measure(tool: Tool, workdir: Path, pin: list[str]) -> Result:
    res = Result(tool.name)
    stem = re.sub(r"\W+", "_", tool.name)
    rss_file = workdir / f"{stem}.rusage"
    if Path("/usr/bin/time").exists():
        cmd = ["/usr/bin/time", "-v", "-o", str(rss_file), *pin, *tool.argv]
    else:
        cmd = [sys.executable, "-c", RUSAGE_WRAPPER, str(rss_file), *pin, *tool.argv]
    out = tool.stdout.open("wb") if tool.stdout else subprocess.DEVNULL
    err_path = workdir / f"{rss_file.stem}.stderr"
    try:
        with err_path.open("wb") as err:
            t0 = time.perf_counter()
            rc = subprocess.call(cmd, stdout=out, stderr=err, cwd=workdir)
            res.seconds = time.perf_counter() - t0
    finally:
        if tool.stdout:
            out.close()  # type: ignore[union-attr]
    text = rss_file.read_text() if rss_file.exists() else ""
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    res.peak_mb = int(m.group(1)) / 1024 if m else 0.0
    if rc != 0:
        tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
        res.error = f"exit {rc}: " + " | ".join(tail)
        return res
    try:
        res.modbus, res.dnp3, res.note = tool.count()
    except Exception as exc:  # a count that cannot be read is reported, not fatal
        res.note = f"could not count: {exc}"
    return res


# ------------------------------------------------------------------------------------- counts


def count_interlock_parquet(path: Path) -> tuple[str, str, str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["protocol", "direction"])
    counts = {
        row["values"]: row["counts"] for row in pc.value_counts(table["protocol"].cast("string")).to_pylist()
    }
    return str(counts.get("modbus", 0)), str(counts.get("dnp3", 0)), "records (request + response)"


def count_interlock_jsonl(path: Path) -> tuple[str, str, str]:
    modbus = dnp3 = 0
    with path.open("rb") as fh:
        for line in fh:
            if b'"protocol":"modbus"' in line:
                modbus += 1
            elif b'"protocol":"dnp3"' in line:
                dnp3 += 1
    return str(modbus), str(dnp3), "records (request + response)"


def count_tshark(path: Path) -> tuple[str, str, str]:
    modbus = dnp3 = 0
    with path.open("rb") as fh:
        for line in fh:
            cols = line.rstrip(b"\n").split(b"\t")
            if cols[TSHARK_MODBUS_COL]:
                modbus += cols[TSHARK_MODBUS_COL].count(b",") + 1  # several PDUs in one frame
            if cols[TSHARK_DNP3_COL]:
                dnp3 += cols[TSHARK_DNP3_COL].count(b",") + 1
    return str(modbus), str(dnp3), "PDUs with a function code (after reassembly)"


def count_suricata(eve: Path) -> tuple[str, str, str]:
    modbus = dnp3 = 0
    with eve.open("rb") as fh:
        for line in fh:
            if b'"event_type":"modbus"' in line:
                modbus += 1
            elif b'"event_type":"dnp3"' in line:
                dnp3 += 1
    if not modbus or not dnp3:
        raise RuntimeError(f"eve.json has {modbus} modbus and {dnp3} dnp3 records: parsers off?")
    return (
        f"{modbus} tx (= {2 * modbus} msgs)",
        str(dnp3),
        "modbus: one record per request/response pair; dnp3: one per message",
    )


def count_dpkt(path: Path) -> tuple[str, str, str]:
    modbus = dnp3 = 0
    with path.open("rb") as fh:
        for line in fh:
            if b",modbus," in line:
                modbus += 1
            elif b",dnp3," in line:
                dnp3 += 1
    return str(modbus), str(dnp3), "segments (no reassembly)"


def count_struct(path: Path) -> tuple[str, str, str]:
    m = re.search(r"modbus (\d+) dnp3 (\d+)", path.read_text())
    if not m:
        raise RuntimeError("no summary line")
    return m.group(1), m.group(2), "segments on the port (function code read for Modbus)"


# -------------------------------------------------------------------------------------- tools


def interlock_argv() -> tuple[list[str], str]:
    # the entry point next to this Python, not a pyenv/asdf shim (a shell script) on PATH
    beside = Path(sys.executable).parent / "interlock"
    exe = str(beside) if beside.exists() else shutil.which("interlock")
    argv = [exe] if exe else [sys.executable, "-m", "interlock.cli"]
    probe = subprocess.run(
        [sys.executable, "-c", "import interlock.capture.decode"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return argv, f"interlock does not import: {last}"
    return argv, ""


def tools(capture: Path, work: Path) -> list[Tool]:
    cap = str(capture)
    il, il_missing = interlock_argv()
    out: list[Tool] = []
    for fmt, counter in (("parquet", count_interlock_parquet), ("jsonl", count_interlock_jsonl)):
        target = work / f"interlock.{fmt}"
        out.append(
            Tool(
                f"interlock ({fmt})",
                [*il, "decode", cap, "--format", fmt, "-o", str(target), "-q"],
                lambda t=target, c=counter: c(t),
                missing=il_missing,
            )
        )
    tshark_out = work / "tshark.tsv"
    fields = [a for f in TSHARK_FIELDS for a in ("-e", f)]
    out.append(
        Tool(
            "tshark -T fields",
            ["tshark", "-n", "-r", cap, "-T", "fields", *fields],
            lambda: count_tshark(tshark_out),
            stdout=tshark_out,
            missing="" if shutil.which("tshark") else "tshark not installed",
        )
    )
    suri_dir = work / "suricata"
    suri_dir.mkdir(exist_ok=True)
    suri_ok = ""
    if not shutil.which("suricata"):
        suri_ok = "suricata not installed (benchmarks/install-peers.sh)"
    else:
        version = subprocess.run(["suricata", "-V"], capture_output=True, text=True).stdout
        m = re.search(r"version (\d+)", version)
        if not m or int(m.group(1)) < 7:
            suri_ok = f"need Suricata 7 (bookworm-backports), found: {version.strip()}"
    out.append(
        Tool(
            "suricata 7 eve.json",
            [
                "suricata",
                "-r",
                cap,
                "-c",
                str(SURICATA_DIR / "suricata.yaml"),
                "-S",
                str(SURICATA_DIR / "empty.rules"),
                "-l",
                str(suri_dir),
                "--runmode",
                "single",
                "-k",
                "none",
            ],
            lambda: count_suricata(suri_dir / "eve.json"),
            missing=suri_ok,
        )
    )
    dpkt_out = work / "dpkt.csv"
    try:
        import dpkt  # noqa: F401

        dpkt_missing = ""
    except ImportError:
        dpkt_missing = "dpkt not installed (pip install dpkt)"
    out.append(
        Tool(
            "dpkt",
            [sys.executable, str(HERE / "peer_dpkt.py"), cap, str(dpkt_out)],
            lambda: count_dpkt(dpkt_out),
            missing=dpkt_missing,
        )
    )
    struct_out = work / "struct.txt"
    out.append(
        Tool(
            "bare struct loop",
            [sys.executable, str(HERE / "peer_struct.py"), cap],
            lambda: count_struct(struct_out),
            stdout=struct_out,
        )
    )
    return out


def report(results: list[Result], packets: int) -> None:
    by_name = {r.tool: r for r in results if not r.error}
    refs = [n for n in ("interlock (parquet)", "interlock (jsonl)") if n in by_name]
    table = Table(title=f"decode of {packets:,} packets, one core (taskset -c 0)")
    for col in ("tool", "seconds", "packets/s", "peak RSS MB"):
        table.add_column(col, justify="left" if col == "tool" else "right")
    for ref in refs:
        table.add_column(f"{ref.split()[1].strip('()')} x", justify="right")
    for col in ("Modbus", "DNP3"):
        table.add_column(col, justify="right")
    notes = []
    for r in results:
        if r.error:
            table.add_row(
                r.tool, "-", "-", f"{r.peak_mb:.0f}" if r.peak_mb else "-", *["-"] * len(refs), "-", "-"
            )
            notes.append(f"[red]{r.tool} failed: {r.error}[/red]")
            continue
        pps = packets / r.seconds
        ratios = [f"{(packets / by_name[ref].seconds) / pps:.2f}" for ref in refs]
        table.add_row(
            r.tool, f"{r.seconds:.2f}", f"{pps:,.0f}", f"{r.peak_mb:.0f}", *ratios, r.modbus, r.dnp3
        )
        if r.note:
            notes.append(f"{r.tool}: {r.note}")
    console.print(table)
    console.print(
        "'parquet x', 'jsonl x': Interlock's packets/s (that output format) divided "
        "by the tool's (above 1: Interlock is faster).\n"
        "Modbus, DNP3: the messages each tool reported, counted as:"
    )
    for note in notes:
        console.print(f"  {note}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the tools' outputs (path printed)")
    ap.add_argument(
        "--install",
        action="store_true",
        help="first install the peers (runs benchmarks/install-peers.sh; root)",
    )
    ap.add_argument("--only", default="", help="comma-separated tool name prefixes to run")
    args = ap.parse_args(argv)
    if args.install:
        subprocess.run(["bash", str(HERE / "install-peers.sh")], check=True)
    capture = ensure_capture(args.packets, args.seed)
    console.print(f"capture: {capture} ({capture.stat().st_size / 1e6:.0f} MB, {args.packets:,} packets)")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    if not pin:
        console.print("[yellow]taskset not found: tools run unpinned[/yellow]")
    work = Path(tempfile.mkdtemp(prefix="run-", dir=default_dir()))
    results = []
    try:
        for tool in tools(capture, work):
            if args.only and not any(tool.name.startswith(p) for p in args.only.split(",")):
                continue
            if tool.missing:
                console.print(f"[yellow]skipping {tool.name}: {tool.missing}[/yellow]")
                continue
            console.print(f"running {tool.name}: {' '.join(tool.argv)}", highlight=False)
            r = measure(tool, work, pin)
            console.print(
                f"  {r.seconds:.2f} s, {r.peak_mb:.0f} MB" + (f" [red]{r.error}[/red]" if r.error else ""),
                highlight=False,
            )
            results.append(r)
        report(results, args.packets)
    finally:
        if args.keep:
            console.print(f"outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
