"""Fresh attack data for a water network run by PLCs, in the manner of BATADAL, for unseen-attack
evaluation of the process detectors.

Why: BATADAL's competition test set is one fixed file, and this project has read where its misses
fall (docs/process-detection.md, "Alarm episodes"): it is no longer unseen. This generator makes new
test files on the same plant: C-Town, the same 43 hourly SCADA signals, the same PLC level logic
(the network file's ``[CONTROLS]``), with seeded demand noise and seeded attacks of BATADAL's kinds
(Taormina et al. 2018): PLC thresholds changed, a PLC fed a false tank level, a pump forced or
slowed, and each of them optionally hidden from the SCADA by replaying earlier readings. Every seed
is a new test file, so settings can be chosen on some seeds and reported on seeds never run before.

EPANET does the hydraulics, through wntr's binding of its toolkit, stepped five plant minutes at a
time. Written here is only the cyber layer: the PLCs, the attacker and the SCADA, as epanetCPA
(Taormina's MATLAB toolbox that made BATADAL) does; there is no Python package for it. Any network
whose ``[CONTROLS]`` switch links on tank levels works (the tests use wntr's Net1); C-Town's file
with its demands is DHALSIM's ``examples/ctown_topology/ctown_map.inp`` (MIT), not shipped here.

    python benchmarks/water_attacks.py generate --inp ctown_map.inp --out DIR --seeds 1-5
    python benchmarks/water_attacks.py evaluate DIR [--seeds 1-5] [-- interlock eval process options]
    python benchmarks/water_attacks.py onsets DIR --inp ctown_map.inp --seeds 1-5  # first physical trace
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

STEP_S = 300  # the PLCs' scan and EPANET's hydraulic step
HOUR = 3600
WARMUP_H = 48  # simulated, not written: tanks settle from the file's initial levels
YEAR_H = 8760
MIN_HOURS = 400
# C-Town's pressure sensors as BATADAL lists them (suction and delivery of one pump per station)
CTOWN_PRESSURES = (
    "J280",
    "J269",
    "J300",
    "J256",
    "J289",
    "J415",
    "J302",
    "J306",
    "J307",
    "J317",
    "J14",
    "J422",
)
RULE = re.compile(r"^\s*LINK\s+(\S+)\s+(\S+)\s+IF\s+NODE\s+(\S+)\s+(BELOW|ABOVE)\s+([-+\d.eE]+)", re.I)


@dataclass(frozen=True)
class Rule:
    """One line of ``[CONTROLS]``: ``LINK PU1 1.0 IF NODE T1 BELOW 4.0``."""

    link: str
    on: bool
    tank: str
    below: bool
    level: float


@dataclass
class Attack:
    """One attack, in plant hours from the start of the test file (``end`` excluded).

    kind: ``thresholds`` (the PLC's levels for ``target``'s tank shifted by ``value`` m),
    ``plc_input`` (the PLC reads ``target`` tank as ``value`` m, or with ``offset`` added),
    ``actuator`` (link ``target`` forced to status ``value``; a pump's speed when 0 < value < 1).
    ``conceal``: SCADA signals shown as they were in the ``lag`` hours before the attack, that
    window over and over while it lasts."""

    kind: str
    target: str
    start: int
    end: int
    value: float
    offset: bool = False
    conceal: list[str] = field(default_factory=list)
    lag: int = 0

    def __post_init__(self) -> None:
        if self.conceal and self.lag < 1:  # the replayed window is the lag hours before the attack
            raise ValueError(f"attack on {self.target}: hidden, so its lag must be at least 1 hour")


def read_rules(inp: Path) -> list[Rule]:
    rules, section = [], ""
    for line in inp.read_text(errors="replace").splitlines():
        text = line.split(";", 1)[0].strip()
        if text.startswith("["):
            section = text.upper()
            continue
        match = RULE.match(text) if section == "[CONTROLS]" else None
        if match:
            link, status, tank, rel, level = match.groups()
            on = status.lower() == "open" or (status.lower() != "closed" and float(status) > 0)
            rules.append(Rule(link, on, tank, rel.upper() == "BELOW", float(level)))
    if not rules:
        raise SystemExit(f"{inp}: no [CONTROLS] lines of the form LINK x s IF NODE tank BELOW|ABOVE v")
    return rules


class Plant:
    """The network in EPANET without its own controls (the PLCs here run them), with a year of
    seeded demand multipliers per pattern."""

    def __init__(
        self,
        inp: Path,
        hours: int,
        seed: int,
        workdir: Path,
        levels: dict[tuple[str, bool], float] | None = None,
    ) -> None:
        import wntr  # imported here: only this benchmark needs it

        # C-Town's file lists pump curves no pump uses: wntr warns of each, harmlessly
        warnings.filterwarnings("ignore", message="Not all curves were used", category=UserWarning)

        # ``levels``: (link, below) -> a level to use instead of the file's (see main's --level)
        self.rules = [
            replace(r, level=(levels or {}).get((r.link, r.below), r.level)) for r in read_rules(inp)
        ]
        wn = wntr.network.WaterNetworkModel(str(inp))
        for name in list(wn.control_name_list):
            wn.remove_control(name)
        rng = np.random.default_rng(seed)
        total = hours + WARMUP_H + 24
        # noise drawn for a year at least, whatever the run's length: a seed's demands are the
        # same in a short run as in the first hours of a long one (``onsets`` reruns them)
        horizon = max(total, YEAR_H + WARMUP_H + 24)
        step = int(wn.options.time.pattern_timestep) or HOUR  # the file's step, before it is set to 1 h
        wn.options.time.duration = total * HOUR
        wn.options.time.hydraulic_timestep = STEP_S
        wn.options.time.pattern_timestep = HOUR
        wn.options.time.report_timestep = HOUR
        for name in wn.pattern_name_list:
            base = list(wn.get_pattern(name).multipliers)
            wn.get_pattern(name).multipliers = _noisy(base, step, horizon, rng)
        self.tanks = sorted(wn.tank_name_list, key=_natural)
        self.pumps = sorted(wn.pump_name_list, key=_natural)
        controlled = {r.link for r in self.rules}
        self.valves = sorted((v for v in wn.valve_name_list if v in controlled), key=_natural)
        names = set(wn.junction_name_list)
        if set(CTOWN_PRESSURES) <= names:
            self.pressures = list(CTOWN_PRESSURES)
        else:
            ends = [
                n
                for link in self.pumps + self.valves
                for n in (wn.get_link(link).start_node_name, wn.get_link(link).end_node_name)
            ]
            self.pressures = sorted({n for n in ends if n in names}, key=_natural)
        self.inp = workdir / "plant.inp"
        wntr.network.write_inpfile(wn, str(self.inp))
        self.hours = hours

    def signals(self) -> list[str]:
        cols = [f"L_{t}" for t in self.tanks]
        for link in self.pumps + self.valves:
            cols += [f"F_{link}", f"S_{link}"]
        return cols + [f"P_{j}" for j in self.pressures]


def _noisy(base: Sequence[float], step: int, hours: int, rng: np.random.Generator) -> list[float]:
    """The pattern (one multiplier per ``step`` seconds) repeated hourly over ``hours`` with a
    slow seasonal swing, day-to-day drift (AR(1)) and hourly noise: a demand never the same twice."""
    pattern = np.asarray(base, dtype=float) if len(base) else np.ones(1)
    h = np.arange(hours)
    season = 1 + 0.08 * np.sin(2 * np.pi * (h / float(YEAR_H) + rng.uniform()))
    days = hours // 24 + 1
    daily = np.empty(days)
    daily[0] = rng.normal(0, 0.05)
    for d in range(1, days):
        daily[d] = 0.8 * daily[d - 1] + rng.normal(0, 0.03)
    hourly = rng.normal(0, 0.04, hours)
    shape = pattern[(h * HOUR // step) % len(pattern)]
    return list(np.clip(shape * season * (1 + daily[h // 24] + hourly), 0, None))


def simulate(
    plant: Plant, attacks: Sequence[Attack], workdir: Path, until: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One row of SCADA readings per plant hour (after the warm-up), attacks applied, and the
    true readings beside them; ``until``: stop after that many hours."""
    hours = plant.hours if until is None else min(until, plant.hours)
    from wntr.epanet.toolkit import ENepanet
    from wntr.epanet.util import EN

    # a drained tank gives negative pressures downstream: EPANET warns every step, and that is
    # the attack's effect, not a fault of the run
    logging.getLogger("wntr.epanet.toolkit").setLevel(logging.ERROR)
    en = ENepanet()
    en.ENopen(str(plant.inp), str(workdir / "plant.rpt"), str(workdir / "plant.bin"))
    node = {n: en.ENgetnodeindex(n) for n in plant.tanks + plant.pressures}
    link = {n: en.ENgetlinkindex(n) for n in plant.pumps + plant.valves}
    status = {n: en.ENgetlinkvalue(link[n], EN.INITSTATUS) > 0 for n in link}
    rows: list[list[float]] = []
    history: list[np.ndarray] = []  # the true hourly readings, for replays
    cols = plant.signals()
    en.ENopenH()
    en.ENinitH(0)
    try:
        while True:
            t = int(en.ENrunH())
            hour = t // HOUR - WARMUP_H
            active = [a for a in attacks if a.start <= hour < a.end]
            if t % HOUR == 0 and 0 <= hour < hours:
                if hour != len(history):  # EPANET lands a step on every pattern hour
                    raise RuntimeError(f"{plant.inp}: no hydraulic step at plant hour {len(history)}")
                true = _read(en, EN, plant, node, link)
                history.append(true)
                shown = true.copy()
                for a in active:
                    for sig in a.conceal:
                        i = cols.index(sig)
                        # the lag hours before the attack, over and over: never its own rows
                        back = a.start - a.lag + (hour - a.start) % a.lag
                        shown[i] = history[back][i] if back >= 0 else true[i]
                rows.append(list(shown))
            seen = {tank: _level(en, EN, node[tank]) for tank in plant.tanks}
            levels = {(r.link, r.tank, r.below): r.level for r in plant.rules}
            forced: dict[str, float] = {}
            for a in active:
                if a.kind == "plc_input":
                    seen[a.target] = seen[a.target] + a.value if a.offset else a.value
                elif a.kind == "thresholds":
                    for key in levels:
                        if key[1] == a.target:
                            levels[key] += a.value
                elif a.kind == "actuator":
                    forced[a.target] = a.value
            for r in plant.rules:  # EPANET's semantics: a rule whose condition holds sets the link
                lvl = levels[(r.link, r.tank, r.below)]
                if (seen[r.tank] < lvl) if r.below else (seen[r.tank] > lvl):
                    status[r.link] = r.on
            for name, idx in link.items():
                want = forced.get(name, float(status[name]))
                if 0 < want < 1:  # a pump slowed: running at a fraction of its speed
                    en.ENsetlinkvalue(idx, EN.SETTING, want)
                else:
                    en.ENsetlinkvalue(idx, EN.STATUS, float(want >= 1))
                    if want >= 1 and name in plant.pumps:
                        en.ENsetlinkvalue(idx, EN.SETTING, 1.0)
            if en.ENnextH() <= 0 or len(rows) >= hours:
                break
    finally:
        en.ENcloseH()
        en.ENclose()
    return np.asarray(rows), np.asarray(history)


def _read(en: object, EN: object, plant: Plant, node: dict[str, int], link: dict[str, int]) -> np.ndarray:
    get_n, get_l = en.ENgetnodevalue, en.ENgetlinkvalue  # type: ignore[attr-defined]
    vals = [_level(en, EN, node[t]) for t in plant.tanks]
    for name in plant.pumps + plant.valves:
        flow = get_l(link[name], EN.FLOW)  # type: ignore[attr-defined]
        on = get_l(link[name], EN.STATUS) > 0 and abs(flow) > 1e-6  # type: ignore[attr-defined]
        vals += [flow if on else 0.0, float(on)]
    vals += [get_n(node[j], EN.PRESSURE) for j in plant.pressures]  # type: ignore[attr-defined]
    return np.asarray(vals, dtype=float)


def _level(en: object, EN: object, idx: int) -> float:
    """A tank's water level (head over its bottom: EPANET's tank "pressure" is in psi in US units)."""
    get = en.ENgetnodevalue  # type: ignore[attr-defined]
    return float(get(idx, EN.HEAD) - get(idx, EN.ELEVATION))  # type: ignore[attr-defined]


def random_attacks(
    plant: Plant, seed: int, count: int = 7, effective: Callable[[Attack], bool] | None = None
) -> list[Attack]:
    """``count`` attacks (fewer in a short file) of BATADAL's kinds at seeded times, targets and
    strengths, 24-120 hours each, at least 100 hours apart, none in the first 150 hours. With
    ``effective``, each is drawn again (up to 30 times) until it moves the plant: forcing on a pump
    that runs anyway is no attack a detector could be asked to find."""
    if plant.hours < MIN_HOURS:
        raise SystemExit(f"{plant.hours} hours: a test file needs {MIN_HOURS} (150 before the first attack)")
    rng = np.random.default_rng(10_000 + seed)
    span = plant.hours - 150
    count = max(1, min(count, span // 250))
    slot = span // count
    attacks = []
    for k in range(count):
        for _ in range(30):
            attack = _draw(plant, rng, 150 + k * slot, slot)
            if effective is None or effective(attack):
                break
        else:
            print(f"seed {seed}: attack {k + 1} kept though no draw of 30 moved the plant", file=sys.stderr)
        attacks.append(attack)
    return attacks


def _draw(plant: Plant, rng: np.random.Generator, first: int, slot: int) -> Attack:
    tanks = sorted({r.tank for r in plant.rules}, key=_natural)
    length = int(rng.integers(24, 121))
    start = first + int(rng.integers(0, max(1, slot - length - 100)))
    kind = str(rng.choice(["thresholds", "plc_input", "actuator"]))
    offset = False
    if kind == "actuator":
        target = str(rng.choice(plant.pumps + plant.valves))
        slowed = (
            [round(float(rng.uniform(0.6, 0.9)), 2)] if target in plant.pumps else []
        )  # a valve has no speed
        value = float(rng.choice([0.0, 1.0, *slowed]))
        related = [target]
    else:
        target = str(rng.choice(tanks))
        if kind == "thresholds":
            value = round(float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)), 2)
        else:
            offset = bool(rng.integers(0, 2))
            top = max(r.level for r in plant.rules if r.tank == target)
            if offset:
                value = round(float(rng.choice([-1, 1]) * rng.uniform(0.5, 2.0)), 2)
            else:  # the tank shown empty, or full
                value = round(float(rng.choice([0.0, top + 0.5])) + float(rng.uniform(0, 0.3)), 2)
        related = [target, *sorted({r.link for r in plant.rules if r.tank == target})]
    conceal: list[str] = []
    if rng.uniform() < 0.6:  # hidden: the attacked tank and links replayed from days before
        conceal = [s for s in plant.signals() if s.split("_", 1)[1] in related and not s.startswith("P_")]
    lag = int(rng.integers(1, 8)) * 24 if conceal else 0
    return Attack(kind, target, start, start + length, value, offset, conceal, lag)


def moved(plant: Plant, normal: np.ndarray, attacked: np.ndarray, attack: Attack) -> bool:
    """Whether ``attack`` moved the plant (true readings, not the SCADA's): a tank 0.5 m off its
    course, or a link switched or a flow 5 L/s off for 6 hours or more, in the attack and the 12
    hours after it."""
    rows = slice(attack.start, min(attack.end + 12, len(normal), len(attacked)))
    a, b = normal[rows], attacked[rows]
    cols = plant.signals()
    level = [i for i, c in enumerate(cols) if c.startswith("L_")]
    state = [i for i, c in enumerate(cols) if c.startswith("S_")]
    flow = [i for i, c in enumerate(cols) if c.startswith("F_")]
    if np.abs(a[:, level] - b[:, level]).max(initial=0) >= 0.5:
        return True
    switched = (a[:, state] != b[:, state]).any(axis=1).sum()
    slowed = (np.abs(a[:, flow] - b[:, flow]) > 5).any(axis=1).sum()
    return bool(switched >= 6 or slowed >= 6)


def write_csv(
    path: Path, plant: Plant, rows: np.ndarray, attacks: Sequence[Attack], first: dt.datetime
) -> None:
    label = np.zeros(len(rows), dtype=int)
    for a in attacks:
        label[a.start : a.end] = 1
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["DATETIME", *plant.signals(), "ATT_FLAG"])
        for i, row in enumerate(rows):
            stamp = (first + dt.timedelta(hours=i)).strftime("%d/%m/%y %H")
            out.writerow([stamp, *(f"{v:.6g}" for v in row), int(label[i])])


