"""The PLC runtime: a scan cycle over a plant on injected time, with a register image.

Each scan reads the inputs (the plant's control transmitters, once per scan, so the noise stream
and thus the run is reproducible), runs the control logic (PID loops whose setpoints, gains and
modes live in holding registers, interlocks, alarms) and writes the outputs to the plant's
actuators. The image holds the engineering value of every point; the Modbus server reads and writes
it through ``read_raw`` and ``write_raw``, which refuse what a real PLC refuses:

- an address no point occupies, or a point that is read only: ILLEGAL DATA ADDRESS (2);
- a value outside the point's ``low``/``high``: ILLEGAL DATA VALUE (3).

A stopped CPU (``running = False``) keeps its outputs frozen and stops scanning, like a PLC put
in STOP by an engineering tool; it still answers reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from interlock.range.plants.base import Plant
from interlock.range.points import Device, Point

ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3


class Logic(Protocol):
    """A plant's control program: ``initial`` values for points the list leaves open, ``run`` a scan."""

    def initial(self, plc: Plc) -> dict[str, float]: ...

    def run(self, plc: Plc, dt_s: float) -> None: ...


@dataclass(frozen=True, slots=True)
class WriteEvent:
    """A write the PLC accepted from the network, for the ground truth and the operator log."""

    device: str
    tag: str
    old: float
    new: float
    plant_time_s: float


@dataclass
class Plc:
    device: Device
    plant: Plant
    logic: Logic
    values: dict[str, float] = field(default_factory=dict)
    running: bool = True
    inputs: dict[str, float] = field(default_factory=dict)  # the transmitter readings of the last scan
    on_write: Callable[[WriteEvent], None] | None = None
    _by_slot: dict[tuple[str, int], Point] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_slot = {(p.table, p.address): p for p in self.device.points}
        for p in self.device.points:
            self.values[p.tag] = p.initial if p.initial is not None else 0.0
        self.inputs = dict(self.plant.truth())
        for tag, value in self.logic.initial(self).items():
            if self.device.point(tag).initial is None:
                self.values[tag] = value
        self.publish_inputs()

    @property
    def name(self) -> str:
        return self.device.name

    def get(self, tag: str) -> float:
        return self.values[tag]

    def set(self, tag: str, value: float) -> None:
        """Logic writes its outputs and status here (the point keeps its scaled representation)."""
        self.values[tag] = value

    def publish_inputs(self) -> None:
        for p in self.device.points:
            if p.kind == "sensor" and p.source in self.inputs:
                self.values[p.tag] = self.inputs[p.source]

    def scan(self, dt_s: float) -> None:
        if not self.running:
            return
        self.inputs = self.plant.sensors()
        self.publish_inputs()
        self.logic.run(self, dt_s)

    # -- the register interface the Modbus server uses --------------------------------------
    def size(self, table: str) -> int:
        addresses = [p.address for p in self.device.points if p.table == table]
        return max(addresses) + 1 if addresses else 0

    def read_raw(self, table: str, address: int, count: int) -> list[int] | int:
        if address < 0 or count < 1 or address + count > self.size(table):
            return ILLEGAL_DATA_ADDRESS
        out: list[int] = []
        for a in range(address, address + count):
            point = self._by_slot.get((table, a))
            out.append(point.to_raw(self.values[point.tag]) if point else 0)
        return out

    def check_write(self, table: str, address: int, raw: Sequence[int]) -> int | None:
        """The exception code a real PLC would answer to this write, or None to accept it."""
        for i, value in enumerate(raw):
            point = self._by_slot.get((table, address + i))
            if point is None or not point.writable:
                return ILLEGAL_DATA_ADDRESS
            eng = point.from_raw(value)
            if (point.low is not None and eng < point.low - 1e-9) or (
                point.high is not None and eng > point.high + 1e-9
            ):
                return ILLEGAL_DATA_VALUE
        return None

    def write_raw(self, table: str, address: int, raw: Sequence[int]) -> int | None:
        code = self.check_write(table, address, raw)
        if code is not None:
            return code
        for i, value in enumerate(raw):
            point = self._by_slot[(table, address + i)]
            old, new = self.values[point.tag], point.from_raw(value)
            self.values[point.tag] = new
            if self.on_write is not None:
                self.on_write(WriteEvent(self.name, point.tag, old, new, self.plant.time_s))
        return None

    def write_tag(self, tag: str, value: float) -> int | None:
        """Write an engineering value as a client would (scaled and checked like a network write)."""
        point = self.device.point(tag)
        return self.write_raw(point.table, point.address, [point.to_raw(value)])

    def snapshot(self) -> dict[str, float]:
        return dict(self.values)

    def restore(self, values: Mapping[str, float]) -> None:
        self.values.update(values)
