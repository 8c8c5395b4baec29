"""``interlock eval network``: detection rate per technique and false alarms per benign hour.

Runs what ``interlock detect`` runs (the rules, plus a baseline learned from ``--baseline-from``
benign captures, never from the evaluated attack captures) over labelled captures, matches the
alerts to the labelled attack episodes (:mod:`interlock.detect.network.evaluate`) and prints rich
tables on stderr; ``--json OUT`` writes the same figures and every episode. Bad input (a missing
file, a label file of an unknown format, a damaged capture) ends with one line and exit code 2.
"""

from __future__ import annotations

import json
import sys
from contextlib import suppress
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from interlock.capture.decode import decode_path, open_capture
from interlock.capture.pcap import CaptureError, read_frames
from interlock.detect.alerts import SEVERITIES, SEVERITY_RANK, Alert
from interlock.detect.cli import _parse_settings, default_rules_dir
from interlock.detect.network.baseline import Baseline, BaselineDetector
from interlock.detect.network.evaluate import (
    CaptureResult,
    Episode,
    LabelError,
    LabelFile,
    LabelMap,
    Report,
    Row,
    Seen,
    episodes_for,
    frame_episodes,
    load_label_map,
    match_capture,
    parse_offset,
    read_labels,
    summarize,
)
from interlock.detect.network.rules import Rule, RuleEngine, RuleError, load_rules

CAPTURE_SUFFIXES = (".pcapng", ".pcap", ".cap")


def _fail(message: str) -> NoReturn:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in CAPTURE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass
class _Labels:
    file: LabelFile
    owner: Path | None  # the capture it labels (by name), or None: every capture (time windows)


def _assign(labels: list[LabelFile], captures: list[Path]) -> list[_Labels]:
    """Tie each label file to the capture whose name it starts with (X.pcap <- X_labeled.csv,
    X.attack_log.txt); per-frame labels need one, time windows without one apply to all."""
    out = []
    for lf in labels:
        name = Path(lf.path).name
        owners = [c for c in captures if name.startswith(_stem(c))]
        owner = max(owners, key=lambda c: len(_stem(c))) if owners else None
        if owner is None and lf.kind == "frames":
            if len(captures) != 1:
                _fail(f"{lf.path}: per-frame labels, but no capture is named like it: name the "
                      "capture X.pcap and the labels X_labeled.csv (or X.csv), or evaluate one capture")
            owner = captures[0]
        out.append(_Labels(lf, owner))
    return out


def _frame_times(path: Path) -> list[float]:
    try:
        with open_capture(path) as fh:
            return [ts for _, ts, _, _ in read_frames(fh, str(path))]
    except CaptureError as exc:
        _fail(str(exc))


def _detect(path: Path, rules: tuple[Rule, ...], options: dict[str, list[str]],
            baseline: Baseline | None) -> list[Alert]:
    """The alerts ``interlock detect`` would write for one capture."""
    engine = RuleEngine(rules, options=options, capture=str(path))
    learned = BaselineDetector(baseline, capture=str(path)) if baseline is not None else None
    alerts: list[Alert] = []
    batches, _ = decode_path(path)
    try:
        for batch in batches:
            alerts += engine.process(batch)
            if learned is not None:
                alerts += learned.process(batch)
    except CaptureError as exc:
        _fail(f"{exc} (evaluate undamaged captures)")
    alerts += engine.finish()
    if learned is not None:
        alerts += learned.finish()
    return alerts


def _learn(paths: tuple[Path, ...]) -> Baseline:
    baseline = Baseline()
    for path in paths:
        batches, _ = decode_path(path)
        try:
            baseline.fit(batches, source=str(path))
        except CaptureError as exc:
            _fail(f"{exc} (learn the baseline from undamaged benign captures)")
    return baseline


def _same(a: Path, b: Path) -> bool:
    with suppress(OSError):
        return a.resolve() == b.resolve() or a.samefile(b)
    return False


@click.command("network")
@click.argument("captures", nargs=-1, type=click.Path(path_type=Path))
@click.option("--labels", "label_paths", multiple=True, type=click.Path(path_type=Path),
              help="Label file (repeatable): per-frame CSV (CSET'16 frame;label, QUT S7 frame,...,name), "
              "attack-script log (QUT), or a start,end,technique[,source,destination] CSV.")
