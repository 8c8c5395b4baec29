"""Network detection measured against labelled captures: episodes, matching, rates.

Pure logic for ``interlock eval network`` (:mod:`interlock.detect.eval_network_cli`): read label
files, turn them into attack *episodes* (a time window, an attack name, its ATT&CK techniques and,
when the labels say, the hosts involved), match the alerts of a capture to them, and sum up.

Label formats (sniffed from the content, documented in ``docs/detection.md``):

- **per-frame CSV** (CSET'16 ``frame;label``, every frame, 1 = attack; QUT S7 ``frame,summary,
  attack name``, attack frames only): the first column is the frame number, the last the label
  (``0``/``benign``/``normal``/empty = benign, ``1``/``attack`` = attack without a name, else the
  attack's name). Attack frames become episodes: consecutive attack frames of the same name, no
  more than ``episode_gap_s`` apart, make one.
- **attack-script log** (QUT): ``YYYY-MM-DD HH:MM:SS[.ffffff] NAME [HOST...] START|END``, paired
  by name and hosts. The times carry no zone: the caller gives the offset from UTC.
- **window CSV**: a header ``start,end,technique[,source,destination]``; times are epoch seconds
  or ISO 8601; ``technique`` is ``T0xxx`` (several joined by ``|``) or an attack name.

Matching (:func:`match_capture`): an alert matches an episode when the alert's time (``ts``, the
first operation of its finding) lies in ``[start - slack_s, end + window_s]`` and, when the
episode names hosts, the alert's initiator or target is one of them. An episode is *detected*
when any alert matches, *detected by technique* when a matching alert carries one of the
episode's techniques. Time to detect runs from the episode's start to the time the first matching
alert could be raised (for an aggregating rule, its threshold-th operation), never below 0. An
alert raised at another time whose gathered evidence reaches into the episode (a baseline finding
that groups every like operation of the capture) is no detection; it is counted apart. A *false
alarm* is an alert whose time lies in no episode window (hosts ignored: an alert during an attack
is not counted against benign time); benign time is the capture's span minus the union of those
windows.
"""

from __future__ import annotations

import bisect
import csv
import fnmatch
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from interlock.detect import attack
from interlock.detect.alerts import SEVERITIES, Alert

UNMAPPED = "unmapped"
BENIGN_LABELS = frozenset({"", "0", "benign", "normal", "false", "no"})
UNNAMED_ATTACK = frozenset({"1", "attack", "true", "yes", "malicious"})
_LOG_LINE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s+(\S+)((?:\s+\S+)*?)\s+(START|END)\s*$"
)
_TECHNIQUE = re.compile(r"^T\d{4}(?:\.\d{3})?$", re.IGNORECASE)
_OFFSET = re.compile(r"^([+-])(\d{1,2}):?(\d{2})?$")


class LabelError(ValueError):
    """A label or mapping file that cannot be used: ``FILE:LINE: reason``."""


# --- mapping of attack names to techniques ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelMap:
    """Attack name -> techniques (first match wins), and label-file name -> attack name."""

    labels: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = ()
    files: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # glob, label, techniques

    def techniques(self, label: str) -> tuple[str, ...]:
        """The techniques of an attack name; () when no entry matches (reported as unmapped)."""
        if _TECHNIQUE.match(label):
            return (label.upper(),)
        for pattern, techniques in self.labels:
            if pattern.fullmatch(label):
                return techniques
        return ()

    def for_file(self, path: str | Path) -> tuple[str, tuple[str, ...]] | None:
        """(attack name, techniques) that a label file's name gives, if an entry matches."""
        name = Path(path).name
        for glob, label, techniques in self.files:
            if fnmatch.fnmatch(name.lower(), glob.lower()):
                return label, techniques
        return None


