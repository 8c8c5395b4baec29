"""The after-action report of a drill: one self-contained HTML file and ``score.json``.

The HTML follows the HSEEP After-Action Report structure (Exercise Overview; Analysis of Core
Capabilities against the objectives; Strengths; Areas for Improvement with recommendations;
Improvement Plan) and carries its evidence inline: CSS in a ``<style>`` block and the figures as
base64 PNG ``data:`` URIs, so it opens from an e-mail attachment or an air-gapped share with no
network access (no CDN, no script).

Figures: (a) the timeline of injects (bars) against alerts (markers, coloured by ATT&CK id);
(b) the plant's key process trends, truth beside what the HMI showed, attack windows shaded
(the Stuxnet case reads at a glance: a flat HMI line while the truth runs away); the score
table is HTML.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from interlock.drill.model import DrillRecord, Scenario
from interlock.drill.score import Score, changes_process, plant_safety, truth_series

# Tags worth a trend panel per plant, most telling first (others are skipped).
KEY_TAGS: dict[str, tuple[str, ...]] = {
    "reactor": ("reactor_temp_k", "coolant_temp_k", "feed_flow_lpm", "conc_a_mol_l"),
    "gas-pipeline": ("discharge_bar", "suction_bar", "delivery_kg_s", "surge_margin_kg_s"),
    "refinery": ("tube_skin_c", "heater_outlet_c", "distillate_flow", "reflux_drum_level_pct"),
}
MAX_PANELS = 4
FAST_S = 60.0  # a detection this fast is a strength
SLOW_S = 120.0  # slower than this is an area for improvement

# HSEEP's four performance ratings of a capability or objective.
RATINGS = {
    "P": "Performed without Challenges",
    "S": "Performed with Some Challenges",
    "M": "Performed with Major Challenges",
    "U": "Unable to be Performed",
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#1d2327;line-height:1.45;padding:0 1em}
h1{border-bottom:3px solid #0b4f6c;padding-bottom:.3em}h2{color:#0b4f6c;margin-top:1.8em}
table{border-collapse:collapse;width:100%;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #c9d1d9;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#eef3f6}tr:nth-child(even) td{background:#fafbfc}
.ok{color:#116329;font-weight:600}.bad{color:#a40e26;font-weight:600}.warn{color:#9a6700;font-weight:600}
.score{font-size:2.6em;font-weight:700;color:#0b4f6c}.muted{color:#57606a}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.9em}.kv td:first-child{width:28%;font-weight:600}
.rating-P{background:#dafbe1}.rating-S{background:#fff8c5}.rating-M{background:#ffebe9}
.rating-U{background:#ffcecb}
"""


@dataclass(frozen=True, slots=True)
class Finding:
    """A strength or an area for improvement, with its recommendation (HSEEP)."""

    title: str
    detail: str
    capability: str
    recommendation: str = ""


# --- findings -------------------------------------------------------------------------------


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _fmt_t(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m:d}:{s:02d}"