def write_windows(path: Path, attacks: Sequence[Attack], first: dt.datetime) -> None:
    with path.open("w", newline="") as fh:
        fh.write("# generated by benchmarks/water_attacks.py; whole windows, inclusive\n")
        out = csv.writer(fh)
        out.writerow(["start", "end"])
        for a in attacks:
            out.writerow(
                [(first + dt.timedelta(hours=h)).strftime("%d/%m/%y %H") for h in (a.start, a.end - 1)]
            )


def generate(
    inp: Path,
    out: Path,
    seeds: Sequence[int],
    train_hours: int,
    test_hours: int,
    levels: dict[tuple[str, bool], float] | None = None,
) -> None:
    from rich.progress import Progress

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, Progress() as bar:
        work = Path(tmp)
        # a train.csv made with other settings (PLC levels, length, network) is made again
        made = json.dumps(
            {"inp": inp.name, "hours": train_hours, "levels": sorted(map(str, (levels or {}).items()))}
        )
        fresh = (
            (out / "train.csv").exists()
            and (out / "train.json").exists()
            and (out / "train.json").read_text() == made
        )
        task = bar.add_task("simulating", total=len(seeds) + (0 if fresh else 1))
        if not fresh:
            plant = Plant(inp, train_hours, 0, work, levels)
            write_csv(out / "train.csv", plant, simulate(plant, [], work)[0], [], dt.datetime(2017, 1, 1))
            (out / "train.json").write_text(made)
            bar.advance(task)
        for seed in seeds:
            plant = Plant(inp, test_hours, seed, work, levels)
            normal = simulate(plant, [], work)[1]

            def effective(attack: Attack, plant: Plant = plant, normal: np.ndarray = normal) -> bool:
                return moved(plant, normal, simulate(plant, [attack], work, attack.end + 12)[1], attack)

            attacks = random_attacks(plant, seed, effective=effective)
            first = dt.datetime(2018, 1, 1)
            write_csv(out / f"test_{seed}.csv", plant, simulate(plant, attacks, work)[0], attacks, first)
            write_windows(out / f"test_{seed}_attacks.csv", attacks, first)
            (out / f"test_{seed}_attacks.json").write_text(json.dumps([asdict(a) for a in attacks], indent=1))
            bar.advance(task)