def _techniques(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise LabelError(f"{where}: techniques must be a non-empty list of IDs like [T0855]")
    out = []
    for t in value:
        try:
            out.append(attack.technique(t).id)
        except KeyError:
            raise LabelError(f"{where}: {t!r} is not an ATT&CK for ICS technique") from None
    return tuple(out)


def load_label_map(path: Path | None = None) -> LabelMap:
    """The mapping file (default: ``interlock/data/label_techniques.yaml``); LabelError if bad."""
    if path is None:
        text = (resources.files("interlock") / "data" / "label_techniques.yaml").read_text("utf-8")
        name = "label_techniques.yaml"
    else:
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LabelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise LabelError(f"{name}:{line}: not valid YAML") from None
    if not isinstance(doc, dict) or set(doc) - {"labels", "files"}:
        raise LabelError(f"{name}: expected a mapping with the keys labels and files")
    labels: list[tuple[re.Pattern[str], tuple[str, ...]]] = []
    for i, entry in enumerate(doc.get("labels") or [], 1):
        where = f"{name}: labels entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
            raise LabelError(f"{where}: needs match (a regular expression) and techniques")
        try:
            pattern = re.compile(entry["match"], re.IGNORECASE)
        except re.error as exc:
            raise LabelError(f"{where}: bad regular expression ({exc})") from None
        labels.append((pattern, _techniques(entry.get("techniques"), where)))
    files: list[tuple[str, str, tuple[str, ...]]] = []
    for i, entry in enumerate(doc.get("files") or [], 1):
        where = f"{name}: files entry {i}"
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("match", "label")):
            raise LabelError(f"{where}: needs match (a glob), label and techniques")
        files.append((entry["match"], entry["label"], _techniques(entry.get("techniques"), where)))
    return LabelMap(tuple(labels), tuple(files))


# --- label files -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Episode:
    """One labelled attack: a time window, its name, techniques (first = primary) and hosts."""

    start: float
    end: float
    label: str
    techniques: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    source: str = ""  # the label file

    @property
    def technique(self) -> str:
        return self.techniques[0] if self.techniques else UNMAPPED


@dataclass(frozen=True, slots=True)
class LabelFile:
    """A parsed label file: episodes in absolute time, or attack frames by number."""

    path: str
    kind: Literal["frames", "windows"]
    episodes: tuple[Episode, ...] = ()
    attack_frames: Mapping[int, str] = field(default_factory=dict)  # frame -> attack name ("" unnamed)


def parse_offset(text: str) -> timezone:
    """``+10:00``, ``-0500``, ``+10``, ``UTC`` or ``Z`` -> a fixed offset; ValueError if not."""
    if text.strip().upper() in ("UTC", "Z", "0"):
        return UTC
    m = _OFFSET.match(text.strip())
    if not m or int(m.group(2)) > 23 or int(m.group(3) or 0) > 59:
        raise ValueError(f"expected an offset from UTC like +10:00 or -05:00, got {text!r}")
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))


def _time(text: str, tz: timezone, where: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LabelError(f"{where}: {text!r} is neither epoch seconds nor an ISO 8601 time") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=tz)).timestamp()