def findings(score: Score) -> tuple[list[Finding], list[Finding]]:
    """Strengths and areas for improvement derived from the score (misses, speed, noise, impact)."""
    strengths: list[Finding] = []
    improve: list[Finding] = []
    fast = [i for i in score.injects if i.detected and (i.time_to_detect_s or 0.0) <= FAST_S]
    if fast:
        strengths.append(Finding(
            "Fast detection",
            f"{len(fast)} of {len(score.injects)} injects detected within {FAST_S:.0f} s: "
            + ", ".join(f"{i.inject_id} ({i.technique}, {_fmt_s(i.time_to_detect_s)})" for i in fast),
            "Cybersecurity: detection"))
    neut = [i for i in score.injects if i.neutralized and i.neutralized_by in ("blocked", "playbook")]
    if neut:
        strengths.append(Finding(
            "Attacks blocked",
            ", ".join(f"{i.inject_id} {i.neutralized_by} after {_fmt_s(i.time_to_neutralize_s)}"
                      for i in neut),
            "Cybersecurity: response"))
    if score.alerts_total and score.false_alarms == 0:
        strengths.append(Finding("No false alarms",
                                 f"all {score.alerts_total} alerts fell in attack windows",
                                 "Cybersecurity: detection"))
    imp = score.impact
    if imp.has_trends and not imp.hazards and not imp.sis_trips and imp.minutes_outside_envelope == 0:
        strengths.append(Finding("Process held", "the plant stayed inside its operating envelope, "
                                 "no safety limit was reached and the SIS did not have to act",
                                 "Operational coordination"))

    for i in score.injects:
        if not i.detected:
            ids = ", ".join(i.expect)
            seen = " (an alert of another technique fell in its window)" if i.detected_any else ""
            improve.append(Finding(
                f"Missed: {i.inject_id}",
                f"{i.technique} against {i.target} at {_fmt_t(i.start_s)} raised no alert with "
                f"{ids}{seen}",
                "Cybersecurity: detection",
                f"Add or enable a detection for {ids} on {i.technique.split('.')[0]} traffic to "
                f"{i.target}; replay this drill's capture to confirm it fires"))
        elif (i.time_to_detect_s or 0.0) > SLOW_S:
            improve.append(Finding(
                f"Slow detection: {i.inject_id}",
                f"{i.technique} detected after {_fmt_s(i.time_to_detect_s)}",
                "Cybersecurity: detection",
                "Lower the aggregation window or threshold of the rule that fired "
                f"({i.first_alert or 'first alert'}) so it alerts on the first operations"))
    writes = [i for i in score.injects if not i.neutralized and changes_process(i.technique)]
    if writes:
        improve.append(Finding(
            "Commands not blocked",
            "unauthorized commands reached the devices: " + ", ".join(f"{i.inject_id} ({i.technique})"
                                                                       for i in writes),
            "Cybersecurity: response",
            "Enforce the firewall's allow-list of writers and function codes for these devices "
            "(interlock firewall), so only the HMI/engineering hosts may write"))
    if score.false_alarms:
        improve.append(Finding(
            "False alarms",
            f"{score.false_alarms} alerts outside any attack window "
            f"({score.false_alarms_per_hour:.1f} per hour)",
            "Cybersecurity: detection",
            "Tune the noisiest rules or lengthen the baseline (warmup) the detectors learn on; "
            "each false alarm costs analyst time"))
    if imp.hazards:
        improve.append(Finding(
            "Safety limit reached",
            "the true process reached: " + ", ".join(imp.hazards)
            + "; " + "; ".join(f"{p.tag} peak {p.peak:.2f} {p.unit} vs limit {p.limit:g}"
                               for p in imp.limits if p.exceeded),
            "Physical protection",
            "Detect and block setpoint and mode writes earlier; review SIS setpoints and bypass "
            "protection (a tampered SIS must not be the only barrier)"))
    if imp.sis_trips:
        improve.append(Finding(
            "SIS had to act",
            "the safety instrumented system tripped: " + ", ".join(imp.sis_trips),
            "Physical protection",
            "Neutralize the manipulation before the process reaches the trip point; "
            "the SIS is the last layer, not the response"))
    if imp.minutes_outside_envelope > 0:
        improve.append(Finding(
            "Process outside its envelope",
            f"{imp.minutes_outside_envelope:.1f} minutes outside the normal operating envelope",
            "Operational coordination",
            "Cross-check HMI values against independent measurements (SIS transmitters, RTU) "
            "so replayed values (T0856) are caught"))
    if imp.product_lost > 0:
        improve.append(Finding(
            "Product lost",
            f"{imp.product_lost:,.0f} {imp.product_unit} of {imp.product_tag} "
            f"({imp.product_lost_pct:.1f} % of normal)",
            "Operational coordination",
            "Rehearse the recovery procedure to restore throughput faster after a safe state"))
    return strengths, improve


