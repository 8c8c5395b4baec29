"""Crude charge heater and distillation column: the refinery unit of the range.

Crude from the preheat train (230 C) is heated in a fired heater and flashed into a
pseudo-binary fractionator: a light cut (straight-run distillates) goes overhead to the reflux
drum, a heavy cut (residue) leaves the bottoms sump, which a reboiler heats.

Fired heater (API Std 560, *Fired Heaters for General Refinery Service*, for the lumped radiant
coil; API Std 530 for the tube metal temperature that limits it). Fuel firing ``f`` releases
``f Q_max`` of which the coil absorbs the fraction ``eta``; the firebox and refractory store heat,
so absorbed duty lags firing by ``tau_fire``. The tube metal (lumped, heat capacity ``C_m``) passes
it to the crude through the inside film ``hA``, which scales with mass flow as Dittus-Boelter
(``Nu ~ Re^0.8``): cutting the charge while firing starves the film and overheats the tubes::

    tau_fire dQ/dt   = eta Q_max f - Q                                  [MW]
    C_m dT_m/dt      = Q - hA (T_m - T_out),   hA = hA0 max(F/F0, 0.1)^0.8
    C_f dT_out/dt    = F cp (T_in - T_out) + hA (T_m - T_out)           (coil outlet, well mixed)
    T_skin           = T_m + Q / (2 k A / s)                            (outer wall, API 530)

Column (the constant-molar-overflow tray model of Skogestad, "Dynamics and control of
distillation columns: a tutorial introduction", Trans IChemE 75A, 1997, column A, reduced to six
lumped stages of four real trays each; written per kilogram, i.e. constant mass overflow, which
holds better than molar overflow for petroleum cuts of similar latent heat per kg: Watkins,
*Petroleum Refinery Distillation*, 1979). Stage ``i`` (1 = bottom tray, feed on tray 3) with
holdup ``M_i`` and light fraction ``x_i``; vapour holdup is neglected::

    dM_i/dt      = L_{i+1} - L_i + (1 - phi) F [feed tray]
    d(M_i x_i)/dt = L_{i+1} x_{i+1} + V_{i-1} y_{i-1} - L_i x_i - V_i y_i + F z [feed tray]
    y = alpha x / (1 + (alpha - 1) x)                                   (constant volatility)
    L_i = K_w (M_i - M_w)^1.5                                          (Francis weir)

The reflux drum (total condenser) and the bottoms sump (an equilibrium stage with the reboiler)
are integrating: draws are pumped, so the flow is the valve opening times the pump's capacity and
does not depend on the level (it fails only when the vessel runs dry)::

    dM_D/dt = V_top - R - D,     D = v_D D_max,     M_D dx_D/dt = V_top (y_6 - x_D)
    dM_B/dt = L_1 - V_B - B,     B = v_B B_max,     tau_reb dV_B/dt = Q_reb / lambda - V_B

The feed flashes with vapour fraction ``phi = 0.30 + 0.005 (T_out - 357.5 C)`` (clipped to
0-0.8: a hotter coil outlet vaporises more crude), so the heater drives the column. Tray
temperature is the bubble point, linear between the two cuts' boiling points at column pressure:
``T = T_heavy + (T_light - T_heavy) x``. Product quality is the distillate's light fraction.

Flooding (Fair's jet-flood correlation, Perry's *Chemical Engineers' Handbook*, 8th ed., sec. 14;
Kister, *Distillation Design*, 1992, ch. 6): the flood vapour load is
``V_flood = rho_V A_net C_sb sqrt((rho_L - rho_V) / rho_V)`` and ``flooding_pct = 100 V_top /
V_flood`` (the top section carries the most vapour). Column dp sums, over 24 real trays, the dry
tray drop ``rho_V u_h^2 / (2 C_o^2)`` (holes) and the clear-liquid head ``g M / A_net``.

Parameters: charge F0 = 50 kg/s (about 31 000 bbl/d), T_in = 230 C, cp = 3.0 kJ/(kg K)
(effective, with the vaporisation in the coil), Q_max = 45 MW fired, eta = 0.85, tau_fire = 45 s,
hA0 = 325 kW/K (600 m2 of radiant tube at 540 W/(m2 K)), C_m = 17.6 MJ/K (32 t of 9Cr-1Mo),
C_f = 38 MJ/K (12.6 t of crude in the coil), wall k A / s = 2.2 MW/K. Column: z = 0.40,
alpha = 6, lambda = 300 kJ/kg, tau_reb = 60 s, M_w = 1500 kg, K_w = 0.0075 kg^-0.5 s^-1,
drum 15 t and sump 30 t at 100 %, D_max = 40 kg/s, B_max = 60 kg/s, T_light = 110 C,
T_heavy = 350 C, rho_V = 4.3 and rho_L = 650 kg/m3, C_sb = 0.09 m/s (610 mm spacing),
A_net = 13.5 m2, hole area 1.35 m2, C_o = 0.75.

Initial state: the steady state at fuel 0.50, feed 50 kg/s, reflux 25 kg/s, reboiler 9 MW (boilup
30 kg/s), both draw valves at 0.50 (distillate 20 kg/s, bottoms 30 kg/s): coil outlet 357.5 C,
tube skin 420.7 C, top 139.7 C, distillate 97.7 % light, flooding 70.3 %, levels 50 %. The plant
has no controller of its own: the levels integrate, so any imbalance between inflow and a draw valve
drifts them until the PLC's level loops close on the valves (as on a real unit).

Operating envelope: coil outlet 345-370 C, tube skin 380-460 C, top 110-150 C, levels 20-80 %,
flooding 40-85 % (Kister: design at 70-85 % of flood), distillate purity 92-100 %.

Safety: tube over-temperature above 550 C (the coil's design metal temperature: API 530 sizes
9Cr-1Mo crude heater tubes for about 540-600 C; above it creep life collapses); flooding above
100 % of flood; high level above 95 % in the sump or the drum (liquid into the reboiler return or
the overhead line). SIS:

    TSHH-101  tube skin >= 510 C  -> fuel 0. Charge kept as commanded: flow through the coil is
              what cools the tubes while the firebox refractory still radiates (API RP 556
              practice). 40 K below the limit and 50 K above the envelope: the 45 s firebox lag
              lets a charge cut to zero under full firing overshoot the trip by 10 K, a
              wide-open fuel valve by under 5 K.
    LSHH-102  bottoms level >= 85 % -> feed 0, fuel 0 (no charge, and no firing with no flow).
              The trays still drain into the sump after the trip: a shut bottoms valve peaks at
              about 86 %, well short of 95 %. With no charge the firebox's stored heat lifts the
              skin about 20 K, harmless from normal firing.
    PDSHH-103 column dp >= 15.5 kPa -> reboiler duty 0. Column dp is how a flood shows in the
              field: 15.5 kPa is about 90 % of flood at normal liquid load (8 kPa of it is clear
              liquid), 1 kPa above the 85 % envelope edge; full reboiler duty trips within a
              minute and peaks at 90 % of flood.

Levels: the transmitters span the vessel, so they read 0-100 %; liquid beyond a full vessel backs
up into the column or the overhead line, which the model keeps in the holdup but does not follow.

Step size: the fastest mode is the Francis-weir liquid lag, ``(M - M_w) / (1.5 L)`` about 4 s on
the lower trays (composition modes are 20-30 s, the heater 45-100 s). RK4 is stable to about 2.8
time constants per step and accurate to well below the sensor noise at half a time constant, so
``max_substep_s`` is 2 s; at the PLC's 1 s or shorter scans a step is never split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from interlock.range.plants.base import Actuator, FloatArray, Plant, SafetyLimit, SisTrip

# Fired heater.
FEED_NOMINAL_KG_S = 50.0
FEED_INLET_C = 230.0
CP_CRUDE_KJ_KG_K = 3.0
FIRED_MAX_KW = 45_000.0
HEATER_EFFICIENCY = 0.85
FIREBOX_TAU_S = 45.0
HA_NOMINAL_KW_K = 325.0
HA_FLOW_FLOOR = 0.1  # natural convection and the crude left in the coil still take some heat
METAL_HEAT_CAP_KJ_K = 17_600.0
FLUID_HEAT_CAP_KJ_K = 38_000.0
WALL_CONDUCTANCE_KW_K = 2_200.0

# Column.
FEED_LIGHT_FRACTION = 0.40
ALPHA = 6.0
LATENT_KJ_KG = 300.0
REBOILER_TAU_S = 60.0
N_TRAYS = 6
FEED_TRAY = 3  # 1 = bottom tray
REAL_TRAYS_PER_STAGE = 4
WEIR_HOLDUP_KG = 1500.0
WEIR_K = 0.0075
DRUM_CAPACITY_KG = 15_000.0
SUMP_CAPACITY_KG = 30_000.0
DRY_FRACTION = 0.02  # a draw pump loses suction below 2 % level
DISTILLATE_MAX_KG_S = 40.0
BOTTOMS_MAX_KG_S = 60.0
VAPOUR_FRACTION_NOMINAL = 0.30
VAPOUR_FRACTION_PER_K = 0.005
COIL_OUTLET_NOMINAL_C = 357.5
T_LIGHT_C = 110.0
T_HEAVY_C = 350.0
RHO_V_KG_M3 = 4.3
RHO_L_KG_M3 = 650.0
C_SB_M_S = 0.09
NET_AREA_M2 = 13.5
HOLE_AREA_M2 = 1.35
ORIFICE_COEFF = 0.75
GRAVITY_M_S2 = 9.81
FLOOD_VAPOUR_KG_S = (
    RHO_V_KG_M3 * NET_AREA_M2 * C_SB_M_S * math.sqrt((RHO_L_KG_M3 - RHO_V_KG_M3) / RHO_V_KG_M3)
)
# Dry-tray drop in kPa per real tray is this times V^2 (V in kg/s).
DRY_DP_KPA_PER_KG2_S2 = 1.0 / (2.0 * RHO_V_KG_M3 * HOLE_AREA_M2**2 * ORIFICE_COEFF**2) / 1000.0

TUBE_LIMIT_C = 550.0
TUBE_TRIP_C = 510.0
FLOOD_LIMIT_PCT = 100.0
DP_TRIP_KPA = 15.5
LEVEL_LIMIT_PCT = 95.0
LEVEL_TRIP_PCT = 85.0

# Indices into the state vector.
_T_OUT, _T_METAL, _Q_ABS, _BOILUP, _M_SUMP, _X_SUMP = range(6)
_M_TRAY = 6
_X_TRAY = _M_TRAY + N_TRAYS
_M_DRUM = _X_TRAY + N_TRAYS
_X_DRUM = _M_DRUM + 1


def vapour_fraction(coil_outlet_c: float) -> float:
    """The fraction of the charge that flashes to vapour in the column's flash zone."""
    phi = VAPOUR_FRACTION_NOMINAL + VAPOUR_FRACTION_PER_K * (coil_outlet_c - COIL_OUTLET_NOMINAL_C)
    return min(0.8, max(0.0, phi))


