"""``interlock detect``: decode captures, run the detection rules, write alerts.

Alerts go to ``-o FILE`` (or stdout) as JSON lines, Suricata eve JSON or CEF, and with
``--syslog HOST:PORT`` also as CEF in RFC 5424 syslog datagrams. The exit code is 0 whether or
not anything was found; bad input (a broken rule, a damaged capture, a bad option) ends with one
line on stderr and exit code 2, after writing the alerts of what was decoded.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from interlock import __version__
from interlock.capture.decode import decode_path
from interlock.capture.pcap import CaptureError
from interlock.capture.records import CONNECTION_PROTOCOL
from interlock.detect.alerts import (
    SEVERITY_RANK,
    Alert,
    AlertWriter,
    CefAlertWriter,
    EveAlertWriter,
    JsonlAlertWriter,
    SyslogSender,
    parse_host_port,
)
from interlock.detect.incidents import group_incidents
from interlock.detect.network.baseline import Baseline, BaselineDetector, BaselineError, load_baseline
from interlock.detect.network.rules import Rule, RuleEngine, RuleError, load_rules

FORMATS = {"jsonl": JsonlAlertWriter, "eve": EveAlertWriter, "cef": CefAlertWriter}
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
MAX_INCIDENT_ROWS = 20


def _fail(message: str) -> NoReturn:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


def default_rules_dir() -> Path | None:
    """The shipped rules: a copy inside the package if the build put one there, else the
    ``rules/`` folder of the source tree this module runs from (editable installs)."""
    packaged = Path(str(resources.files("interlock") / "rules"))
    source = Path(__file__).resolve().parents[3] / "rules"
    for candidate in (packaged, source):
        if candidate.is_dir() and any(candidate.rglob("*.yml")):
            return candidate
    return None


def _parse_settings(settings: tuple[str, ...]) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for item in settings:
        name, sep, values = item.partition("=")
        if not sep or not name.strip():
            _fail(f"--set {item!r}: expected OPTION=VALUE[,VALUE...], e.g. allowed_masters=10.0.0.1")
        options.setdefault(name.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return options


F = TypeVar("F", bound=Callable[..., Any])


def detection_options(f: F) -> F:
    """Options every detecting command takes (detect, sensor): rules, alert outputs, baseline."""
    options = [
        click.option("--rules", "rules_dir", type=click.Path(path_type=Path),
                     help="Directory of rule files (default: the rules shipped with Interlock)."),
        click.option("-o", "--output", type=click.Path(path_type=Path),
                     help="Alert file (default: stdout, unless --syslog is given)."),
        click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="jsonl",
                     show_default=True,
                     help="jsonl: Interlock alerts; eve: Suricata eve JSON; cef: ArcSight CEF lines."),
        click.option("--syslog", metavar="HOST:PORT",
                     help="Also send every alert as CEF in an RFC 5424 syslog message over UDP."),
        click.option("--set", "settings", multiple=True, metavar="OPTION=VALUE[,VALUE]",
                     help="Fill a rule option, e.g. --set allowed_masters=10.0.0.1,10.0.0.2 "
                     "(repeatable)."),
        click.option("--baseline", "baseline_file", type=click.Path(path_type=Path),
                     help="Also flag deviations from a baseline made by interlock learn (YAML)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@click.argument("captures", nargs=-1, type=click.Path(path_type=Path))
@detection_options
@click.option("--incident-gap", "gap_min", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Minutes without alerts after which the same attacker and "
              "target start a new incident.")
@click.option("--sample", is_flag=True, help="Also run on the sample capture bundled with Interlock.")
@click.option("--ledger", "ledger_file", type=click.Path(path_type=Path), default=None,
              help="Record the alerts in this tamper-evident ledger [default: ledger.sqlite in the "
              "per-user data folder, e.g. ~/.local/share/interlock/].")
@click.option("--no-ledger", is_flag=True, help="Do not record the alerts in any ledger.")
@click.option("--quiet", "-q", is_flag=True, help="No summary tables on stderr.")
def detect(
    captures: tuple[Path, ...],
    rules_dir: Path | None,
    output: Path | None,
    fmt: str,
    syslog: str | None,
    settings: tuple[str, ...],
    gap_min: float,
    sample: bool,
    baseline_file: Path | None,
    ledger_file: Path | None,
    no_ledger: bool,
    quiet: bool,
) -> None:
    """Detect attacks in pcap/pcapng CAPTURES with the detection rules; write alerts."""
    if sample:
        captures = (*captures, Path(str(resources.files("interlock") / "data" / "sample.pcap")))
    if not captures:
        _fail("no capture given: name one or more pcap/pcapng files, or use --sample")
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
        RuleEngine(rules, options=options)  # checks option names and values before any work
    except ValueError as exc:
        _fail(f"--set: {exc}")
    baseline: Baseline | None = None
    if baseline_file is not None:
        try:
            baseline = load_baseline(baseline_file)
        except BaselineError as exc:
            _fail(f"{exc} (fix the file or learn it again with interlock learn)")

    alerts: list[Alert] = []
    decoded: list[tuple[Path, int, int]] = []
    with ExitStack() as stack:
        writers, _out = open_writers(stack, output, fmt, syslog)

        def emit(found: list[Alert]) -> None:
            for alert in found:
                for w in writers:
                    try:
                        w.write(alert)
                    except OSError as exc:  # a syslog target that refuses (ICMP unreachable)
                        if not isinstance(w, SyslogSender):
                            raise
                        _fail(f"--syslog {syslog}: {exc.strerror or exc}")
            alerts.extend(found)

        for path in captures:
            engine = RuleEngine(rules, options=options, capture=str(path))
            learned = BaselineDetector(baseline, capture=str(path)) if baseline is not None else None
            batches, decoder = decode_path(path)
            try:
                for batch in batches:
                    emit(engine.process(batch))
                    if learned is not None:
                        emit(learned.process(batch))
            except CaptureError as exc:
                emit(engine.finish())
                if learned is not None:
                    emit(learned.finish())
                stack.close()
                _fail(str(exc))
            emit(engine.finish())
            if learned is not None:
                emit(learned.finish())
            ops = decoder.stats.operations  # ICS operations; connection records are no operation
            decoded.append((path, decoder.stats.frames,
                            sum(n for p, n in ops.items() if p != CONNECTION_PROTOCOL)))
    recorded = None if no_ledger else _record(alerts, ledger_file, gap_min)
    if not quiet:
        _summary(rules, alerts, decoded, gap_min)
        if recorded:
            Console(stderr=True).print(recorded)


def open_writers(
    stack: ExitStack, output: Path | None, fmt: str, syslog: str | None
) -> tuple[list[AlertWriter], IO[str] | None]:
    """The alert writers the options ask for (closed with ``stack``), and the text stream of
    the file or stdout writer if there is one (a live sensor flushes it after each alert)."""
    writers: list[AlertWriter] = []
    out: IO[str] | None = None
    if syslog is not None:
        try:
            host, port = parse_host_port(syslog)
            sender = SyslogSender(host, port)
        except (ValueError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            _fail(f"--syslog {syslog}: {reason}")
        stack.callback(sender.close)
        writers.append(sender)
    if output is not None or syslog is None:
        try:
            out = stack.enter_context(output.open("w", encoding="utf-8")) if output else sys.stdout
        except OSError as exc:
            _fail(f"{output}: cannot write ({exc.strerror})")
        writer = FORMATS[fmt](out)
        stack.callback(writer.close)
        writers.append(writer)
    return writers, out


def _record(alerts: list[Alert], ledger_file: Path | None, gap_min: float) -> str:
    """Append the alerts, then the incidents that group them (by alert id), to the ledger in
    one transaction; say where they went."""
    from interlock.evidence.keys import default_ledger_path
    from interlock.evidence.ledger import Ledger, LedgerError

    path = ledger_file if ledger_file is not None else default_ledger_path()
    if not alerts:
        return ""
    try:
        with Ledger(path) as ledger:
            items: list[tuple[str, dict[str, Any]]] = [("alert", a.to_dict()) for a in alerts]
            items += [
                ("incident", {
                    "number": inc.number, "attacker": inc.src, "target": inc.dst,
                    "first_ts": inc.first_ts, "last_ts": inc.last_ts,
                    "severity": inc.severity, "techniques": list(inc.techniques),
                    "alerts": [a.digest() for a in inc.alerts],
                })
                for inc in group_incidents(alerts, gap_s=gap_min * 60)
            ]
            entries = ledger.extend(items, actor=f"interlock detect {__version__}")
    except LedgerError as exc:
        _fail(f"{exc} (alerts were written; record them later or pass --no-ledger)")
    return (f"{len(alerts)} alerts and {len(entries) - len(alerts)} incidents recorded in the ledger "
            f"{path} (seq {entries[0].seq}..{entries[-1].seq})")


def _summary(rules: tuple[Rule, ...], alerts: list[Alert], decoded: list[tuple[Path, int, int]],
             gap_min: float) -> None:
    err = Console(stderr=True)
    if not err.is_terminal:
        err.width = 140  # logs and pipes: keep each row on one line
    frames = sum(d[1] for d in decoded)
    ops = sum(d[2] for d in decoded)
    err.print(f"interlock detect: {len(rules)} rules over {len(decoded)} capture(s), "
              f"{frames} frames, {ops} operations")
    by_rule: Counter[str] = Counter(a.rule for a in alerts)
    frames_by_rule: Counter[str] = Counter()
    for a in alerts:
        frames_by_rule[a.rule] += a.count
    if alerts:
        table = Table(title="alerts per rule")
        for col in ("severity", "technique", "rule", "alerts", "operations"):
            table.add_column(col, justify="right" if col in ("alerts", "operations") else "left")
        first = {a.rule: a for a in reversed(alerts)}
        for rule_id, n in sorted(by_rule.items(), key=lambda kv: (-SEVERITY_RANK[first[kv[0]].severity],
                                                                   -kv[1])):
            a = first[rule_id]
            table.add_row(f"[{SEVERITY_STYLE[a.severity]}]{a.severity}[/]",
                          f"{a.technique} {a.technique_name}", a.title, str(n), str(frames_by_rule[rule_id]))
        err.print(table)
    incidents = group_incidents(alerts, gap_s=gap_min * 60)
    if incidents:
        table = Table(title="incidents")
        for col in ("#", "attacker", "target", "first", "last", "alerts", "severity", "techniques"):
            table.add_column(col)
        for inc in incidents[:MAX_INCIDENT_ROWS]:
            table.add_row(str(inc.number), inc.src, ", ".join(inc.assets[:3]), _time(inc.first_ts),
                          _time(inc.last_ts), str(len(inc.alerts)),
                          f"[{SEVERITY_STYLE[inc.severity]}]{inc.severity}[/]", ", ".join(inc.techniques))
        err.print(table)
        if len(incidents) > MAX_INCIDENT_ROWS:
            err.print(f"... {len(incidents) - MAX_INCIDENT_ROWS} more incidents")
    err.print(f"{len(alerts)} alerts in {len(incidents)} incidents (same attacker and target, "
              f"a new incident after {gap_min:g} min without alerts)")


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
