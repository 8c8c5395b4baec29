"""``interlock range``: list the plants, run one (``up``), and watch a running one like an operator.

``up`` starts the plant with its PLCs, RTUs, safety controllers and HMI poller on loopback and
runs it for ``--duration`` of plant time at ``--speed`` (``max``: stepped on a virtual clock, the
same seed giving the same historian byte for byte; or N times real time). While it runs, it writes
where its devices listen to a small state file, which ``watch`` reads to poll the PLCs read-only
and draw the operator view: tags with units, alarms, and sparklines of the last minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

SPARK = "▁▂▃▄▅▆▇█"


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False)
    raise SystemExit(2)


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``1h30m`` or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if not text or parts is None or not any(parts.groups()):
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 1h or 1h30m")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s


def state_file(plant: str) -> Path:
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return base / "interlock-range" / f"{plant}.json"


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(SPARK[0 if span == 0 else min(7, int((v - lo) / span * 7.999))] for v in values)


@click.group("range")
def range_group() -> None:
    """The cyber range: simulated energy plants whose PLCs speak real protocols on loopback."""


@range_group.command("list")
def list_plants() -> None:
    """The plants of the range and their devices."""
    from interlock.range.plants import PLANTS
    from interlock.range.points import load_point_list

    table = Table(title="Range plants")
    for col in ("plant", "description", "devices"):
        table.add_column(col)
    for plant in sorted(PLANTS):
        points = load_point_list(plant)
        devices = ", ".join(f"{d.name} ({d.protocol} {d.host}:{d.port})" for d in points.devices)
        table.add_row(plant, points.description, devices)
    Console().print(table)
    for plant in sorted(PLANTS):
        click.echo(plant)


@range_group.command("up")
@click.argument("plant")
@click.option(
    "--speed", default="max", show_default=True, help="max (stepped, as fast as possible) or N x real time."
)
@click.option("--duration", default="1h", show_default=True, help="Plant time to run: 90s, 30m, 1h ...")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sensor noise.")
@click.option(
    "--historian", type=click.Path(path_type=Path), default=None, help="Write the historian here (Parquet)."
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Draw the key trends (truth and HMI) to this PNG.",
)
@click.option(
    "--scan",
    "scan_s",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="PLC scan time, plant seconds.",
)
def up(
    plant: str,
    speed: str,
    duration: str,
    seed: int,
    historian: Path | None,
    plot_path: Path | None,
    scan_s: float,
) -> None:
    """Run PLANT with its PLCs, RTUs and HMI poller on loopback until the plant time is up."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from interlock.range.plants import PLANTS
    from interlock.range.runtime import Range, parse_speed

    if plant not in PLANTS:
        _fail(f"unknown plant {plant!r}; `interlock range list` shows: {', '.join(sorted(PLANTS))}")
    try:
        seconds = parse_duration(duration)
        parse_speed(speed)
    except ValueError as exc:
        _fail(f"{exc}")
    if seconds <= 0:
        _fail("--duration must be longer than zero")
    rng = Range(plant, seed=seed, speed=speed, scan_s=scan_s)
    state = state_file(plant)

    async def run() -> float:
        async with rng:
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(
                json.dumps(
                    {
                        "plant": plant,
                        "pid": os.getpid(),
                        "hmi": rng.points.hmi_host,
                        "devices": {
                            d.name: [*rng.endpoint(d.name), d.protocol, d.unit] for d in rng.points.devices
                        },
                    }
                ),
                encoding="utf-8",
            )
            t0 = time.perf_counter()
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[t]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            ) as bar:
                task = bar.add_task(f"{plant} seed {seed}", total=seconds, t="")
                step = max(rng.poll_s, 10.0)
                while rng.time_s < seconds - 1e-9:
                    await rng.advance(min(step, seconds - rng.time_s))
                    bar.update(task, completed=rng.time_s, t=f"plant {rng.time_s / 60:6.1f} min")
            return time.perf_counter() - t0

    try:
        wall = asyncio.run(run())
    except OSError as exc:
        _fail(f"cannot start the range: {exc.strerror or exc} (is another range of {plant} running?)")
    finally:
        state.unlink(missing_ok=True)
    if historian is not None:
        rng.historian.write(historian)
    if plot_path is not None:
        from interlock.range.plot import plot_trends

        trips = [(e.time_s, e.trip) for e in rng.plant.sis.events]
        plot_trends(
            rng.historian.table(),
            plant,
            plot_path,
            trips=trips,
            title=f"{plant}: {seconds / 60:.0f} min of normal operation, seed {seed}",
        )
    _summary(rng, wall, historian)