def read_labels(path: Path, label_map: LabelMap, tz: timezone = UTC) -> LabelFile:
    """Parse a label file, its format sniffed from the first meaningful line; LabelError if bad."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LabelError(f"{path}: not a text file (label files are CSV or attack logs)") from None
    except OSError as exc:
        raise LabelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise LabelError(f"{path}: empty label file")
    first = lines[0][1].strip()
    if _LOG_LINE.match(first):
        return _read_log(path, lines, label_map, tz)
    header = [c.strip().lower() for c in first.split(",")]
    if header[:3] == ["start", "end", "technique"]:
        return _read_windows(path, lines, label_map, tz)
    return _read_frames(path, lines, label_map)


def _read_log(path: Path, lines: list[tuple[int, str]], label_map: LabelMap, tz: timezone) -> LabelFile:
    open_: dict[tuple[str, tuple[str, ...]], list[tuple[float, int]]] = {}
    episodes: list[Episode] = []
    for n, line in lines:
        m = _LOG_LINE.match(line.strip())
        if not m:
            raise LabelError(f"{path}:{n}: expected 'DATE TIME NAME [HOST...] START|END', "
                             f"got {line.strip()[:60]!r}")
        ts = _time(m.group(1), tz, f"{path}:{n}")
        name, hosts = m.group(2), tuple(m.group(3).split())
        key = (name, hosts)
        if m.group(4) == "START":
            open_.setdefault(key, []).append((ts, n))
            continue
        if not open_.get(key):
            raise LabelError(f"{path}:{n}: END of {name} without a START before it")
        start, _ = open_[key].pop()
        episodes.append(Episode(start, max(start, ts), name, label_map.techniques(name), hosts, str(path)))
    for (name, hosts), starts in open_.items():
        # a script killed before its END line: the episode is its start instant (window_s covers it)
        episodes += [Episode(ts, ts, name, label_map.techniques(name), hosts, str(path)) for ts, _ in starts]
    return LabelFile(str(path), "windows", tuple(sorted(episodes, key=lambda e: (e.start, e.end))))


def _read_windows(path: Path, lines: list[tuple[int, str]], label_map: LabelMap, tz: timezone) -> LabelFile:
    episodes = []
    for n, row in zip((n for n, _ in lines[1:]), csv.reader(line for _, line in lines[1:]), strict=True):
        where = f"{path}:{n}"
        if len(row) not in (3, 4, 5):
            raise LabelError(f"{where}: expected start,end,technique[,source,destination], "
                             f"got {len(row)} columns")
        start, end = _time(row[0], tz, where), _time(row[1], tz, where)
        if end < start:
            raise LabelError(f"{where}: end {row[1].strip()} is before start {row[0].strip()}")
        label = row[2].strip()
        if not label:
            raise LabelError(f"{where}: empty technique (give T0xxx or an attack name)")
        parts = [p.strip() for p in label.split("|") if p.strip()]
        if all(_TECHNIQUE.match(p) for p in parts):
            techniques = _techniques(parts, where)
        else:
            techniques = label_map.techniques(label)
        hosts = tuple(h.strip() for h in row[3:] if h.strip())
        episodes.append(Episode(start, end, label, techniques, hosts, str(path)))
    return LabelFile(str(path), "windows", tuple(sorted(episodes, key=lambda e: (e.start, e.end))))


def _read_frames(path: Path, lines: list[tuple[int, str]], label_map: LabelMap) -> LabelFile:
    delimiter = ";" if ";" in lines[0][1] else ","
    attack_frames: dict[int, str] = {}
    for i, (n, line) in enumerate(lines):
        row = next(csv.reader([line], delimiter=delimiter))
        try:
            frame = int(row[0])
        except ValueError:
            if i == 0:
                continue  # a header line
            raise LabelError(f"{path}:{n}: expected a frame number in the first column, "
                             f"got {row[0][:30]!r}") from None
        if len(row) < 2:
            raise LabelError(
                f"{path}:{n}: expected 'frame;label', 'frame,label' or 'frame,...,attack name' "
                "(or a log, or a start,end,technique CSV)")
        if frame < 1:
            raise LabelError(f"{path}:{n}: frame numbers start at 1, got {frame}")
        label = row[-1].strip()
        if label.lower() in BENIGN_LABELS:
            continue
        attack_frames[frame] = "" if label.lower() in UNNAMED_ATTACK else label
    return LabelFile(str(path), "frames", attack_frames=attack_frames)


def frame_episodes(
    labels: LabelFile, frame_ts: Sequence[float], label_map: LabelMap, gap_s: float
) -> list[Episode]:
    """Episodes of a per-frame label file over a capture whose frame n has time frame_ts[n-1].

    Attack frames join one episode while their name stays the same and no more than ``gap_s``
    seconds pass between them. A label frame past the capture's end is a LabelError (the file
    labels another capture).
    """
    named = label_map.for_file(labels.path)
    episodes: list[Episode] = []
    cur: list[Any] = []  # start, end, name
    for frame in sorted(labels.attack_frames):
        if frame > len(frame_ts):
            raise LabelError(f"{labels.path}: labels frame {frame}, the capture has {len(frame_ts)} frames "
                             "(is it the label file of another capture?)")
        ts, name = frame_ts[frame - 1], labels.attack_frames[frame]
        if cur and name == cur[2] and ts - cur[1] <= gap_s:
            cur[1] = max(cur[1], ts)
            continue
        if cur:
            episodes.append(_frame_episode(cur, labels.path, label_map, named))
        cur = [ts, ts, name]
    if cur:
        episodes.append(_frame_episode(cur, labels.path, label_map, named))
    return episodes


def _frame_episode(cur: list[Any], path: str, label_map: LabelMap,
                   named: tuple[str, tuple[str, ...]] | None) -> Episode:
    start, end, name = cur
    if name:
        techniques = label_map.techniques(name)
        if not techniques and named is not None:
            techniques = named[1]
    elif named is not None:
        name, techniques = named
    else:
        name, techniques = "attack", ()
    return Episode(start, end, name, techniques, (), path)


# --- matching ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """An alert as matching sees it: when it was made, when its evidence happened, who, what."""

    ts: float
    technique: str
    src: str
    dst: str
    times: tuple[float, ...]  # capture times of the evidence frames
    rule: str = ""
    severity: str = "low"
    raised_at: float | None = None  # when a live sensor could raise it, if later than ts

    @property
    def raised(self) -> float:
        return self.ts if self.raised_at is None else max(self.ts, self.raised_at)

    @classmethod
    def of(cls, alert: Alert, frame_ts: Sequence[float] = (), threshold: int = 1) -> Seen:
        """``threshold``: operations an aggregating rule needs before it fires. Such an alert is
        stamped with its first operation; it cannot be raised before its threshold-th."""
        times = tuple(frame_ts[f - 1] for f in alert.frames if 0 < f <= len(frame_ts))
        raised = sorted(times)[min(threshold, len(times)) - 1] if threshold > 1 and times else None
        return cls(alert.ts, alert.technique, alert.src, alert.dst, times, alert.rule, alert.severity, raised)


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    episode: Episode
    capture: str
    frames: int  # capture frames inside the episode's own window
    alerts: int  # alerts matching it
    detected: bool
    by_technique: bool
    ttd_s: float | None  # time to the first matching alert
    ttd_technique_s: float | None  # ... to the first one with one of the episode's techniques
    techniques_seen: tuple[str, ...]
    evidence_only: int = 0  # alerts raised outside its window whose evidence reaches into it


@dataclass(frozen=True, slots=True)
class CaptureResult:
    capture: str
    start: float
    end: float
    benign_s: float
    wholly_benign: bool
    alerts: int
    false_alarms: int
    episodes: tuple[EpisodeResult, ...]
    false_alarm_severities: Mapping[str, int] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end - self.start


def _in(t: float, lo: float, hi: float) -> bool:
    return lo <= t <= hi


def match_capture(
    capture: str,
    span: tuple[float, float],
    episodes: Iterable[Episode],
    alerts: Iterable[Seen],
    *,
    window_s: float = 60.0,
    slack_s: float = 2.0,
    frame_ts: Sequence[float] = (),
    wholly_benign: bool = False,
) -> CaptureResult:
    """Match one capture's alerts to its episodes (see the module docstring for the rules)."""
    eps = sorted(episodes, key=lambda e: (e.start, e.end))
    seen = list(alerts)
    windows = [(e.start - slack_s, e.end + window_s) for e in eps]
    sorted_ts = sorted(frame_ts)
    results = []
    for e, (lo, hi) in zip(eps, windows, strict=True):
        first: float | None = None
        first_t: float | None = None
        techs: set[str] = set()
        n, evidence_only = 0, 0
        for a in seen:
            if e.hosts and a.src not in e.hosts and a.dst not in e.hosts:
                continue
            if not _in(a.ts, lo, hi):
                # an alert raised at another time whose gathered evidence reaches into the
                # episode: shown to the analyst, but no detection (a live sensor had already
                # raised it, or raised it about something else)
                evidence_only += any(_in(t, lo, hi) for t in a.times)
                continue
            n += 1
            techs.add(a.technique)
            ttd = max(0.0, a.raised - e.start)
            first = ttd if first is None else min(first, ttd)
            if a.technique in e.techniques:
                first_t = ttd if first_t is None else min(first_t, ttd)
        frames = bisect.bisect_right(sorted_ts, e.end) - bisect.bisect_left(sorted_ts, e.start)
        results.append(EpisodeResult(e, capture, frames, n, n > 0, first_t is not None, first, first_t,
                                     tuple(sorted(techs)), evidence_only))
    false_alarms = Counter(a.severity for a in seen if not any(_in(a.ts, lo, hi) for lo, hi in windows))
    return CaptureResult(capture, span[0], span[1], _benign_s(span, windows), wholly_benign,
                         len(seen), sum(false_alarms.values()), tuple(results), dict(false_alarms))


