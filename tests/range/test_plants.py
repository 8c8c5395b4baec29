"""Plant physics against analytic solutions, the SIS against its hazards, and replay."""

import time

import numpy as np
import pytest
from scipy.optimize import fsolve

from interlock.range.clock import VirtualClock
from interlock.range.demo import pipeline_excursion, reactor_excursion
from interlock.range.plants import PLANTS, GasPipeline, Plant, Reactor
from interlock.range.plants.gas_pipeline import MAOP_BAR, TRIP_HIGH_BAR
from interlock.range.plants.reactor import RUNAWAY_TEMP_K, TRIP_TEMP_K, rates_per_min


def analytic_steady_state(coolant_k: float, guess: tuple[float, float]) -> tuple[float, float]:
    """Roots of the CSTR mass and energy balances, independent of the integrator."""
    root, _, ok, msg = fsolve(
        lambda x: rates_per_min(x[0], x[1], 100.0, coolant_k), guess, full_output=True, xtol=1e-12
    )
    assert ok == 1, msg
    return float(root[0]), float(root[1])


def run(plant: Reactor | GasPipeline, seconds: float, dt_s: float = 1.0) -> list[dict[str, float]]:
    out = []
    for _ in range(round(seconds / dt_s)):
        plant.step(dt_s)
        out.append(plant.truth())
    return out


@pytest.mark.parametrize("coolant_k", [298.0, 300.0, 302.0])
def test_reactor_settles_at_the_analytic_steady_state(coolant_k: float) -> None:
    reactor = Reactor(seed=1)
    reactor.set_actuator("coolant_temp_k", coolant_k - 2.0)  # start away from the target
    run(reactor, 1800.0)
    reactor.set_actuator("coolant_temp_k", coolant_k)
    run(reactor, 3600.0)
    ca, temp = analytic_steady_state(coolant_k, (0.9, 320.0))
    assert reactor.state["reactor_temp_k"] == pytest.approx(temp, abs=0.01)
    assert reactor.state["conc_a_mol_l"] == pytest.approx(ca, abs=1e-4)
    if coolant_k == 300.0:  # the textbook point (Seborg; Hedengren): 324.48 K, 0.8773 mol/L
        assert temp == pytest.approx(324.475, abs=0.01)
    assert reactor.hazards() == ()
    assert not reactor.sis.tripped


def test_reactor_runs_away_a_few_kelvin_hotter_without_sis() -> None:
    ran = reactor_excursion(sis_enabled=False, minutes=30)
    peak = max(v["reactor_temp_k"] for v in ran.truth)
    assert peak > RUNAWAY_TEMP_K + 40  # ignition, not a drift: well past 440 K
    assert not ran.plant.sis.events
    worst = Reactor(sis_enabled=False)
    worst.set_actuator("coolant_temp_k", 305.0)
    hit = []
    for _ in range(1800):
        worst.step(1.0)
        hit.extend(h.hazard for h in worst.hazards())
    assert "thermal_runaway" in hit


def test_reactor_sis_trips_at_its_limit_and_quenches_whatever_control_writes() -> None:
    ran = reactor_excursion(sis_enabled=True, minutes=30)
    (event,) = ran.plant.sis.events
    assert event.trip == "TSHH-901" and event.tag == "reactor_temp_k"
    assert TRIP_TEMP_K <= event.value < TRIP_TEMP_K + 1.0  # at its setpoint, not late
    assert 300.0 < event.time_s < 900.0  # after the manipulation at minute 5
    temps = [v["reactor_temp_k"] for v in ran.truth]
    assert max(temps) < RUNAWAY_TEMP_K  # the hazard never happened
    assert temps[-1] < 285.0  # quenched toward the 280 K emergency cooling
    plant = ran.plant
    plant.set_actuator("coolant_temp_k", 320.0)  # control (or an attacker) tries to undo it
    plant.set_actuator("feed_flow_lpm", 100.0)
    run(plant, 600.0)
    assert plant.actuators["coolant_temp_k"] == 280.0
    assert plant.actuators["feed_flow_lpm"] == 0.0
    assert plant.commanded["coolant_temp_k"] == 320.0
    assert plant.state["reactor_temp_k"] < 285.0


