"""The drill's data model: scenarios, ground truth, what the defenders saw, and the record of a run.

These frozen dataclasses are the contract between the scenario loader (``scenario.py``), the
runner (``runner.py``), the scorer (``score.py``), the report (``report.py``) and the programme
store (``programme.py``). Times of a run are *plant seconds* (0 = the plant starts, warmup
included), so a drill at ``speed: max`` and one in real time compare directly; wall-clock epoch
seconds are kept only where a run touches the outside world (``started_wall``, ``wall_time``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


class DrillError(Exception):
    """A drill that cannot run (a broken rule file, ...); the message says what to do."""


NeutralizationKind = Literal["blocked", "safe_state", "sis_trip", "playbook"]
NEUTRALIZATION_KINDS: tuple[str, ...] = ("blocked", "safe_state", "sis_trip", "playbook")

# Columns of DrillRecord.trends, in order (one row per sample of one tag).
TREND_COLUMNS: tuple[str, ...] = ("plant_time_s", "wall_time", "device", "tag", "value", "source")


@dataclass(frozen=True, slots=True)
class Inject:
    """One attack step of a scenario: a technique run against a device at a plant time."""

    id: str
    phase: str
    at_s: float  # plant seconds from the start of the run (warmup included)
    technique: str  # technique library id, e.g. "modbus.write_register"
    target: str  # device name from the plant's points file, e.g. "plc-1"
    params: Mapping[str, Any]
    expect: tuple[str, ...]  # ATT&CK for ICS ids a defender should raise, e.g. ("T0836",)
    until_s: float | None = None  # a lasting inject (replay, flood) ends here; None: one shot
    line: int = 0  # line of the inject in its YAML file, for messages

    @property
    def end_s(self) -> float:
        """When the inject is over by the scenario's reckoning (``at_s`` for a one-shot)."""
        return self.until_s if self.until_s is not None else self.at_s


@dataclass(frozen=True, slots=True)
class Scenario:
    """A drill as data: which plant, how long, and the injects in time order."""

    id: str
    title: str
    plant: str  # plant id: gas-pipeline, refinery, reactor
    seed: int
    speed: str | float  # "max" (as fast as the host allows) or a real-time multiplier
    duration_s: float
    warmup_s: float
    based_on: str  # the real incident it is modelled on
    description: str
    objectives: tuple[str, ...]
    injects: tuple[Inject, ...]
    path: Path | None = None

    def inject(self, inject_id: str) -> Inject:
        """The inject with this id; ``KeyError`` if the scenario has none."""
        for inj in self.injects:
            if inj.id == inject_id:
                return inj
        raise KeyError(inject_id)


@dataclass(frozen=True, slots=True)
class TruthAction:
    """Ground truth of one technique run, as the runner recorded it (plant seconds)."""

    inject_id: str
    technique: str
    attack_ids: tuple[str, ...]
    start_s: float
    end_s: float
    source: str  # attacker host
    target: str  # device name or host:port
    requests: int
    outcome: str  # "ok", "no response", "connection refused", ...


@dataclass(frozen=True, slots=True)
class AlertSeen:
    """One alert of a defender, normalised from any of the accepted formats (plant seconds)."""

    time_s: float
    attack_ids: tuple[str, ...]
    source: str = ""
    destination: str = ""
    rule: str = ""
    severity: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Neutralization:
    """An attack stopped: blocked by the firewall, or the plant driven to a safe state."""

    time_s: float
    kind: str  # one of NEUTRALIZATION_KINDS
    inject_id: str | None = None  # None: not tied to one inject (e.g. an SIS trip)
    detail: str = ""


@dataclass(frozen=True, slots=True)
class HazardEvent:
    """A safety limit exceeded or an SIS trip during the run (plant seconds)."""

    time_s: float
    kind: Literal["hazard", "sis_trip"]
    name: str  # hazard name ("overpressure") or trip name ("PSHH-901")
    tag: str
    value: float
    limit: float


@dataclass(frozen=True)
class DrillRecord:
    """Everything a run produced: truth, alerts, neutralizations and the process trends.

    ``trends`` is a pyarrow Table with the columns of ``TREND_COLUMNS``: ``plant_time_s``
    float64, ``wall_time`` float64, ``device`` string, ``tag`` string, ``value`` float64 and
    ``source`` string, ``"truth"`` for the plant's true values and ``"hmi"`` for what the HMI
    showed (they differ under a replay). ``None`` when the runner recorded no trends.
    """

    scenario: str
    seed: int
    truth: tuple[TruthAction, ...]
    alerts: tuple[AlertSeen, ...]
    neutralizations: tuple[Neutralization, ...]
    trends: Any = None  # pyarrow.Table (pyarrow has no type stubs)
    hazards: tuple[HazardEvent, ...] = ()
    started_wall: float = 0.0
    ended_wall: float = 0.0
    duration_s: float = 0.0  # plant seconds actually run
    meta: Mapping[str, Any] = field(default_factory=dict)  # free-form: defender, speed, versions
