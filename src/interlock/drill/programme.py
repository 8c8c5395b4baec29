"""The drill programme: every drill's score kept in SQLite, and the trends a programme reviews.

One database per user in the per-user data folder (platformdirs: ``$XDG_DATA_HOME/interlock``
or ``~/.local/share/interlock`` on Linux, ``drills.sqlite``), or any path given with ``--db``.
SQLite because it ships with Python, needs no server, and a team can copy one file to share
its history. Two tables: ``drills`` (one row per drill: scenario, seed, date, score, detection
rate, mean time to detect, false alarms) and ``injects`` (one row per inject: technique,
detected, time to detect, neutralized, time to neutralize).

``history()`` turns them into the trends a programme manager asks for: detection rate and mean
time to detect per technique, per month and per drill, as a rich table and a matplotlib PNG.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import platformdirs
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rich.table import Table

from interlock.drill.model import DrillRecord, Scenario
from interlock.drill.score import Score

APP = "interlock"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS drills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    title TEXT NOT NULL,
    plant TEXT NOT NULL,
    seed INTEGER NOT NULL,
    started TEXT NOT NULL,          -- ISO-8601 UTC: the drill's date (a campaign's calendar date)
    duration_s REAL NOT NULL,       -- plant seconds
    score REAL NOT NULL,
    detection_rate REAL NOT NULL,
    mean_ttd_s REAL,                -- NULL when nothing was detected
    neutralization_rate REAL NOT NULL,
    false_alarms INTEGER NOT NULL,
    alerts_total INTEGER NOT NULL,
    defender TEXT NOT NULL DEFAULT '',
    campaign TEXT NOT NULL DEFAULT '',
    report_dir TEXT NOT NULL DEFAULT '',
    score_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS injects (
    drill_id INTEGER NOT NULL REFERENCES drills(id) ON DELETE CASCADE,
    inject_id TEXT NOT NULL,
    technique TEXT NOT NULL,
    attack_ids TEXT NOT NULL,       -- comma separated
    start_s REAL NOT NULL,
    detected INTEGER NOT NULL,
    ttd_s REAL,
    neutralized INTEGER NOT NULL,
    ttn_s REAL
);
CREATE INDEX IF NOT EXISTS injects_drill ON injects(drill_id);
CREATE INDEX IF NOT EXISTS drills_started ON drills(started);
"""


class ProgrammeError(Exception):
    """A store that cannot be used; the message names the file and what to do."""


def default_db_path() -> Path:
    """``drills.sqlite`` in the per-user data folder (honours ``XDG_DATA_HOME``)."""
    return platformdirs.user_data_path(APP) / "drills.sqlite"


@dataclass(frozen=True, slots=True)
class DrillRow:
    id: int
    scenario: str
    plant: str
    seed: int
    started: str
    duration_s: float
    score: float
    detection_rate: float
    mean_ttd_s: float | None
    neutralization_rate: float
    false_alarms: int
    campaign: str


@dataclass(frozen=True, slots=True)
class TechniqueTrend:
    technique: str
    injects: int
    detected: int
    mean_ttd_s: float | None
    neutralized: int

    @property
    def detection_rate(self) -> float:
        return self.detected / self.injects if self.injects else 0.0


@dataclass(frozen=True, slots=True)
class MonthTrend:
    month: str  # YYYY-MM
    drills: int
    mean_score: float
    detection_rate: float  # detected injects / injects
    mean_ttd_s: float | None
    false_alarms: int


@dataclass(frozen=True, slots=True)
class History:
    drills: tuple[DrillRow, ...]
    techniques: tuple[TechniqueTrend, ...]
    months: tuple[MonthTrend, ...]


