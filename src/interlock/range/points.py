"""Point lists: the register map of each range device, kept as data like a vendor's manual.

``points/<plant>.yaml`` lists the plant's devices (name, role, protocol, loopback address, unit)
and their points. Modbus points sit in one of the four tables with a 0-based address and a linear
scaling ``raw = round((value - offset) * scale)`` into an unsigned (or ``signed``) 16-bit register;
bits are 0/1. DNP3, IEC-104 and S7 points carry their own addressing (index, IOA, DB offset) and are
served by ``interlock.range.devices``. A broken file is refused with ``FILE:LINE: reason``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from interlock.yamlnodes import Node, NodeError, compose, located

POINTS_DIR = Path(__file__).parent / "points"
TABLES = ("coil", "discrete", "holding", "input")
WRITABLE_TABLES = ("coil", "holding")


class PointListError(ValueError):
    """A point list that cannot be used; the message starts with ``FILE:LINE:``."""


@dataclass(frozen=True, slots=True)
class Point:
    """One tag of a device: where it lives and how its engineering value maps to raw."""

    tag: str
    kind: str
    access: str = "r"  # "r" or "rw"
    table: str = ""  # Modbus table; "" for non-Modbus points
    address: int = -1
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    signed: bool = False
    low: float | None = None
    high: float | None = None
    initial: float | None = None
    source: str = ""  # the plant or PLC tag this point mirrors (default: its own tag)
    extra: Mapping[str, Any] = field(default_factory=dict)  # protocol addressing of non-Modbus points

    @property
    def writable(self) -> bool:
        return self.access == "rw"

    @property
    def is_bit(self) -> bool:
        return self.table in ("coil", "discrete")

    def to_raw(self, value: float) -> int:
        """The register content for an engineering value, clamped to the register's range."""
        if self.is_bit:
            return 1 if value else 0
        raw = round((value - self.offset) * self.scale) if math.isfinite(value) else 0
        if self.signed:
            raw = min(32767, max(-32768, raw))
            return raw & 0xFFFF
        return min(0xFFFF, max(0, raw))

    def from_raw(self, raw: int) -> float:
        if self.is_bit:
            return 1.0 if raw else 0.0
        if self.signed and raw >= 0x8000:
            raw -= 0x10000
        return raw / self.scale + self.offset


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    role: str  # plc, sis, rtu
    protocol: str  # modbus, dnp3, iec104, s7comm
    host: str
    port: int
    unit: int
    points: tuple[Point, ...]
    identity: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def point(self, tag: str) -> Point:
        for p in self.points:
            if p.tag == tag:
                return p
        raise KeyError(f"{self.name} has no point {tag!r}; known: {', '.join(p.tag for p in self.points)}")


@dataclass(frozen=True, slots=True)
class PointList:
    plant: str
    description: str
    hmi_host: str
    poll_s: float
    devices: tuple[Device, ...]
    path: Path

    def device(self, name: str) -> Device:
        for d in self.devices:
            if d.name == name:
                return d
        known = ", ".join(d.name for d in self.devices)
        raise KeyError(f"plant {self.plant} has no device {name!r}; known: {known}")


def _with_lines(node: Node) -> Any:
    """``node.plain()``, with the line of every mapping under ``__line__`` for error messages."""
    if node.is_mapping:
        return {**{k: _with_lines(v) for k, v in node.mapping().items()}, "__line__": node.line}
    if node.is_sequence:
        return [_with_lines(v) for v in node.sequence()]
    return node.value

_MODBUS_KEYS = {
    "tag",
    "table",
    "address",
    "unit",
    "scale",
    "offset",
    "signed",
    "access",
    "kind",
    "low",
    "high",
    "initial",
    "source",
    "trip",
}
_DEVICE_KEYS = {"name", "role", "protocol", "host", "port", "unit", "identity", "points", "description"}


def _fail(path: Path, line: int | str, message: str) -> PointListError:
    return PointListError(located(path, line, message))