def bubble_point_c(light: float) -> float:
    return T_HEAVY_C + (T_LIGHT_C - T_HEAVY_C) * light


def _equilibrium(light: float) -> float:
    x = min(1.0, max(0.0, light))
    return ALPHA * x / (1.0 + (ALPHA - 1.0) * x)


def _weir_flow(holdup: float) -> float:
    crest = holdup - WEIR_HOLDUP_KG
    return WEIR_K * crest * math.sqrt(crest) if crest > 0.0 else 0.0


def _pump_available(holdup: float, capacity: float) -> float:
    """1 while the vessel has liquid above the pump's suction, falling to 0 as it runs dry."""
    return min(1.0, max(0.0, holdup / (DRY_FRACTION * capacity)))


def _flows(s: list[float], u: Mapping[str, float]) -> tuple[float, float, float, float, float]:
    """Boilup, top vapour, reflux, distillate and bottoms actually flowing, kg/s."""
    feed = u["feed_flow"]
    boilup = max(0.0, s[_BOILUP]) * _pump_available(s[_M_SUMP], SUMP_CAPACITY_KG)
    v_top = boilup + vapour_fraction(s[_T_OUT]) * feed
    drum = _pump_available(s[_M_DRUM], DRUM_CAPACITY_KG)
    reflux = u["reflux_flow"] * drum
    distillate = u["distillate_valve"] * DISTILLATE_MAX_KG_S * drum
    bottoms = u["bottoms_valve"] * BOTTOMS_MAX_KG_S * _pump_available(s[_M_SUMP], SUMP_CAPACITY_KG)
    return boilup, v_top, reflux, distillate, bottoms