def objective_ratings(scenario: Scenario, score: Score) -> list[tuple[str, str, str]]:
    """(objective, rating letter, why) per objective; the injects an objective names by ATT&CK id
    (or all when it names none) decide its rating."""
    import re

    out: list[tuple[str, str, str]] = []
    for obj in scenario.objectives or ("Detect and neutralize every inject",):
        ids = set(re.findall(r"T0\d{3}", obj.upper()))
        related = [i for i in score.injects if ids & set(i.expect)] if ids else list(score.injects)
        if not related:
            related = list(score.injects)
        det = [i for i in related if i.detected]
        slow = [i for i in det if (i.time_to_detect_s or 0.0) > SLOW_S]
        if "SIS" in obj.upper() or "SAFE" in obj.upper() or "BELOW" in obj.upper():
            imp = score.impact
            if imp.hazards:
                out.append((obj, "U", "safety limit reached: " + ", ".join(imp.hazards)))
            elif imp.sis_trips:
                out.append((obj, "S", "the SIS tripped (safe state reached by the last layer)"))
            else:
                out.append((obj, "P", "no safety limit reached, no SIS trip"))
            continue
        if not det:
            rating = "U"
        elif len(det) < len(related):
            rating = "M"
        elif slow:
            rating = "S"
        else:
            rating = "P"
        why = f"{len(det)}/{len(related)} detected"
        if slow:
            why += f", {len(slow)} slower than {SLOW_S:.0f} s"
        out.append((obj, rating, why))
    return out


# --- figures --------------------------------------------------------------------------------


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f")


def timeline_figure(record: DrillRecord, scenario: Scenario, score: Score) -> str:
    """Injects as bars (one row each) against alerts as markers coloured by ATT&CK id."""
    rows = list(score.injects)
    height = 1.2 + 0.45 * (len(rows) + 1)
    fig = Figure(figsize=(10, height))
    ax = fig.add_subplot()
    ax.axvspan(0, scenario.warmup_s / 60, color="#eeeeee", label="warmup")
    for y, inj in enumerate(rows):
        width = max((inj.end_s - inj.start_s) / 60, 0.15)
        ax.barh(y, width, left=inj.start_s / 60, height=0.5,
                color="#2ca02c" if inj.detected else "#d62728", alpha=0.75)
        ax.barh(y, score.window_s / 60, left=inj.end_s / 60, height=0.5, color="#999999", alpha=0.15)
        if inj.time_to_neutralize_s is not None:
            ax.plot((inj.start_s + inj.time_to_neutralize_s) / 60, y, marker="X", color="black", ms=9)
    ids = sorted({i for a in record.alerts for i in a.attack_ids})
    color = {tid: _COLORS[k % len(_COLORS)] for k, tid in enumerate(ids)}
    spans = [(i.start_s - 2.0, i.end_s + score.window_s, set(i.attack_ids)) for i in rows]
    other_row = len(rows)
    # One scatter per ATT&CK id (a flood can raise thousands of alerts: one call each is slow).
    points: dict[str, tuple[list[float], list[int]]] = {}
    for a in record.alerts:
        y = other_row
        for k, (lo, hi, want) in enumerate(spans):
            if lo <= a.time_s <= hi and want & set(a.attack_ids):
                y = k
                break
        tid = a.attack_ids[0] if a.attack_ids else "?"
        xs, ys = points.setdefault(tid, ([], []))
        xs.append(a.time_s / 60)
        ys.append(y)
    for tid, (xs, ys) in sorted(points.items()):
        ax.plot(xs, ys, marker="o", ls="", ms=6, color=color.get(tid, "black"), alpha=0.8, label=tid)
    plotted = set(points)
    ax.set_yticks(range(len(rows) + 1),
                  [f"{i.inject_id}\n{i.technique}" for i in rows] + ["other alerts"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, scenario.duration_s / 60)
    ax.set_xlabel("plant time (min)")
    ax.set_title("Injects (green: detected, red: missed; grey: scoring window) and alerts")
    ax.grid(axis="x", alpha=0.3)
    if plotted:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="alerts", frameon=False)
    return _png(fig)


