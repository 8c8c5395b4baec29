"""``interlock sensor``: ``interlock detect`` on live traffic, captured by dumpcap.

Alerts are written (and flushed) as the detectors report them, in the formats of ``detect``;
the sensor stops on SIGINT or SIGTERM, after ``--duration`` seconds or ``--count`` frames, closes
the behaviours still open and prints the same summary as ``detect``. Refused or impossible
captures (no dumpcap, no permission, unknown interface) end with one line and exit code 2.
"""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import IO

import click

from interlock.detect.alerts import Alert, SyslogSender
from interlock.detect.cli import (
    _fail,
    _parse_settings,
    _record,
    _summary,
    default_rules_dir,
    detection_options,
    open_writers,
)
from interlock.detect.network.baseline import BaselineDetector, BaselineError, load_baseline
from interlock.detect.network.rules import RuleEngine, RuleError, load_rules
from interlock.detect.sensor import Detector, Sensor, SensorError, check_interface, dumpcap_command


@click.command()
@click.option("-i", "--interface", "iface", required=True,
              help="Interface to capture on: lo, or one inside the range's network namespace.")
@click.option("-f", "--filter", "bpf", metavar="BPF", help="Capture filter, e.g. 'tcp port 502'.")
@detection_options
@click.option("--duration", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many seconds of capture.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many captured frames.")
@click.option("--allow-any-interface", "allow_any", is_flag=True,
              help="Capture on an interface outside loopback and the range's namespaces too.")
@click.option("--incident-gap", "gap_min", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Minutes without alerts that start a new incident (summary).")
@click.option("--ledger", "ledger_file", type=click.Path(path_type=Path), default=None,
              help="Record the alerts, when the sensor stops, in this tamper-evident ledger "
              "[default: ledger.sqlite in the per-user data folder].")
@click.option("--no-ledger", is_flag=True, help="Do not record the alerts in any ledger.")
@click.option("--quiet", "-q", is_flag=True, help="No start line and no summary on stderr.")
def sensor(
    iface: str,
    bpf: str | None,
    rules_dir: Path | None,
    output: Path | None,
    fmt: str,
    syslog: str | None,
    settings: tuple[str, ...],
    baseline_file: Path | None,
    duration: float | None,
    count: int | None,
    allow_any: bool,
    gap_min: float,
    ledger_file: Path | None,
    no_ledger: bool,
    quiet: bool,
) -> None:
    """Capture live traffic on an interface and detect attacks as they happen; write alerts."""
    try:
        check_interface(iface, allow_any)
        cmd = dumpcap_command(iface, bpf, count)
    except SensorError as exc:
        _fail(str(exc))
    if rules_dir is None:
        rules_dir = default_rules_dir()
        if rules_dir is None:
            _fail("no rules found next to this installation: pass --rules DIR")
    try:
        rules = load_rules(rules_dir)
    except RuleError as exc:
        _fail(str(exc))
    options = _parse_settings(settings)
    name = f"live:{iface}"
    try:
        # Live: a scan or flood is reported the moment it crosses its threshold, not when it ends.
        detectors: list[Detector] = [RuleEngine(rules, options=options, capture=name, early=True)]
    except ValueError as exc:
        _fail(f"--set: {exc}")
    if baseline_file is not None:
        try:
            detectors.append(BaselineDetector(load_baseline(baseline_file), capture=name))
        except BaselineError as exc:
            _fail(f"{exc} (fix the file or learn it again with interlock learn)")

    alerts: list[Alert] = []
    with ExitStack() as stack:
        writers, out = open_writers(stack, output, fmt, syslog)
        outs: list[IO[str]] = [out] if out is not None else []

        def emit(found: list[Alert]) -> None:
            for alert in found:
                for w in writers:
                    try:
                        w.write(alert)
                    except OSError:  # a syslog target that refuses must not stop the sensor
                        if not isinstance(w, SyslogSender):
                            raise
            if found:
                for o in outs:
                    o.flush()  # a live alert is worth nothing in a buffer
            alerts.extend(found)

        def started() -> None:
            if not quiet:
                click.echo(f"interlock sensor: capturing on {iface}"
                           + (f" ({bpf})" if bpf else "") + ", stop with Ctrl-C", err=True)

        live = Sensor(cmd, detectors, emit, on_start=started)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            live.stop()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            stats = live.run(duration)
        except SensorError as exc:
            stack.close()
            _fail(str(exc))
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    recorded = None if no_ledger else _record(alerts, ledger_file, gap_min)
    if not quiet:
        _summary(rules, alerts, [(Path(name), stats.frames, stats.operations)], gap_min)
        if recorded:
            click.echo(recorded, err=True)