def onsets(
    inp: Path, folder: Path, seeds: Sequence[int], levels: dict[tuple[str, bool], float] | None
) -> None:
    """When each attack of ``folder``'s test files first shows in the plant: the first hour whose
    true readings differ from the same seed run without it (a tank 0.05 m, a link's state, a flow
    1 L/s). Hours before that hold no physical trace; only a replay shown to the SCADA can give
    such an attack away earlier."""
    before = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for seed in seeds:
            attacks = [Attack(**a) for a in json.loads((folder / f"test_{seed}_attacks.json").read_text())]
            with (folder / f"test_{seed}.csv").open() as fh:
                hours = sum(1 for _ in fh) - 1  # the file's own length: its plant, its demands
            plant = Plant(inp, hours, seed, work, levels)
            normal = simulate(plant, [], work)[1]
            cols = plant.signals()
            tol = np.array(
                [
                    0.05 if c[0] == "L" else 0.5 if c[0] == "S" else 1.0 if c[0] == "F" else np.inf
                    for c in cols
                ]
            )
            found = []
            for a in attacks:
                true = simulate(plant, [a], work, a.end)[1]
                differs = np.flatnonzero(
                    (np.abs(true[a.start : a.end] - normal[a.start : a.end]) >= tol).any(axis=1)
                )
                onset = int(differs[0]) if differs.size else a.end - a.start
                found.append(onset)
                before += onset
                total += a.end - a.start
            print(f"seed {seed}: hours from each attack's start to its first trace in the plant {found}")
    print(f"{before} of {total} attack hours ({before / total:.1%}) come before any trace in the plant")


