"""Scoring a drill: alerts matched to ground truth, neutralizations, physical impact, one number.

The rules are documented in ``docs/scoring.md`` (with a worked example); in short:

- an inject is **detected** when an alert carries one of its expected ATT&CK ids (or an id of
  the technique that ran) between the inject's start and ``window_s`` after its end;
  ``time_to_detect_s`` is the first such alert's time minus the start;
- it is **neutralized** when the runner recorded a neutralization for it (firewall block,
  playbook), or an unattributed block, safe state or SIS trip fell in the same window;
- an alert is a **false alarm** when it falls in no inject's window at all;
- **physical impact** comes from the true process trends against the plant's ``SAFETY_LIMITS``,
  ``ENVELOPE`` and SIS trips, and product lost against the warmup's mean flow;
- the **score** (0-100) is 40 detection + 20 speed + 20 neutralization + 20 impact, minus a
  false-alarm penalty of at most 15.

Alerts come from Interlock's JSON lines, Suricata's eve.json or a generic JSON-lines format
(``load_alerts``); all three are described in ``docs/drill.md``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from interlock.drill.model import AlertSeen, DrillRecord, HazardEvent, Inject, Neutralization, Scenario

WINDOW_S = 300.0  # how long after an inject's end an alert still counts for it
SLACK_S = 2.0  # clock skew tolerated before an inject's start (sensor vs runner timestamps)
FULL_SPEED_S = 30.0  # a detection this fast earns the full speed credit

# Weights of the overall score (sum 100) and the cap of the false-alarm penalty.
W_DETECT, W_SPEED, W_NEUTRALIZE, W_IMPACT = 40.0, 20.0, 20.0, 20.0
FALSE_ALARM_PER_HOUR_PENALTY = 1.5
FALSE_ALARM_MAX_PENALTY = 15.0

# The flow that is the plant's product, its unit, and seconds per unit of its time base:
# gas delivered at the city gate, distillate to the tank farm, reactor throughput.
PRODUCT: Mapping[str, tuple[str, str, float]] = {
    "gas-pipeline": ("delivery_kg_s", "kg", 1.0),
    "refinery": ("distillate_flow", "kg", 1.0),
    "reactor": ("feed_flow_lpm", "L", 60.0),
}

_TECHNIQUE_ID = re.compile(r"\bT0\d{3}\b", re.IGNORECASE)


class AlertFormatError(ValueError):
    """An alert file that cannot be read; ``str()`` is ``FILE:LINE: reason``."""


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InjectScore:
    """How the defenders did on one inject."""

    inject_id: str
    phase: str
    technique: str
    target: str
    expect: tuple[str, ...]
    attack_ids: tuple[str, ...]  # every id that counts: expected plus the technique's own
    start_s: float
    end_s: float
    outcome: str  # what the technique got back ("ok", "no response", ...); "" if no truth
    detected: bool
    detected_any: bool  # some alert (any technique) fell in the window
    time_to_detect_s: float | None
    first_alert: str  # technique and rule of the first matching alert
    alerts: int  # matching alerts
    neutralized: bool
    neutralized_by: str | None  # kind of the first neutralization
    time_to_neutralize_s: float | None


@dataclass(frozen=True, slots=True)
class LimitPeak:
    """The worst value a limited tag reached against its safety limit."""

    hazard: str
    tag: str
    unit: str
    side: str  # "high" or "low"
    limit: float
    peak: float
    exceeded: bool
    margin_pct: float  # distance left to the limit, % of the limit (negative once beyond)


@dataclass(frozen=True, slots=True)
class Impact:
    """Physical consequences, from the true process (not what the HMI showed)."""

    limits: tuple[LimitPeak, ...] = ()
    minutes_outside_envelope: float = 0.0
    envelope_minutes: Mapping[str, float] = field(default_factory=dict)  # per tag
    sis_trips: tuple[str, ...] = ()
    hazards: tuple[str, ...] = ()
    product_tag: str = ""
    product_unit: str = ""
    product_lost: float = 0.0
    product_lost_pct: float = 0.0  # of what the warmup rate would have made after the warmup
    has_trends: bool = False

    @property
    def credit(self) -> float:
        """0..1: 1 is no impact. A hazard costs half, an SIS trip a quarter (the last layer had to
        act), time outside the envelope up to a quarter (full at 10 minutes), product loss up
        to a quarter (full at 50 %)."""
        credit = 1.0
        if self.hazards:
            credit -= 0.5
        if self.sis_trips:
            credit -= 0.25
        credit -= 0.25 * min(1.0, self.minutes_outside_envelope / 10.0)
        credit -= 0.25 * min(1.0, self.product_lost_pct / 50.0)
        return max(0.0, credit)


@dataclass(frozen=True, slots=True)
class Score:
    """The score of one drill; ``to_json()`` is what ``score.json`` holds."""

    scenario: str
    title: str
    plant: str
    seed: int
    score: float
    components: Mapping[str, float]
    injects: tuple[InjectScore, ...]
    false_alarms: int
    false_alarms_per_hour: float
    alerts_total: int
    alerts_matched: int
    detection_rate: float
    detection_rate_any: float
    mean_time_to_detect_s: float | None
    neutralization_rate: float
    mean_time_to_neutralize_s: float | None
    impact: Impact
    window_s: float
    duration_s: float
    false_alarm_samples: tuple[AlertSeen, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``score.json`` document: the contract keys plus the details."""
        injects = []
        for i in self.injects:
            injects.append({
                "id": i.inject_id, "phase": i.phase, "technique": i.technique, "target": i.target,
                "expect": list(i.expect), "attack_ids": list(i.attack_ids),
                "start": _r(i.start_s), "end": _r(i.end_s), "outcome": i.outcome,
                "detected": i.detected, "detected_any": i.detected_any,
                "time_to_detect_s": _r(i.time_to_detect_s), "first_alert": i.first_alert,
                "alerts": i.alerts, "neutralized": i.neutralized, "neutralized_by": i.neutralized_by,
                "time_to_neutralize_s": _r(i.time_to_neutralize_s),
            })
        impact = asdict(self.impact)
        impact["limits"] = [asdict(lp) for lp in self.impact.limits]
        impact["envelope_minutes"] = dict(self.impact.envelope_minutes)
        impact["sis_trips"] = list(self.impact.sis_trips)
        impact["hazards"] = list(self.impact.hazards)
        impact["credit"] = round(self.impact.credit, 4)
        return {
            "scenario": self.scenario,
            "title": self.title,
            "plant": self.plant,
            "seed": self.seed,
            "score": self.score,
            "components": {k: round(v, 3) for k, v in self.components.items()},
            "false_alarms": self.false_alarms,
            "false_alarms_per_hour": round(self.false_alarms_per_hour, 3),
            "alerts_total": self.alerts_total,
            "alerts_matched": self.alerts_matched,
            "detection_rate": round(self.detection_rate, 4),
            "detection_rate_any": round(self.detection_rate_any, 4),
            "mean_time_to_detect_s": _r(self.mean_time_to_detect_s),
            "neutralization_rate": round(self.neutralization_rate, 4),
            "mean_time_to_neutralize_s": _r(self.mean_time_to_neutralize_s),
            "window_s": self.window_s,
            "duration_s": self.duration_s,
            "impact": impact,
            "injects": injects,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- matching -------------------------------------------------------------------------------


def technique_attack_ids(technique: str) -> tuple[str, ...]:
    """ATT&CK ids the technique library gives a technique id; () if it is not registered."""
    try:
        from interlock.drill.techniques import TECHNIQUES
    except ImportError:
        return ()
    tech = TECHNIQUES.get(technique)
    return tuple(tech.attack_ids) if tech is not None else ()


# Technique verbs that only read or discover: they change nothing a safe state could undo.
PASSIVE_VERBS = ("read", "szl_read", "integrity_poll", "interrogation", "function_scan", "address_scan")


def changes_process(technique: str) -> bool:
    """True for techniques that command, write, restart or flood (not reads, scans or a replay)."""
    family, _, verb = technique.partition(".")
    return family != "mitm" and not verb.startswith(PASSIVE_VERBS)


def _inject_span(inj: Inject, record: DrillRecord) -> tuple[float, float, tuple[str, ...], str]:
    """Start, end, ATT&CK ids and outcome of an inject from the truth (the plan if none)."""
    actions = [a for a in record.truth if a.inject_id == inj.id]
    ids: list[str] = list(inj.expect)
    for a in actions:
        ids += [x for x in a.attack_ids if x not in ids]
    ids += [x for x in technique_attack_ids(inj.technique) if x not in ids]
    if not actions:
        return inj.at_s, inj.end_s, tuple(ids), ""
    start = min(a.start_s for a in actions)
    end = max([a.end_s for a in actions] + [inj.until_s or 0.0])
    outcomes = sorted({a.outcome for a in actions})
    return start, max(start, end), tuple(ids), ", ".join(outcomes)


def _neutralizations(record: DrillRecord) -> list[Neutralization]:
    """Recorded neutralizations plus SIS trips from the hazard log (unattributed safe states)."""
    found = list(record.neutralizations)
    have = {(round(n.time_s, 3), n.kind) for n in found}
    for h in record.hazards:
        if h.kind == "sis_trip" and (round(h.time_s, 3), "sis_trip") not in have:
            found.append(Neutralization(h.time_s, "sis_trip", None, h.name))
    return sorted(found, key=lambda n: n.time_s)


def score_drill(
    record: DrillRecord,
    scenario: Scenario,
    *,
    window_s: float = WINDOW_S,
    slack_s: float = SLACK_S,
) -> Score:
    """Score ``record`` (a run of ``scenario``); see the module docstring and docs/scoring.md."""
    alerts = sorted(record.alerts, key=lambda a: a.time_s)
    neutralizations = _neutralizations(record)
    matched_any: set[int] = set()  # alert indexes inside some inject window
    matched_tech: set[int] = set()
    results: list[InjectScore] = []
    for inj in scenario.injects:
        start, end, ids, outcome = _inject_span(inj, record)
        lo, hi = start - slack_s, end + window_s
        idset = set(ids)
        in_window = [k for k, a in enumerate(alerts) if lo <= a.time_s <= hi]
        matching = [k for k in in_window if idset & set(alerts[k].attack_ids)]
        matched_any.update(in_window)
        matched_tech.update(matching)
        ttd = None
        first = ""
        if matching:
            a = alerts[matching[0]]
            ttd = max(0.0, a.time_s - start)
            first = "/".join(a.attack_ids) + (f" {a.rule}" if a.rule else "")
        neut = None
        for nz in neutralizations:
            if nz.inject_id == inj.id and nz.time_s >= lo:
                neut = nz
                break
            # An unattributed block counts for any inject in its window; a safe state or SIS trip
            # only for injects that change the process (a trip does not undo a scan or a replay).
            if nz.inject_id is None and lo <= nz.time_s <= hi and (
                nz.kind in ("blocked", "playbook") or changes_process(inj.technique)
            ):
                neut = nz
                break
        results.append(InjectScore(
            inj.id, inj.phase, inj.technique, inj.target, inj.expect, ids, start, end, outcome,
            detected=bool(matching), detected_any=bool(in_window), time_to_detect_s=ttd,
            first_alert=first, alerts=len(matching), neutralized=neut is not None,
            neutralized_by=neut.kind if neut else None,
            time_to_neutralize_s=max(0.0, neut.time_s - start) if neut else None,
        ))

    duration = record.duration_s or scenario.duration_s
    false_idx = [k for k in range(len(alerts)) if k not in matched_any]
    hours = max(duration, 1.0) / 3600.0
    fa_per_hour = len(false_idx) / hours
    n = len(results) or 1
    detection = sum(r.detected for r in results) / n
    detection_any = sum(r.detected_any for r in results) / n
    neutral = sum(r.neutralized for r in results) / n
    ttds = [r.time_to_detect_s for r in results if r.time_to_detect_s is not None]
    ttns = [r.time_to_neutralize_s for r in results if r.time_to_neutralize_s is not None]
    speed = sum(_speed_credit(r.time_to_detect_s, window_s) for r in results) / n
    impact = physical_impact(record, scenario)
    penalty = min(FALSE_ALARM_MAX_PENALTY, FALSE_ALARM_PER_HOUR_PENALTY * fa_per_hour)
    components = {
        "detection": W_DETECT * detection,
        "speed": W_SPEED * speed,
        "neutralization": W_NEUTRALIZE * neutral,
        "impact": W_IMPACT * impact.credit,
        "false_alarm_penalty": -penalty,
    }
    total = max(0.0, min(100.0, sum(components.values())))
    return Score(
        scenario=scenario.id, title=scenario.title, plant=scenario.plant, seed=record.seed,
        score=round(total, 1), components=components, injects=tuple(results),
        false_alarms=len(false_idx), false_alarms_per_hour=fa_per_hour, alerts_total=len(alerts),
        alerts_matched=len(matched_tech), detection_rate=detection, detection_rate_any=detection_any,
        mean_time_to_detect_s=sum(ttds) / len(ttds) if ttds else None,
        neutralization_rate=neutral,
        mean_time_to_neutralize_s=sum(ttns) / len(ttns) if ttns else None,
        impact=impact, window_s=window_s, duration_s=duration,
        false_alarm_samples=tuple(alerts[k] for k in false_idx[:50]),
    )


def _speed_credit(ttd: float | None, window_s: float) -> float:
    """1 up to FULL_SPEED_S, then falling linearly to 0 at the end of the window; 0 if missed."""
    if ttd is None:
        return 0.0
    if ttd <= FULL_SPEED_S:
        return 1.0
    span = max(window_s - FULL_SPEED_S, 1.0)
    return max(0.0, 1.0 - (ttd - FULL_SPEED_S) / span)


# --- physical impact ------------------------------------------------------------------------


def plant_safety(plant: str) -> tuple[tuple[Any, ...], Mapping[str, tuple[float, float]], tuple[Any, ...]]:
    """The plant class's SAFETY_LIMITS, ENVELOPE and SIS_TRIPS; empty if the range lacks it."""
    try:
        from interlock.range.plants import PLANTS
    except ImportError:
        return (), {}, ()
    cls = PLANTS.get(plant)
    if cls is None:
        return (), {}, ()
    return (tuple(getattr(cls, "SAFETY_LIMITS", ())), dict(getattr(cls, "ENVELOPE", {})),
            tuple(getattr(cls, "SIS_TRIPS", ())))


def truth_series(trends: Any, source: str = "truth",
                 prefer: Sequence[str] = ("plant", "plc-1")) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """tag -> (plant times, values) of one source of the trends table, sorted by time.

    A tag several devices report (the HMI reads ``reactor_temp_k`` from the PLC and from the
    RTU) is taken from the first device of ``prefer`` that has it, else the first seen, so two
    views of one tag never interleave (under a replay they differ).
    """
    if trends is None or trends.num_rows == 0:
        return {}
    cols = trends.to_pydict()
    by_key: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for t, dev, tag, value, src in zip(cols["plant_time_s"], cols["device"], cols["tag"], cols["value"],
                                       cols["source"], strict=True):
        if src != source or value is None or t is None:
            continue
        ts, vs = by_key.setdefault((str(dev), str(tag)), ([], []))
        ts.append(float(t))
        vs.append(float(value))
    rank = {d: k for k, d in enumerate(prefer)}
    chosen: dict[str, tuple[str, str]] = {}
    for dev, tag in by_key:
        best = chosen.get(tag)
        if best is None or rank.get(dev, len(rank)) < rank.get(best[0], len(rank)):
            chosen[tag] = (dev, tag)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for tag, key in chosen.items():
        ts, vs = by_key[key]
        order = np.argsort(np.asarray(ts), kind="stable")
        out[tag] = (np.asarray(ts)[order], np.asarray(vs)[order])
    return out


def _hold_durations(times: np.ndarray, end: float) -> np.ndarray:
    """Seconds each sample stands for (zero-order hold up to the next sample, the last to end)."""
    if times.size == 0:
        return times
    nxt = np.append(times[1:], max(end, float(times[-1])))
    held: np.ndarray = np.clip(nxt - times, 0.0, None)
    return held


def physical_impact(record: DrillRecord, scenario: Scenario) -> Impact:
    """Impact from the true trends against the plant's limits, envelope, SIS and product."""
    limits, envelope, _trips = plant_safety(scenario.plant)
    series = truth_series(record.trends)
    end = record.duration_s or scenario.duration_s
    peaks: list[LimitPeak] = []
    for lim in limits:
        if lim.tag not in series:
            continue
        values = series[lim.tag][1]
        for side, limit in (("high", lim.high), ("low", lim.low)):
            if limit is None:
                continue
            peak = float(values.max() if side == "high" else values.min())
            exceeded = peak > limit if side == "high" else peak < limit
            gap = (limit - peak) if side == "high" else (peak - limit)
            margin = 100.0 * gap / abs(limit) if limit else gap
            peaks.append(LimitPeak(lim.hazard, lim.tag, lim.unit, side, float(limit), peak, exceeded, margin))

    # Minutes outside the envelope: on the union of sample times, outside if any tag is outside
    # (each tag holding its last value), so two tags out at once count once.
    env_minutes: dict[str, float] = {}
    grid_parts = [series[t][0] for t in envelope if t in series]
    minutes_out = 0.0
    if grid_parts:
        grid = np.unique(np.concatenate(grid_parts))
        hold = _hold_durations(grid, end)
        outside_any = np.zeros(grid.size, dtype=bool)
        for tag, (lo, hi) in envelope.items():
            if tag not in series:
                continue
            ts, vs = series[tag]
            idx = np.clip(np.searchsorted(ts, grid, side="right") - 1, 0, ts.size - 1)
            v = vs[idx]
            out = ((v < lo) | (v > hi)) & (grid >= ts[0])
            env_minutes[tag] = float(hold[out].sum() / 60.0)
            outside_any |= out
        minutes_out = float(hold[outside_any].sum() / 60.0)

    product_tag, product_unit, per = PRODUCT.get(scenario.plant, ("", "", 1.0))
    lost = lost_pct = 0.0
    if product_tag in series:
        ts, vs = series[product_tag]
        hold = _hold_durations(ts, end)
        base_mask = ts < scenario.warmup_s
        if base_mask.any():
            # Counterfactual: without the attack the plant would have kept its warmup mean rate.
            baseline = float(np.average(vs[base_mask], weights=np.maximum(hold[base_mask], 1e-9)))
            after = ts >= scenario.warmup_s
            shortfall = np.clip(baseline - vs[after], 0.0, None)
            lost = float((shortfall * hold[after]).sum() / per)
            expected = baseline * float(hold[after].sum()) / per
            lost_pct = 100.0 * lost / expected if expected > 0 else 0.0

    sis = tuple(dict.fromkeys(h.name for h in record.hazards if h.kind == "sis_trip"))
    hazards = {h.name for h in record.hazards if h.kind == "hazard"}
    hazards |= {p.hazard for p in peaks if p.exceeded}
    return Impact(
        limits=tuple(peaks), minutes_outside_envelope=minutes_out, envelope_minutes=env_minutes,
        sis_trips=sis, hazards=tuple(sorted(hazards)),
        product_tag=product_tag if product_tag in series else "",
        product_unit=product_unit, product_lost=lost, product_lost_pct=lost_pct, has_trends=bool(series),
    )


# --- alert streams --------------------------------------------------------------------------


def parse_time(value: object) -> float | None:
    """Epoch seconds of an ISO-8601 text (``Z``, ``+0000`` or an offset; naive is UTC) or a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        v = float(value)
        return v / 1000.0 if v > 1e11 else v  # epoch milliseconds, as many SIEMs write
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_time(float(text))
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return None


def _ids(value: object) -> tuple[str, ...]:
    """ATT&CK ids in a text, or a list of texts, upper-cased, first seen first."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    found: list[str] = []
    for item in items:
        for m in _TECHNIQUE_ID.findall(str(item)):
            if m.upper() not in found:
                found.append(m.upper())
    return tuple(found)


def _first(value: object) -> str:
    if isinstance(value, list | tuple):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def alert_from_json(
    obj: Mapping[str, Any], to_plant_time: Callable[[float], float]
) -> AlertSeen | None:
    """One alert from an Interlock, eve.json or generic JSON object; None for a non-alert event.

    ``ValueError`` (with the reason) if it is an alert without a usable time or technique.
    """
    if "event_type" in obj:  # Suricata eve.json: only alert events count
        if obj.get("event_type") != "alert":
            return None
        alert = obj.get("alert") or {}
        meta = alert.get("metadata") or {}
        ids = _ids(meta.get("mitre_technique_id")) or _ids(alert.get("signature")) or _ids(
            alert.get("category"))
        time_s = _plant_time(obj, ("timestamp",), to_plant_time)
        sev = alert.get("severity")
        return AlertSeen(time_s, ids, str(obj.get("src_ip", "")), str(obj.get("dest_ip", "")),
                         str(alert.get("signature_id", "")), "" if sev is None else str(sev),
                         str(alert.get("signature", "")))
    # Interlock's JSON lines (ts, technique, src, dst, rule, title) or the generic format
    # (time, technique, source, destination, message); both may carry plant_time_s.
    ids = _ids(obj.get("technique")) or _ids(obj.get("techniques")) or _ids(obj.get("attack_ids"))
    if not ids:
        raise ValueError("no ATT&CK technique id (T0xxx) in 'technique'")
    time_s = _plant_time(obj, ("ts", "time", "timestamp"), to_plant_time)
    message = obj.get("message") or obj.get("title") or obj.get("explanation") or ""
    return AlertSeen(time_s, ids, _first(obj.get("src", obj.get("source"))),
                     _first(obj.get("dst", obj.get("destination"))), str(obj.get("rule", "")),
                     str(obj.get("severity", "")), str(message))


def _plant_time(obj: Mapping[str, Any], keys: Sequence[str],
                to_plant_time: Callable[[float], float]) -> float:
    if "plant_time_s" in obj:
        direct = obj["plant_time_s"]
        if isinstance(direct, int | float) and not isinstance(direct, bool) and math.isfinite(direct):
            return float(direct)
        raise ValueError(f"'plant_time_s' {direct!r} is not a number of seconds")
    for key in keys:
        if key in obj:
            epoch = parse_time(obj[key])
            if epoch is None:
                raise ValueError(f"'{key}' {obj[key]!r} is not an ISO-8601 time or epoch seconds")
            return float(to_plant_time(epoch))
    raise ValueError(f"no time: give one of {', '.join(keys)} or plant_time_s")


def load_alerts(path: Path | str, to_plant_time: Callable[[float], float]) -> list[AlertSeen]:
    """Alerts of a JSON-lines file (Interlock, eve.json or generic; a JSON array also works).

    ``to_plant_time`` maps wall epoch seconds to plant seconds (the runner's clock); non-alert
    eve events are skipped. ``AlertFormatError`` names the file and line of a bad record.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertFormatError(f"{path}:0: cannot read the alert file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AlertFormatError(f"{path}:0: not UTF-8 text; give JSON lines") from None
    records: Iterable[tuple[int, str]]
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AlertFormatError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
        records = ((1, json.dumps(item)) for item in items)
    else:
        records = enumerate(text.splitlines(), 1)
    out: list[AlertSeen] = []
    for lineno, line in records:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AlertFormatError(
                f"{path}:{lineno}: not JSON ({exc.msg}); one JSON object per line") from None
        if not isinstance(obj, dict):
            raise AlertFormatError(f"{path}:{lineno}: expected a JSON object per line")
        try:
            alert = alert_from_json(obj, to_plant_time)
        except ValueError as exc:
            raise AlertFormatError(f"{path}:{lineno}: {exc}; see docs/drill.md for the formats") from None
        if alert is not None:
            out.append(alert)
    return sorted(out, key=lambda a: a.time_s)


def alert_seen(alert: Any, to_plant_time: Callable[[float], float]) -> AlertSeen:
    """An :class:`AlertSeen` from an Interlock ``detect.alerts.Alert`` (for the runner)."""
    return AlertSeen(float(to_plant_time(alert.ts)), (str(alert.technique).upper(),), alert.src,
                     alert.dst, alert.rule, alert.severity, alert.title)


def hazard_events(hazards: Iterable[Any], trips: Iterable[Any]) -> tuple[HazardEvent, ...]:
    """HazardEvents from the range's ``Hazard`` (with a ``time_s`` given as ``(t, hazard)``) and
    ``TripEvent`` records; a helper for the runner."""
    out = [HazardEvent(float(t), "hazard", h.hazard, h.tag, float(h.value), float(h.limit))
           for t, h in hazards]
    # A TripEvent carries the reading the SIS acted on, not its setpoint: it stands as the limit.
    out += [HazardEvent(float(e.time_s), "sis_trip", e.trip, e.tag, float(e.value), float(e.value))
            for e in trips]
    return tuple(sorted(out, key=lambda e: e.time_s))
