"""The refinery unit: steady state, step-response signs, each hazard against its SIS, and replay."""

import time

import numpy as np
import pytest

from interlock.range.clock import VirtualClock
from interlock.range.demo import REFINERY_EXCURSIONS, refinery_disturbance, refinery_excursion
from interlock.range.plants import PLANTS, Plant, Refinery
from interlock.range.plants.refinery import (
    DP_TRIP_KPA,
    FLOOD_LIMIT_PCT,
    LEVEL_LIMIT_PCT,
    LEVEL_TRIP_PCT,
    TUBE_LIMIT_C,
    TUBE_TRIP_C,
)
from tests.range.test_plants import sensor_trace

MEASUREMENTS = {
    "heater_outlet_c",
    "tube_skin_c",
    "feed_flow",
    "fuel_valve",
    "reflux_flow",
    "reboiler_duty",
    "distillate_valve",
    "bottoms_valve",
    "top_temp_c",
    "tray_temp_c",
    "bottom_temp_c",
    "reflux_drum_level_pct",
    "bottoms_level_pct",
    "flooding_pct",
    "column_dp_kpa",
    "distillate_purity_pct",
    "distillate_flow",
    "bottoms_flow",
}


def run(plant: Plant, seconds: float, dt_s: float = 1.0) -> list[dict[str, float]]:
    out = []
    for _ in range(round(seconds / dt_s)):
        plant.step(dt_s)
        out.append(plant.truth())
    return out


def test_registered_with_the_names_the_point_list_uses() -> None:
    assert PLANTS["refinery"] is Refinery
    plant = Refinery()
    assert set(plant.truth()) == MEASUREMENTS
    assert [a.name for a in plant.ACTUATORS] == [
        "feed_flow",
        "fuel_valve",
        "reflux_flow",
        "reboiler_duty",
        "distillate_valve",
        "bottoms_valve",
    ]
    assert {(lim.hazard, lim.tag) for lim in plant.SAFETY_LIMITS} == {
        ("tube_overtemp", "tube_skin_c"),
        ("column_flooding", "flooding_pct"),
        ("high_level", "bottoms_level_pct"),
        ("high_level", "reflux_drum_level_pct"),
    }
    assert [t.name for t in plant.sis.trips] == ["TSHH-101", "LSHH-102", "PDSHH-103"]
    assert set(plant.ENVELOPE) <= MEASUREMENTS and set(plant.NOISE) <= MEASUREMENTS
    assert len(plant.STATE_NAMES) == len(plant.initial_state())


def test_initial_state_is_a_steady_state_for_an_hour() -> None:
    plant = Refinery(seed=2)
    rates = plant.derivatives(0.0, plant.initial_state(), plant.initial_actuators())
    assert np.abs(rates).max() < 1e-10
    start = plant.truth()
    # The design point the docstring quotes.
    assert start["heater_outlet_c"] == pytest.approx(357.5)
    assert start["tube_skin_c"] == pytest.approx(420.69, abs=0.01)
    assert start["distillate_purity_pct"] == pytest.approx(97.70, abs=0.01)
    assert start["flooding_pct"] == pytest.approx(70.29, abs=0.01)
    assert start["distillate_flow"] == 20.0 and start["bottoms_flow"] == 30.0
    samples = run(plant, 3600.0)
    for tag in MEASUREMENTS:
        drift = max(abs(v[tag] - start[tag]) for v in samples)
        assert drift < 1e-6, (tag, drift)  # levels integrate, but nothing feeds them here
    assert plant.in_envelope()
    assert plant.hazards() == () and not plant.sis.tripped


@pytest.mark.parametrize(
    ("actuator", "value", "rises", "falls"),
    [
        ("fuel_valve", 0.55, ("heater_outlet_c", "tube_skin_c", "flooding_pct"), ()),
        ("reflux_flow", 30.0, ("distillate_purity_pct",), ("top_temp_c", "tray_temp_c")),
        ("reboiler_duty", 11.0, ("flooding_pct", "column_dp_kpa", "top_temp_c"), ("distillate_purity_pct",)),
        ("feed_flow", 55.0, ("bottoms_level_pct",), ("heater_outlet_c", "tube_skin_c")),
    ],
)
def test_step_responses_have_the_right_sign(
    actuator: str, value: float, rises: tuple[str, ...], falls: tuple[str, ...]
) -> None:
    plant = Refinery()
    before = plant.truth()
    plant.set_actuator(actuator, value)
    after = run(plant, 600.0)[-1]
    for tag in rises:
        assert after[tag] > before[tag] + 0.1, tag
    for tag in falls:
        assert after[tag] < before[tag] - 0.1, tag
    assert not plant.sis.tripped  # a modest step is operation, not a hazard


