"""``interlock drill``: run attack scenarios against the range and score the defenders.

``interlock drill`` with no subcommand runs the default scenario (``stuxnet-reactor``, 20 plant
minutes at ``speed: max``) on embedded defaults. Subcommands: ``run SCENARIO``, ``list``,
``validate FILE...``, ``history`` and ``campaign --count N``. Every run leaves ``DIR/report.html``
and ``DIR/score.json`` and is stored in the programme database. Bad input (a broken scenario, an
unreadable alert file, a bad option) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import inspect
import json
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from interlock.drill.scenario import (
    ScenarioError,
    find_scenario,
    format_duration,
    list_scenarios,
    load_scenario,
    parse_speed,
    scenario_paths,
)

if TYPE_CHECKING:
    from interlock.drill.model import DrillRecord, Scenario
    from interlock.drill.score import Score

DEFAULT_SCENARIO = "stuxnet-reactor"
CAMPAIGN_DAYS = 182  # a half-year programme
CAMPAIGN_START = "2026-01-05"  # a Monday: the default calendar of a campaign


def _fail(message: str) -> NoReturn:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


def _speed(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = parse_speed(value)
    if parsed is None:
        _fail(f"--speed {value!r}: give 'max' or a real-time multiplier > 0 like 1 or 10")
    return "max" if parsed == "max" else value


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else (f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min")


def summary_table(score: Score) -> Table:
    """Per inject: technique, start, detected, time to detect, neutralized, time to neutralize."""
    table = Table(title=f"{score.scenario} (seed {score.seed}): score {score.score:.1f} / 100")
    for col, justify in (("inject", "left"), ("technique", "left"), ("start", "right"),
                         ("detected", "center"), ("TTD", "right"), ("neutralized", "center"),
                         ("TTN", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for i in score.injects:
        table.add_row(
            i.inject_id, i.technique, format_duration(i.start_s),
            "[green]yes[/green]" if i.detected else "[red]no[/red]", _fmt_s(i.time_to_detect_s),
            "[green]yes[/green]" if i.neutralized else "[red]no[/red]",
            _fmt_s(i.time_to_neutralize_s) + (f" ({i.neutralized_by})" if i.neutralized_by else ""))
    detected = sum(i.detected for i in score.injects)
    neutralized = sum(i.neutralized for i in score.injects)
    table.add_section()
    table.add_row("total", f"{len(score.injects)} injects", "",
                  f"{detected}/{len(score.injects)}", _fmt_s(score.mean_time_to_detect_s),
                  f"{neutralized}/{len(score.injects)}", _fmt_s(score.mean_time_to_neutralize_s))
    imp = score.impact
    caption = [f"false alarms {score.false_alarms} ({score.false_alarms_per_hour:.1f}/h)"]
    if imp.has_trends:
        caption.append(f"outside envelope {imp.minutes_outside_envelope:.1f} min")
        caption.append("SIS trips " + (", ".join(imp.sis_trips) or "none"))
        caption.append("hazards " + (", ".join(imp.hazards) or "none"))
    table.caption = "; ".join(caption)
    return table


def _load(name: str | Path) -> Scenario:
    try:
        return find_scenario(name)
    except ScenarioError as exc:
        _fail(str(exc))


def _runner() -> Callable[..., tuple[DrillRecord, Score]]:
    try:
        from interlock.drill.runner import run_drill
    except ImportError as exc:
        click.echo(f"interlock: error: the drill runner is not available ({exc})", err=True)
        sys.exit(1)
    return run_drill


def _run_one(scenario: Scenario, out_dir: Path, *, seed: int | None, alerts: Path | None,
             speed: str | None, progress: bool, db: Path | None, store: bool,
             campaign: str = "", started: datetime | None = None,
             firewall: bool = True) -> tuple[DrillRecord, Score]:
    """The runner, the report and the programme store; one-line errors for what the user can fix.

    The runner writes the report and stores the drill itself when it takes ``db``/``store``;
    a campaign stores with its own calendar date and name, so it asks the runner not to.
    """
    from interlock.drill.model import DrillError
    from interlock.drill.programme import ProgrammeError, record_drill
    from interlock.drill.report import write_report
    from interlock.drill.score import AlertFormatError

    run_drill = _runner()
    kwargs: dict[str, object] = {"seed": seed, "alerts_file": alerts, "speed": speed, "progress": progress}
    accepted = inspect.signature(run_drill).parameters
    if "firewall" in accepted:
        kwargs["firewall"] = firewall
    runner_stores = "store" in accepted and "db" in accepted and not campaign and started is None
    if "store" in accepted:
        kwargs["store"] = store and runner_stores
        if runner_stores:
            kwargs["db"] = db
    try:
        record, score = run_drill(scenario, out_dir, **kwargs)
    except (AlertFormatError, ScenarioError, ProgrammeError, DrillError) as exc:
        _fail(str(exc))
    if not (out_dir / "report.html").is_file():
        write_report(record, scenario, score, out_dir)
    if store and not runner_stores:
        try:
            record_drill(record, scenario, score, db, campaign=campaign, started=started,
                         report_dir=out_dir.resolve())
        except ProgrammeError as exc:
            _fail(str(exc))
    return record, score


def _check_alerts(path: Path) -> None:
    """Refuse a broken alert file before the drill runs, not after (same FILE:LINE message)."""
    from interlock.drill.score import AlertFormatError, load_alerts

    try:
        load_alerts(path, lambda epoch: epoch)
    except AlertFormatError as exc:
        _fail(str(exc))


def _default_out(scenario_id: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("drills") / f"{scenario_id}-{stamp}"


def _run_command(name: str | Path, out: Path | None, seed: int | None, alerts: Path | None,
                 speed: str | None, db: Path | None, store: bool, firewall: bool = True) -> None:
    console = Console(stderr=True)
    scenario = _load(name)
    out_dir = out or _default_out(scenario.id)
    speed = _speed(speed)
    if alerts is not None:
        _check_alerts(alerts)
    console.print(f"[bold]drill[/bold] {scenario.id}: {scenario.title} ({scenario.plant}, "
                  f"{format_duration(scenario.duration_s)} plant time, {len(scenario.injects)} injects)")
    record, score = _run_one(scenario, out_dir, seed=seed, alerts=alerts, speed=speed, progress=True,
                             db=db, store=store, firewall=firewall)
    for note in list(record.meta.get("notes", ())) + list(record.meta.get("errors", ())):
        console.print(f"[yellow]note:[/yellow] {note}")
    Console(width=None if sys.stdout.isatty() else 140).print(summary_table(score))
    console.print(f"report: {out_dir / 'report.html'}\nscore:  {out_dir / 'score.json'}")


_out = click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                    help="Folder for report.html and score.json (default: drills/<scenario>-<time>).")
_seed = click.option("--seed", type=click.IntRange(min=0), help="Override the scenario's seed.")
_alerts = click.option("--alerts", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                       help="Score this alert stream (Interlock JSON lines, eve.json or generic JSON "
                            "lines) instead of Interlock's own defenders.")
_speedopt = click.option("--speed", help="'max' (as fast as possible) or a real-time multiplier like 1.")
_db = click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
                   help="Programme database (default: drills.sqlite in the per-user data folder).")
_nostore = click.option("--no-store", is_flag=True, help="Do not record the drill in the programme database.")
_nofirewall = click.option("--no-firewall", is_flag=True,
                           help="No inline firewall in front of the PLCs: detect only, let attacks through.")
F = TypeVar("F", bound=Callable[..., Any])


def _run_options(command: F) -> F:
    """The options of one drill run, the same for ``interlock drill`` and ``interlock drill run``."""
    for option in reversed((_out, _seed, _alerts, _speedopt, _db, _nostore, _nofirewall)):
        command = option(command)
    return command


@click.group("drill", invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@_run_options
@click.pass_context
def drill(ctx: click.Context, out: Path | None, seed: int | None, alerts: Path | None, speed: str | None,
          db: Path | None, no_store: bool, no_firewall: bool) -> None:
    """Attack the range with a scenario and score the defenders.

    With no subcommand, runs the default scenario (stuxnet-reactor) on embedded defaults.
    """
    if ctx.invoked_subcommand is None:
        _run_command(DEFAULT_SCENARIO, out, seed, alerts, speed, db, not no_store, not no_firewall)


@drill.command("run")
@click.argument("scenario")
@_run_options
def run(scenario: str, out: Path | None, seed: int | None, alerts: Path | None, speed: str | None,
        db: Path | None, no_store: bool, no_firewall: bool) -> None:
    """Run SCENARIO (a YAML file or the id of a shipped scenario) and write its report."""
    _run_command(scenario, out, seed, alerts, speed, db, not no_store, not no_firewall)


@drill.command("list")
def list_cmd() -> None:
    """The shipped scenarios."""
    try:
        scenarios = list_scenarios()
    except ScenarioError as exc:
        _fail(str(exc))
    table = Table(title=f"{len(scenarios)} scenarios")
    for col in ("id", "plant", "duration", "injects", "based on"):
        table.add_column(col, overflow="fold")
    for sc in scenarios:
        table.add_row(sc.id, sc.plant, format_duration(sc.duration_s), str(len(sc.injects)),
                      sc.based_on.split(":")[0])
    Console(width=max(Console().width, 100)).print(table)


@drill.command("validate")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check scenario FILES against the schema (default: every shipped scenario)."""
    bad = 0
    for path in files or tuple(scenario_paths()):
        try:
            sc = load_scenario(path)
        except ScenarioError as exc:
            click.echo(f"interlock: error: {exc}", err=True)
            bad += 1
            continue
        click.echo(f"ok {path}: {sc.id} ({sc.plant}, {len(sc.injects)} injects, "
                   f"{format_duration(sc.duration_s)})")
    if bad:
        sys.exit(2)