def _level_pct(holdup: float, capacity: float) -> float:
    """What a level transmitter spanning the vessel reads: 0-100 %."""
    return min(100.0, max(0.0, 100.0 * holdup / capacity))


def _film_kw_k(feed: float) -> float:
    return HA_NOMINAL_KW_K * float(max(feed / FEED_NOMINAL_KG_S, HA_FLOW_FLOOR) ** 0.8)


def rates(s: list[float], u: Mapping[str, float]) -> list[float]:
    """dx/dt per second for the state list ``s`` (plain floats: this is the hot loop)."""
    feed = u["feed_flow"]
    t_out, t_metal, q_abs = s[_T_OUT], s[_T_METAL], s[_Q_ABS]
    to_fluid = _film_kw_k(feed) * (t_metal - t_out)
    d = [0.0] * len(s)
    d[_T_OUT] = (feed * CP_CRUDE_KJ_KG_K * (FEED_INLET_C - t_out) + to_fluid) / FLUID_HEAT_CAP_KJ_K
    d[_T_METAL] = (q_abs * 1000.0 - to_fluid) / METAL_HEAT_CAP_KJ_K
    d[_Q_ABS] = (HEATER_EFFICIENCY * FIRED_MAX_KW / 1000.0 * u["fuel_valve"] - q_abs) / FIREBOX_TAU_S
    d[_BOILUP] = (u["reboiler_duty"] * 1000.0 / LATENT_KJ_KG - s[_BOILUP]) / REBOILER_TAU_S

    boilup, v_top, reflux, distillate, bottoms = _flows(s, u)
    phi = vapour_fraction(t_out)
    liquid = [_weir_flow(s[_M_TRAY + i]) for i in range(N_TRAYS)]
    light = [s[_X_TRAY + i] for i in range(N_TRAYS)]
    vapour_y = [_equilibrium(x) for x in light]

    # Sump: an equilibrium stage, reboiled.
    m_sump, x_sump = max(s[_M_SUMP], 1.0), s[_X_SUMP]
    y_sump = _equilibrium(x_sump)
    d[_M_SUMP] = liquid[0] - boilup - bottoms
    d_mx = liquid[0] * light[0] - boilup * y_sump - bottoms * x_sump
    d[_X_SUMP] = (d_mx - x_sump * d[_M_SUMP]) / m_sump

    v_in, y_in = boilup, y_sump
    for i in range(N_TRAYS):
        on_feed = i + 1 == FEED_TRAY
        l_in, x_in = (liquid[i + 1], light[i + 1]) if i + 1 < N_TRAYS else (reflux, s[_X_DRUM])
        v_out = v_top if i + 1 >= FEED_TRAY else boilup
        dm = l_in - liquid[i]
        dmx = l_in * x_in + v_in * y_in - liquid[i] * light[i] - v_out * vapour_y[i]
        if on_feed:
            dm += (1.0 - phi) * feed
            dmx += feed * FEED_LIGHT_FRACTION
        d[_M_TRAY + i] = dm
        d[_X_TRAY + i] = (dmx - light[i] * dm) / s[_M_TRAY + i]
        v_in, y_in = v_out, vapour_y[i]

    # Total condenser: the drum takes the top vapour at the top tray's composition.
    d[_M_DRUM] = v_top - reflux - distillate
    d[_X_DRUM] = v_top * (vapour_y[-1] - s[_X_DRUM]) / max(s[_M_DRUM], 1.0)
    return d


