"""Scripted excursions of each plant, for the docs figures and the tests.

Each run is the attack-like case of its plant: control pushed out of its envelope and held there,
so only the SIS stands between the plant and its hazard. The refinery also has an hour of normal
operation with one disturbance (a charge-rate step), run under the two level loops a PLC closes,
since its levels integrate. ``python -m interlock.range.demo DIR`` writes ``range-reactor.png``,
``range-pipeline.png`` and ``range-refinery.png`` into DIR.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from interlock.range.plants import GasPipeline, Plant, Reactor, Refinery


@dataclass(frozen=True, slots=True)
class Run:
    """Sampled true values (and the SIS events) of one scripted run."""

    plant: Plant
    time_s: tuple[float, ...]
    truth: tuple[dict[str, float], ...]


def reactor_excursion(*, sis_enabled: bool = True, seed: int = 0, minutes: float = 60.0) -> Run:
    """Coolant raised from 300 K to 305 K at minute 5 (a manipulated setpoint) and held there."""
    plant = Reactor(seed=seed, sis_enabled=sis_enabled)
    return _run(plant, minutes * 60.0, 1.0, {300.0: ("coolant_temp_k", 305.0)})


def pipeline_excursion(*, sis_enabled: bool = True, seed: int = 0, hours: float = 6.0) -> Run:
    """The delivery block valve shut at hour 1 while the compressor keeps running at rated speed."""
    plant = GasPipeline(seed=seed, sis_enabled=sis_enabled)
    return _run(plant, hours * 3600.0, 10.0, {3600.0: ("delivery_valve", 0.0)})


# What each refinery excursion overrides, held from minute 1: the attack-like write of its drill.
REFINERY_EXCURSIONS: dict[str, tuple[str, float]] = {
    "tube_overtemp": ("fuel_valve", 1.0),
    "high_level": ("bottoms_valve", 0.0),
    "column_flooding": ("reboiler_duty", 20.0),
}


def refinery_excursion(hazard: str, *, sis_enabled: bool = True, seed: int = 0, minutes: float = 20.0) -> Run:
    """One refinery actuator forced at minute 1 (see ``REFINERY_EXCURSIONS``) and held there."""
    plant = Refinery(seed=seed, sis_enabled=sis_enabled)
    return _run(plant, minutes * 60.0, 1.0, {60.0: REFINERY_EXCURSIONS[hazard]})


def refinery_disturbance(*, seed: int = 0, minutes: float = 60.0, feed_step_kg_s: float = 5.0) -> Run:
    """Normal operation with the level loops closed; the crude charge steps up 10 % at minute 15."""
    plant = Refinery(seed=seed)
    nominal = plant.initial_actuators()
    times: list[float] = []
    truth: list[dict[str, float]] = []
    for i in range(round(minutes * 60.0)):
        if i == 900:
            plant.set_actuator("feed_flow", nominal["feed_flow"] + feed_step_kg_s)
        # P-only level loops on the draw valves, on the noisy transmitters a PLC would read:
        # gain 2 (valve fraction per fraction of level) gives 3-4 minute closed-loop lags.
        seen = plant.sensors()
        for valve, level in (
            ("distillate_valve", "reflux_drum_level_pct"),
            ("bottoms_valve", "bottoms_level_pct"),
        ):
            plant.set_actuator(valve, nominal[valve] + 2.0 * (seen[level] - 50.0) / 100.0)
        plant.step(1.0)
        times.append(plant.time_s)
        truth.append(plant.truth())
    return Run(plant, tuple(times), tuple(truth))


def plot_refinery(path: Path) -> Path:
    """Four panels of ``refinery_disturbance``: heater, column temperatures, levels, hydraulics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = refinery_disturbance()
    minutes = [t / 60.0 for t in run.time_s]
    panels = (
        ("heater (C)", ("heater_outlet_c", "tube_skin_c")),
        ("column temperatures (C)", ("top_temp_c", "tray_temp_c", "bottom_temp_c")),
        ("levels (%)", ("reflux_drum_level_pct", "bottoms_level_pct")),
        ("purity %, flood %, dp kPa", ("distillate_purity_pct", "flooding_pct", "column_dp_kpa")),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), dpi=110, sharex=True)
    for ax, (label, tags) in zip(axes.flat, panels, strict=True):
        for tag in tags:
            ax.plot(minutes, [v[tag] for v in run.truth], label=tag)
        ax.axvline(15.0, color="grey", lw=0.8, ls=":")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("plant time (min)")
    fig.suptitle(f"refinery: {refinery_disturbance.__doc__}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _run(plant: Plant, duration_s: float, dt_s: float, script: dict[float, tuple[str, float]]) -> Run:
    times: list[float] = []
    truth: list[dict[str, float]] = []
    pending = sorted(script.items())
    for i in range(round(duration_s / dt_s)):
        while pending and pending[0][0] <= i * dt_s:
            name, value = pending.pop(0)[1]
            plant.set_actuator(name, value)
        plant.step(dt_s)
        times.append(plant.time_s)
        truth.append(plant.truth())
    return Run(plant, tuple(times), tuple(truth))


def plot(out_dir: Path) -> list[Path]:
    """Draw both excursions (with and without the SIS) and the refinery hour; return the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display on the CI runner
    import matplotlib.pyplot as plt

    written: list[Path] = []
    figures = (
        ("range-reactor.png", reactor_excursion, "reactor_temp_k", 60.0, "min", "reactor temperature (K)"),
        ("range-pipeline.png", pipeline_excursion, "discharge_bar", 3600.0, "h", "line pressure (bar)"),
    )
    for name, runner, tag, scale, unit, label in figures:
        fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
        for sis, style in ((False, "--"), (True, "-")):
            run = runner(sis_enabled=sis)
            xs = [t / scale for t in run.time_s]
            ax.plot(xs, [v[tag] for v in run.truth], style, label="SIS on" if sis else "SIS bypassed")
            for event in run.plant.sis.events:
                ax.axvline(event.time_s / scale, color="red", lw=0.8)
                ax.annotate(f"{event.trip} trips", (event.time_s / scale, event.value), color="red")
        for limit in run.plant.SAFETY_LIMITS:
            if limit.tag == tag and limit.high is not None:
                ax.axhline(limit.high, color="black", lw=0.8, ls=":", label=f"{limit.hazard} limit")
        for trip in run.plant.sis.trips:
            if trip.tag == tag:
                ax.axhline(trip.setpoint, color="red", lw=0.6, ls=":", label=f"{trip.name} setpoint")
        ax.set_xlabel(f"plant time ({unit})")
        ax.set_ylabel(label)
        ax.set_title(f"{run.plant.plant_id}: {runner.__doc__}", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    written.append(plot_refinery(out_dir / "range-refinery.png"))
    return written


if __name__ == "__main__":
    for written_path in plot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(written_path)
