"""Scenarios as data: load a drill's YAML file, check it against the schema, name the bad line.

A scenario names a plant, a seed, a speed, a duration with a benign warmup, and phases of injects
(technique, target device, parameters, expected ATT&CK detections) at plant times. The format is
documented in ``docs/drill.md``. Every error is one line, ``FILE:LINE: field 'path': reason; what
to do``, so a typo in a 200-line file is found without reading a traceback.

Scenarios ship in the repository's ``scenarios/`` folder; ``setup.py`` copies it into the package
(``interlock/scenarios``) for wheel installs, as it does for ``rules/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from interlock.drill.model import Inject, Scenario
from interlock.yamlnodes import Node, NodeError, compose

# Technique ids of the library (the registry in interlock.drill.techniques may be partly built
# while scenarios are written; an id is accepted if it is in either).
_FAMILIES = {
    "modbus": "read_coils read_discrete_inputs read_holding_registers read_input_registers write_coil "
              "write_register write_coils write_registers read_device_id fuzz function_scan address_scan "
              "flood brute_io restart_comms force_listen_only",
    "dnp3": "integrity_poll read_class cold_restart warm_restart disable_unsolicited enable_unsolicited "
            "direct_operate select_operate direct_operate_analog write_time stop_application initialize_data",
    "s7": "szl_read cpu_stop cpu_start read_db write_db download_block",
    "iec104": "interrogation single_command double_command setpoint ioa_sweep",
    "mitm": "replay",
}
KNOWN_TECHNIQUES: frozenset[str] = frozenset(
    f"{family}.{name}" for family, names in _FAMILIES.items() for name in names.split()
)
# Which device protocols a technique family speaks (the mitm proxy is a Modbus/TCP one).
FAMILY_PROTOCOLS: Mapping[str, tuple[str, ...]] = {
    "modbus": ("modbus",),
    "dnp3": ("dnp3",),
    "s7": ("s7comm", "s7"),
    "iec104": ("iec104",),
    "mitm": ("modbus",),
}
# Parameters every technique accepts on top of its own: the runner resolves ``tag`` to an
# address (and an engineering ``value`` to raw); ``record`` is the replay's recording length.
COMMON_PARAMS = frozenset({"tag"})
KNOWN_PLANTS = ("gas-pipeline", "refinery", "reactor")

TOP_KEYS = {"id", "title", "plant", "based_on", "seed", "speed", "duration", "warmup",
            "description", "objectives", "phases"}
TOP_REQUIRED = ("id", "title", "plant", "based_on", "duration", "phases")
PHASE_KEYS = {"name", "injects"}
INJECT_KEYS = {"id", "at", "until", "technique", "target", "params", "expect"}
INJECT_REQUIRED = ("id", "at", "technique", "target", "expect")

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ATTACK = re.compile(r"^T0\d{3}$")
DURATION_HINT = "is not a duration like 90s, 12m, 1h or 1h30m (or a number of seconds)"


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is ``FILE:LINE: field 'x': reason``."""

    def __init__(self, path: Path | str, line: int, field_name: str, reason: str) -> None:
        where = f"field '{field_name}': " if field_name else ""
        super().__init__(f"{path}:{line}: {where}{reason}")
        self.path, self.line, self.field, self.reason = str(path), line, field_name, reason


# --- YAML with line numbers (interlock.yamlnodes) ----------------------------------------------


def _compose(path: Path, text: str) -> Node:
    # Composing nodes (not safe_load) keeps each value's line for the error messages.
    try:
        node = compose(text)
    except NodeError as exc:
        if exc.kind == "key":
            raise ScenarioError(path, exc.at(1), str(exc.key), "keys must be text") from None
        if exc.kind == "duplicate":
            raise ScenarioError(path, exc.at(1), exc.key, f"duplicate key (first on line "
                                f"{exc.first_line})") from None
        if not isinstance(exc.cause, yaml.MarkedYAMLError):
            raise ScenarioError(path, 1, "", f"YAML error: {exc.problem}") from None
        raise ScenarioError(path, exc.at(1), "", f"YAML syntax error: {exc.problem}; "
                            "fix the indentation or quoting") from None
    if node is None:
        raise ScenarioError(path, 1, "", "empty file: a scenario needs id, title, plant, based_on, "
                            "duration and phases (see docs/drill.md)")
    return node


# --- reference data -------------------------------------------------------------------------


def points_dir() -> Path:
    """Where the range's point lists live (``interlock/range/points``)."""
    return Path(str(resources.files("interlock") / "range" / "points"))