class Refinery(Plant):
    """The crude heater and its column; twenty states, starting at the design steady state."""

    plant_id = "refinery"
    STATE_NAMES = (
        "coil_outlet_c",
        "tube_metal_c",
        "absorbed_duty_mw",
        "boilup_kg_s",
        "sump_holdup_kg",
        "sump_light_frac",
        *(f"tray{i}_holdup_kg" for i in range(1, N_TRAYS + 1)),
        *(f"tray{i}_light_frac" for i in range(1, N_TRAYS + 1)),
        "drum_holdup_kg",
        "drum_light_frac",
    )
    ACTUATORS = (
        Actuator("feed_flow", "kg/s", 0.0, 70.0, "crude charge to the heater (and the column)"),
        Actuator("fuel_valve", "fraction", 0.0, 1.0, "heater fuel gas valve, 1 = 45 MW fired"),
        Actuator("reflux_flow", "kg/s", 0.0, 60.0, "reflux from the drum to the top tray"),
        Actuator("reboiler_duty", "MW", 0.0, 20.0, "reboiler heat duty"),
        Actuator("distillate_valve", "fraction", 0.0, 1.0, "distillate draw, 1 = 40 kg/s"),
        Actuator("bottoms_valve", "fraction", 0.0, 1.0, "bottoms draw, 1 = 60 kg/s"),
    )
    SAFETY_LIMITS = (
        SafetyLimit("tube_overtemp", "tube_skin_c", "C", high=TUBE_LIMIT_C),
        SafetyLimit("column_flooding", "flooding_pct", "%", high=FLOOD_LIMIT_PCT),
        SafetyLimit("high_level", "bottoms_level_pct", "%", high=LEVEL_LIMIT_PCT),
        SafetyLimit("high_level", "reflux_drum_level_pct", "%", high=LEVEL_LIMIT_PCT),
    )
    ENVELOPE = MappingProxyType(
        {
            "heater_outlet_c": (345.0, 370.0),
            "tube_skin_c": (380.0, 460.0),
            "top_temp_c": (110.0, 150.0),
            "reflux_drum_level_pct": (20.0, 80.0),
            "bottoms_level_pct": (20.0, 80.0),
            "flooding_pct": (40.0, 85.0),
            "distillate_purity_pct": (92.0, 100.0),
        }
    )
    NOISE = MappingProxyType(
        {
            "heater_outlet_c": 0.2,
            "tube_skin_c": 0.5,
            "feed_flow": 0.2,
            "reflux_flow": 0.2,
            "top_temp_c": 0.2,
            "tray_temp_c": 0.2,
            "bottom_temp_c": 0.2,
            "reflux_drum_level_pct": 0.2,
            "bottoms_level_pct": 0.2,
            "flooding_pct": 0.3,
            "column_dp_kpa": 0.05,
            "distillate_purity_pct": 0.05,
            "distillate_flow": 0.2,
            "bottoms_flow": 0.2,
        }
    )
    SIS_TRIPS = (
        SisTrip(
            "TSHH-101",
            "tube_skin_c",
            TUBE_TRIP_C,
            high=True,
            safe_state=MappingProxyType({"fuel_valve": 0.0}),
        ),
        SisTrip(
            "LSHH-102",
            "bottoms_level_pct",
            LEVEL_TRIP_PCT,
            high=True,
            safe_state=MappingProxyType({"feed_flow": 0.0, "fuel_valve": 0.0}),
        ),
        SisTrip(
            "PDSHH-103",
            "column_dp_kpa",
            DP_TRIP_KPA,
            high=True,
            safe_state=MappingProxyType({"reboiler_duty": 0.0}),
        ),
    )
    # The tray whose temperature moves most for a change in the split (see tray_temp_c).
    SENSITIVE_TRAY = 4

    def __init__(self, *, seed: int = 0, sis_enabled: bool = True, max_substep_s: float = 2.0) -> None:
        # 2 s: half the fastest (weir) time constant; see the module docstring.
        super().__init__(
            seed=seed, sis_enabled=sis_enabled, max_substep_s=max_substep_s, sis_trips=self.SIS_TRIPS
        )

    def initial_state(self) -> FloatArray:
        # Solved for zero derivatives at initial_actuators (scipy fsolve, residual < 1e-13).
        heater = [COIL_OUTLET_NOMINAL_C, COIL_OUTLET_NOMINAL_C + 19_125.0 / HA_NOMINAL_KW_K, 19.125, 30.0]
        # Weir holdups from the liquid rates: 60 kg/s below the feed, the 25 kg/s reflux above.
        below, above = (WEIR_HOLDUP_KG + (flow / WEIR_K) ** (2.0 / 3.0) for flow in (60.0, 25.0))
        holdups = [below] * FEED_TRAY + [above] * (N_TRAYS - FEED_TRAY)
        light = [0.0503839490492, 0.128401556525, 0.242259197725, 0.401594462708, 0.660305495567]
        light.append(0.876250006516)
        sump = [0.5 * SUMP_CAPACITY_KG, 0.0153310095529]
        drum = [0.5 * DRUM_CAPACITY_KG, 0.977003485671]
        return np.array([*heater, *sump, *holdups, *light, *drum])

    def initial_actuators(self) -> dict[str, float]:
        return {
            "feed_flow": FEED_NOMINAL_KG_S,
            "fuel_valve": 0.5,
            "reflux_flow": 25.0,
            "reboiler_duty": 9.0,
            "distillate_valve": 0.5,
            "bottoms_valve": 0.5,
        }

    def derivatives(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> FloatArray:
        return np.array(rates(x.tolist(), u))

    def measurements(self, t_s: float, x: FloatArray, u: Mapping[str, float]) -> dict[str, float]:
        s: list[float] = x.tolist()
        boilup, v_top, reflux, distillate, bottoms = _flows(s, u)
        dp_kpa = 0.0
        for i in range(N_TRAYS):
            vapour = v_top if i + 1 >= FEED_TRAY else boilup
            dry = DRY_DP_KPA_PER_KG2_S2 * vapour**2
            head = GRAVITY_M_S2 * s[_M_TRAY + i] / REAL_TRAYS_PER_STAGE / NET_AREA_M2 / 1000.0
            dp_kpa += REAL_TRAYS_PER_STAGE * (dry + head)
        return {
            "heater_outlet_c": s[_T_OUT],
            "tube_skin_c": s[_T_METAL] + s[_Q_ABS] * 1000.0 / (2.0 * WALL_CONDUCTANCE_KW_K),
            "feed_flow": u["feed_flow"],
            "fuel_valve": u["fuel_valve"],
            "reflux_flow": reflux,
            "reboiler_duty": u["reboiler_duty"],
            "distillate_valve": u["distillate_valve"],
            "bottoms_valve": u["bottoms_valve"],
            "top_temp_c": bubble_point_c(s[_X_TRAY + N_TRAYS - 1]),
            "tray_temp_c": bubble_point_c(s[_X_TRAY + self.SENSITIVE_TRAY - 1]),
            "bottom_temp_c": bubble_point_c(s[_X_SUMP]),
            "reflux_drum_level_pct": _level_pct(s[_M_DRUM], DRUM_CAPACITY_KG),
            "bottoms_level_pct": _level_pct(s[_M_SUMP], SUMP_CAPACITY_KG),
            "flooding_pct": 100.0 * v_top / FLOOD_VAPOUR_KG_S,
            "column_dp_kpa": dp_kpa,
            "distillate_purity_pct": 100.0 * s[_X_DRUM],
            "distillate_flow": distillate,
            "bottoms_flow": bottoms,
        }