@drill.command("history")
@_db
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write the trends as PNG.")
@click.option("--campaign", help="Only the drills of this campaign.")
@click.option("--json", "as_json", is_flag=True, help="Print the trends as JSON.")
def history(db: Path | None, plot: Path | None, campaign: str | None, as_json: bool) -> None:
    """Trends of the stored drills: detection rate per technique, time to detect per month."""
    from interlock.drill.programme import (
        Programme,
        ProgrammeError,
        month_table,
        plot_history,
        summary,
        technique_table,
    )

    try:
        with Programme(db) as store:
            hist = store.history(campaign=campaign)
            path = store.path
    except ProgrammeError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps({
            "summary": summary(hist),
            "techniques": [{"technique": t.technique, "injects": t.injects, "detected": t.detected,
                            "detection_rate": t.detection_rate, "mean_ttd_s": t.mean_ttd_s}
                           for t in hist.techniques],
            "months": [{"month": m.month, "drills": m.drills, "mean_score": m.mean_score,
                        "detection_rate": m.detection_rate, "mean_ttd_s": m.mean_ttd_s}
                       for m in hist.months],
        }, indent=2))
        return
    console = Console()
    if not hist.drills:
        console.print(f"no drills recorded in {path} yet; run 'interlock drill'")
        return
    s = summary(hist)
    console.print(f"{s['drills']} drills in {path}: mean score {s['mean_score']:.1f}, "
                  f"detection rate {100 * float(s['detection_rate'] or 0):.0f} %, "
                  f"mean time to detect {_fmt_s(s['mean_ttd_s'])}")
    console.print(month_table(hist))
    console.print(technique_table(hist))
    if plot:
        console.print(f"plot: {plot_history(hist, plot)}")


