"""The drill runner: a fresh range, the scenario's injects on plant time, the defenders, the record.

One run, in order:

1. start the plant's range (PLCs on pymodbus, RTUs and safety controllers on their libraries, the
   HMI poller) and a capture of the range's loopback traffic (``LoopbackTap``);
2. step the plant; at each inject's plant time run its technique from the attacker's address
   (127.0.0.66) against the device the scenario names, through the safety boundary, and record the
   ground truth: when, what, from where, to where, how many requests, what came back. A scenario's
   ``repeat``/``interval_s`` are spread on plant time here, so a drill is the same at any speed;
3. stop; the defenders judge the capture: Interlock's rules over the whole run and its learned
   baseline, fitted on the warm-up only (the benign operation before the first inject). Alerts
   carry the wall time of their packets; the range's poll timebase maps them to plant time.
   With ``alerts_file`` the team's own alert stream is scored instead;
4. score, write ``report.html`` and ``score.json``, and store the drill in the programme database.

In stepped mode nothing waits on the wall clock: an inject runs between two scans, so its packets
all map to the plant instant it was scheduled for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from interlock.drill.model import (
    AlertSeen,
    DrillError,
    DrillRecord,
    Inject,
    Neutralization,
    Scenario,
    TruthAction,
)
from interlock.drill.score import Score, alert_seen, hazard_events, load_alerts, score_drill
from interlock.range.runtime import Range

ATTACKER_HOST = "127.0.0.66"
PROXY_HOST = "127.0.0.67"  # where the attacker's man-in-the-middle proxy listens
CAPTURE_NAME = "drill.pcap"
WARMUP_NAME = "warmup.pcap"  # the warm-up's frames: benign traffic to learn a baseline from


def resolve_params(rng: Range, inj: Inject, protocol: str, repetition: int = 0) -> dict[str, Any]:
    """Scenario params -> technique params: ``tag`` becomes the device's address and raw value.

    The scenario's ``repeat`` and ``interval_s`` are the runner's (spread on plant time), so each
    scheduled run of the technique is one run (``repeat`` 1, whatever its own default); a
    ``modbus.brute_io`` run ``repetition`` writes the ``values`` in turn from that repetition on,
    so 24 runs 5 s apart toggle the point 24 times, 5 s apart. (Before, each run fired the
    technique's own burst of 10 writes within one plant instant, ending on the point's old
    value: the plant and the HMI never saw it move.)"""
    params = {k: v for k, v in inj.params.items() if k not in ("tag", "repeat", "interval_s")}
    if "repeat" in inj.params:
        params["repeat"] = 1
        if inj.technique == "modbus.brute_io" and params.get("values"):
            values = list(params["values"])
            turn = repetition % len(values)
            params["values"] = values[turn:] + values[:turn]
    tag = inj.params.get("tag")
    if tag is None:
        return params
    point = rng.points.device(inj.target).point(str(tag))
    if protocol == "modbus":
        params["address"] = point.address
        if "value" in params:
            raw = point.to_raw(float(params["value"]))
            params["value"] = bool(raw) if point.is_bit else raw
        if "values" in params:
            params["values"] = [point.to_raw(float(v)) for v in params["values"]]
        if inj.technique == "modbus.brute_io":
            params["kind"] = "coil" if point.table == "coil" else "register"
    elif protocol == "dnp3":
        params["index"] = int(point.extra.get("index", 0))
        if "value" in params and inj.technique in ("dnp3.direct_operate", "dnp3.select_operate"):
            params["op"] = "latch_on" if float(params.pop("value")) else "latch_off"
    elif protocol == "iec104":
        params["ioa"] = int(point.extra.get("ioa", 0))
    elif protocol == "s7comm":
        params["db"] = int(point.extra.get("db", 1))
        params["offset"] = int(point.extra.get("offset", 0))
    return params


class Drill:
    """One run of a scenario; ``run`` returns the record the scorer and the report read."""

    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path,
        *,
        seed: int | None = None,
        speed: str | float | None = None,
        capture: bool = True,
        firewall: bool = True,
        instance: int = 0,
        watermark: bool = True,
    ) -> None:
        self.scenario = scenario
        self.out_dir = out_dir
        self.seed = scenario.seed if seed is None else seed
        self.speed = scenario.speed if speed is None else speed
        self.capture = capture
        # The inline firewalls learn during the warm-up and enforce from its end. The watermark
        # (a keyed dither on one actuator, keyed by the seed) lets the process defenders see a replay.
        self.range = Range(
            scenario.plant,
            seed=self.seed,
            speed=self.speed,
            inline_firewall=firewall,
            instance=instance,
            watermark=watermark,
        )
        self.attacker_host = self.range.at(ATTACKER_HOST)
        self.proxy_host = self.range.at(PROXY_HOST)
        self.firewall = firewall
        self._enforcing = False
        self.truth: list[TruthAction] = []
        self.errors: list[str] = []
        self._proxies: dict[str, Any] = {}

    # -- the schedule ------------------------------------------------------------------------
    def _events(self) -> list[tuple[float, int, Inject, int]]:
        """(plant time, order, inject, repetition) for every technique run, in time order."""
        events: list[tuple[float, int, Inject, int]] = []
        for order, inj in enumerate(self.scenario.injects):
            repeat = max(1, int(inj.params.get("repeat", 1))) if inj.technique != "mitm.replay" else 1
            interval = float(inj.params.get("interval_s", 0.0))
            for k in range(repeat):
                events.append((inj.at_s + k * interval, order, inj, k))
        return sorted(events, key=lambda e: (e[0], e[1], e[3]))

    async def _inject(self, inj: Inject, repetition: int = 0) -> None:
        from interlock.drill.techniques import Target, execute, get

        t0 = round(self.range.time_s, 6)
        device = self.range.points.device(inj.target)
        host, port = self.range.endpoint(inj.target)
        target = Target(host, port, device.protocol, device.unit, device.name)
        if inj.technique == "mitm.replay":
            await self._start_replay(inj, target)
            return
        try:
            params = resolve_params(self.range, inj, device.protocol, repetition)
            actions = await execute(
                inj.technique, target, params, boundary=self.range.boundary, source_host=self.attacker_host
            )
        except (ValueError, KeyError) as exc:
            self.errors.append(f"inject {inj.id}: {exc}")
            return
        tech = get(inj.technique)
        for a in actions:
            self.truth.append(
                TruthAction(
                    inj.id,
                    a.technique,
                    tuple(a.attack_ids) or tech.attack_ids,
                    t0,
                    t0,
                    a.source,
                    a.target,
                    a.requests,
                    a.outcome,
                )
            )

    async def _start_replay(self, inj: Inject, target: Any) -> None:
        try:
            from interlock.detect.process.base import typed_param  # the parser of true/false params
            from interlock.drill.techniques.mitm import ReplayProxy
        except ImportError:
            self.errors.append(f"inject {inj.id}: mitm.replay is not available in this build")
            return

        try:
            hold = typed_param(False, str(inj.params.get("hold", False)))
        except ValueError as exc:
            self.errors.append(f"inject {inj.id}: hold: {exc}")
            return
        listen = (self.proxy_host, 15020 + len(self._proxies))
        self.range.boundary.register(*listen, name=f"attacker proxy for {inj.target}")
        proxy = ReplayProxy(
            listen,
            (target.host, target.port),
            boundary=self.range.boundary,
            upstream_source=self.range.hmi_host,
            hold=hold,
        )
        await proxy.start()
        await self.range.masters[inj.target].repoint(*listen)
        self._proxies[inj.id] = proxy
        self.truth.append(
            TruthAction(
                inj.id,
                "mitm.replay",
                ("T0830", "T0856", "T0832"),
                self.range.time_s,
                inj.until_s if inj.until_s is not None else self.scenario.duration_s,
                self.proxy_host,
                f"{target.host}:{target.port}",
                0,
                "ok",
            )
        )

    async def _service_replays(self) -> None:
        for inj_id, proxy in list(self._proxies.items()):
            inj = self.scenario.inject(inj_id)
            if not proxy.replaying and self.range.time_s >= inj.at_s + float(inj.params.get("record", 120.0)):
                proxy.replay()
            if inj.until_s is not None and self.range.time_s >= inj.until_s:
                await self.range.masters[inj.target].repoint(*self.range.endpoint(inj.target))
                await proxy.close()
                del self._proxies[inj_id]

    def _blocks(self) -> list[Neutralization]:
        """Firewall blocks as neutralizations, each tied to the inject whose request it stopped
        (same attacker host, same plant instant)."""
        out: list[Neutralization] = []
        for alert in self.range.firewall_alerts:
            if "blocked" not in alert.title:
                continue
            t = round(self.range.plant_time_of(alert.ts), 3)
            inject = next(
                (
                    a.inject_id
                    for a in self.truth
                    if _host(a.source) == alert.src and a.start_s - 1.0 <= t <= a.end_s + 1.0
                ),
                None,
            )
            out.append(Neutralization(t, "blocked", inject, f"{alert.title}: {alert.explanation}"))
        return out

    # -- the run -----------------------------------------------------------------------------
    async def run(self, progress: Callable[[float, float], None] | None = None) -> DrillRecord:
        started = time.time()
        rng = self.range
        await rng.start()
        try:
            events = self._events()
            end = self.scenario.duration_s
            step = max(rng.poll_s, 1.0)
            while rng.time_s < end - 1e-9:
                due = [e for e in events if e[0] <= rng.time_s + 1e-9]
                for e in due:
                    events.remove(e)
                    rng.mark_time()
                    await self._inject(e[2], e[3])
                    rng.mark_time()
                await self._service_replays()
                if self.firewall and not self._enforcing and rng.time_s >= self.scenario.warmup_s - 1e-9:
                    rng.enforce()
                    self._enforcing = True
                nxt = min([e[0] for e in events] + [rng.time_s + step, end])
                await rng.advance(max(rng.scan_s, nxt - rng.time_s))
                if progress is not None:
                    progress(rng.time_s, end)
            for proxy in self._proxies.values():
                await proxy.close()
        finally:
            await rng.stop()
        trips = rng.plant.sis.events
        neutral = [
            Neutralization(e.time_s, "sis_trip", None, f"{e.trip} on {e.tag} = {e.value:.2f}") for e in trips
        ]
        neutral += self._blocks()
        return DrillRecord(
            scenario=self.scenario.id,
            seed=self.seed,
            truth=tuple(self.truth),
            alerts=(),
            neutralizations=tuple(neutral),
            trends=rng.historian.table(),
            hazards=hazard_events(rng.events.hazards, trips),
            started_wall=started,
            ended_wall=time.time(),
            duration_s=rng.time_s,
            meta={
                "speed": str(self.speed),
                "plant": self.scenario.plant,
                "errors": list(self.errors),
                "timebase": rng.timebase,
            },
        )


def front(text: str) -> str:
    """127.I.1.N (a device behind the inline firewall) -> 127.I.0.N, the address the network sees."""
    parts = text.split(".", 3)
    if len(parts) == 4 and parts[0] == "127" and parts[2] == "1":
        return ".".join([parts[0], parts[1], "0", parts[3]])
    return text


def _host(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0]


# -- the defenders ---------------------------------------------------------------------------
def defend(capture: Path, warmup_end: float | None) -> list[Any]:
    """Interlock's own detectors over the drill capture: rules on all of it, the baseline learned
    on the warm-up and applied after it."""
    from datetime import UTC, datetime

    from interlock.capture.decode import decode_path
    from interlock.detect.cli import default_rules_dir
    from interlock.detect.network.baseline import Baseline, BaselineDetector
    from interlock.detect.network.rules import RuleEngine, load_rules

    rules_dir = default_rules_dir()
    if rules_dir is None:
        raise DrillError("no detection rules found next to this installation; reinstall Interlock")
    from interlock.detect.network.rules import RuleError

    try:
        rules = load_rules(rules_dir)
    except RuleError as exc:
        raise DrillError(f"{exc} (fix the rule file; the drill's detectors load every rule)") from None
    batches, _ = decode_path(capture)
    table = pa.Table.from_batches(list(batches))
    engine = RuleEngine(rules, capture=str(capture))
    alerts: list[Any] = []
    for batch in table.to_batches():
        alerts.extend(engine.process(batch))
    alerts.extend(engine.finish())
    if warmup_end is not None and table.num_rows:
        cut = pa.scalar(datetime.fromtimestamp(warmup_end, UTC), type=table.schema.field("ts").type)
        before = table.filter(pc.less(table["ts"], cut))
        after = table.filter(pc.greater_equal(table["ts"], cut))
        if before.num_rows and after.num_rows:
            baseline = Baseline().fit(before.to_batches())
            learned = BaselineDetector(baseline, capture=str(capture))
            for batch in after.to_batches():
                alerts.extend(learned.process(batch))
            alerts.extend(learned.finish())
    return alerts


def run_drill(
    scenario: Scenario,
    out_dir: Path,
    *,
    seed: int | None = None,
    alerts_file: Path | None = None,
    speed: str | None = None,
    progress: bool = True,
    db: Path | None = None,
    store: bool = True,
    firewall: bool = True,
    instance: int = 0,
) -> tuple[DrillRecord, Score]:
    """Run ``scenario`` end to end; leave the capture, alerts, report.html and score.json in ``out_dir``.

    ``instance`` puts the range in its own loopback network 127.I.0.0/16, so drills of the same
    plant can run side by side on one host."""
    from interlock.capture.tap import LoopbackTap, TapError

    out_dir.mkdir(parents=True, exist_ok=True)
    if alerts_file is not None:
        firewall = False  # the team's own tools defend; Interlock's firewall must not take credit
    drill = Drill(scenario, out_dir, seed=seed, speed=speed, firewall=firewall, instance=instance)
    capture = out_dir / CAPTURE_NAME
    tap: LoopbackTap | None = None
    notes: list[str] = []
    if alerts_file is None:
        try:
            hosts = frozenset(
                {drill.range.at(d.host) for d in drill.range.points.devices} | {drill.proxy_host}
            )
            tap = LoopbackTap(capture, hosts=hosts, net=f"127.{instance}.0.0/24").start()
        except TapError as exc:
            notes.append(f"no network defender: {exc}")
    record = asyncio.run(_run_with_progress(drill, progress))
    if tap is not None:
        tap.stop()
        retime(capture, drill.range, scenario.warmup_s)
    rng = drill.range
    to_plant = rng.plant_time_of
    alerts: list[AlertSeen]
    if alerts_file is not None:
        alerts = load_alerts(alerts_file, to_plant)
        defender = f"external alerts from {alerts_file}"
    else:
        # The firewall names its upstream (the device's backplane address); name the device's own.
        blocked = [
            replace(a, ts=rng.calendar_of(rng.plant_time_of(a.ts)), dst=front(a.dst), asset=front(a.asset))
            for a in rng.firewall_alerts
        ]
        found = defend(capture, rng.calendar_of(scenario.warmup_s)) if tap is not None else []
        _write_alerts(sorted(found + blocked, key=lambda a: a.ts), out_dir / "alerts.jsonl")
        alerts = [alert_seen(a, lambda ts: ts - rng.calendar_of(0.0)) for a in found + blocked]
        parts = (["interlock rules", "learned baseline"] if tap is not None else []) + (
            ["inline firewall"] if firewall else []
        )
        defender = ", ".join(parts) or "none"
        if tap is not None:
            write_labels(record, rng, out_dir / "labels.csv")
    if alerts_file is None:
        # External teams are scored on their own alerts only; Interlock's process detectors judge
        # the historian (fitted on the warm-up) whether or not the capture could be taken.
        from interlock.drill.process_defender import process_alerts, write_process_alerts

        found_process = process_alerts(
            record.trends, scenario.plant, scenario.warmup_s, seed=drill.seed, watermark=True
        )
        write_process_alerts(found_process, out_dir / "process_alerts.jsonl")
        alerts += found_process
        defender = "process detectors" if defender == "none" else f"{defender} and process detectors"
    meta = {**record.meta, "defender": defender, "notes": notes, "packets": tap.packets if tap else 0}
    record = replace(record, alerts=tuple(sorted(alerts, key=lambda a: a.time_s)), meta=meta)
    score = score_drill(record, scenario)
    _write_outputs(record, scenario, score, out_dir)
    if store:
        _store(record, scenario, score, db)
    return record, score


def write_labels(record: DrillRecord, rng: Range, path: Path) -> None:
    """The ground truth as ``interlock eval network`` labels (its generic CSV: start, end,
    technique, source, destination; epoch seconds on the capture's plant calendar), so a drill's
    capture is a labelled evaluation set: ``interlock eval network drill.pcap --labels labels.csv``."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["start", "end", "technique", "source", "destination"])
        for a in record.truth:
            for technique in a.attack_ids[:1]:  # the technique's first (main) ATT&CK id
                out.writerow(
                    [
                        f"{rng.calendar_of(a.start_s):.6f}",
                        f"{rng.calendar_of(a.end_s):.6f}",
                        technique,
                        _host(a.source),
                        _host(a.target),
                    ]
                )


def retime(capture: Path, rng: Range, warmup_s: float | None = None) -> None:
    """Rewrite the capture's timestamps to the plant's calendar, so the defenders see the traffic at
    the pace the plant lived it (one HMI poll a plant second), whatever the speed of the run.
    With ``warmup_s``, the warm-up's frames also go to ``warmup.pcap`` beside it: the benign
    capture an evaluation learns its baseline from."""
    from interlock.capture.pcap import PcapWriter, read_frames

    tmp = capture.with_suffix(".tmp")
    cut = rng.calendar_of(warmup_s) if warmup_s is not None else None
    with capture.open("rb") as src, tmp.open("wb") as dst, contextlib.ExitStack() as stack:
        writer = PcapWriter(dst)
        benign = None
        if cut is not None:
            benign = PcapWriter(stack.enter_context((capture.parent / WARMUP_NAME).open("wb")))
        last = 0.0
        for _no, ts, _lt, data in read_frames(src, str(capture)):
            # Monotone by construction; the max() guards against clock steps of the host.
            last = max(last, rng.calendar_of(rng.plant_time_of(ts)))
            writer.write(last, data)
            if benign is not None and cut is not None and last < cut:
                benign.write(last, data)
    tmp.replace(capture)


async def _run_with_progress(drill: Drill, progress: bool) -> DrillRecord:
    if not progress:
        return await drill.run()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[plant]}"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(f"drill {drill.scenario.id}", total=drill.scenario.duration_s, plant="")

        def update(t: float, end: float) -> None:
            bar.update(task, completed=t, plant=f"plant time {t / 60:5.1f} / {end / 60:.0f} min")

        return await drill.run(update)


def _write_alerts(alerts: list[Any], path: Path) -> None:
    from interlock.detect.alerts import JsonlAlertWriter

    with path.open("w", encoding="utf-8") as fh:
        writer = JsonlAlertWriter(fh)
        for a in alerts:
            writer.write(a)


def _write_outputs(record: DrillRecord, scenario: Scenario, score: Score, out_dir: Path) -> None:
    import json

    try:
        from interlock.drill.report import write_report
    except ImportError:
        (out_dir / "score.json").write_text(json.dumps(score.to_json(), indent=2) + "\n", encoding="utf-8")
        return
    write_report(record, scenario, score, out_dir)
    if record.trends is not None:
        import pyarrow.parquet as pq

        pq.write_table(record.trends, out_dir / "historian.parquet", compression="zstd")


def _store(record: DrillRecord, scenario: Scenario, score: Score, db: Path | None) -> None:
    try:
        from interlock.drill import programme
    except ImportError:
        return
    programme.record_drill(record, scenario, score, db)  # type: ignore[attr-defined,unused-ignore]
