"""The common interface of the range's non-Modbus field devices and their point lists.

A field device (DNP3 RTU, IEC 60870-5-104 RTU, S7 safety CPU) serves the points of one ``devices``
entry of ``src/interlock/range/points/<plant>.yaml`` on a real loopback socket. The runtime pushes
plant values with :meth:`FieldDevice.publish`, collects operator commands with
:meth:`FieldDevice.take_commands` and client-written setpoints with :meth:`FieldDevice.writable`.

The points file is read here with ``yaml.safe_load`` and a few lines of validation rather than
through the lead's Modbus loader (``interlock.range.points``): the non-Modbus entries carry other
keys (``type``/``index``/``ioa``/``offset``) and the two loaders evolve independently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

from interlock.range.boundary import Boundary

POINTS_DIR = Path(__file__).resolve().parent.parent / "points"
FIELD_PROTOCOLS = ("dnp3", "iec104", "s7comm")
COMMAND_TYPES = frozenset({"binary_output", "C_SC_NA_1", "C_SE_NC_1"})  # access rw unless told


@dataclass(frozen=True)
class DevicePoint:
    """One point of a field device, as the points file lists it.

    ``type`` is the protocol's own name of the point (``analog_input``, ``binary_input``,
    ``binary_output`` for DNP3; ``M_ME_NC_1``, ``M_SP_NA_1``, ``C_SC_NA_1``, ``C_SE_NC_1`` for
    IEC 104; ``REAL``/``BOOL`` for S7, and ``CPU_STATE``: the CPU's mode, read through SZL
    0x0424, no DB). ``source`` is the tag of the plant/PLC value the point
    mirrors (the point's own tag unless the file says otherwise).
    """

    tag: str
    kind: str
    access: str  # "r" (monitored) or "rw" (written by a master: command, setpoint, bypass)
    type: str
    index: int | None = None  # DNP3 point index
    ioa: int | None = None  # IEC 104 information object address
    db: int | None = None  # S7 data block number
    offset: int | None = None  # S7 byte offset in the DB
    source: str = ""
    initial: float | None = None  # None: the file gives none (see ``start_value``)
    unit: str = ""
    low: float | None = None
    high: float | None = None
    deadband: float | None = None  # absolute; None: the device's default

    def __post_init__(self) -> None:
        if not self.source:
            object.__setattr__(self, "source", self.tag)

    @property
    def start_value(self) -> float:
        """What the device holds before the first ``publish``: ``initial``, else 0."""
        return 0.0 if self.initial is None else self.initial


@dataclass(frozen=True)
class DeviceSpec:
    """One non-Modbus ``devices`` entry of a points file."""

    name: str
    protocol: str
    host: str
    port: int
    unit: int  # DNP3 outstation address, IEC 104 common address, S7 slot
    points: tuple[DevicePoint, ...]
    role: str = ""
    master_address: int = 1  # DNP3 only: the HMI master's link address


@dataclass(frozen=True)
class Command:
    """A command a master sent to a field device, for the runtime to apply to the plant/PLC."""

    device: str
    tag: str
    value: float
    received_wall: float
    detail: str  # e.g. "CROB LATCH_ON index 0", "C_SC_NA_1 ioa 3001 execute"


@runtime_checkable
class FieldDevice(Protocol):
    """What the runtime drives; see the module docstring."""

    name: str
    protocol: str
    host: str
    port: int

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def publish(self, values: Mapping[str, float]) -> None: ...

    def take_commands(self) -> list[Command]: ...

    def writable(self) -> dict[str, float]: ...


class CommandQueue:
    """Commands received by a device's server thread(s), drained by the runtime thread."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._lock = threading.Lock()
        self._items: list[Command] = []

    def record(self, tag: str, value: float, detail: str) -> Command:
        cmd = Command(self.device, tag, float(value), time.time(), detail)
        with self._lock:
            self._items.append(cmd)
        return cmd

    def take(self) -> list[Command]:
        with self._lock:
            items, self._items = self._items, []
        return items


@dataclass
class ChangeFilter:
    """Which monitored values moved beyond their deadband since they were last reported."""

    default_deadband: float
    last: dict[str, float] = field(default_factory=dict)

    def changed(self, tag: str, value: float, deadband: float | None) -> bool:
        band = self.default_deadband if deadband is None else deadband
        old = self.last.get(tag)
        if old is not None and abs(value - old) <= band:
            return False
        self.last[tag] = value
        return True


def _num(raw: Mapping[str, Any], key: str) -> float | None:
    v = raw.get(key)
    return None if v is None else float(v)


def _int(raw: Mapping[str, Any], key: str) -> int | None:
    v = raw.get(key)
    return None if v is None else int(v)


def _point(raw: Mapping[str, Any], device: str) -> DevicePoint:
    if "tag" not in raw or "type" not in raw:
        raise ValueError(f"{device}: every point needs a tag and a type, got {dict(raw)}")
    return DevicePoint(
        tag=str(raw["tag"]),
        kind=str(raw.get("kind", "")),
        access=str(raw.get("access", "rw" if raw["type"] in COMMAND_TYPES else "r")),
        type=str(raw["type"]),
        index=_int(raw, "index"),
        ioa=_int(raw, "ioa"),
        db=_int(raw, "db"),
        offset=_int(raw, "offset"),
        source=str(raw.get("source", "")),
        initial=_num(raw, "initial"),
        unit=str(raw.get("unit", "")),
        low=_num(raw, "low"),
        high=_num(raw, "high"),
        deadband=_num(raw, "deadband"),
    )


def load_device_specs(plant_id: str, points_dir: Path = POINTS_DIR) -> list[DeviceSpec]:
    """The DNP3, IEC 104 and S7 devices of a plant's points file (Modbus ones are the lead's)."""
    path = points_dir / f"{plant_id}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = []
    for dev in doc.get("devices", []):
        protocol = str(dev.get("protocol", ""))
        if protocol not in FIELD_PROTOCOLS:
            continue
        name = str(dev["name"])
        specs.append(DeviceSpec(
            name=name,
            protocol=protocol,
            host=str(dev["host"]),
            port=int(dev["port"]),
            unit=int(dev.get("unit", 1)),
            points=tuple(_point(p, name) for p in dev.get("points", [])),
            role=str(dev.get("role", "")),
            master_address=int(dev.get("master_address", 1)),
        ))
    return specs


def build_device(spec: DeviceSpec, boundary: Boundary) -> FieldDevice:
    """The device object serving ``spec`` (not started)."""
    # imported here: each module pulls in its peer library only when a plant needs it
    if spec.protocol == "dnp3":
        from interlock.range.devices.dnp3_rtu import Dnp3Rtu

        return Dnp3Rtu(spec, boundary)
    if spec.protocol == "iec104":
        from interlock.range.devices.iec104_rtu import Iec104Rtu

        return Iec104Rtu(spec, boundary)
    if spec.protocol == "s7comm":
        from interlock.range.devices.s7_sis import S7Sis

        return S7Sis(spec, boundary)
    raise ValueError(f"{spec.name}: no field device for protocol {spec.protocol!r}")


def load_field_devices(plant_id: str, boundary: Boundary,
                       points_dir: Path = POINTS_DIR) -> list[FieldDevice]:
    """Build (not start) the non-Modbus devices of ``plant_id`` from its points file."""
    return [build_device(spec, boundary) for spec in load_device_specs(plant_id, points_dir)]