def trends_figure(record: DrillRecord, scenario: Scenario, score: Score) -> str | None:
    """Key process tags, truth (solid) beside the HMI (dashed), attack windows shaded."""
    truth = truth_series(record.trends, "truth")
    hmi = truth_series(record.trends, "hmi")
    if not truth:
        return None
    tags = [t for t in KEY_TAGS.get(scenario.plant, ()) if t in truth]
    tags += [t for t in sorted(truth) if t not in tags and t in hmi]
    tags = tags[:MAX_PANELS] or sorted(truth)[:MAX_PANELS]
    limits, envelope, trips = plant_safety(scenario.plant)
    fig = Figure(figsize=(10, 2.3 * len(tags) + 0.6))
    axes = fig.subplots(len(tags), 1, sharex=True, squeeze=False)[:, 0]
    for ax, tag in zip(axes, tags, strict=True):
        for inj in score.injects:
            ax.axvspan(inj.start_s / 60, max(inj.end_s, inj.start_s + 6) / 60, color="#d62728", alpha=0.12)
        ts, vs = truth[tag]
        ax.plot(ts / 60, vs, color="#1f77b4", lw=1.4, label="truth")
        if tag in hmi:
            hts, hvs = hmi[tag]
            ax.plot(hts / 60, hvs, color="#ff7f0e", lw=1.2, ls="--", label="HMI showed")
        if tag in envelope:
            lo, hi = envelope[tag]
            ax.axhspan(lo, hi, color="#2ca02c", alpha=0.06)
            ax.axhline(lo, color="#2ca02c", lw=0.7, ls=":")
            ax.axhline(hi, color="#2ca02c", lw=0.7, ls=":", label="envelope")
        for lim in limits:
            if lim.tag == tag:
                for value in (lim.high, lim.low):
                    if value is not None:
                        ax.axhline(value, color="#a40e26", lw=1.0, label=f"{lim.hazard} limit")
        for trip in trips:
            if trip.tag == tag:
                ax.axhline(trip.setpoint, color="#9467bd", lw=0.9, ls="-.", label=f"{trip.name} trip")
        ax.set_ylabel(tag, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    axes[-1].set_xlabel("plant time (min); shaded: attack windows")
    axes[0].set_title("Process trends: the truth beside what the HMI showed")
    return _png(fig)


# --- HTML -----------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, cls: str = "",
           raw_cols: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f"<td>{c if k in raw_cols else _e(c)}</td>" for k, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _yes(flag: bool) -> str:
    return '<span class="ok">yes</span>' if flag else '<span class="bad">no</span>'


def render_html(record: DrillRecord, scenario: Scenario, score: Score) -> str:
    """The after-action report as one HTML document (no external resources)."""
    strengths, improve = findings(score)
    ratings = objective_ratings(scenario, score)
    when = datetime.fromtimestamp(record.started_wall, UTC) if record.started_wall else None
    date = when.strftime("%Y-%m-%d %H:%M UTC") if when else "-"
    defender = str(record.meta.get("defender", "Interlock sensor, detectors and firewall"))
    parts: list[str] = []
    add = parts.append
    add("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>")
    add("<meta name='viewport' content='width=device-width, initial-scale=1'>")
    add(f"<title>After-Action Report: {_e(scenario.title)}</title><style>{CSS}</style></head><body>")
    add(f"<h1>After-Action Report: {_e(scenario.title)}</h1>")
    add(f"<p class='muted'>Interlock drill <code>{_e(scenario.id)}</code>, seed {score.seed}, {date}. "
        "Structured after the HSEEP After-Action Report.</p>")
    add(f"<p><span class='score' id='overall-score'>{score.score:.1f}</span> / 100 &nbsp; "
        f"detected {sum(i.detected for i in score.injects)}/{len(score.injects)}, "
        f"mean time to detect {_fmt_s(score.mean_time_to_detect_s)}, "
        f"false alarms {score.false_alarms}</p>")

    add("<h2 id='overview'>1. Exercise Overview</h2>")
    overview = [
        ("Exercise name", scenario.title),
        ("Exercise dates", date),
        ("Scope", f"{scenario.plant} plant of the Interlock range, {_fmt_t(scenario.duration_s)} (min:s) "
                  f"of plant time including a {_fmt_t(scenario.warmup_s)} warmup; speed {scenario.speed}"),
        ("Mission area", "Protection and Response (cyber attack on an industrial control system)"),
        ("Core capabilities", "Cybersecurity; Operational Coordination; Physical Protective Measures"),
        ("Threat / hazard", scenario.based_on),
        ("Scenario", scenario.description or "-"),
        ("Participants (defenders)", defender),
        ("Seed", str(score.seed)),
    ]
    add(_table(["Item", "Detail"], overview, cls="kv"))
    add("<h3>Objectives</h3><ol>" + "".join(f"<li>{_e(o)}</li>" for o in scenario.objectives) + "</ol>"
        if scenario.objectives else "")

    add("<h2 id='analysis'>2. Analysis of Core Capabilities</h2>")
    add(_table(["Objective", "Rating", "Basis"],
               [(o, f"<span class='rating-{r}'>{r}: {_e(RATINGS[r])}</span>", w) for o, r, w in ratings],
               raw_cols=(1,)))
    add("<h3>Score</h3>")
    score_rows = [(k.replace("_", " "), f"{v:+.1f}" if k == "false_alarm_penalty" else f"{v:.1f}")
                  for k, v in score.components.items()]
    score_rows.append(("overall (0-100)", f"{score.score:.1f}"))
    add(_table(["Component", "Points"], score_rows, cls="score-components"))
    add("<h3 id='score-table'>Injects</h3>")
    inj_rows = []
    for i in score.injects:
        inj_rows.append((
            _e(i.inject_id), _e(i.phase), f"<code>{_e(i.technique)}</code>", _e(i.target),
            _e(", ".join(i.expect)), _e(_fmt_t(i.start_s)), _e(i.outcome or "-"), _yes(i.detected),
            _e(_fmt_s(i.time_to_detect_s)), _yes(i.neutralized),
            _e(f"{_fmt_s(i.time_to_neutralize_s)}" + (f" ({i.neutralized_by})" if i.neutralized_by else "")),
        ))
    add(_table(["Inject", "Phase", "Technique", "Target", "Expected", "Start", "Outcome", "Detected",
                "Time to detect", "Neutralized", "Time to neutralize"], inj_rows, cls="score-table",
               raw_cols=range(11)))
    totals = [
        ("Detection rate (technique matched)", f"{100 * score.detection_rate:.0f} %"),
        ("Detection rate (any alert in window)", f"{100 * score.detection_rate_any:.0f} %"),
        ("Mean time to detect", _fmt_s(score.mean_time_to_detect_s)),
        ("Neutralization rate", f"{100 * score.neutralization_rate:.0f} %"),
        ("Mean time to neutralize", _fmt_s(score.mean_time_to_neutralize_s)),
        ("Alerts (matched / total)", f"{score.alerts_matched} / {score.alerts_total}"),
        ("False alarms", f"{score.false_alarms} ({score.false_alarms_per_hour:.1f} per hour)"),
        ("Matching window", f"{score.window_s:.0f} s after each inject's end"),
    ]
    add(_table(["Measure", "Value"], totals, cls="kv"))

    add("<h3>Physical impact</h3>")
    imp = score.impact
    if imp.has_trends:
        lim_rows = [(p.hazard, p.tag, f"{p.peak:.2f} {p.unit}", f"{p.side} {p.limit:g} {p.unit}",
                     f"{p.margin_pct:.1f} %", "EXCEEDED" if p.exceeded else "held") for p in imp.limits]
        if lim_rows:
            add(_table(["Hazard", "Tag", "Worst value", "Limit", "Margin left", "Result"], lim_rows))
        impact_rows = [
            ("Minutes outside the envelope", f"{imp.minutes_outside_envelope:.1f}"
             + (" (" + ", ".join(f"{t} {m:.1f}" for t, m in imp.envelope_minutes.items() if m) + ")"
                if any(imp.envelope_minutes.values()) else "")),
            ("SIS trips", ", ".join(imp.sis_trips) or "none"),
            ("Hazards reached", ", ".join(imp.hazards) or "none"),
        ]
        if imp.product_tag:
            impact_rows.append(("Product lost", f"{imp.product_lost:,.0f} {imp.product_unit} of "
                                f"{imp.product_tag} ({imp.product_lost_pct:.1f} %)"))
        add(_table(["Measure", "Value"], impact_rows, cls="kv"))
    else:
        add("<p class='muted'>No process trends were recorded for this run.</p>")

    add("<h3>Timeline</h3>")
    add(f"<figure><img id='timeline' alt='timeline of injects and alerts' "
        f"src='{timeline_figure(record, scenario, score)}'><figcaption>Injects against alerts; "
        "X marks a neutralization.</figcaption></figure>")
    trend = trends_figure(record, scenario, score)
    if trend:
        add("<h3>Process trends</h3>")
        add(f"<figure><img id='trends' alt='process trends, truth beside HMI' src='{trend}'>"
            "<figcaption>Solid: the true process; dashed: what the HMI showed. A flat HMI line over "
            "a moving truth is a replay (T0856).</figcaption></figure>")

    add("<h2 id='strengths'>3. Strengths</h2>")
    if strengths:
        add("<ul>" + "".join(f"<li><b>{_e(s.title)}</b> ({_e(s.capability)}): {_e(s.detail)}</li>"
                             for s in strengths) + "</ul>")
    else:
        add("<p>No strength stood out in this drill.</p>")
    add("<h2 id='improvements'>4. Areas for Improvement</h2>")
    if improve:
        add("<ol>" + "".join(
            f"<li><b>{_e(f.title)}</b> ({_e(f.capability)})<br>Observation: {_e(f.detail)}"
            f"<br>Recommendation: {_e(f.recommendation)}</li>" for f in improve) + "</ol>")
    else:
        add("<p>None: every inject was detected fast and neutralized, with no impact.</p>")

    add("<h2 id='improvement-plan'>Appendix A: Improvement Plan</h2>")
    plan = [(f.capability, f.title, f.recommendation, "Detection engineering" if "detection" in
             f.capability else "OT operations / security", "", "") for f in improve]
    add(_table(["Core capability", "Issue / area for improvement", "Corrective action",
                "Primary responsible organization", "Point of contact", "Completion date"],
               plan or [("-", "none", "-", "-", "", "")], cls="improvement-plan"))
    if score.false_alarm_samples:
        add("<h2>Appendix B: False alarms (first 50)</h2>")
        add(_table(["Time", "ATT&CK", "Source", "Destination", "Rule", "Message"],
                   [(_fmt_t(a.time_s), ", ".join(a.attack_ids), a.source, a.destination, a.rule, a.message)
                    for a in score.false_alarm_samples]))
    add("<p class='muted'>Scoring rules: docs/scoring.md. Times are plant time (min:s) from the start of "
        "the run.</p></body></html>")
    return "\n".join(p for p in parts if p)


def after_action_json(scenario: Scenario, score: Score) -> dict[str, Any]:
    """The HSEEP parts of the report as data (strengths, improvements, ratings) for score.json."""
    strengths, improve = findings(score)
    return {
        "objectives": [{"objective": o, "rating": r, "rating_text": RATINGS[r], "basis": w}
                       for o, r, w in objective_ratings(scenario, score)],
        "strengths": [{"title": s.title, "detail": s.detail, "capability": s.capability} for s in strengths],
        "improvements": [{"title": f.title, "detail": f.detail, "capability": f.capability,
                          "recommendation": f.recommendation} for f in improve],
    }


def write_report(record: DrillRecord, scenario: Scenario, score: Score, out_dir: Path | str) -> Path:
    """Write ``out_dir/report.html`` and ``out_dir/score.json``; return the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = score.to_json()
    doc["after_action"] = after_action_json(scenario, score)
    doc["based_on"] = scenario.based_on
    doc["started_wall"] = record.started_wall
    (out / "score.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    path = out / "report.html"
    path.write_text(render_html(record, scenario, score), encoding="utf-8")
    return path
