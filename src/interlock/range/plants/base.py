"""The plant interface every simulated facility implements, and its safety instrumented system.

A plant is a pure, deterministic model: ``step(dt_s)`` integrates its equations over ``dt_s``
seconds of plant time; it never reads a clock, so the caller (the PLC runtime, a test) owns time.
Sensor noise comes from ``numpy.random.Generator`` streams spawned from one seed, so the same seed
and the same actuator writes give the same trajectory, bit for bit.

Integration is a fixed-step classical Runge-Kutta (RK4) written here rather than
``scipy.integrate.solve_ivp``: the plant is stepped every PLC scan (tens to hundreds of
milliseconds) with actuators that jump between steps, so an adaptive solver would restart at every
call and cost far more than four evaluations; a fixed step is also trivially reproducible. Steps
longer than ``max_substep_s`` are split so accuracy does not depend on the caller's scan time.

The ``Sis`` is deliberately separate from control: it reads its own transmitters (the truth plus
its own noise stream, never the values the control system or an attacker sees), latches when a
trip setpoint is crossed, and from then on forces its safe state onto the actuators whatever the
control writes, until it is reset.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Actuator:
    """A final element the control system may write, with its physical travel."""

    name: str
    unit: str
    low: float
    high: float
    description: str


@dataclass(frozen=True, slots=True)
class SafetyLimit:
    """A limit on a true process value beyond which the plant is in a hazardous state."""

    hazard: str  # e.g. "thermal_runaway", "overpressure"
    tag: str
    unit: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Hazard:
    """A safety limit exceeded at one instant: which, on what tag, by how much."""

    hazard: str
    tag: str
    value: float
    limit: float


@dataclass(frozen=True, slots=True)
class SisTrip:
    """One SIS function: trip when ``tag`` crosses ``setpoint``, then force ``safe_state``."""

    name: str  # e.g. "TSHH-901"
    tag: str
    setpoint: float
    high: bool  # True: trip above the setpoint; False: trip below it
    safe_state: Mapping[str, float] = field(default_factory=dict)

    def crossed(self, value: float) -> bool:
        return value >= self.setpoint if self.high else value <= self.setpoint


@dataclass(frozen=True, slots=True)
class TripEvent:
    """When and why the SIS tripped, in plant seconds, with the reading it acted on."""

    trip: str
    tag: str
    value: float
    time_s: float


class Sis:
    """A latching safety instrumented system over a plant's own SIS transmitters."""

    def __init__(self, trips: tuple[SisTrip, ...], *, enabled: bool = True) -> None:
        self.trips = trips
        self.enabled = enabled
        self._events: list[TripEvent] = []

    @property
    def tripped(self) -> bool:
        return bool(self._events)

    @property
    def events(self) -> tuple[TripEvent, ...]:
        return tuple(self._events)

    def check(self, readings: Mapping[str, float], time_s: float) -> None:
        """Latch every trip whose setpoint its reading has crossed (a bypassed SIS never trips)."""
        if not self.enabled:
            return
        latched = {event.trip for event in self._events}
        for trip in self.trips:
            value = readings[trip.tag]
            if trip.name not in latched and trip.crossed(value):
                self._events.append(TripEvent(trip.name, trip.tag, value, time_s))

    def overrides(self) -> dict[str, float]:
        """The actuator values the latched trips force, first trip first."""
        forced: dict[str, float] = {}
        by_name = {trip.name: trip for trip in self.trips}
        for event in self._events:
            for name, value in by_name[event.trip].safe_state.items():
                forced.setdefault(name, value)
        return forced

    def reset(self) -> None:
        """Operator reset: release the safe state (the plant must be back in its envelope)."""
        self._events.clear()