@click.option("--benign", "benign_paths", multiple=True, type=click.Path(path_type=Path),
              help="A capture known to be wholly benign (repeatable): counted for false alarms.")
@click.option("--baseline-from", "baseline_paths", multiple=True, type=click.Path(path_type=Path),
              help="Learn a baseline from this benign capture (repeatable) and run it beside the rules.")
@click.option("--window-s", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="An alert up to N seconds after an episode's end still detects it.")
@click.option("--slack-s", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="... and one up to N seconds before its start (clocks of logger and sensor).")
@click.option("--episode-gap-s", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Per-frame labels: attack frames further apart than this start a new episode.")
@click.option("--labels-utc-offset", "utc_offset", default="+00:00", show_default=True,
              help="Offset from UTC of label times written without a zone (QUT logs: +10:00).")
@click.option("--label-map", type=click.Path(path_type=Path),
              help="Attack name -> technique mapping (default: the shipped label_techniques.yaml).")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path),
              help="Directory of rule files (default: the rules shipped with Interlock).")
@click.option("--set", "settings", multiple=True, metavar="OPTION=VALUE[,VALUE]",
              help="Fill a rule option, as for interlock detect (repeatable).")
@click.option("--min-severity", type=click.Choice(SEVERITIES), default="low", show_default=True,
              help="Count only alerts of this severity or above (for detections and false alarms).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No tables on stderr.")
def eval_network(
    captures: tuple[Path, ...], label_paths: tuple[Path, ...], benign_paths: tuple[Path, ...],
    baseline_paths: tuple[Path, ...], window_s: float, slack_s: float, episode_gap_s: float,
    utc_offset: str, label_map: Path | None, rules_dir: Path | None, settings: tuple[str, ...],
    min_severity: str, json_out: Path | None, quiet: bool,
) -> None:
    """Measure network detection on labelled CAPTURES: detection rate per ATT&CK technique,
    median time to detect, and false alarms per hour of benign traffic."""
    if not captures and not benign_paths:
        _fail("no capture given: name labelled captures (with --labels) and/or --benign captures")
    try:
        tz: timezone = parse_offset(utc_offset)
    except ValueError as exc:
        _fail(f"--labels-utc-offset: {exc}")
    try:
        mapping: LabelMap = load_label_map(label_map)
        labels = [read_labels(p, mapping, tz) for p in label_paths]
    except LabelError as exc:
        _fail(str(exc))
    for path in (*captures, *benign_paths, *baseline_paths):
        if not path.is_file():
            _fail(f"{path}: no such capture file")
    for b in baseline_paths:
        for c in captures:
            if _same(b, c):
                _fail(f"--baseline-from {b}: is an evaluated attack capture; learn only from benign traffic")
    if rules_dir is None:
        rules_dir = default_rules_dir()
        if rules_dir is None:
            _fail("no rules found next to this installation: pass --rules DIR")
    try:
        rules = load_rules(rules_dir)
    except RuleError as exc:
        _fail(str(exc))
    options = _parse_settings(settings)
    try:
        RuleEngine(rules, options=options)
    except ValueError as exc:
        _fail(f"--set: {exc}")

    assigned = _assign(labels, list(captures))
    unlabelled = [c for c in captures
                  if not any(a.owner is None or _same(a.owner, c) for a in assigned)]
    if unlabelled:
        _fail(f"{unlabelled[0]}: no label file for it: give --labels FILE, or pass it as --benign")
    baseline = _learn(baseline_paths) if baseline_paths else None

    floor = SEVERITIES.index(min_severity)
    thresholds = {r.id: r.aggregate.gte for r in rules if r.aggregate is not None}
    results: list[CaptureResult] = []
    notes: list[str] = []
    for path, benign in [*((c, False) for c in captures), *((b, True) for b in benign_paths)]:
        frame_ts = _frame_times(path)
        span = (min(frame_ts), max(frame_ts)) if frame_ts else (0.0, 0.0)
        episodes: list[Episode] = []
        if not benign:
            mine = [a for a in assigned if a.owner is not None and _same(a.owner, path)]
            frames = [a for a in mine if a.file.kind == "frames"]
            try:
                for a in frames:
                    episodes += frame_episodes(a.file, frame_ts, mapping, episode_gap_s)
            except LabelError as exc:
                _fail(str(exc))
            if frames:
                # per-frame labels are exact: a log covering the same capture would count twice
                skipped = [a.file.path for a in assigned if a.file.kind == "windows"
                           and (a.owner is None or _same(a.owner, path))
                           and episodes_for(span, a.file.episodes, slack_s)]
                if skipped:
                    notes.append(f"{path.name}: per-frame labels used, time windows of "
                                 f"{', '.join(Path(s).name for s in skipped)} not")
            else:
                for a in assigned:
                    if a.file.kind == "windows" and (a.owner is None or _same(a.owner, path)):
                        episodes += episodes_for(span, a.file.episodes, slack_s)
        alerts = [Seen.of(a, frame_ts, thresholds.get(a.rule, 1))
                  for a in _detect(path, rules, options, baseline)
                  if SEVERITY_RANK[a.severity] >= floor]
        results.append(match_capture(str(path), span, episodes, alerts, window_s=window_s,
                                     slack_s=slack_s, frame_ts=frame_ts, wholly_benign=benign))
        if baseline_paths and benign and any(_same(path, b) for b in baseline_paths):
            notes.append(f"{path.name}: also learned from, so its false alarms are measured on training data")
    report = summarize(results)
    if json_out is not None:
        doc = {"settings": {"min_severity": min_severity, "window_s": window_s, "slack_s": slack_s,
                            "episode_gap_s": episode_gap_s,
                            "labels_utc_offset": utc_offset, "rules": str(rules_dir),
                            "baseline_from": [str(p) for p in baseline_paths],
                            "labels": [str(p) for p in label_paths]},
               **report.to_dict(), "notes": notes}
        try:
            json_out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            _fail(f"{json_out}: cannot write ({exc.strerror})")
    if not quiet:
        _print(report, notes, len(rules), baseline is not None)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _rows(table: Table, rows: tuple[Row, ...] | list[Row], first: str) -> None:
    for col in (first, "name", "episodes", "detected", "rate", "by technique", "rate (technique)",
                "median TTD s", "no frames"):
        table.add_column(col, justify="left" if col in (first, "name") else "right")
    for r in rows:
        table.add_row(r.key, r.name, str(r.episodes), str(r.detected), _pct(r.rate), str(r.by_technique),
                      _pct(r.technique_rate), _secs(r.median_ttd_s), str(r.silent))


