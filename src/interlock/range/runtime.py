"""The range at run time: one plant, its PLCs on real sockets, the HMI poller and the historian.

Everything runs in one asyncio event loop: the pymodbus servers, the HMI's clients and the scan
loop. One tick scans every PLC (inputs, logic, outputs), steps the physics by the scan time and
advances the clock; every ``poll_s`` of plant time the HMI polls every device over TCP and awaits
the answers before the next tick. In stepped mode (``speed="max"``) the clock is virtual and the
loop runs as fast as it can, so a seed fixes the whole run, historian included; with a number the
loop is paced at that many times real time on the wall clock.

``advance`` is the drill engine's handle: it steps the range by plant seconds and returns, so the
engine can act between ticks (pause = not calling it; step = calling it with one scan); ``snapshot``
gives the plant state, PLC images and SIS state at that instant. The physical truth is recorded
beside what the HMI read, never mixed into it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interlock.range.boundary import Boundary
from interlock.range.clock import Clock, VirtualClock, WallClock
from interlock.range.historian import Historian
from interlock.range.hmi import ModbusMaster
from interlock.range.logic import LOGIC, SisLogic, apply_sis_settings
from interlock.range.modbus_server import PlcModbusServer
from interlock.range.plants import PLANTS
from interlock.range.plants.base import Hazard, Plant
from interlock.range.plc import Logic, Plc, WriteEvent
from interlock.range.points import PointList, load_point_list
from interlock.range.watermark import Watermark

# 2026-01-05 06:00 UTC: a Monday morning shift; the virtual clock's calendar starts here.
START_EPOCH_S = 1_767_592_800.0
COMM_RETRY_S = 30.0  # plant seconds before the HMI tries a device that failed again
PRIVILEGED_PORT_SHIFT = 10_000  # 502 -> 10502, 102 -> 10102 when we may not bind below 1024


def backplane(host: str) -> str:
    """The address a device keeps behind an inline firewall: 127.I.0.N -> 127.I.1.N."""
    parts = host.split(".")
    return ".".join([parts[0], parts[1], "1", parts[3]]) if len(parts) == 4 else host


def relocate(host: str, instance: int) -> str:
    """127.0.0.N -> 127.I.0.N: the loopback network of range instance I."""
    parts = host.split(".")
    if instance == 0 or len(parts) != 4 or parts[0] != "127":
        return host
    return ".".join([parts[0], str(instance), parts[2], parts[3]])


def parse_speed(speed: str | float) -> float | None:
    """``max`` (stepped, as fast as possible) -> None; otherwise a positive real-time multiplier."""
    if isinstance(speed, str) and speed.strip().lower() == "max":
        return None
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise ValueError(f"speed must be 'max' or a positive number like 1 or 10, not {speed!r}") from None
    if not value > 0:
        raise ValueError(f"speed must be 'max' or a positive number like 1 or 10, not {speed!r}")
    return value


def can_bind_privileged() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class RangeEvents:
    """What happened in the plant that the drill and the report need, in plant seconds."""

    writes: list[WriteEvent] = field(default_factory=list)
    commands: list[tuple[float, str, str, float, str]] = field(
        default_factory=list
    )  # t, device, tag, value, detail
    comm_failures: list[tuple[float, str]] = field(default_factory=list)  # t, device
    hazards: list[tuple[float, Hazard]] = field(default_factory=list)  # onsets: plant time, what


class Range:
    def __init__(
        self,
        plant_id: str,
        *,
        seed: int = 0,
        speed: str | float = "max",
        scan_s: float = 0.5,
        poll_s: float | None = None,
        boundary: Boundary | None = None,
        field_devices: bool = True,
        sis_enabled: bool = True,
        inline_firewall: bool = False,
        instance: int = 0,
        watermark: bool = False,
    ) -> None:
        if plant_id not in PLANTS:
            raise ValueError(f"unknown plant {plant_id!r}; known: {', '.join(sorted(PLANTS))}")
        self.plant_id = plant_id
        self.seed = seed
        self.multiplier = parse_speed(speed)
        self.scan_s = scan_s
        self.points: PointList = load_point_list(plant_id)
        if not 0 <= instance <= 254:
            raise ValueError(f"instance must be 0-254, not {instance}")
        # Ranges of one plant run side by side in their own 127.I.0.0/16 (I = instance).
        self.instance = instance
        self.hmi_host = relocate(self.points.hmi_host, instance)
        self.poll_s = poll_s if poll_s is not None else self.points.poll_s
        self.boundary = boundary if boundary is not None else Boundary()
        self.clock: Clock = (
            VirtualClock(start_epoch_s=START_EPOCH_S) if self.multiplier is None else WallClock()
        )
        self.plant: Plant = PLANTS[plant_id](seed=seed, sis_enabled=sis_enabled)
        self.events = RangeEvents()
        self.historian = Historian()
        self.shift = 0 if can_bind_privileged() else PRIVILEGED_PORT_SHIFT
        self.plcs: dict[str, Plc] = {}
        for device in self.points.devices:
            if device.protocol != "modbus":
                continue
            # watermark: the control program dithers one actuator, keyed by the seed (range.watermark).
            dither = Watermark.for_plant(plant_id, seed) if watermark else None
            logic: Logic = SisLogic() if device.role == "sis" else LOGIC[plant_id](watermark=dither)
            self.plcs[device.name] = Plc(device, self.plant, logic, on_write=self.events.writes.append)
        # With the inline firewall, each Modbus device moves to its backplane address and an
        # Interlock firewall takes its published one (the Tofino layout): learning, then enforcing.
        self.firewalls: dict[str, Any] = {}
        self.firewall_alerts: list[Any] = []
        self.servers = [
            PlcModbusServer(
                plc,
                self.boundary,
                port=self.port_of(plc.device.port),
                host=backplane(self.at(plc.device.host)) if inline_firewall else self.at(plc.device.host),
            )
            for plc in self.plcs.values()
        ]
        if inline_firewall:
            self._make_firewalls()
        self.masters: dict[str, Any] = {
            name: ModbusMaster(
                plc.device, self.at(plc.device.host), self.port_of(plc.device.port), self.hmi_host
            )
            for name, plc in self.plcs.items()
        }
        self.field: list[Any] = []
        self._want_field = field_devices
        self._next_poll = 0.0
        self._wall_start = 0.0
        self._plant_start = 0.0
        self._hazards_on: set[str] = set()
        self.timebase: list[tuple[float, float]] = []  # (real epoch, plant s) per poll: maps packet times
        self.paused = False
        self.started = False
        self._lost: set[str] = set()  # devices whose link dropped; the HMI reconnects next poll
        self._retry_at: dict[str, float] = {}  # a device that timed out: not polled before then

    def _make_firewalls(self) -> None:
        from interlock.respond.firewall import Firewall, FirewallConfig
        from interlock.respond.policy import parse_policy

        for name, plc in self.plcs.items():
            port = self.port_of(plc.device.port)
            config = FirewallConfig(
                listen=(self.at(plc.device.host), port),
                upstream=(backplane(self.at(plc.device.host)), port),
                policy=parse_policy("default: allow\n", "<learning>"),
                mode="learn",
            )
            self.firewalls[name] = Firewall(config, self.firewall_alerts.append)

    def enforce(self) -> None:
        """Every inline firewall stops learning and enforces what it saw (the end of the warm-up)."""
        for fw in self.firewalls.values():
            fw.enforce_learned()

    # -- addressing ----------------------------------------------------------------------
    def port_of(self, port: int) -> int:
        return port + self.shift if port < 1024 else port

    def endpoint(self, device: str) -> tuple[str, int]:
        d = self.points.device(device)
        return self.at(d.host), self.port_of(d.port)

    def at(self, host: str) -> str:
        """A point-list address (127.0.0.N) in this run's instance network (127.I.0.N)."""
        return relocate(host, self.instance)

    @property
    def time_s(self) -> float:
        return self.plant.time_s

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        for server in self.servers:
            await server.start()
        for name, fw in self.firewalls.items():
            host, port = fw.config.listen
            self.boundary.register(host, port, name)
            await fw.start()
        if self._want_field:
            self._start_field_devices()
        for master in self.masters.values():
            await master.connect()
        self._wall_start = self._wall()
        self._plant_start = self.plant.time_s
        self.started = True
        await self.poll()

    def _start_field_devices(self) -> None:
        """RTUs and safety controllers on their own libraries (dnp3py, c104, snap7), each with the
        HMI master that polls it."""
        from dataclasses import replace

        from interlock.range.devices.base import build_device, load_device_specs
        from interlock.range.devices.masters import build_master

        for spec in load_device_specs(self.plant_id):
            spec = replace(spec, host=self.at(spec.host), port=self.port_of(spec.port))
            dev = build_device(spec, self.boundary)
            dev.start()
            self.field.append(dev)
            self.masters[spec.name] = build_master(spec, bind_host=self.hmi_host)
        self._publish_field()

    async def stop(self) -> None:
        """Close everything, each part on its own: one that fails must not leave a port bound."""
        for master in self.masters.values():
            with contextlib.suppress(Exception):
                await master.close()
        for dev in self.field:
            with contextlib.suppress(Exception):
                dev.stop()
        for fw in self.firewalls.values():
            with contextlib.suppress(Exception):
                await fw.close()
            self.boundary.unregister(*fw.config.listen)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.stop()
        self.started = False

    async def __aenter__(self) -> Range:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- running ------------------------------------------------------------------------------
    def _wall(self) -> float:
        return self.clock.now()

    def tick(self) -> None:
        """One scan of every PLC and field device, then the physics over one scan time."""
        self._apply_field()
        for plc in self.plcs.values():
            plc.scan(self.scan_s)
        self.plant.step(self.scan_s)
        if isinstance(self.clock, VirtualClock):
            self.clock.advance(self.scan_s)
        self._publish_field()
        for hazard in self.plant.hazards():
            if hazard.hazard not in self._hazards_on:
                self.events.hazards.append((self.plant.time_s, hazard))
        self._hazards_on = {h.hazard for h in self.plant.hazards()}

    async def advance(self, seconds: float, *, on_poll: Callable[[], None] | None = None) -> None:
        """Run ``seconds`` of plant time: ticks, polls when due, pacing when not stepped."""
        end = self.plant.time_s + seconds - 1e-9
        while self.plant.time_s < end:
            while self.paused:
                await asyncio.sleep(0.05)
            self.tick()
            if self.multiplier is not None:
                target = self._wall_start + (self.plant.time_s - self._plant_start) / self.multiplier
                await asyncio.sleep(max(0.0, target - self._wall()))
            else:
                await asyncio.sleep(0)  # let servers and clients of this loop run
            if self.plant.time_s >= self._next_poll - 1e-9:
                await self.poll()
                if on_poll is not None:
                    on_poll()

    async def poll(self) -> None:
        """The HMI polls every device; the historian records what it read and the truth beside it."""
        t, wall = self.plant.time_s, self._wall()
        self.timebase.append((time.time(), t))
        for name, master in self.masters.items():
            values = await self._poll_one(name, master)
            self.historian.add(t, wall, name, values, "hmi")
        truth = {**self.plant.truth(), **{f"{k}_actual": v for k, v in self.plant.actuators.items()}}
        truth["sis_tripped"] = 1.0 if self.plant.sis.tripped else 0.0
        self.historian.add(t, wall, "plant", truth, "truth")
        self._next_poll = t + self.poll_s

    async def _poll_one(self, name: str, master: Any) -> dict[str, float]:
        """One device's poll; a dropped link (an outstation that takes one master at a time, a
        restarted device) is a communication failure: no values this poll, reconnect on the next.
        A device whose reads timed out (silent: listen-only, hung) is retried after
        ``COMM_RETRY_S`` of plant time, as a SCADA driver backs off, rather than costing the
        poll a timeout every second."""
        if self.plant.time_s < self._retry_at.get(name, -math.inf):
            return {}
        try:
            if name in self._lost:
                await master.connect()
                self._lost.discard(name)
            values: dict[str, float] = await master.poll()
        except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            self._lost.add(name)
            self.events.comm_failures.append((self.plant.time_s, name))
            with contextlib.suppress(Exception):
                await master.close()
            return {}
        if getattr(master, "failed", False):  # the Modbus master's: no connection, or a read unanswered
            self._retry_at[name] = self.plant.time_s + COMM_RETRY_S
            self.events.comm_failures.append((self.plant.time_s, name))
        else:
            self._retry_at.pop(name, None)
        return values

    # -- field devices (RTUs, S7 safety controllers) ------------------------------------------
    def _process_values(self) -> dict[str, float]:
        values: dict[str, float] = {**self.plant.truth(), **self.plant.actuators}
        for plc in self.plcs.values():
            values.update(plc.inputs)
            values.update(plc.values)
        return values

    def _publish_field(self) -> None:
        if not self.field:
            return
        values = self._process_values()
        sis = self.plant.sis_sensors() if any(d.protocol == "s7comm" for d in self.field) else {}
        values.update({f"sis_{k}": v for k, v in sis.items()})
        values["sis_trip_active"] = 1.0 if self.plant.sis.tripped else 0.0
        for dev in self.field:
            dev.publish(values)

    def _apply_field(self) -> None:
        for dev in self.field:
            for cmd in dev.take_commands():
                self._apply_command(dev.name, cmd.tag, cmd.value, cmd.detail)
            device = self.points.device(dev.name)
            if device.role == "sis":  # the point list says what a device is, not its name
                apply_sis_settings(self.plant, device.points, dev.writable())
                if getattr(dev, "cpu_running", True) is False:
                    self.plant.sis.enabled = False  # a stopped safety CPU protects nothing

    def _apply_command(self, device: str, tag: str, value: float, detail: str) -> None:
        self.events.commands.append((self.plant.time_s, device, tag, value, detail))
        actuators = {a.name for a in self.plant.ACTUATORS}
        if tag in actuators:
            self.plant.set_actuator(tag, value)
            return
        for plc in self.plcs.values():
            if tag in plc.values and plc.device.role != "sis":
                point = plc.device.point(tag)
                if point.writable:
                    plc.write_tag(tag, value)
                return

    # -- the drill's view -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "plant_time_s": self.plant.time_s,
            "state": dict(self.plant.state),
            "actuators": dict(self.plant.actuators),
            "truth": self.plant.truth(),
            "sis": {
                "tripped": self.plant.sis.tripped,
                "enabled": self.plant.sis.enabled,
                "events": [copy.copy(e) for e in self.plant.sis.events],
            },
            "plcs": {name: plc.snapshot() for name, plc in self.plcs.items()},
        }

    def mark_time(self) -> None:
        """Pin the current real instant to the current plant time (before and after an inject, so
        its packets map to the plant instant it ran at, however long it took on the wall)."""
        self.timebase.append((time.time(), self.plant.time_s))

    def plant_time_of(self, wall: float) -> float:
        """Map a real instant (a packet's capture time) to plant time: linear between the pinned
        instants of the timebase, constant before the first and after the last."""
        base = self.timebase
        if not base:
            return 0.0
        i = bisect.bisect_right(base, (wall, float("inf")))
        if i == 0:
            return base[0][1]
        if i == len(base):
            return base[-1][1]
        (w0, t0), (w1, t1) = base[i - 1], base[i]
        if w1 <= w0 or t1 == t0:
            return t0
        return t0 + (wall - w0) / (w1 - w0) * (t1 - t0)

    def calendar_of(self, plant_time_s: float) -> float:
        """The epoch instant of a plant time on this range's calendar (the virtual clock's)."""
        return START_EPOCH_S + plant_time_s