@cache
def plant_devices(plant: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Device name -> (protocol, tags) of a plant, read from its points file; {} if none."""
    path = points_dir() / f"{plant}.yaml"
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for dev in doc.get("devices", []) or []:
        tags = frozenset(str(p.get("tag")) for p in dev.get("points", []) or [])
        out[str(dev.get("name"))] = (str(dev.get("protocol", "")), tags)
    return out


def known_plants() -> tuple[str, ...]:
    """Plant ids: the range's PLANTS table plus every plant with a points file."""
    names = {p.stem for p in points_dir().glob("*.yaml")}
    try:  # lazily: the range pulls in numpy and the physics
        from interlock.range.plants import PLANTS

        names |= set(PLANTS)
    except ImportError:
        names |= set(KNOWN_PLANTS)
    return tuple(sorted(names))


@cache
def attack_ids() -> frozenset[str]:
    """ATT&CK for ICS technique ids of the bundled table."""
    text = (resources.files("interlock") / "data" / "attack_ics.json").read_text(encoding="utf-8")
    return frozenset(json.loads(text)["techniques"])


def technique_params(technique: str) -> tuple[frozenset[str], tuple[str, ...]] | None:
    """Parameter names and ATT&CK ids of a registered technique; None if not registered yet."""
    try:
        from interlock.drill.techniques import TECHNIQUES
    except ImportError:
        return None
    tech = TECHNIQUES.get(technique)
    if tech is None:
        return None
    return frozenset(tech.params), tuple(tech.attack_ids)


def known_techniques() -> frozenset[str]:
    try:
        from interlock.drill.techniques import TECHNIQUES
    except ImportError:
        return KNOWN_TECHNIQUES
    return KNOWN_TECHNIQUES | frozenset(TECHNIQUES)


# --- parsing --------------------------------------------------------------------------------


def parse_duration(value: object) -> float | None:
    """Seconds of ``90``, ``90s``, ``12m``, ``1h``, ``1h30m``; None if it is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "")
    if not text:
        return None
    try:
        return float(text) if float(text) >= 0 else None
    except ValueError:
        pass
    m = _DURATION.match(text)
    if m is None or not any(m.groups()):
        return None
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def format_duration(seconds: float) -> str:
    """``750`` -> ``12m30s``: the inverse of :func:`parse_duration` for messages and reports."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{sec}s" if sec else ""]
    return "".join(parts) or "0s"