def evaluate(folder: Path, seeds: Sequence[int], extra: Sequence[str]) -> None:
    """``interlock eval process`` on each seed's file: its figures, their means, and by kind of
    attack the time to detect and the share of rows alarmed; false alarms split between the 48
    hours after an attack (the plant still off its course) and the rest."""
    keys = ("batadal_s", "f1", "precision", "recall", "etapr_f1")
    table = []
    kinds: dict[str, list[tuple[int, float]]] = {}
    after = [0, 0]  # alarmed, rows: within 48 h after an attack
    clean = [0, 0]  # alarmed, rows: the other normal rows
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            preds = Path(tmp) / f"p{seed}.csv"
            cmd = [sys.executable, "-c", "from interlock.cli import main; main()", "eval", "process",
                   str(folder / "train.csv"), str(folder / f"test_{seed}.csv"), "--label", "ATT_FLAG",
                   "--windows", str(folder / f"test_{seed}_attacks.csv"), "--json",
                   "--predictions", str(preds), *extra]  # fmt: skip
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            ttd = [a.get("time_to_detect") for a in res.get("attacks", [])]
            table.append([res.get(k) for k in keys])
            figures = "  ".join(f"{k} {res.get(k, float('nan')):.3f}" for k in keys)
            print(f"seed {seed}: {figures}  ttd {ttd}")
            with preds.open() as fh:
                alarm = np.array([int(row["alarm"]) for row in csv.DictReader(fh)], dtype=bool)
            attacks = [Attack(**a) for a in json.loads((folder / f"test_{seed}_attacks.json").read_text())]
            hit = np.zeros(len(alarm), dtype=bool)
            later = np.zeros(len(alarm), dtype=bool)
            for a, t in zip(attacks, ttd, strict=True):
                hit[a.start : a.end] = True
                later[a.end : a.end + 48] = True
                kinds.setdefault(_kind(a), []).append((a.end - a.start if t is None else int(t),
                                                      float(alarm[a.start : a.end].mean())))  # fmt: skip
            later &= ~hit
            rest = ~hit & ~later
            after = [after[0] + int(alarm[later].sum()), after[1] + int(later.sum())]
            clean = [clean[0] + int(alarm[rest].sum()), clean[1] + int(rest.sum())]
    mean = np.nanmean(np.asarray(table, dtype=float), axis=0)
    print("mean:    " + "  ".join(f"{k} {m:.3f}" for k, m in zip(keys, mean, strict=True)))
    for kind in sorted(kinds):
        ttds = np.array([t for t, _ in kinds[kind]])
        shares = np.array([r for _, r in kinds[kind]])
        print(f"{kind:24s} {len(ttds):3d} attacks  time to detect mean {ttds.mean():5.1f} h, "
              f"median {np.median(ttds):4.1f}, over 10 h: {int((ttds > 10).sum())}  "
              f"rows alarmed {shares.mean():.2f}")  # fmt: skip
    print(f"false alarms: {after[0] / max(after[1], 1):.1%} of the 48 h after attacks, "
          f"{clean[0] / max(clean[1], 1):.2%} of the other normal rows")  # fmt: skip