def _print(report: Report, notes: list[str], n_rules: int, baseline: bool) -> None:
    err = Console(stderr=True)
    if not err.is_terminal:
        err.width = 160  # logs and pipes: keep each row on one line
    what = f"{n_rules} rules" + (" + baseline" if baseline else "")
    err.print(f"interlock eval network: {what} over {len(report.captures)} capture(s), "
              f"{report.total.episodes} attack episodes")
    if report.techniques:
        table = Table(title="detection per technique (the episode's first technique)")
        _rows(table, [*report.techniques, report.total], "technique")
        err.print(table)
        table = Table(title="detection per attack name")
        _rows(table, report.labels, "attack")
        err.print(table)
    table = Table(title="per capture")
    for col in ("capture", "hours", "benign h", "episodes", "detected", "by technique", "alerts",
                "false alarms", "FA / benign h"):
        table.add_column(col, justify="left" if col == "capture" else "right")
    for c in report.captures:
        bh = c.benign_s / 3600
        table.add_row(Path(c.capture).name + (" (benign)" if c.wholly_benign else ""),
                      f"{c.duration_s / 3600:.3f}", f"{bh:.3f}", str(len(c.episodes)),
                      str(sum(r.detected for r in c.episodes)), str(sum(r.by_technique for r in c.episodes)),
                      str(c.alerts), str(c.false_alarms), f"{c.false_alarms / bh:.1f}" if bh > 0 else "-")
    err.print(table)
    fa = report.false_alarms_per_hour
    by = ", ".join(f"{k} {v}" for k, v in report.false_alarm_severities.items())
    err.print(f"false alarms: {report.false_alarms} in {report.benign_hours:.3f} benign hours = "
              + ("-" if fa is None else f"{fa:.2f} per hour") + (f" ({by})" if by else ""))
    for note in notes:
        err.print(f"note: {note}")