def _iso(when: float | datetime | None) -> str:
    if when is None:
        when = datetime.now(UTC)
    if isinstance(when, int | float):
        when = datetime.fromtimestamp(float(when), UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


class Programme:
    """The drill store; use as a context manager or call ``close()``."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self._db.commit()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ProgrammeError(f"{self.path}: cannot open the drill database ({exc}); give another "
                                 "path with --db or move the broken file away") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Programme:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._db:  # commits, or rolls back on an exception
            yield self._db

    def add(self, score: Score, *, started: float | datetime | None = None, defender: str = "",
            campaign: str = "", report_dir: Path | str | None = None) -> int:
        """Store one drill's score; returns its id."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO drills (scenario, title, plant, seed, started, duration_s, score,"
                " detection_rate, mean_ttd_s, neutralization_rate, false_alarms, alerts_total, defender,"
                " campaign, report_dir, score_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (score.scenario, score.title, score.plant, score.seed, _iso(started), score.duration_s,
                 score.score, score.detection_rate, score.mean_time_to_detect_s, score.neutralization_rate,
                 score.false_alarms, score.alerts_total, defender, campaign,
                 str(report_dir) if report_dir else "", json.dumps(score.to_json(), allow_nan=False)))
            drill_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO injects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(drill_id, i.inject_id, i.technique, ",".join(i.attack_ids), i.start_s, int(i.detected),
                  i.time_to_detect_s, int(i.neutralized), i.time_to_neutralize_s) for i in score.injects])
        return drill_id

    def drills(self, *, campaign: str | None = None) -> list[DrillRow]:
        """Drills in date order (then id)."""
        sql = ("SELECT id, scenario, plant, seed, started, duration_s, score, detection_rate, mean_ttd_s,"
               " neutralization_rate, false_alarms, campaign FROM drills")
        args: tuple[str, ...] = ()
        if campaign is not None:
            sql += " WHERE campaign = ?"
            args = (campaign,)
        rows = self._db.execute(sql + " ORDER BY started, id", args).fetchall()
        return [DrillRow(*row) for row in rows]

    def history(self, *, campaign: str | None = None) -> History:
        """Trends per technique and per month, plus the drills themselves."""
        drills = self.drills(campaign=campaign)
        ids = {d.id: d for d in drills}
        inj = self._db.execute(
            "SELECT drill_id, technique, detected, ttd_s, neutralized FROM injects").fetchall()
        per_tech: dict[str, list[tuple[int, float | None, int]]] = defaultdict(list)
        per_month_inj: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
        for drill_id, technique, detected, ttd, neutralized in inj:
            if drill_id not in ids:
                continue
            per_tech[technique].append((detected, ttd, neutralized))
            per_month_inj[ids[drill_id].started[:7]].append((detected, ttd))
        techniques = []
        for tech in sorted(per_tech):
            rows = per_tech[tech]
            ttds = [t for _, t, _ in rows if t is not None]
            techniques.append(TechniqueTrend(tech, len(rows), sum(d for d, _, _ in rows),
                                             sum(ttds) / len(ttds) if ttds else None,
                                             sum(n for _, _, n in rows)))
        per_month: dict[str, list[DrillRow]] = defaultdict(list)
        for d in drills:
            per_month[d.started[:7]].append(d)
        months = []
        for month in sorted(per_month):
            ds = per_month[month]
            rows2 = per_month_inj.get(month, [])
            ttds = [t for _, t in rows2 if t is not None]
            months.append(MonthTrend(
                month, len(ds), sum(d.score for d in ds) / len(ds),
                sum(d for d, _ in rows2) / len(rows2) if rows2 else 0.0,
                sum(ttds) / len(ttds) if ttds else None, sum(d.false_alarms for d in ds)))
        return History(tuple(drills), tuple(techniques), tuple(months))