class _Checker:
    """Walks the composed document; every check raises a ScenarioError at the right line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, line: int, name: str, reason: str) -> ScenarioError:
        return ScenarioError(self.path, line, name, reason)

    def mapping(self, node: Node, name: str, allowed: set[str], required: tuple[str, ...]) -> dict[str, Node]:
        if not isinstance(node.value, dict):
            raise self.fail(node.line, name or "(top)", "must be a mapping of key: value")
        items: dict[str, Node] = node.value
        for key in items:
            if key not in allowed:
                close = sorted(allowed, key=lambda a: _distance(a, key))[0]
                where = f"{name}.{key}" if name else key
                raise self.fail(node.key_lines[key], where,
                                f"unknown key; did you mean '{close}'? allowed: {', '.join(sorted(allowed))}")
        for key in required:
            if key not in items:
                where = f"{name}.{key}" if name else key
                raise self.fail(node.line, where, "is required; add it (see docs/drill.md)")
        return items

    def text(self, node: Node, name: str, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        if not isinstance(node.value, str) or not node.value.strip():
            raise self.fail(node.line, name, f"{node.value!r} must be non-empty text")
        if pattern is not None and not pattern.match(node.value):
            raise self.fail(node.line, name, f"{node.value!r} {hint}")
        return node.value.strip()

    def duration(self, node: Node, name: str) -> float:
        seconds = parse_duration(node.value)
        if seconds is None:
            raise self.fail(node.line, name, f"{node.value!r} {DURATION_HINT}")
        return seconds

    def text_list(self, node: Node, name: str) -> list[tuple[str, int]]:
        if not isinstance(node.value, list):
            raise self.fail(node.line, name, "must be a list, e.g. [a, b]")
        return [(self.text(item, f"{name}[{i}]"), item.line) for i, item in enumerate(node.value)]


def _distance(a: str, b: str) -> int:
    """Levenshtein distance, for the 'did you mean' of an unknown key."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def parse_scenario(text: str, path: Path | str = "<scenario>") -> Scenario:
    """The scenario in ``text``; ``ScenarioError`` (``FILE:LINE: field ...``) if it is not valid."""
    path = Path(path)
    c = _Checker(path)
    root = _compose(path, text)
    top = c.mapping(root, "", TOP_KEYS, TOP_REQUIRED)

    sid = c.text(top["id"], "id", pattern=_ID, hint="must be lower-case letters, digits, '.', '_' or '-'")
    title = c.text(top["title"], "title")
    based_on = c.text(top["based_on"], "based_on")
    plant = c.text(top["plant"], "plant")
    plants = known_plants()
    if plant not in plants:
        raise c.fail(top["plant"].line, "plant", f"{plant!r} is not a plant; use one of {', '.join(plants)}")
    description = ""
    if "description" in top:
        description = c.text(top["description"], "description")

    seed = 0
    if "seed" in top:
        n = top["seed"]
        if not isinstance(n.value, int) or isinstance(n.value, bool) or n.value < 0:
            raise c.fail(n.line, "seed", f"{n.value!r} must be a whole number >= 0")
        seed = n.value

    speed: str | float = "max"
    if "speed" in top:
        parsed = parse_speed(top["speed"].value)
        if parsed is None:
            raise c.fail(top["speed"].line, "speed",
                         f"{top['speed'].value!r} must be 'max' or a real-time multiplier > 0 like 1 or 10")
        speed = parsed

    duration = c.duration(top["duration"], "duration")
    if duration <= 0:
        raise c.fail(top["duration"].line, "duration", "must be longer than 0s")
    warmup = c.duration(top["warmup"], "warmup") if "warmup" in top else 0.0
    if warmup >= duration:
        raise c.fail(top["warmup"].line, "warmup",
                     f"{format_duration(warmup)} leaves no time for injects in a "
                     f"{format_duration(duration)} drill; shorten it or lengthen 'duration'")

    objectives: tuple[str, ...] = ()
    if "objectives" in top:
        objectives = tuple(t for t, _ in c.text_list(top["objectives"], "objectives"))

    phases_node = top["phases"]
    if not isinstance(phases_node.value, list) or not phases_node.value:
        raise c.fail(phases_node.line, "phases", "must be a non-empty list of {name, injects}")
    devices = plant_devices(plant)
    attack = attack_ids()
    techniques = known_techniques()
    injects: list[Inject] = []
    seen: dict[str, int] = {}
    for pi, phase_node in enumerate(phases_node.value):
        pname = f"phases[{pi}]"
        phase = c.mapping(phase_node, pname, PHASE_KEYS, ("name", "injects"))
        phase_name = c.text(phase["name"], f"{pname}.name")
        inj_list = phase["injects"]
        if not isinstance(inj_list.value, list) or not inj_list.value:
            raise c.fail(inj_list.line, f"{pname}.injects", "must be a non-empty list of injects")
        for ii, inj_node in enumerate(inj_list.value):
            name = f"{pname}.injects[{ii}]"
            inj = c.mapping(inj_node, name, INJECT_KEYS, INJECT_REQUIRED)
            iid = c.text(inj["id"], f"{name}.id", pattern=_ID,
                         hint="must be lower-case letters, digits, '.', '_' or '-'")
            if iid in seen:
                raise c.fail(inj["id"].line, f"{name}.id",
                             f"{iid!r} is already used on line {seen[iid]}; inject ids must be unique")
            seen[iid] = inj["id"].line
            at = c.duration(inj["at"], f"{name}.at")
            if at < warmup:
                raise c.fail(inj["at"].line, f"{name}.at",
                             f"{format_duration(at)} is inside the warmup ({format_duration(warmup)}); "
                             "defenders learn their baseline then: move the inject later")
            if at >= duration:
                raise c.fail(inj["at"].line, f"{name}.at",
                             f"{format_duration(at)} is not before the end of the drill "
                             f"({format_duration(duration)}); move it earlier or lengthen 'duration'")
            until: float | None = None
            if "until" in inj:
                until = c.duration(inj["until"], f"{name}.until")
                if until <= at or until > duration:
                    raise c.fail(inj["until"].line, f"{name}.until",
                                 f"{format_duration(until)} must be after 'at' ({format_duration(at)}) "
                                 f"and at most the duration ({format_duration(duration)})")
            technique = c.text(inj["technique"], f"{name}.technique")
            if technique not in techniques:
                close = sorted(techniques, key=lambda t: _distance(t, technique))[0]
                raise c.fail(inj["technique"].line, f"{name}.technique",
                             f"{technique!r} is not a technique of the library; did you mean '{close}'? "
                             "(list: docs/drill.md)")
            target = c.text(inj["target"], f"{name}.target")
            if devices and target not in devices:
                raise c.fail(inj["target"].line, f"{name}.target",
                             f"{target!r} is not a device of {plant}; use one of {', '.join(devices)}")
            family = technique.split(".", 1)[0]
            if devices and devices[target][0] not in FAMILY_PROTOCOLS.get(family, (family,)):
                ok = [d for d, (proto, _) in devices.items() if proto in FAMILY_PROTOCOLS.get(family, ())]
                raise c.fail(inj["technique"].line, f"{name}.technique",
                             f"{technique} speaks {family} but {target} speaks {devices[target][0]}; "
                             f"target {', '.join(ok) or 'another plant'} instead")
            params: dict[str, Any] = {}
            if "params" in inj:
                pnode = inj["params"]
                if pnode.value is None:
                    pnode = Node({}, pnode.line)
                if not isinstance(pnode.value, dict):
                    raise c.fail(pnode.line, f"{name}.params",
                                 "must be a mapping like {tag: temp_sp_k, value: 345}")
                params = pnode.plain()
                registered = technique_params(technique)
                if registered is not None:
                    accepted = registered[0] | COMMON_PARAMS
                    for key in params:
                        if key not in accepted:
                            raise c.fail(pnode.key_lines[key], f"{name}.params.{key}",
                                         f"{technique} takes no parameter {key!r}; accepted: "
                                         f"{', '.join(sorted(accepted))}")
                if "tag" in params:
                    tag = params["tag"]
                    tags = devices.get(target, ("", frozenset()))[1]
                    if devices and tag not in tags:
                        raise c.fail(pnode.key_lines["tag"], f"{name}.params.tag",
                                     f"{tag!r} is not a tag of {plant} {target}; use one of "
                                     f"{', '.join(sorted(tags))}")
                if "record" in params:
                    rec = parse_duration(params["record"])
                    if rec is None:
                        raise c.fail(pnode.key_lines["record"], f"{name}.params.record",
                                     f"{params['record']!r} {DURATION_HINT}")
                    params["record"] = rec  # seconds, so the runner need not parse durations
            expect: list[str] = []
            for e, eline in c.text_list(inj["expect"], f"{name}.expect"):
                ident = e.upper()
                if not _ATTACK.match(ident) or ident not in attack:
                    raise c.fail(eline, f"{name}.expect",
                                 f"{e!r} is not an ATT&CK for ICS technique id like T0836")
                expect.append(ident)
            if not expect:
                raise c.fail(inj["expect"].line, f"{name}.expect",
                             "must list at least one ATT&CK id a defender should raise, e.g. [T0836]")
            injects.append(Inject(iid, phase_name, at, technique, target, params, tuple(expect),
                                  until, inj_node.line))

    injects.sort(key=lambda i: (i.at_s, i.line))
    return Scenario(sid, title, plant, seed, speed, duration, warmup, based_on, description,
                    objectives, tuple(injects), path)