def _summary(rng: Any, wall: float, historian: Path | None) -> None:
    console = Console(stderr=True)
    table = Table(
        title=f"{rng.plant_id}: {rng.time_s / 60:.1f} min of plant time in {wall:.1f} s "
        f"({rng.time_s / max(wall, 1e-9):.0f}x real time)"
    )
    for col in ("tag", "min", "max", "envelope"):
        table.add_column(col, justify="right" if col != "tag" else "left")
    hist = rng.historian.table().to_pydict()
    series: dict[str, list[float]] = {}
    for tag, value, source in zip(hist["tag"], hist["value"], hist["source"], strict=True):
        if source == "truth":
            series.setdefault(tag, []).append(value)
    for tag, (lo, hi) in rng.plant.ENVELOPE.items():
        values = series.get(tag, [])
        if values:
            table.add_row(tag, f"{min(values):.2f}", f"{max(values):.2f}", f"{lo:g} to {hi:g}")
    console.print(table)
    trips = ", ".join(f"{e.trip} at {e.time_s:.0f} s" for e in rng.plant.sis.events) or "none"
    hazards = ", ".join(f"{h.hazard} at {t:.0f} s" for t, h in rng.events.hazards) or "none"
    console.print(f"SIS trips: {trips}; hazards: {hazards}; network writes: {len(rng.events.writes)}")
    if historian is not None:
        console.print(f"historian: {historian} ({len(rng.historian)} rows)")


@range_group.command("watch")
@click.argument("plant")
@click.option("--device", default="plc-1", show_default=True, help="The Modbus device to watch.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option("--once", is_flag=True, help="Print one screen and exit.")
@click.option("--duration", type=click.FloatRange(min=0), default=None, help="Stop after this many seconds.")
@click.option(
    "--learn",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds of normal polls to learn, then judge every later poll with the process "
    "detectors (0: none; a changed setpoint, mode, bypass or command point is reported either way).",
)
@click.option(
    "--members",
    default="replay(horizon=3600)+frozen",
    show_default=True,
    help="The process detectors of --learn, as for `interlock eval process --param members=...` "
    "(cva and control need far more normal polls than minutes).",
)
def watch(
    plant: str, device: str, interval: float, once: bool, duration: float | None, learn: float, members: str
) -> None:
    """The operator view of a running PLANT: tags, alarms and trend sparklines (read only)."""
    from rich.live import Live

    from interlock.range.hmi import ModbusMaster
    from interlock.range.live_detect import LiveDetection
    from interlock.range.points import load_point_list

    state = state_file(plant)
    if not state.is_file():
        _fail(f"no range of {plant} is running here; start one with `interlock range up {plant} --speed 1`")
    info = json.loads(state.read_text(encoding="utf-8"))
    try:
        dev = load_point_list(plant).device(device)
    except (KeyError, ValueError) as exc:
        _fail(str(exc).strip('"'))
    if dev.protocol != "modbus":
        _fail(f"{device} speaks {dev.protocol}; watch reads the Modbus PLCs (e.g. --device plc-1)")
    host, port = info["devices"][device][0], int(info["devices"][device][1])
    history: dict[str, deque[float]] = {p.tag: deque(maxlen=60) for p in dev.points}
    tags = tuple(p.tag for p in dev.points)
    from interlock.detect.process.tampering import CHANGE_IDS

    # Watched points' changes are reported from the first poll; --learn adds the learned models.
    watched = {p.tag: p.kind for p in dev.points if p.kind in CHANGE_IDS}
    rows = max(1, round(learn / interval)) if learn > 0 else 0  # 0: changes only, no model
    judge = None if once else LiveDetection(rows, members, tags, watched)

    def screen(values: dict[str, float]) -> Table:
        caption = None
        if judge is not None:
            judge.update(values)
            caption = judge.line()
        title = f"{plant} {device} at {host}:{port}  {time.strftime('%H:%M:%S')}"
        table = Table(title=title, caption=caption)
        for col in ("tag", "value", "unit", "trend"):
            table.add_column(col, justify="right" if col == "value" else "left")
        for p in dev.points:
            if p.tag not in values:
                continue
            history[p.tag].append(values[p.tag])
            value = values[p.tag]
            style = "bold red" if p.kind == "alarm" and value else ""
            table.add_row(
                p.tag,
                f"[{style}]{value:.3f}[/]" if style else f"{value:.3f}",
                p.unit,
                sparkline(list(history[p.tag])),
            )
        return table

    async def run() -> None:
        # A watch never writes: it only reads with its own client, from the operator's host.
        master = ModbusMaster(dev, host, port, "127.0.0.3")
        await master.connect()
        start = time.monotonic()
        try:
            values = await master.poll()
            if once:
                Console().print(screen(values))
                return
            with Live(screen(values), refresh_per_second=4) as live:
                while duration is None or time.monotonic() - start < duration:
                    await asyncio.sleep(interval)
                    live.update(screen(await master.poll()))
        finally:
            await master.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
