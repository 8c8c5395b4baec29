"""``interlock respond PLAYBOOK INCIDENT``: run a response playbook against one incident.

Dry by default: every step is printed with its values filled in and nothing changes. With
``--execute`` each step is carried out in order and recorded, with its outcome, in the ledger
(kind ``analyst_action``, actor ``interlock respond``) unless ``--no-ledger``; the first step
that fails stops the playbook (later steps may depend on it) and the exit code is 1.

PLAYBOOK is a file or the name of a shipped playbook (``playbooks/NAME.yaml``). INCIDENT is an
incident JSON file, or the sequence number of an ``incident`` entry in the ledger.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import click

from interlock import __version__
from interlock.respond.playbook import (
    Incident,
    Playbook,
    PlaybookError,
    StepFailed,
    incident_from_body,
    incident_from_json,
    load_playbook,
    plan,
)

ACTOR = f"interlock respond {__version__}"


def _fail(message: str) -> NoReturn:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


def shipped_playbooks() -> Path | None:
    """The packaged ``playbooks/`` (wheel installs), else the source tree's (editable)."""
    packaged = Path(str(resources.files("interlock") / "playbooks"))
    source = Path(__file__).resolve().parents[3] / "playbooks"
    for candidate in (packaged, source):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def _playbook(spec: str) -> Playbook:
    path = Path(spec)
    if not path.exists() and "/" not in spec:
        shipped = shipped_playbooks()
        named = shipped / f"{spec.removesuffix('.yaml')}.yaml" if shipped else None
        if named is None or not named.is_file():
            known = sorted(p.stem for p in shipped.glob("*.yaml")) if shipped else []
            _fail(f"playbook {spec!r}: no such file or shipped playbook"
                  + (f" (shipped: {', '.join(known)})" if known else ""))
        path = named
    try:
        return load_playbook(path)
    except PlaybookError as e:
        _fail(str(e))


def _incident(spec: str, ledger_file: Path | None) -> Incident:
    path = Path(spec)
    if path.is_file():
        try:
            return incident_from_json(path)
        except PlaybookError as e:
            _fail(str(e))
    if not spec.isdigit():
        _fail(f"incident {spec!r}: not a file, nor a ledger sequence number; give an incident "
              "JSON file or the seq of an incident entry (interlock evidence ...)")
    from interlock.evidence.keys import default_ledger_path
    from interlock.evidence.ledger import Ledger, LedgerError

    where = ledger_file if ledger_file is not None else default_ledger_path()
    try:
        with Ledger(where, create=False) as ledger:
            for entry in ledger:
                if entry.seq == int(spec):
                    if entry.kind != "incident":
                        _fail(f"{where}: entry {spec} is a {entry.kind}, not an incident")
                    try:
                        return incident_from_body({"id": f"ledger:{spec}", **entry.body},
                                                  spec, f"{where} seq {spec}")
                    except PlaybookError as e:
                        _fail(str(e))
    except LedgerError as e:
        _fail(str(e))
    _fail(f"{where}: no entry with seq {spec}; check the incident id or --ledger")


@click.command()
@click.argument("playbook_spec", metavar="PLAYBOOK")
@click.argument("incident_spec", metavar="INCIDENT")
@click.option("--execute", is_flag=True, help="Carry the steps out (default: print them only).")
@click.option("--ledger", "ledger_file", type=click.Path(path_type=Path), default=None,
              help="The ledger to read INCIDENT from and to record the steps in "
              "[default: ledger.sqlite in the per-user data folder].")
@click.option("--no-ledger", is_flag=True, help="Do not record the steps in any ledger.")
def respond(playbook_spec: str, incident_spec: str, execute: bool, ledger_file: Path | None,
            no_ledger: bool) -> None:
    """Run response PLAYBOOK (block, quarantine, safe_state, notify) against INCIDENT; dry
    unless --execute."""
    playbook = _playbook(playbook_spec)
    incident = _incident(incident_spec, ledger_file)
    actions = plan(playbook, incident, echo=click.echo)
    head = "executing" if execute else "dry run (add --execute to act)"
    click.echo(f"playbook {playbook.name} for incident {incident.id} ({incident.attacker} -> "
               f"{incident.target}): {head}", err=True)
    if not execute:
        for i, action in enumerate(actions, start=1):
            click.echo(f"would {i}. {action.text}")
        return
    ledger = None if no_ledger else _open_ledger(ledger_file)
    failed = False
    try:
        for i, action in enumerate(actions, start=1):
            try:
                outcome, ok = action.run(), True
            except StepFailed as e:
                outcome, ok = str(e), False
            click.echo(f"{'done' if ok else 'FAILED'} {i}. {action.text}: {outcome}")
            if ledger is not None:
                _record(ledger, playbook, incident, i, action.step.kind, action.step.name,
                        action.text, outcome, ok)
            if not ok:
                failed = True
                click.echo(f"interlock respond: stopped at step {i}; later steps not taken",
                           err=True)
                break
    finally:
        if ledger is not None:
            ledger.close()
    if failed:
        sys.exit(1)


def _record(ledger: Any, playbook: Playbook, incident: Incident, number: int, kind: str,
            name: str, text: str, outcome: str, ok: bool) -> None:
    from interlock.evidence.ledger import LedgerError

    body = {"playbook": playbook.name, "playbook_file": playbook.source, "step": number,
            "kind": kind, "name": name, "incident": incident.id, "attacker": incident.attacker,
            "target": incident.target, "action": text, "outcome": outcome, "ok": ok}
    try:
        ledger.append("analyst_action", body, actor=ACTOR)
    except LedgerError as e:
        # the step is done; say it loudly rather than pretend it was recorded
        click.echo(f"interlock respond: step {number} done but not recorded: {e}", err=True)


def _open_ledger(path: Path | None) -> Any:
    from interlock.evidence.keys import default_ledger_path
    from interlock.evidence.ledger import Ledger, LedgerError

    try:
        return Ledger(path if path is not None else default_ledger_path())
    except LedgerError as exc:
        _fail(f"{exc} (or pass --no-ledger)")