@drill.command("campaign")
@click.option("--count", type=click.IntRange(min=1), default=120, show_default=True,
              help="Drills in the programme.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the programme: which scenarios, seeds and dates.")
@click.option("--start", "start_date", default=CAMPAIGN_START, show_default=True,
              help="First day of the half-year calendar (YYYY-MM-DD).")
@_db
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for each drill's report and score.json and the campaign's plot "
                   "(default: drills/campaign-<seed>).")
@click.option("--jobs", type=click.IntRange(min=1, max=32), default=1, show_default=True,
              help="Drills run side by side, each in its own range instance (127.I.0.0/16).")
def campaign(count: int, seed: int, start_date: str, db: Path | None, out: Path | None, jobs: int) -> None:
    """Run a seeded, randomized half-year programme of drills in fast mode and summarize it."""
    from interlock.drill.programme import (
        Programme,
        ProgrammeError,
        month_table,
        plot_history,
        summary,
        weakest,
    )

    try:
        start = datetime.fromisoformat(start_date).replace(tzinfo=UTC)
    except ValueError:
        _fail(f"--start {start_date!r}: give a date like 2026-01-05")
    try:
        scenarios = list_scenarios()
    except ScenarioError as exc:
        _fail(str(exc))
    if not scenarios:
        _fail("no scenarios shipped; give scenario files to 'interlock drill run'")
    out_dir = out or Path("drills") / f"campaign-{seed}"
    plan = campaign_plan(scenarios, count, seed, start)
    name = f"campaign-{seed}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    console = Console(stderr=True)
    try:
        Programme(db).close()  # a broken store fails now, not after the first drill
    except ProgrammeError as exc:
        _fail(str(exc))
    _runner()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("campaign", total=len(plan))
        if jobs == 1:
            for k, (when, sc, drill_seed) in enumerate(plan, 1):
                bar.update(task, description=f"{when:%Y-%m-%d} {sc.id:<28}")
                _run_one(sc, out_dir / f"{k:03d}-{sc.id}", seed=drill_seed, alerts=None, speed="max",
                         progress=False, db=db, store=True, campaign=name, started=when)
                bar.advance(task)
        else:
            _run_parallel(plan, out_dir, jobs, db, name, bar, task)
    with Programme(db) as store:
        hist = store.history(campaign=name)
    s = summary(hist)
    out_console = Console(width=None if sys.stdout.isatty() else 140)
    out_console.print(f"campaign {name}: {s['drills']} drills from {plan[0][0]:%Y-%m-%d} to "
                      f"{plan[-1][0]:%Y-%m-%d}, mean score {float(s['mean_score'] or 0):.1f}, "
                      f"detection rate {100 * float(s['detection_rate'] or 0):.0f} %, "
                      f"mean time to detect {_fmt_s(s['mean_ttd_s'])}, "
                      f"false alarms {s['false_alarms']}")
    out_console.print(month_table(hist))
    weak = weakest(hist)
    if weak:
        out_console.print("weakest techniques: " + ", ".join(
            f"{t.technique} {100 * t.detection_rate:.0f} %" for t in weak))
    out_console.print(f"plot: {plot_history(hist, out_dir / 'history.png')}")


