"""The intended inventory (what should be on the network) and its comparison with what was seen.

The file is YAML: a list of assets, or a mapping with an ``assets`` list::

    - address: 10.0.0.8          # required: the IP address
      role: PLC                  # optional: PLC, RTU, HMI/SCADA master, engineering workstation,
                                 #   historian, ICS client (or hmi, scada, ews, engineering)
      vendor: Siemens            # optional, compared without case
      model: CPU 315-2 PN/DP     # optional
      firmware: V3.2.6           # optional
      mac: 00:1b:1b:10:00:14     # optional
      name: press line PLC       # optional, shown only

A mistake in the file is reported as one line naming the file, the line and the field
(:class:`IntendedError`), never as a traceback. The comparison reports rogue devices (seen, not
intended), missing ones (intended, not seen) and, for assets in both, a different role,
vendor, model, firmware or MAC.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from interlock.inventory.assets import Asset, Inventory, Role

FIELDS = ("address", "role", "vendor", "model", "firmware", "mac", "name")
ROLE_ALIASES: dict[str, Role] = {
    "plc": Role.PLC,
    "rtu": Role.RTU,
    "outstation": Role.RTU,
    "hmi": Role.HMI,
    "scada": Role.HMI,
    "scada master": Role.HMI,
    "hmi/scada master": Role.HMI,
    "master": Role.HMI,
    "engineering workstation": Role.ENGINEERING,
    "engineering": Role.ENGINEERING,
    "ews": Role.ENGINEERING,
    "historian": Role.HISTORIAN,
    "ics client": Role.CLIENT,
    "client": Role.CLIENT,
}


class IntendedError(Exception):
    """The intended-inventory file is wrong; the message is one line: file:line: what, fix."""


@dataclass(frozen=True, slots=True)
class IntendedAsset:
    address: str
    line: int  # 1-based line in the file, for messages
    role: Role | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    mac: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Mismatch:
    address: str
    field: str
    intended: str
    seen: str


@dataclass(frozen=True, slots=True)
class Comparison:
    rogue: tuple[Asset, ...]  # seen, not intended
    missing: tuple[IntendedAsset, ...]  # intended, not seen
    mismatches: tuple[Mismatch, ...]
    matched: int

    @property
    def clean(self) -> bool:
        return not (self.rogue or self.missing or self.mismatches)

    def to_json(self) -> dict[str, Any]:
        return {
            "rogue": [{"address": a.address, "role": str(a.role), "macs": list(a.macs),
                       "because": list(a.because)} for a in self.rogue],
            "missing": [{"address": m.address, "role": str(m.role) if m.role else None,
                         "name": m.name} for m in self.missing],
            "mismatches": [{"address": m.address, "field": m.field, "intended": m.intended,
                            "seen": m.seen} for m in self.mismatches],
            "matched": self.matched,
        }


def _role(value: str, where: str) -> Role:
    role = ROLE_ALIASES.get(value.strip().lower())
    if role is None:
        choices = ", ".join(str(r) for r in Role)
        raise IntendedError(f"{where}: role {value!r} is not one of: {choices}")
    return role


def load(path: Path) -> tuple[IntendedAsset, ...]:
    """Read and check an intended-inventory file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IntendedError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise IntendedError(f"{path}: not UTF-8 text: write the intended inventory as YAML") from None
    except OSError as exc:
        raise IntendedError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise IntendedError(f"{path}{line}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise IntendedError(f"{path}: not valid YAML ({exc})") from None
    if root is None:
        raise IntendedError(f"{path}: empty: list the intended assets (address, role, ...)")
    if isinstance(root, yaml.MappingNode):
        items = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if "assets" not in items:
            raise IntendedError(f"{path}:{root.start_mark.line + 1}: a mapping needs an "
                                "'assets' list (or make the file a list of assets)")
        root = items["assets"]
    if not isinstance(root, yaml.SequenceNode):
        raise IntendedError(f"{path}:{root.start_mark.line + 1}: expected a list of assets "
                            "(lines starting with '- address: ...')")
    seen: dict[str, int] = {}
    out = []
    for node in root.value:
        line = node.start_mark.line + 1
        where = f"{path}:{line}"
        if not isinstance(node, yaml.MappingNode):
            raise IntendedError(f"{where}: each asset is a mapping with at least an address")
        fields: dict[str, str] = {}
        for key, value in node.value:
            kline = key.start_mark.line + 1
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            if name not in FIELDS:
                raise IntendedError(f"{path}:{kline}: unknown field {name!r}: use "
                                    + ", ".join(FIELDS))
            if not isinstance(value, yaml.ScalarNode) or value.value == "":
                raise IntendedError(f"{path}:{kline}: {name} needs a plain value")
            fields[name] = str(value.value)
        if "address" not in fields:
            raise IntendedError(f"{where}: asset without an address: add 'address: <IP>'")
        try:
            address = str(ipaddress.ip_address(fields["address"].strip()))
        except ValueError:
            raise IntendedError(f"{where}: address {fields['address']!r} is not an IP "
                                "address") from None
        if address in seen:
            raise IntendedError(f"{where}: address {address} is listed twice (first on line "
                                f"{seen[address]})")
        seen[address] = line
        role = _role(fields["role"], where) if "role" in fields else None
        mac = fields.get("mac")
        out.append(IntendedAsset(address=address, line=line, role=role,
                                 vendor=fields.get("vendor"), model=fields.get("model"),
                                 firmware=fields.get("firmware"),
                                 mac=mac.strip().lower().replace("-", ":") if mac else None,
                                 name=fields.get("name")))
    return tuple(out)


def _differs(intended: str | None, seen: str | None) -> bool:
    """Only what both sides know is compared; text without case and outer blanks."""
    if intended is None or seen is None:
        return False
    return intended.strip().casefold() != seen.strip().casefold()


def compare(inv: Inventory, intended: tuple[IntendedAsset, ...]) -> Comparison:
    by_address = {a.address: a for a in inv.assets}
    wanted = {i.address for i in intended}
    rogue = tuple(a for a in inv.assets if a.address not in wanted)
    missing = tuple(i for i in intended if i.address not in by_address)
    mismatches = []
    matched = 0
    for i in intended:
        a = by_address.get(i.address)
        if a is None:
            continue
        matched += 1
        if i.role is not None and i.role is not a.role:
            also = f" (also behaves as {', '.join(str(r) for r in a.also)})" if a.also else ""
            mismatches.append(Mismatch(i.address, "role", str(i.role), f"{a.role}{also}"))
        ident = a.identity
        for field in ("vendor", "model", "firmware"):
            want, got = getattr(i, field), getattr(ident, field)
            if _differs(want, got):
                mismatches.append(Mismatch(i.address, field, want, got))
        if i.mac and a.macs and i.mac not in a.macs:
            mismatches.append(Mismatch(i.address, "mac", i.mac, ", ".join(a.macs)))
    return Comparison(rogue=rogue, missing=missing, mismatches=tuple(mismatches), matched=matched)
