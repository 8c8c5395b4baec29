"""The control programs of the range's PLCs and the safety logic of their SIS controllers.

Each program is the plant's basic process control: PID loops read their setpoint, gains and mode
from the PLC's registers on every scan (so a network write changes the loop at once, as on a real
controller), block valves follow their coils, and alarms compare process values with alarm
setpoints unless ``alarms_enabled`` is cleared (alarm suppression, T0878). The SIS program is the
separate safety controller: it mirrors its own transmitters, and its trip setpoints, bypass and
reset are registers too (the Triton case, T0880). The plant's ``Sis`` stays the one that acts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from interlock.range.pid import Pid
from interlock.range.plc import Plc


def _pi(
    plc: Plc, pid: Pid, dt_s: float, *, sp: str, pv: str, kp: str, ti: str, mode: str, manual: str
) -> float:
    """One PI block whose setpoint, gains, mode and manual output are registers, read every scan
    (a network write changes the loop at once, as on a real controller)."""
    pid.kp, pid.ti_s = plc.get(kp), max(1.0, plc.get(ti))
    return pid.update(plc.get(sp), plc.inputs[pv], dt_s, auto=plc.get(mode) >= 1, manual=plc.get(manual))


class _Program:
    """What every control program shares: the optional watermark dither on one actuator."""

    def __init__(self, watermark: Callable[[float], float] | None = None) -> None:
        self.watermark = watermark  # range.watermark: a keyed dither, off by default

    def dither(self, plant_time_s: float) -> float:
        return self.watermark(plant_time_s) if self.watermark else 0.0


def _alarm(plc: Plc, tag: str, active: bool) -> None:
    plc.set(tag, 1.0 if active and plc.values.get("alarms_enabled", 1.0) else 0.0)


class GasPipelineLogic(_Program):
    """Discharge pressure -> compressor speed (PI); surge margin -> recycle valve (PI); block valves.
    The watermark dithers the recycle valve."""

    def __init__(self, watermark: Callable[[float], float] | None = None) -> None:
        super().__init__(watermark)
        self.speed = Pid(kp=0.05, ti_s=300.0, out_low=0.0, out_high=1.05)
        self.recycle = Pid(kp=0.05, ti_s=20.0, out_low=0.0, out_high=1.0)

    def initial(self, plc: Plc) -> dict[str, float]:
        u = plc.plant.actuators
        self.speed.track(u["compressor_speed"])
        self.recycle.track(u["recycle_valve"])
        return {"speed_output": u["compressor_speed"], "recycle_output": u["recycle_valve"]}

    def run(self, plc: Plc, dt_s: float) -> None:
        pv, plant = plc.inputs, plc.plant
        speed = _pi(
            plc,
            self.speed,
            dt_s,
            sp="discharge_sp_bar",
            pv="discharge_bar",
            kp="pressure_kp",
            ti="pressure_ti_s",
            mode="speed_mode",
            manual="speed_manual",
        )
        if plc.get("compressor_run") < 0.5:
            speed = 0.0
            self.speed.track(0.0)
        recycle = self.recycle.update(
            plc.get("surge_margin_sp_kg_s"),
            pv["surge_margin_kg_s"],
            dt_s,
            auto=plc.get("recycle_mode") >= 1,
            manual=plc.get("recycle_manual"),
        )
        plant.set_actuator("compressor_speed", speed)
        plant.set_actuator("recycle_valve", recycle + self.dither(plant.time_s))
        plant.set_actuator("inlet_block_valve", plc.get("inlet_block_valve"))
        plant.set_actuator("outlet_block_valve", plc.get("outlet_block_valve"))
        plc.set("speed_output", speed)
        plc.set("recycle_output", recycle)
        plc.set("sis_tripped", 1.0 if plant.sis.tripped else 0.0)
        _alarm(plc, "high_pressure_alarm", pv["discharge_bar"] > plc.get("pah_setpoint_bar"))
        _alarm(plc, "low_suction_alarm", pv["suction_bar"] < 45.0)
        _alarm(plc, "surge_alarm", speed > 0.0 and pv["surge_margin_kg_s"] < 0.0)


class ReactorLogic(_Program):
    """Reactor temperature -> jacket coolant temperature (PI, reverse acting); feed on its coil.
    The watermark dithers the coolant."""

    def __init__(self, watermark: Callable[[float], float] | None = None) -> None:
        super().__init__(watermark)
        self.temp = Pid(kp=2.0, ti_s=120.0, out_low=280.0, out_high=320.0)

    def initial(self, plc: Plc) -> dict[str, float]:
        coolant = plc.plant.actuators["coolant_temp_k"]
        self.temp.track(coolant)
        return {"coolant_output_k": coolant}

    def run(self, plc: Plc, dt_s: float) -> None:
        pv, plant = plc.inputs, plc.plant
        coolant = _pi(
            plc,
            self.temp,
            dt_s,
            sp="temp_sp_k",
            pv="reactor_temp_k",
            kp="temp_kp",
            ti="temp_ti_s",
            mode="temp_mode",
            manual="coolant_manual_k",
        )
        plant.set_actuator("coolant_temp_k", coolant + self.dither(plant.time_s))
        plant.set_actuator("feed_flow_lpm", plc.get("feed_sp_lpm") if plc.get("feed_enable") >= 0.5 else 0.0)
        plc.set("coolant_output_k", coolant)
        plc.set("sis_tripped", 1.0 if plant.sis.tripped else 0.0)
        _alarm(plc, "high_temp_alarm", pv["reactor_temp_k"] > plc.get("tah_setpoint_k"))


class RefineryLogic(_Program):
    """Coil outlet temperature -> fuel (PI); drum and bottoms levels -> their draw valves (PI, direct).
    The watermark dithers the fuel valve."""

    def __init__(self, watermark: Callable[[float], float] | None = None) -> None:
        super().__init__(watermark)
        self.cot = Pid(kp=0.01, ti_s=120.0, out_low=0.0, out_high=1.0)
        self.drum = Pid(kp=0.02, ti_s=300.0, out_low=0.0, out_high=1.0, direct=True)
        self.bottoms = Pid(kp=0.02, ti_s=300.0, out_low=0.0, out_high=1.0, direct=True)

    def initial(self, plc: Plc) -> dict[str, float]:
        u, truth = plc.plant.actuators, plc.plant.truth()
        self.cot.track(u["fuel_valve"])
        self.drum.track(u["distillate_valve"])
        self.bottoms.track(u["bottoms_valve"])
        skin = truth["tube_skin_c"]
        return {
            "cot_sp_c": round(truth["heater_outlet_c"], 1),
            "fuel_manual": u["fuel_valve"],
            "feed_sp": u["feed_flow"],
            "reflux_sp": u["reflux_flow"],
            "reboiler_sp": u["reboiler_duty"],
            "drum_level_sp_pct": round(truth["reflux_drum_level_pct"], 1),
            "bottoms_level_sp_pct": round(truth["bottoms_level_pct"], 1),
            "tah_skin_setpoint_c": round(skin + 0.5 * (_skin_limit(plc) - skin), 0),
            "fuel_output": u["fuel_valve"],
            "distillate_output": u["distillate_valve"],
            "bottoms_output": u["bottoms_valve"],
        }

    def run(self, plc: Plc, dt_s: float) -> None:
        pv, plant = plc.inputs, plc.plant
        fuel = _pi(
            plc,
            self.cot,
            dt_s,
            sp="cot_sp_c",
            pv="heater_outlet_c",
            kp="cot_kp",
            ti="cot_ti_s",
            mode="heater_mode",
            manual="fuel_manual",
        )
        drum = self.drum.update(plc.get("drum_level_sp_pct"), pv["reflux_drum_level_pct"], dt_s)
        bottoms = self.bottoms.update(plc.get("bottoms_level_sp_pct"), pv["bottoms_level_pct"], dt_s)
        plant.set_actuator("fuel_valve", fuel + self.dither(plant.time_s))
        plant.set_actuator("distillate_valve", drum)
        plant.set_actuator("bottoms_valve", bottoms)
        plant.set_actuator("feed_flow", plc.get("feed_sp") if plc.get("feed_enable") >= 0.5 else 0.0)
        plant.set_actuator("reflux_flow", plc.get("reflux_sp"))
        plant.set_actuator("reboiler_duty", plc.get("reboiler_sp"))
        plc.set("fuel_output", fuel)
        plc.set("distillate_output", drum)
        plc.set("bottoms_output", bottoms)
        plc.set("sis_tripped", 1.0 if plant.sis.tripped else 0.0)
        _alarm(plc, "high_skin_temp_alarm", pv["tube_skin_c"] > plc.get("tah_skin_setpoint_c"))
        _alarm(plc, "high_level_alarm", max(pv["bottoms_level_pct"], pv["reflux_drum_level_pct"]) > 85.0)
        _alarm(plc, "flooding_alarm", pv["flooding_pct"] > 85.0)


def _skin_limit(plc: Plc) -> float:
    for limit in plc.plant.SAFETY_LIMITS:
        if limit.tag == "tube_skin_c" and limit.high is not None:
            return limit.high
    return 650.0


class SisLogic:
    """The safety controller's program: its own transmitters, trip setpoints, bypass and reset.

    Works for any plant: points of kind ``trip_setpoint`` name their trip (``trip: PSHH-901``),
    ``bypass`` disables the SIS (it then never trips), a ``reset`` coil releases a latched trip once
    the process is back inside every trip setpoint, and ``status`` shows whether a trip is active.
    """

    def initial(self, plc: Plc) -> dict[str, float]:
        trips = {t.name: t.setpoint for t in plc.plant.sis.trips}
        return {
            p.tag: trips[str(p.extra["trip"])]
            for p in plc.device.points
            if p.kind == "trip_setpoint" and str(p.extra.get("trip")) in trips
        }

    def run(self, plc: Plc, dt_s: float) -> None:
        apply_sis_settings(plc.plant, plc.device.points, plc.values)
        readings = plc.plant.sis_sensors()
        for p in plc.device.points:
            if p.kind == "sensor":
                plc.set(p.tag, readings.get(p.source.removeprefix("sis_"), plc.values[p.tag]))
            elif p.kind == "status":
                plc.set(p.tag, 1.0 if plc.plant.sis.tripped else 0.0)
            elif p.kind == "reset" and plc.values[p.tag] >= 0.5:
                plc.set(p.tag, 0.0)  # a pulse: the controller clears its reset bit
                if not any(t.crossed(readings[t.tag]) for t in plc.plant.sis.trips):
                    plc.plant.sis.reset()


def apply_sis_settings(plant: object, points: tuple[object, ...], values: dict[str, float]) -> None:
    """Set the plant SIS's trip setpoints and bypass from the safety controller's points."""
    from interlock.range.plants.base import Plant
    from interlock.range.points import Point

    assert isinstance(plant, Plant)
    sis = plant.sis
    setpoints: dict[str, float] = {}
    for p in points:
        assert isinstance(p, Point)
        if p.tag not in values:
            continue
        if p.kind == "trip_setpoint":
            setpoints[str(p.extra.get("trip"))] = values[p.tag]
        elif p.kind == "bypass":
            sis.enabled = values[p.tag] < 0.5
    if setpoints:
        sis.trips = tuple(
            dataclasses.replace(t, setpoint=setpoints[t.name]) if t.name in setpoints else t
            for t in sis.trips
        )


LOGIC: dict[str, type[GasPipelineLogic | ReactorLogic | RefineryLogic]] = {
    "gas-pipeline": GasPipelineLogic,
    "reactor": ReactorLogic,
    "refinery": RefineryLogic,
}
