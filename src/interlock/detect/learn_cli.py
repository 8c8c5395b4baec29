"""``interlock learn``: learn a baseline from benign captures and write it as YAML.

The baseline (:mod:`interlock.detect.network.baseline`) is what ``interlock detect --baseline``
compares traffic with. Learn on captures known to be benign: whatever the plant did while
learning is what it is allowed to do. With ``--policy`` it writes a firewall policy instead
(:mod:`interlock.respond.learned`, docs/firewall.md): exactly the Modbus requests seen allowed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from interlock.capture.decode import decode_path
from interlock.capture.pcap import CaptureError
from interlock.detect.network.baseline import Baseline


def _fail(message: str) -> NoReturn:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


@click.command()
@click.argument("captures", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Baseline file to write (YAML).")
@click.option("--margin", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Widen each learned value range by this share of its span.")
@click.option("--relative-margin", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="... or by this share of its largest magnitude, if that is more.")
@click.option("--enum-max", type=click.IntRange(min=2), default=8, show_default=True,
              help="A point with at most this many distinct values is enumerated (states).")
@click.option("--period-tolerance", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Polling period tolerance, as a share of the median period.")
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
@click.option("--policy", "as_policy", is_flag=True,
              help="Write a firewall policy (interlock firewall --policy) instead of a baseline.")
@click.option("--target", metavar="ADDR", default=None,
              help="With --policy: learn only requests sent to this PLC address.")
def learn(captures: tuple[Path, ...], output: Path, margin: float, relative_margin: float,
          enum_max: int, period_tolerance: float, quiet: bool, as_policy: bool,
          target: str | None) -> None:
    """Learn a baseline (who talks to which unit, functions, addresses, polling periods and
    values) from benign pcap/pcapng CAPTURES; write it to -o FILE."""
    if not captures:
        _fail("no capture given: name one or more benign pcap/pcapng files of the plant")
    if target is not None and not as_policy:
        _fail("--target only applies to --policy; add --policy or drop --target")
    if as_policy:
        _learn_policy(captures, output, target, quiet)
        return
    baseline = Baseline(margin=margin, relative_margin=relative_margin, enum_max=enum_max,
                        period_tolerance=period_tolerance)
    for path in captures:
        batches, _ = decode_path(path)
        try:
            baseline.fit(batches, source=str(path))
        except CaptureError as exc:
            # A damaged benign capture would teach a partial plant: refuse rather than guess.
            _fail(f"{exc} (the baseline was not written; learn from undamaged captures)")
    try:
        output.write_text(baseline.to_yaml(), encoding="utf-8")
    except OSError as exc:
        _fail(f"{output}: cannot write ({exc.strerror})")
    if not quiet:
        click.echo(f"interlock learn: {len(baseline.links_)} links, {len(baseline.points_)} points "
                   f"from {len(captures)} capture(s) -> {output}", err=True)


def _learn_policy(captures: tuple[Path, ...], output: Path, target: str | None,
                  quiet: bool) -> None:
    from interlock.respond.learned import PolicyLearner, request_of_record

    learner = PolicyLearner(comment=f"from {', '.join(map(str, captures))}"
                            + (f", requests to {target}" if target else ""))
    for path in captures:
        batches, _ = decode_path(path)
        try:
            for batch in batches:
                for rec in batch.to_pylist():
                    req = request_of_record(rec)
                    if req is not None and (target is None or rec.get("dst") == target):
                        learner.observe(str(rec["src"]), req)
        except CaptureError as exc:
            _fail(f"{exc} (the policy was not written; learn from undamaged captures)")
    if not learner.requests:
        # an empty allow list would block the whole plant the moment it is enforced
        _fail("no Modbus requests in the captures" + (f" to {target}" if target else "")
              + "; the policy was not written (check the captures or --target)")
    try:
        output.write_text(learner.to_yaml(), encoding="utf-8")
    except OSError as exc:
        _fail(f"{output}: cannot write ({exc.strerror})")
    if not quiet:
        click.echo(f"interlock learn: policy with {len(learner.rules())} rules from "
                   f"{learner.requests} requests -> {output}", err=True)
