"""Gas pipeline compressor station: the pipeline of the range.

Two lumped, isothermal pipe segments meet at one centrifugal compressor station:

    source (fixed 55 bar) --upstream line--> [suction header p_s] --compressor--> [line p_d] --> delivery

Linepack (Menon, *Gas Pipeline Hydraulics*, CRC 2005, ch. 2 and 8; the isothermal mass balance of
a pipe of cross-section A and length L, with the isothermal sound speed c^2 = Z R T / M):

    (A L / c^2) dp/dt = m_in - m_out                      [kg/s; p in Pa]

Upstream supply through the upstream line follows the isothermal steady-flow (Weymouth-form)
relation m = K sqrt(p_src^2 - p_s^2) (Menon ch. 2), with K set so 100 kg/s flows at p_s = 50 bar,
scaled by the inlet block valve opening.

Compressor (a quadratic speed-scaled map, the usual fan-law form; Menon ch. 10, Saravanamuttoo et
al. *Gas Turbine Theory* for the surge line): at speed N (fraction of rated) and pressure ratio
r = p_d / p_s the machine flow is

    m_c = N m_max sqrt(1 - (r - 1) / ((r0 - 1) N^2))      (0 beyond shut-off; a check valve stops backflow)

the surge line is m_surge(r) = s m_max sqrt((r - 1) / (r0 - 1)), and the shaft power is
P = m_c cp T_s / eta ((r)^((k-1)/k) - 1). The anti-surge recycle valve returns
m_rec = min(m_c, K_rec v sqrt(p_d^2 - p_s^2)) from discharge to suction, so the machine can run
above its surge line while little gas goes forward. The station outlet block valve scales the
forward flow m_c - m_rec (what it holds back is returned to suction by the dead-headed machine).
Delivery takes the demand at the far end, m_out = demand(t) * delivery valve opening, with
demand(t) = 100 kg/s (1 + 0.12 sin(2 pi (t_h - 9) / 24)): the daily swing of a city gate, peaking
at 15:00 plant time (Menon ch. 8: linepack absorbs the daily swing).

Parameters: D = 0.9 m (36"), upstream L = 50 km, line L = 100 km, c = 350 m/s (natural gas at
288 K, Z = 0.9), source 55 bar, m_max = 160 kg/s, r0 = 1.5 at rated speed, s = 0.35, cp = 2.2 kJ/(kg K),
T_s = 288 K, k = 1.3, eta = 0.8, K_rec = 2 kg/(s bar).

Operating envelope: suction 45-54 bar, discharge 58-70 bar, demand 85-115 kg/s.
Safety: overpressure above MAOP 72 bar on the line; surge when m_c < m_surge with the machine
running; low suction below 40 bar. SIS PSHH-901 trips at 70.5 bar discharge, PSLL-902 at 42 bar
suction; either trips the compressor (speed 0), opens the recycle valve and closes the station
outlet block valve, isolating the line from the machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from interlock.range.plants.base import Actuator, FloatArray, Plant, SafetyLimit, SisTrip

PA_PER_BAR = 1.0e5
DIAMETER_M = 0.9
AREA_M2 = math.pi * DIAMETER_M**2 / 4
SOUND_SPEED_M_S = 350.0
UPSTREAM_LENGTH_M = 50_000.0
LINE_LENGTH_M = 100_000.0
# Linepack capacitance in kg per bar: A L / c^2 (kg/Pa) times 1e5 Pa/bar.
C_UPSTREAM_KG_BAR = AREA_M2 * UPSTREAM_LENGTH_M / SOUND_SPEED_M_S**2 * PA_PER_BAR
C_LINE_KG_BAR = AREA_M2 * LINE_LENGTH_M / SOUND_SPEED_M_S**2 * PA_PER_BAR

SOURCE_BAR = 55.0
K_SUPPLY = 100.0 / math.sqrt(SOURCE_BAR**2 - 50.0**2)  # kg/s per bar: 100 kg/s at 50 bar suction
M_MAX_KG_S = 160.0
R0 = 1.5
SURGE_FRACTION = 0.35
K_RECYCLE = 2.0
CP_J_KG_K = 2200.0
T_SUCTION_K = 288.0
GAMMA = 1.3
ETA = 0.8
DEMAND_KG_S = 100.0
DEMAND_SWING = 0.12

MAOP_BAR = 72.0
TRIP_HIGH_BAR = 70.5
LOW_SUCTION_BAR = 40.0
TRIP_LOW_SUCTION_BAR = 42.0


def demand_kg_s(t_s: float) -> float:
    """The daily delivery profile: nominal 100 kg/s, +-12 %, peak at 15:00 plant time."""
    hours = t_s / 3600.0
    return DEMAND_KG_S * (1.0 + DEMAND_SWING * math.sin(2 * math.pi * (hours - 9.0) / 24.0))


def machine_flow_kg_s(speed: float, ratio: float) -> float:
    """Compressor map flow at ``speed`` and pressure ``ratio`` (0 at or beyond shut-off)."""
    if speed <= 0.0:
        return 0.0
    head = 1.0 - (ratio - 1.0) / ((R0 - 1.0) * speed**2)
    return speed * M_MAX_KG_S * math.sqrt(head) if head > 0.0 else 0.0


def surge_flow_kg_s(ratio: float) -> float:
    return SURGE_FRACTION * M_MAX_KG_S * math.sqrt(max(0.0, ratio - 1.0) / (R0 - 1.0))


class GasPipeline(Plant):
    """The compressor station and its line; state ``suction_bar`` and ``discharge_bar``."""

    plant_id = "gas-pipeline"
    STATE_NAMES = ("suction_bar", "discharge_bar")
    ACTUATORS = (
        Actuator("compressor_speed", "fraction", 0.0, 1.05, "compressor speed, 1 = rated"),
        Actuator("recycle_valve", "fraction", 0.0, 1.0, "anti-surge recycle valve opening"),
        Actuator("inlet_block_valve", "fraction", 0.0, 1.0, "station inlet block valve"),
        Actuator("outlet_block_valve", "fraction", 0.0, 1.0, "station outlet block valve"),
        Actuator("delivery_valve", "fraction", 0.0, 1.0, "delivery block valve at the city gate"),
    )
    SAFETY_LIMITS = (
        SafetyLimit("overpressure", "discharge_bar", "bar", high=MAOP_BAR),
        SafetyLimit("low_suction", "suction_bar", "bar", low=LOW_SUCTION_BAR),
        SafetyLimit("surge", "surge_margin_kg_s", "kg/s", low=0.0),
    )
    ENVELOPE = MappingProxyType(
        {"suction_bar": (45.0, 54.0), "discharge_bar": (58.0, 70.0), "demand_kg_s": (85.0, 115.0)}
    )
    NOISE = MappingProxyType(
        {"suction_bar": 0.02, "discharge_bar": 0.02, "machine_flow_kg_s": 0.3, "delivery_kg_s": 0.3}
    )
    _SAFE_STATE = MappingProxyType({"compressor_speed": 0.0, "recycle_valve": 1.0, "outlet_block_valve": 0.0})
    SIS_TRIPS = (
        SisTrip("PSHH-901", "discharge_bar", TRIP_HIGH_BAR, high=True, safe_state=_SAFE_STATE),
        SisTrip("PSLL-902", "suction_bar", TRIP_LOW_SUCTION_BAR, high=False, safe_state=_SAFE_STATE),
    )

    def __init__(self, *, seed: int = 0, sis_enabled: bool = True, max_substep_s: float = 1.0) -> None:
        super().__init__(
            seed=seed, sis_enabled=sis_enabled, max_substep_s=max_substep_s, sis_trips=self.SIS_TRIPS
        )

    def initial_state(self) -> FloatArray:
        return np.array([50.0, 65.0])

    def initial_actuators(self) -> dict[str, float]:
        return {
            "compressor_speed": 1.0,
            "recycle_valve": 0.0,
            "inlet_block_valve": 1.0,
            "outlet_block_valve": 1.0,
            "delivery_valve": 1.0,
        }

    def _flows(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> dict[str, float]:
        p_s, p_d = max(float(x[0]), 1.0), float(x[1])
        ratio = p_d / p_s
        supply = (
            u["inlet_block_valve"]
            * K_SUPPLY
            * math.copysign(math.sqrt(abs(SOURCE_BAR**2 - p_s**2)), SOURCE_BAR - p_s)
        )
        machine = machine_flow_kg_s(u["compressor_speed"], ratio)
        recycle = min(machine, K_RECYCLE * u["recycle_valve"] * math.sqrt(max(0.0, p_d**2 - p_s**2)))
        forward = (machine - recycle) * u["outlet_block_valve"]
        delivery = demand_kg_s(t_s) * u["delivery_valve"]
        power = machine * CP_J_KG_K * T_SUCTION_K / ETA * (max(ratio, 1.0) ** ((GAMMA - 1) / GAMMA) - 1)
        # Surge margin only means something while the machine turns.
        margin = machine - surge_flow_kg_s(ratio) if u["compressor_speed"] > 0.0 else 0.0
        return {
            "supply": supply,
            "machine": machine,
            "recycle": recycle,
            "forward": forward,
            "delivery": delivery,
            "power": power,
            "margin": margin,
            "ratio": ratio,
        }

    def derivatives(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> FloatArray:
        f = self._flows(t_s, x, u)
        # Machine draws m_c from suction; recycle and what the outlet valve holds back come back.
        dps = (f["supply"] - f["forward"]) / C_UPSTREAM_KG_BAR
        dpd = (f["forward"] - f["delivery"]) / C_LINE_KG_BAR
        return np.array([dps, dpd])

    def measurements(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> dict[str, float]:
        f = self._flows(t_s, x, u)
        return {
            "suction_bar": float(x[0]),
            "discharge_bar": float(x[1]),
            "pressure_ratio": f["ratio"],
            "machine_flow_kg_s": f["machine"],
            "recycle_flow_kg_s": f["recycle"],
            "supply_flow_kg_s": f["supply"],
            "delivery_kg_s": f["delivery"],
            "demand_kg_s": demand_kg_s(t_s),
            "compressor_power_kw": f["power"] / 1000.0,
            "surge_margin_kg_s": f["margin"],
            "compressor_speed": u["compressor_speed"],
        }
