"""Exothermic CSTR with jacket cooling: the petrochemical reactor of the range.

Model (Seborg, Edgar, Mellichamp & Doyle, *Process Dynamics and Control*, 3rd ed., Wiley 2011,
ch. 2 and the nonisothermal CSTR example; same parameters as the widely used benchmark in
Hedengren's APMonitor CSTR). A first-order irreversible reaction A -> B in a constant-volume,
perfectly mixed tank; the jacket is lumped into a coolant temperature ``Tc`` (the actuator)::

    dCA/dt = q/V (CAf - CA) - k0 exp(-E/(R T)) CA
    dT/dt  = q/V (Tf - T) + (-dH)/(rho Cp) k0 exp(-E/(R T)) CA + UA/(V rho Cp) (Tc - T)

Parameters (time in minutes, as in the source; ``derivatives`` divides by 60 for seconds):

    q = 100 L/min, V = 100 L, CAf = 1 mol/L, Tf = 350 K, dH = -5e4 J/mol, E/R = 8750 K,
    k0 = 7.2e10 1/min, UA = 5e4 J/(min K), rho = 1000 g/L, Cp = 0.239 J/(g K)

At Tc = 300 K the stable (low-conversion) steady state is CA = 0.8773 mol/L, T = 324.48 K; the
middle steady state CA = 0.5 mol/L, T = 350 K is unstable (Jacobian trace +2.4 1/min). A few
kelvin more coolant temperature (about 305 K) moves the reactor past the ignition point: the heat
of reaction outruns the jacket and T spikes above 460 K in repeated ignitions (thermal runaway);
303 K still settles at 332.6 K.

Operating envelope: reactor temperature 315-345 K, coolant 295-303 K.
Safety: thermal runaway above 400 K (hazard). SIS TSHH-901 trips at 350 K on its own transmitter
and forces the safe state: feed stopped (no new reactant) and the jacket switched to emergency
cooling water at 280 K, which quenches the remaining charge. The setpoint sits at the unstable
middle steady state: tripping there holds the peak below 356 K for any coolant up to 320 K, while a
setpoint of 355 K lets a 305 K excursion peak at 405 K and one of 370 K at about 470 K.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from interlock.range.plants.base import Actuator, FloatArray, Plant, SafetyLimit, SisTrip

Q_LPM = 100.0
V_L = 100.0
CA_FEED_MOL_L = 1.0
T_FEED_K = 350.0
DH_J_MOL = -5.0e4
E_OVER_R_K = 8750.0
K0_PER_MIN = 7.2e10
UA_J_MIN_K = 5.0e4
RHO_G_L = 1000.0
CP_J_G_K = 0.239

# At or below the unstable middle steady state (350 K): past it the heat of reaction outruns any
# cooling, and a trip set at 355 K or more already lets the runaway peak pass 400 K.
TRIP_TEMP_K = 350.0
RUNAWAY_TEMP_K = 400.0
EMERGENCY_COOLANT_K = 280.0


def rates_per_min(ca: float, t: float, q: float, tc: float) -> tuple[float, float]:
    """The mass and energy balances, per minute (shared with the analytic steady-state check)."""
    rate = K0_PER_MIN * math.exp(-E_OVER_R_K / t) * ca
    dca = q / V_L * (CA_FEED_MOL_L - ca) - rate
    dt = (
        q / V_L * (T_FEED_K - t)
        + (-DH_J_MOL) / (RHO_G_L * CP_J_G_K) * rate
        + UA_J_MIN_K / (V_L * RHO_G_L * CP_J_G_K) * (tc - t)
    )
    return dca, dt


class Reactor(Plant):
    """The CSTR; state ``conc_a_mol_l`` and ``reactor_temp_k``, starting at the 300 K steady state."""

    plant_id = "reactor"
    STATE_NAMES = ("conc_a_mol_l", "reactor_temp_k")
    ACTUATORS = (
        Actuator("feed_flow_lpm", "L/min", 0.0, 120.0, "feed flow (outflow follows: constant V)"),
        Actuator("coolant_temp_k", "K", EMERGENCY_COOLANT_K, 320.0, "jacket coolant temperature"),
    )
    SAFETY_LIMITS = (SafetyLimit("thermal_runaway", "reactor_temp_k", "K", high=RUNAWAY_TEMP_K),)
    ENVELOPE = MappingProxyType({"reactor_temp_k": (315.0, 345.0), "coolant_temp_k": (295.0, 303.0)})
    NOISE = MappingProxyType(
        {"reactor_temp_k": 0.1, "coolant_temp_k": 0.1, "conc_a_mol_l": 0.002, "feed_flow_lpm": 0.2}
    )
    SIS_TRIPS = (
        SisTrip(
            "TSHH-901",
            "reactor_temp_k",
            TRIP_TEMP_K,
            high=True,
            safe_state=MappingProxyType({"feed_flow_lpm": 0.0, "coolant_temp_k": EMERGENCY_COOLANT_K}),
        ),
    )

    def __init__(self, *, seed: int = 0, sis_enabled: bool = True, max_substep_s: float = 0.1) -> None:
        # 0.1 s: at ignition k(T) reaches ~3 1/s and the energy balance is stiff; RK4 at 0.5 s
        # diverges and at 0.25 s still clips the runaway peaks by several kelvin.
        super().__init__(
            seed=seed, sis_enabled=sis_enabled, max_substep_s=max_substep_s, sis_trips=self.SIS_TRIPS
        )

    def initial_state(self) -> FloatArray:
        return np.array([0.877252946, 324.475443432])

    def initial_actuators(self) -> dict[str, float]:
        return {"feed_flow_lpm": Q_LPM, "coolant_temp_k": 300.0}

    def derivatives(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> FloatArray:
        dca, dt = rates_per_min(max(0.0, float(x[0])), float(x[1]), u["feed_flow_lpm"], u["coolant_temp_k"])
        return np.array([dca / 60.0, dt / 60.0])

    def measurements(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> dict[str, float]:
        return {
            "reactor_temp_k": float(x[1]),
            "conc_a_mol_l": float(x[0]),
            "coolant_temp_k": u["coolant_temp_k"],
            "feed_flow_lpm": u["feed_flow_lpm"],
        }