def test_pipeline_holds_its_envelope_over_a_day_of_demand() -> None:
    line = GasPipeline(seed=3)
    samples = run(line, 24 * 3600.0, dt_s=60.0)
    discharge = [v["discharge_bar"] for v in samples]
    demand = [v["demand_kg_s"] for v in samples]
    assert max(demand) - min(demand) > 20.0  # the daily profile really swings
    assert min(discharge) > 58.0 and max(discharge) < 70.0
    assert max(discharge) - min(discharge) > 2.0  # linepack breathes with demand
    assert line.in_envelope()
    assert line.hazards() == () and not line.sis.tripped
    assert min(v["surge_margin_kg_s"] for v in samples) > 20.0


def test_pipeline_blocked_delivery_rises_to_maop_without_sis() -> None:
    ran = pipeline_excursion(sis_enabled=False, hours=4)
    assert max(v["discharge_bar"] for v in ran.truth) > MAOP_BAR
    assert "overpressure" in {h.hazard for h in ran.plant.hazards()}


def test_pipeline_sis_trips_before_maop() -> None:
    ran = pipeline_excursion(sis_enabled=True, hours=4)
    (event,) = ran.plant.sis.events
    assert event.trip == "PSHH-901"
    assert TRIP_HIGH_BAR <= event.value < TRIP_HIGH_BAR + 0.2
    peak = max(v["discharge_bar"] for v in ran.truth)
    assert TRIP_HIGH_BAR - 0.2 < peak < MAOP_BAR
    after = [v for t, v in zip(ran.time_s, ran.truth, strict=True) if t > event.time_s + 60]
    assert all(v["machine_flow_kg_s"] == 0.0 and v["compressor_speed"] == 0.0 for v in after)
    assert ran.plant.hazards() == ()


def sensor_trace(plant: Plant, steps: int, at: int, actuator: str, value: float) -> list[list[float]]:
    """Control sensor readings of ``plant`` every plant second, ``actuator`` set to ``value`` at ``at``."""
    out = []
    for i in range(steps):
        if i == at:
            plant.set_actuator(actuator, value)
        plant.step(1.0)
        out.append(list(plant.sensors().values()))
    return out


def test_same_seed_same_trajectory_other_seed_other_noise() -> None:
    def trace(seed: int) -> list[list[float]]:
        return sensor_trace(Reactor(seed=seed), 600, 100, "coolant_temp_k", 305.0)

    assert trace(7) == trace(7)
    assert trace(7) != trace(8)
    assert np.allclose(np.array(trace(7))[:, 0], np.array(trace(8))[:, 0], atol=1.0)  # noise only


def test_a_simulated_hour_on_the_virtual_clock(capsys: pytest.CaptureFixture[str]) -> None:
    for plant_id, cls in PLANTS.items():
        clock = VirtualClock()
        plant = cls(seed=0)
        started = time.perf_counter()
        while clock.monotonic() < 3600.0:
            plant.step(1.0)
            plant.sensors()
            clock.advance(1.0)
        wall = time.perf_counter() - started
        assert plant.time_s == pytest.approx(clock.monotonic())
        with capsys.disabled():
            print(f"\n{plant_id}: 1 plant-hour at 1 s steps in {wall:.3f} s wall ({3600 / wall:.0f}x)")


def test_actuator_writes_are_checked() -> None:
    reactor = Reactor()
    with pytest.raises(KeyError, match="no actuator 'valve'"):
        reactor.set_actuator("valve", 1.0)
    with pytest.raises(ValueError, match="finite"):
        reactor.set_actuator("coolant_temp_k", float("nan"))
    reactor.set_actuator("coolant_temp_k", 1000.0)  # saturates at the jacket's range
    assert reactor.actuators["coolant_temp_k"] == 320.0
    with pytest.raises(ValueError, match="dt_s"):
        reactor.step(-1.0)