def _benign_s(span: tuple[float, float], windows: Iterable[tuple[float, float]]) -> float:
    """The capture's span minus the union of the windows."""
    start, end = span
    covered, cur_lo, cur_hi = 0.0, None, None
    for lo, hi in sorted((max(lo, start), min(hi, end)) for lo, hi in windows):
        if hi <= lo:
            continue
        if cur_hi is None or lo > cur_hi:
            if cur_hi is not None and cur_lo is not None:
                covered += cur_hi - cur_lo
            cur_lo, cur_hi = lo, hi
        else:
            cur_hi = max(cur_hi, hi)
    if cur_hi is not None and cur_lo is not None:
        covered += cur_hi - cur_lo
    return max(0.0, end - start - covered)


def episodes_for(
    span: tuple[float, float], episodes: Iterable[Episode], slack_s: float = 0.0
) -> list[Episode]:
    """The episodes of a time-window label file that overlap a capture's span."""
    lo, hi = span
    return [e for e in episodes if e.end >= lo - slack_s and e.start <= hi + slack_s]


# --- summary -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """Detection figures of a group of episodes (a technique, an attack name, a capture)."""

    key: str
    name: str
    episodes: int
    detected: int
    by_technique: int
    median_ttd_s: float | None
    median_ttd_technique_s: float | None
    silent: int  # episodes whose window holds no frame of the capture

    @property
    def rate(self) -> float | None:
        return self.detected / self.episodes if self.episodes else None

    @property
    def technique_rate(self) -> float | None:
        return self.by_technique / self.episodes if self.episodes else None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "episodes": self.episodes, "detected": self.detected,
                "detection_rate": _round(self.rate), "detected_by_technique": self.by_technique,
                "detection_rate_by_technique": _round(self.technique_rate),
                "median_ttd_s": _round(self.median_ttd_s),
                "median_ttd_technique_s": _round(self.median_ttd_technique_s),
                "episodes_without_frames": self.silent}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _row(key: str, name: str, results: Sequence[EpisodeResult]) -> Row:
    return Row(key, name, len(results), sum(r.detected for r in results),
               sum(r.by_technique for r in results),
               _median([r.ttd_s for r in results if r.ttd_s is not None]),
               _median([r.ttd_technique_s for r in results if r.ttd_technique_s is not None]),
               sum(r.frames == 0 for r in results))