def _kind(a: Attack) -> str:
    """``thresholds``, ``plc_input/offset``, ``actuator/slow``, ... with ``/hidden`` when concealed."""
    name = a.kind
    if a.kind == "actuator":
        name += "/off" if a.value == 0 else "/on" if a.value >= 1 else "/slow"
    elif a.kind == "plc_input":
        name += "/offset" if a.offset else "/level"
    return name + ("/hidden" if a.conceal else "")


def _natural(name: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("--inp", type=Path, required=True)
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--seeds", default="1-5")
    gen.add_argument("--train-hours", type=int, default=8760)
    gen.add_argument("--test-hours", type=int, default=2089)
    gen.add_argument(
        "--level",
        action="append",
        default=[],
        metavar="LINK:BELOW|ABOVE=M",
        help="a PLC level other than the file's: DHALSIM's C-Town stops PU8 ABOVE 4.5 m, T5's top, which "
        "the level never passes; BATADAL's data shows PU8 stopping near 4.0 m (PU8:ABOVE=4)",
    )
    on = sub.add_parser("onsets")
    on.add_argument("folder", type=Path)
    on.add_argument("--inp", type=Path, required=True)
    on.add_argument("--seeds", default="1-5")
    on.add_argument("--level", action="append", default=[], metavar="LINK:BELOW|ABOVE=M")
    ev = sub.add_parser("evaluate")
    ev.add_argument("folder", type=Path)
    ev.add_argument("--seeds", default="1-5")
    args, extra = parser.parse_known_args(argv)  # evaluate: the rest goes to interlock eval process
    extra = [e for e in extra if e != "--"]
    if extra and args.cmd != "evaluate":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    levels = {}
    for text in getattr(args, "level", []):
        name, _, rest = text.partition(":")
        rel, _, value = rest.partition("=")
        levels[(name, rel.upper() == "BELOW")] = float(value)
    if args.cmd == "generate":
        generate(args.inp, args.out, _seeds(args.seeds), args.train_hours, args.test_hours, levels)
    elif args.cmd == "onsets":
        onsets(args.inp, args.folder, _seeds(args.seeds), levels)
    else:
        evaluate(args.folder, _seeds(args.seeds), extra)


if __name__ == "__main__":
    main()