@pytest.mark.parametrize(
    ("hazard", "trip", "tag", "setpoint", "limit", "safe"),
    [
        ("tube_overtemp", "TSHH-101", "tube_skin_c", TUBE_TRIP_C, TUBE_LIMIT_C, {"fuel_valve": 0.0}),
        (
            "high_level",
            "LSHH-102",
            "bottoms_level_pct",
            LEVEL_TRIP_PCT,
            LEVEL_LIMIT_PCT,
            {"feed_flow": 0.0, "fuel_valve": 0.0},
        ),
        ("column_flooding", "PDSHH-103", "column_dp_kpa", DP_TRIP_KPA, None, {"reboiler_duty": 0.0}),
    ],
)
def test_each_hazard_trips_its_sis_first(
    hazard: str, trip: str, tag: str, setpoint: float, limit: float | None, safe: dict[str, float]
) -> None:
    ran = refinery_excursion(hazard, sis_enabled=True)
    first = ran.plant.sis.events[0]
    assert (first.trip, first.tag) == (trip, tag)
    assert setpoint <= first.value < setpoint + 1.0  # at its setpoint, not late
    assert 60.0 < first.time_s < 600.0  # after the write at minute 1
    seen = {h for v in ran.truth for h in _hazards_in(ran.plant, v)}
    assert hazard not in seen  # the hazard never happened
    if limit is not None:
        assert max(v[tag] for v in ran.truth) < limit
    assert max(v["flooding_pct"] for v in ran.truth) < FLOOD_LIMIT_PCT
    # Control (or an attacker) keeps writing the unsafe value: the safe state holds.
    name, value = REFINERY_EXCURSIONS[hazard]
    ran.plant.set_actuator(name, value)
    run(ran.plant, 300.0)
    for actuator, forced in safe.items():
        assert ran.plant.actuators[actuator] == forced
    if trip == "TSHH-101":  # the charge stays on to cool the coil
        assert ran.plant.actuators["feed_flow"] == 50.0


@pytest.mark.parametrize("hazard", sorted(REFINERY_EXCURSIONS))
def test_each_hazard_is_reached_with_the_sis_bypassed(hazard: str) -> None:
    ran = refinery_excursion(hazard, sis_enabled=False)
    assert not ran.plant.sis.events
    assert hazard in {h for v in ran.truth for h in _hazards_in(ran.plant, v)}


def test_a_charge_cut_under_firing_trips_before_the_tubes_overheat() -> None:
    plant = Refinery()
    plant.set_actuator("feed_flow", 0.0)  # the film coefficient collapses; the fire stays on
    skins = [v["tube_skin_c"] for v in run(plant, 1200.0)]
    assert plant.sis.events[0].trip == "TSHH-101"
    assert TUBE_TRIP_C < max(skins) < TUBE_TRIP_C + 15.0 < TUBE_LIMIT_C  # the firebox lag overshoots


def test_the_figure_hour_stays_in_its_envelope_under_level_control() -> None:
    ran = refinery_disturbance()
    assert ran.plant.in_envelope() and not ran.plant.sis.events
    assert all(not _hazards_in(ran.plant, v) for v in ran.truth)
    assert ran.truth[-1]["heater_outlet_c"] < ran.truth[0]["heater_outlet_c"] - 5.0  # more charge, same fire


def test_same_seed_same_sensors_other_seed_other_noise() -> None:
    def trace(seed: int) -> list[list[float]]:
        return sensor_trace(Refinery(seed=seed), 900, 100, "reboiler_duty", 20.0)

    assert trace(7) == trace(7)
    assert trace(7) != trace(8)
    # Noise only until the trip: the SIS's own noise then moves its instant by a substep or so.
    assert np.allclose(np.array(trace(7))[:100], np.array(trace(8))[:100], atol=3.0)


def test_a_simulated_hour_costs_well_under_a_second(capsys: pytest.CaptureFixture[str]) -> None:
    clock = VirtualClock()
    plant = Refinery(seed=0)
    started = time.perf_counter()
    while clock.monotonic() < 3600.0:
        plant.step(1.0)
        plant.sensors()
        clock.advance(1.0)
    wall = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nrefinery: 1 plant-hour at 1 s steps in {wall:.3f} s wall ({3600 / wall:.0f}x)")
    assert wall < 3.0  # generous: the CI box is shared; about 0.25 s on an idle core


def test_long_steps_split_into_substeps() -> None:
    coarse, fine = Refinery(), Refinery()
    for plant in (coarse, fine):
        plant.set_actuator("reboiler_duty", 12.0)
    run(coarse, 600.0, dt_s=60.0)
    run(fine, 600.0, dt_s=0.5)
    assert coarse.truth()["top_temp_c"] == pytest.approx(fine.truth()["top_temp_c"], abs=0.01)


def _hazards_in(plant: Plant, truth: dict[str, float]) -> set[str]:
    found = set()
    for limit in plant.SAFETY_LIMITS:
        if limit.high is not None and truth[limit.tag] > limit.high:
            found.add(limit.hazard)
    return found