@dataclass(frozen=True, slots=True)
class Report:
    captures: tuple[CaptureResult, ...]
    techniques: tuple[Row, ...]
    labels: tuple[Row, ...]
    total: Row
    false_alarms: int
    benign_hours: float
    false_alarm_severities: Mapping[str, int] = field(default_factory=dict)

    @property
    def false_alarms_per_hour(self) -> float | None:
        return self.false_alarms / self.benign_hours if self.benign_hours > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.to_dict(),
            "false_alarms": self.false_alarms,
            "benign_hours": round(self.benign_hours, 4),
            "false_alarms_per_hour": _round(self.false_alarms_per_hour),
            "false_alarms_by_severity": dict(self.false_alarm_severities),
            "techniques": [r.to_dict() for r in self.techniques],
            "labels": [r.to_dict() for r in self.labels],
            "captures": [
                {"capture": c.capture, "start": c.start, "end": c.end, "duration_s": round(c.duration_s, 3),
                 "benign_s": round(c.benign_s, 3), "wholly_benign": c.wholly_benign, "alerts": c.alerts,
                 "false_alarms": c.false_alarms, "false_alarms_by_severity": dict(c.false_alarm_severities),
                 "episodes": [
                     {"label": r.episode.label, "techniques": list(r.episode.techniques),
                      "start": r.episode.start, "end": r.episode.end, "hosts": list(r.episode.hosts),
                      "source": r.episode.source, "frames": r.frames, "alerts": r.alerts,
                      "detected": r.detected, "detected_by_technique": r.by_technique,
                      "ttd_s": _round(r.ttd_s), "ttd_technique_s": _round(r.ttd_technique_s),
                      "alerts_with_evidence_only": r.evidence_only,
                      "alert_techniques": list(r.techniques_seen)}
                     for r in c.episodes
                 ]}
                for c in self.captures
            ],
        }


def technique_name(tid: str) -> str:
    try:
        return attack.technique(tid).name
    except KeyError:
        return "(no technique mapped: see label_techniques.yaml)" if tid == UNMAPPED else ""


def summarize(captures: Sequence[CaptureResult]) -> Report:
    """Rows per technique (the episode's first technique), per attack name, and in all."""
    results = [r for c in captures for r in c.episodes]
    by_tech: dict[str, list[EpisodeResult]] = {}
    by_label: dict[str, list[EpisodeResult]] = {}
    for r in results:
        by_tech.setdefault(r.episode.technique, []).append(r)
        by_label.setdefault(r.episode.label, []).append(r)
    techniques = tuple(_row(k, technique_name(k), v) for k, v in sorted(by_tech.items()))
    labels = tuple(_row(k, v[0].episode.technique, v)
                   for k, v in sorted(by_label.items(), key=lambda kv: kv[0].lower()))
    severities: Counter[str] = Counter()
    for c in captures:
        severities.update(c.false_alarm_severities)
    return Report(tuple(captures), techniques, labels, _row("all", "all episodes", results),
                  sum(c.false_alarms for c in captures), sum(c.benign_s for c in captures) / 3600,
                  {s: severities[s] for s in SEVERITIES if severities[s]})