def _point(path: Path, protocol: str, raw: dict[str, Any]) -> Point:
    line = raw.pop("__line__", "?")
    tag = raw.get("tag")
    if not isinstance(tag, str) or not tag:
        raise _fail(path, line, "every point needs a 'tag'")
    access = raw.get(
        "access", "r" if protocol == "modbus" else "rw" if raw.get("kind") in ("command", "setpoint") else "r"
    )
    if access not in ("r", "rw"):
        raise _fail(path, line, f"point {tag}: access must be r or rw, not {access!r}")
    common = {
        "tag": tag,
        "kind": str(raw.get("kind", "sensor")),
        "access": access,
        "unit": str(raw.get("unit", "")),
        "low": None if raw.get("low") is None else float(raw["low"]),
        "high": None if raw.get("high") is None else float(raw["high"]),
        "initial": None if raw.get("initial") is None else float(raw["initial"]),
        "source": str(raw.get("source", tag)),
    }
    if protocol != "modbus":
        extra = {k: v for k, v in raw.items() if k not in common and k != "__line__"}
        return Point(**common, extra=extra)
    unknown = set(raw) - _MODBUS_KEYS
    if unknown:
        raise _fail(path, line, f"point {tag}: unknown key(s) {', '.join(sorted(unknown))}")
    table = raw.get("table")
    if table not in TABLES:
        raise _fail(path, line, f"point {tag}: table must be one of {', '.join(TABLES)}, not {table!r}")
    address = raw.get("address")
    if not isinstance(address, int) or not 0 <= address <= 0xFFFF:
        raise _fail(path, line, f"point {tag}: address must be an integer 0-65535, not {address!r}")
    if access == "rw" and table not in WRITABLE_TABLES:
        raise _fail(path, line, f"point {tag}: a {table} cannot be written over Modbus; use access: r")
    scale = float(raw.get("scale", 1))
    if scale == 0:
        raise _fail(path, line, f"point {tag}: scale must not be 0")
    extra = {"trip": raw["trip"]} if "trip" in raw else {}
    return Point(
        **common,
        table=table,
        address=address,
        scale=scale,
        offset=float(raw.get("offset", 0.0)),
        signed=bool(raw.get("signed", False)),
        extra=extra,
    )


def parse_point_list(text: str, path: Path) -> PointList:
    try:
        root = compose(text, mode="pyyaml")  # keys as safe_load reads them
    except NodeError as exc:
        raise _fail(path, "?" if exc.line is None else exc.line,
                    f"not valid YAML: {exc.cause or exc.problem}") from None
    doc = None if root is None else _with_lines(root)
    if not isinstance(doc, dict) or not isinstance(doc.get("devices"), list):
        raise _fail(path, 1, "a point list is a mapping with 'plant' and a list of 'devices'")
    hmi = doc.get("hmi") or {}
    devices: list[Device] = []
    seen: set[tuple[str, int]] = set()
    for raw in doc["devices"]:
        line = raw.pop("__line__", "?")
        unknown = set(raw) - _DEVICE_KEYS
        if unknown:
            raise _fail(path, line, f"device: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("name", "role", "protocol", "host", "port"):
            if key not in raw:
                raise _fail(path, line, f"device needs '{key}'")
        protocol = str(raw["protocol"])
        points = tuple(_point(path, protocol, dict(p)) for p in raw.get("points", []))
        if protocol == "modbus":
            slots = [(p.table, p.address) for p in points]
            if len(slots) != len(set(slots)):
                raise _fail(path, line, f"device {raw['name']}: two points share a table and address")
        endpoint = (str(raw["host"]), int(raw["port"]))
        if endpoint in seen:
            raise _fail(path, line, f"device {raw['name']}: {endpoint[0]}:{endpoint[1]} is used twice")
        seen.add(endpoint)
        identity = {k: str(v) for k, v in (raw.get("identity") or {}).items() if k != "__line__"}
        devices.append(
            Device(
                str(raw["name"]),
                str(raw["role"]),
                protocol,
                endpoint[0],
                endpoint[1],
                int(raw.get("unit", 1)),
                points,
                identity,
                str(raw.get("description", "")),
            )
        )
    return PointList(
        str(doc.get("plant", "")),
        str(doc.get("description", "")),
        str(hmi.get("host", "127.0.0.2")),
        float(hmi.get("poll_s", 1.0)),
        tuple(devices),
        path,
    )


@cache
def load_point_list(plant: str) -> PointList:
    """The packaged point list of ``plant`` (``gas-pipeline``, ``refinery``, ``reactor``)."""
    path = POINTS_DIR / f"{plant}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in POINTS_DIR.glob("*.yaml")))
        raise PointListError(f"{path}:0: no point list for plant {plant!r}; known: {known}")
    return parse_point_list(path.read_text(encoding="utf-8"), path)
