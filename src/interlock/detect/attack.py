"""The ATT&CK for ICS technique table: technique IDs, names and tactics.

Loaded from ``interlock/data/attack_ics.json`` (``scripts/make_attack_table.py`` writes it from
MITRE's STIX bundle), through ``importlib.resources`` so an installed Interlock needs no copy of
the bundle. The table keeps MITRE's copyright and license text, as MITRE's terms of use ask.

>>> t = technique("T0816")
>>> t.name, t.tactics
('Device Restart/Shutdown', ('inhibit-response-function',))
>>> tactic("inhibit-response-function").name
'Inhibit Response Function'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Tactic:
    id: str  # TA01xx
    shortname: str  # as in Sigma tags: attack.<shortname>
    name: str


@dataclass(frozen=True, slots=True)
class Technique:
    id: str  # T0xxx
    name: str
    tactics: tuple[str, ...]  # tactic shortnames, in MITRE's order


@dataclass(frozen=True, slots=True)
class AttackTable:
    version: str
    source: str
    copyright: str
    license: str
    techniques: Mapping[str, Technique]
    tactics: Mapping[str, Tactic]  # by shortname


@cache
def load() -> AttackTable:
    """The bundled table (read once)."""
    text = (resources.files("interlock") / "data" / "attack_ics.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    tactics = {
        short: Tactic(t["id"], short, t["name"]) for short, t in raw["tactics"].items()
    }
    techniques = {
        tid: Technique(tid, t["name"], tuple(t["tactics"])) for tid, t in raw["techniques"].items()
    }
    return AttackTable(
        version=raw["version"],
        source=raw["source"],
        copyright=raw["copyright"],
        license=raw["license"],
        techniques=MappingProxyType(techniques),
        tactics=MappingProxyType(tactics),
    )


def technique(technique_id: str) -> Technique:
    """A technique by ID (``T0816``, case-insensitive); ``KeyError`` if ATT&CK for ICS has none."""
    return load().techniques[technique_id.upper()]


def tactic(shortname: str) -> Tactic:
    """A tactic by its shortname (``inhibit-response-function``); ``KeyError`` if unknown."""
    return load().tactics[shortname.lower()]