def _drill_worker(args: tuple[Path, Path, int, int]) -> tuple[Path, int, Any, Any]:
    """One campaign drill in a worker process, in its own range instance (127.I.0.0/16)."""
    import logging

    from interlock.drill.runner import run_drill

    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    path, out_dir, drill_seed, instance = args
    scenario = load_scenario(path)
    record, score = run_drill(scenario, out_dir, seed=drill_seed, progress=False, store=False,
                              instance=instance)
    return path, drill_seed, record, score


def _run_parallel(plan: list[tuple[datetime, Scenario, int]], out_dir: Path, jobs: int, db: Path | None,
                  name: str, bar: Progress, task: TaskID) -> None:
    """Drills side by side: each worker owns one range instance; the store is written here only."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    from interlock.drill.programme import ProgrammeError, record_drill

    free = list(range(1, jobs + 1))
    pending: dict[Future[tuple[Path, int, Any, Any]], tuple[int, datetime, Scenario, int]] = {}
    queue = list(enumerate(plan, 1))
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while queue or pending:
            while queue and free:
                k, (when, sc, drill_seed) = queue.pop(0)
                assert sc.path is not None
                instance = free.pop()
                job = (sc.path, out_dir / f"{k:03d}-{sc.id}", drill_seed, instance)
                fut = pool.submit(_drill_worker, job)
                pending[fut] = (instance, when, sc, k)
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                instance, when, sc, k = pending.pop(fut)
                free.append(instance)
                _path, _seed, record, score = fut.result()
                try:
                    record_drill(record, sc, score, db, campaign=name, started=when,
                                 report_dir=(out_dir / f"{k:03d}-{sc.id}").resolve())
                except ProgrammeError as exc:
                    _fail(str(exc))
                bar.update(task, description=f"{when:%Y-%m-%d} {sc.id:<28}")
                bar.advance(task)


def campaign_plan(scenarios: list[Scenario], count: int, seed: int,
                  start: datetime) -> list[tuple[datetime, Scenario, int]]:
    """(date, scenario, seed) of each drill: dates spread over the half year (working hours),
    scenarios and seeds drawn from ``random.Random(seed)``, so a programme is reproducible."""
    rng = random.Random(seed)
    plan = []
    for k in range(count):
        day = start + timedelta(days=CAMPAIGN_DAYS * k / count)
        when = day.replace(hour=rng.randint(8, 16), minute=rng.choice((0, 15, 30, 45)), second=0,
                           microsecond=0)
        plan.append((when, rng.choice(scenarios), rng.randrange(2**31)))
    return plan