def _fmt(value: float | None, unit: str = " s") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def technique_table(history: History) -> Table:
    """Detection rate and mean time to detect per technique."""
    table = Table(title="Detection per technique")
    for col, justify in (("technique", "left"), ("injects", "right"), ("detected", "right"),
                         ("rate", "right"), ("mean TTD", "right"), ("neutralized", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for t in sorted(history.techniques, key=lambda t: (t.detection_rate, t.technique)):
        style = "red" if t.detection_rate < 0.5 else ("yellow" if t.detection_rate < 0.9 else "green")
        table.add_row(t.technique, str(t.injects), str(t.detected),
                      f"[{style}]{100 * t.detection_rate:.0f} %[/{style}]", _fmt(t.mean_ttd_s),
                      str(t.neutralized))
    return table


def month_table(history: History) -> Table:
    """Drills, mean score, detection rate and mean time to detect per month."""
    table = Table(title="Trend per month")
    for col in ("month", "drills", "mean score", "detection rate", "mean TTD", "false alarms"):
        table.add_column(col, justify="left" if col == "month" else "right")
    for m in history.months:
        table.add_row(m.month, str(m.drills), f"{m.mean_score:.1f}", f"{100 * m.detection_rate:.0f} %",
                      _fmt(m.mean_ttd_s), str(m.false_alarms))
    return table


def plot_history(history: History, out: Path | str) -> Path:
    """A PNG of the programme: score and detection rate per drill, mean TTD per month,
    detection rate per technique."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(11, 9))
    ax1, ax2, ax3 = fig.subplots(3, 1)
    idx = list(range(1, len(history.drills) + 1))
    ax1.plot(idx, [d.score for d in history.drills], marker=".", color="#0b4f6c", label="score")
    ax1b = ax1.twinx()
    ax1b.plot(idx, [100 * d.detection_rate for d in history.drills], color="#2ca02c", alpha=0.6,
              label="detection rate %")
    ax1.set_xlabel("drill")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_ylabel("score (0-100)")
    ax1b.set_ylabel("detection rate (%)")
    ax1.set_ylim(0, 100)
    ax1b.set_ylim(0, 105)
    ax1.set_title("Score and detection rate per drill")
    ax1.grid(alpha=0.3)
    months = [m.month for m in history.months]
    ax2.bar(months, [m.mean_ttd_s or 0.0 for m in history.months], color="#ff7f0e")
    ax2.set_ylabel("mean time to detect (s)")
    ax2.set_ylim(bottom=0.0, top=max([m.mean_ttd_s or 0.0 for m in history.months] + [1.0]) * 1.1)
    ax2.set_title("Mean time to detect per month")
    ax2.grid(axis="y", alpha=0.3)
    techs = sorted(history.techniques, key=lambda t: t.detection_rate)
    ax3.barh([t.technique for t in techs], [100 * t.detection_rate for t in techs],
             color=["#d62728" if t.detection_rate < 0.5 else "#2ca02c" for t in techs])
    ax3.set_xlim(0, 100)
    ax3.set_xlabel("detection rate (%)")
    ax3.set_title("Detection rate per technique")
    ax3.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=100)
    return out


def summary(history: History) -> dict[str, float | int | None]:
    """Headline numbers of a history (for a campaign's summary)."""
    drills = history.drills
    n = len(drills)
    ttds = [d.mean_ttd_s for d in drills if d.mean_ttd_s is not None]
    return {
        "drills": n,
        "mean_score": sum(d.score for d in drills) / n if n else None,
        "detection_rate": sum(d.detection_rate for d in drills) / n if n else None,
        "mean_ttd_s": sum(ttds) / len(ttds) if ttds else None,
        "false_alarms": sum(d.false_alarms for d in drills),
    }


def weakest(history: History, count: int = 3) -> Sequence[TechniqueTrend]:
    """The techniques detected least often (ties: slowest first)."""
    return sorted(history.techniques, key=lambda t: (t.detection_rate, -(t.mean_ttd_s or 0.0)))[:count]


def record_drill(record: DrillRecord, scenario: Scenario, score: Score, db: Path | str | None = None, *,
                 campaign: str = "", started: float | datetime | None = None,
                 report_dir: Path | str | None = None) -> int:
    """Store one run (the runner's hook): its date is the record's wall start unless given."""
    with Programme(db) as store:
        return store.add(score, started=started if started is not None else (record.started_wall or None),
                         defender=str(record.meta.get("defender", "")), campaign=campaign,
                         report_dir=report_dir)