def parse_speed(value: object) -> str | float | None:
    """``"max"`` or a positive real-time multiplier; None if neither (CLI and file share it)."""
    if isinstance(value, str) and value.strip().lower() == "max":
        return "max"
    if isinstance(value, bool):
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


def load_scenario(path: Path | str) -> Scenario:
    """The scenario in the YAML file ``path``, checked; ``ScenarioError`` if it is not valid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(path, 0, "", "no such file; give a path or a scenario id from "
                            "'interlock drill list'") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, 0, "", f"cannot read: {exc}") from None
    return parse_scenario(text, path)


def scenarios_dir() -> Path | None:
    """The shipped scenarios: the ``scenarios/`` folder of a source checkout this module runs
    from, else the copy the build put inside the package (wheel installs)."""
    source = Path(__file__).resolve().parents[3] / "scenarios"
    packaged = Path(str(resources.files("interlock") / "scenarios"))
    for candidate in (source, packaged):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def scenario_paths() -> list[Path]:
    """The shipped scenario files, sorted by name."""
    directory = scenarios_dir()
    return sorted(directory.glob("*.yaml")) if directory else []


def list_scenarios() -> list[Scenario]:
    """Every shipped scenario, loaded and checked (``ScenarioError`` on a broken one)."""
    return [load_scenario(p) for p in scenario_paths()]


def find_scenario(name: str | Path) -> Scenario:
    """A scenario by file path, or by the id (or file stem) of a shipped one."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_scenario(path)
    for p in scenario_paths():
        if p.stem == str(name):
            return load_scenario(p)
    for p in scenario_paths():
        try:
            sc = load_scenario(p)
        except ScenarioError:
            continue
        if sc.id == str(name):
            return sc
    known = ", ".join(p.stem for p in scenario_paths())
    raise ScenarioError(name, 0, "", f"no such scenario file or id; known: {known or '(none)'}")