class Plant(ABC):
    """A physics model stepped in plant seconds; subclasses supply the equations and tables."""

    plant_id: str
    ACTUATORS: tuple[Actuator, ...]
    SAFETY_LIMITS: tuple[SafetyLimit, ...]
    ENVELOPE: Mapping[str, tuple[float, float]]  # normal operating range per sensor tag
    STATE_NAMES: tuple[str, ...]
    NOISE: Mapping[str, float]  # one-sigma noise of each control transmitter, in its unit

    def __init__(
        self,
        *,
        seed: int = 0,
        sis_enabled: bool = True,
        max_substep_s: float = 1.0,
        sis_trips: tuple[SisTrip, ...] = (),
    ) -> None:
        self.seed = seed
        self.max_substep_s = max_substep_s
        # Separate streams: adding a reader of control sensors must not change what the SIS sees.
        control_seq, sis_seq = np.random.SeedSequence(seed).spawn(2)
        self._control_rng = np.random.Generator(np.random.PCG64(control_seq))
        self._sis_rng = np.random.Generator(np.random.PCG64(sis_seq))
        self.sis = Sis(sis_trips, enabled=sis_enabled)
        self.time_s = 0.0
        self._x: FloatArray = self.initial_state()
        self._commanded: dict[str, float] = self.initial_actuators()
        self._limits = {a.name: a for a in self.ACTUATORS}

    # -- what subclasses write -------------------------------------------------------------
    @abstractmethod
    def initial_state(self) -> FloatArray: ...

    @abstractmethod
    def initial_actuators(self) -> dict[str, float]: ...

    @abstractmethod
    def derivatives(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> FloatArray:
        """dx/dt in state units per second."""

    @abstractmethod
    def measurements(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> dict[str, float]:
        """The true value behind every transmitter tag."""

    # -- the interface ----------------------------------------------------------------------
    @property
    def state(self) -> Mapping[str, float]:
        return MappingProxyType(dict(zip(self.STATE_NAMES, map(float, self._x), strict=True)))

    @property
    def actuators(self) -> Mapping[str, float]:
        """What the plant's final elements actually do: commands, overridden by a tripped SIS."""
        return MappingProxyType({**self._commanded, **self.sis.overrides()})

    @property
    def commanded(self) -> Mapping[str, float]:
        return MappingProxyType(dict(self._commanded))

    def set_actuator(self, name: str, value: float) -> None:
        """Command a final element; values beyond its travel saturate, as a real valve does."""
        spec = self._limits.get(name)
        if spec is None:
            raise KeyError(f"{self.plant_id} has no actuator {name!r}; known: {sorted(self._limits)}")
        if not math.isfinite(value):
            raise ValueError(f"{self.plant_id}.{name}: value must be finite, not {value!r}")
        self._commanded[name] = min(spec.high, max(spec.low, float(value)))

    def step(self, dt_s: float) -> None:
        """Advance the physics by ``dt_s`` plant seconds, then let the SIS look at its sensors."""
        if not dt_s >= 0.0 or math.isinf(dt_s):
            raise ValueError(f"step needs a finite non-negative dt_s, not {dt_s!r}")
        n = max(1, math.ceil(dt_s / self.max_substep_s - 1e-9))
        h = dt_s / n
        u = self.actuators
        for _ in range(n):
            self._x = self._rk4(self.time_s, self._x, u, h)
            self.time_s += h
            # The SIS scans every substep: its response must not depend on the caller's step.
            before = self.sis.tripped
            self.sis.check(self.sis_sensors(), self.time_s)
            if self.sis.tripped != before:
                u = self.actuators

    def sensors(self) -> dict[str, float]:
        """Control transmitter readings: truth plus noise from the control stream."""
        truth = self.measurements(self.time_s, self._x, self.actuators)
        return {
            tag: value + float(self._control_rng.normal(0.0, self.NOISE.get(tag, 0.0)))
            for tag, value in truth.items()
        }

    def sis_sensors(self) -> dict[str, float]:
        """The SIS's own transmitters: the truth plus the SIS noise stream."""
        truth = self.measurements(self.time_s, self._x, self.actuators)
        return {
            trip.tag: truth[trip.tag] + float(self._sis_rng.normal(0.0, self.NOISE.get(trip.tag, 0.0)))
            for trip in self.sis.trips
        }

    def truth(self) -> dict[str, float]:
        """Noise-free process values: the physical ground truth, kept apart from what HMIs see."""
        return self.measurements(self.time_s, self._x, self.actuators)

    def hazards(self) -> tuple[Hazard, ...]:
        """Every safety limit the true process currently exceeds."""
        truth = self.truth()
        found: list[Hazard] = []
        for limit in self.SAFETY_LIMITS:
            value = truth[limit.tag]
            if limit.high is not None and value > limit.high:
                found.append(Hazard(limit.hazard, limit.tag, value, limit.high))
            if limit.low is not None and value < limit.low:
                found.append(Hazard(limit.hazard, limit.tag, value, limit.low))
        return tuple(found)

    def in_envelope(self) -> bool:
        truth = self.truth()
        return all(lo <= truth[tag] <= hi for tag, (lo, hi) in self.ENVELOPE.items())

    def _rk4(self, t: float, x: FloatArray, u: Mapping[str, float], h: float) -> FloatArray:
        f = self.derivatives
        k1 = f(t, x, u)
        k2 = f(t + h / 2, x + h / 2 * k1, u)
        k3 = f(t + h / 2, x + h / 2 * k2, u)
        k4 = f(t + h, x + h * k3, u)
        result: FloatArray = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return result
