"""``interlock evidence``: verify, append to, show and checkpoint the incident ledger.

Exit codes: 0 done (verify: intact), 1 verify found tampering, 2 bad input (no such ledger, a
corrupt or non-ledger file, a bad key, bad JSON). Errors are one line on stderr.

``ledger_option`` is the one ``--ledger PATH`` option every command that records alerts takes,
so they all default to the same per-user ledger.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from interlock.evidence import keys
from interlock.evidence.ledger import Anchor, EntryKind, Ledger, LedgerError, VerifyReport

F = TypeVar("F", bound=Callable[..., Any])
MAX_FINDINGS_SHOWN = 20


def ledger_option(f: F) -> F:
    """``--ledger PATH``; ``None`` means the per-user default (resolve with ``ledger_path``)."""
    return click.option(
        "--ledger",
        type=click.Path(path_type=Path),
        default=None,
        help="Ledger database [default: ledger.sqlite in the per-user data folder, "
        "e.g. ~/.local/share/interlock/].",
    )(f)


def key_option(f: F) -> F:
    return click.option(
        "--key",
        type=click.Path(path_type=Path),
        default=None,
        help="Ed25519 signing key (PEM), created if absent "
        "[default: keys/ledger-ed25519.pem in the per-user data folder].",
    )(f)


def ledger_path(ledger: Path | None) -> Path:
    return ledger if ledger is not None else keys.default_ledger_path()


def fail(message: str) -> NoReturn:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


def _open(ledger: Path | None, key: Path | None, *, create: bool) -> Ledger:
    try:
        return Ledger(ledger_path(ledger), key=key, create=create)
    except LedgerError as exc:
        fail(str(exc))


@click.group()
def evidence() -> None:
    """Prove: the tamper-evident incident ledger."""


@evidence.command()
@click.argument("case", required=False, type=click.Path(path_type=Path))
@ledger_option
@key_option
@click.option(
    "--pubkey",
    "pubkeys",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Trusted public key (PEM), e.g. a copy kept off this machine; repeat for rotated keys "
    "[default: the .pub.pem next to --key].",
)
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    help="A head kept elsewhere: HASH, SEQ:HASH, or a file holding a checkpoint line "
    "(from `interlock evidence checkpoint`); repeatable.",
)
def verify(
    case: Path | None,
    ledger: Path | None,
    key: Path | None,
    pubkeys: tuple[Path, ...],
    anchors: tuple[str, ...],
) -> None:
    """Check the ledger (hash chain, checkpoints, anchors), or CASE, a case file (.zip).

    Exit 1 naming the first bad entry, or every file of the case file that fails.
    """
    try:
        trusted = {keys.load_public(p) for p in pubkeys} or None
    except keys.KeyFileError as exc:
        fail(str(exc))
    if case is not None:
        if anchors or ledger is not None:
            fail("CASE: a case file is checked on its own; drop --ledger and --anchor")
        _verify_case(case, trusted)
    parsed = [_anchor(a) for a in anchors]
    with _open(ledger, key, create=False) as led:
        try:
            report = led.verify(trusted_keys=trusted, anchors=parsed)
        except LedgerError as exc:
            fail(str(exc))
    _print_report(report)
    sys.exit(0 if report.ok else 1)


def _verify_case(case: Path, trusted: set[bytes] | None) -> NoReturn:
    from interlock.evidence.bundle import CaseError, verify_case  # stix2 loads only when needed

    try:
        report = verify_case(case, trusted)
    except CaseError as exc:
        fail(str(exc))
    if report.ok:
        click.echo(f"{case}: intact")
    else:
        click.echo(f"{case}: TAMPERED: {len(report.failures)} problem(s)")
        for failure in report.failures:
            click.echo(f"  FAIL {failure}")
    for line in report.checked:
        click.echo(f"  ok   {line}")
    for note in report.notes:
        click.echo(f"note: {note}")
    sys.exit(0 if report.ok else 1)


def _anchor(text: str) -> Anchor:
    source = text
    path = Path(text)
    if path.is_file():
        try:
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{path}: cannot read the anchor ({exc})")
        if not lines:
            fail(f"{path}: empty anchor file; it should hold a line from `interlock evidence checkpoint`")
        text, source = lines[-1], f"{path}: last line"
    try:
        return Anchor.parse(text)
    except ValueError as exc:
        fail(f"--anchor {source}: not HASH, SEQ:HASH or a checkpoint line ({exc})")


def _print_report(r: VerifyReport) -> None:
    head = f"head seq {r.head_seq}, hash {r.head_hash.hex()}"
    if r.ok:
        click.echo(f"{r.path}: intact: {r.entries} entries ({head})")
    else:
        first = r.first
        assert first is not None
        click.echo(f"{r.path}: TAMPERED: first bad entry {first}")
        for f in sorted(r.findings, key=lambda f: (f.seq is None, f.seq or 0))[1:MAX_FINDINGS_SHOWN]:
            click.echo(f"  also {f}")
        if len(r.findings) > MAX_FINDINGS_SHOWN:
            click.echo(f"  ... {len(r.findings) - MAX_FINDINGS_SHOWN} more")
        click.echo(f"  read {r.entries} entries ({head})")
    cp = r.last_checkpoint
    if cp is not None:
        click.echo(
            f"checkpoints: {r.checkpoints} verified, last at seq {cp.seq} ({cp.ts}) by key {cp.key_id}"
        )
    trust = ", ".join(r.trusted_keys) or "the keys stored with the checkpoints"
    click.echo(f"signatures checked against: {trust}")
    for note in r.notes:
        click.echo(f"note: {note}")


@evidence.command()
@ledger_option
@key_option
@click.option(
    "--kind",
    type=click.Choice([k.value for k in EntryKind]),
    default=EntryKind.ANALYST_ACTION.value,
    show_default=True,
)
@click.option("--body", required=True, help="The entry as a JSON object, or - to read it from stdin.")
@click.option("--actor", default=None, help="Who records it [default: the login name].")
def append(ledger: Path | None, key: Path | None, kind: str, body: str, actor: str | None) -> None:
    """Record one entry (an analyst's note or action); prints its seq and hash."""
    text = sys.stdin.read() if body == "-" else body
    try:
        obj = json.loads(text)
    except ValueError as exc:
        fail(f'--body: not JSON ({exc}); give an object such as \'{{"note": "..."}}\'')
    if not isinstance(obj, dict):
        fail('--body: a JSON object is needed, such as \'{"note": "..."}\'')
    with _open(ledger, key, create=True) as led:
        try:
            entry = led.append(kind, obj, actor=actor or _login())
        except (LedgerError, ValueError) as exc:
            fail(str(exc))
    click.echo(f"seq {entry.seq} hash {entry.hash.hex()}")


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


@evidence.command()
@ledger_option
@click.option("--tail", "tail", type=click.IntRange(min=1), default=None, help="Only the last N entries.")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True)
def show(ledger: Path | None, tail: int | None, fmt: str) -> None:
    """List entries as stored (run verify to check them)."""
    with _open(ledger, None, create=False) as led:
        try:
            entries = led.tail(tail) if tail is not None else list(led)
        except LedgerError as exc:
            fail(str(exc))
    for e in entries:
        if fmt == "jsonl":
            click.echo(json.dumps(e.to_json(), sort_keys=True, ensure_ascii=False))
        else:
            body = json.dumps(dict(e.body), sort_keys=True, ensure_ascii=False)
            click.echo(f"{e.seq:>6}  {e.ts}  {e.kind:<14} {e.actor:<16} {e.hash.hex()[:12]}  {body}")


@evidence.command()
@ledger_option
@key_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Also append the anchor line to this file (keep it on another machine).",
)
def checkpoint(ledger: Path | None, key: Path | None, output: Path | None) -> None:
    """Sign the current head now and print it as an anchor line to keep elsewhere."""
    with _open(ledger, key, create=False) as led:
        try:
            cp = led.checkpoint()
        except LedgerError as exc:
            fail(str(exc))
    line = cp.to_line()
    if output is not None:
        try:
            with output.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            fail(f"{output}: cannot write ({exc.strerror})")
    click.echo(line)
    click.echo(
        f"checkpoint at seq {cp.seq} signed by key {cp.key_id}; keep the line above (or {cp.seq}:{cp.hash}) "
        "elsewhere and pass it to `interlock evidence verify --anchor`",
        err=True,
    )


@evidence.command("key")
@key_option
def key_cmd(key: Path | None) -> None:
    """Show the signing key's files and id, creating the key if absent."""
    path = key or keys.default_key_path()
    try:
        private = keys.load_or_create(path)
    except keys.KeyFileError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{path}: cannot create the signing key ({exc.strerror})")
    click.echo(f"private key: {path}")
    click.echo(f"public key:  {keys.public_path(path)}")
    click.echo(f"key id:      {keys.key_id(keys.raw_public(private.public_key()))}")


@evidence.command()
@click.argument("incident_arg", metavar="[INCIDENT]", required=False, type=click.IntRange(min=1))
@click.option(
    "--incident",
    "incident_opt",
    type=click.IntRange(min=1),
    default=None,
    help="Incident number as `interlock detect` prints it (or give it as INCIDENT).",
)
@click.option(
    "--alerts",
    "alerts_path",
    default=None,
    type=click.Path(path_type=Path),
    help="Alerts as JSON lines, from `interlock detect -o FILE` (--format jsonl) "
    "[default: the incident as the latest `interlock detect --ledger` run recorded it].",
)
@click.option(
    "--capture",
    type=click.Path(path_type=Path),
    default=None,
    help="The capture the alerts were made from [default: the alerts' `capture` field].",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Case file (.zip).")
@ledger_option
@key_option
@click.option(
    "--margin",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds of the incident's flows kept before the first and after the last alert.",
)
@click.option(
    "--incident-gap",
    "gap_min",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Minutes without alerts that start a new incident (as detect).",
)
@click.option("--actor", default=None, help="Who exports [default: the login name].")
def bundle(
    incident_arg: int | None,
    incident_opt: int | None,
    alerts_path: Path | None,
    capture: Path | None,
    output: Path,
    ledger: Path | None,
    key: Path | None,
    margin: float,
    gap_min: float,
    actor: str | None,
) -> None:
    """Export one incident as a signed case file and record the export in the ledger."""
    from interlock.evidence.bundle import (
        CaseError,
        find_incident,
        incident_from_ledger,
        load_alerts,
        make_case,
    )

    if (incident_arg is None) == (incident_opt is None):
        fail("give the incident number once: INCIDENT or --incident N (as `interlock detect` prints)")
    number = incident_arg if incident_arg is not None else incident_opt
    assert number is not None
    try:
        if alerts_path is None:
            incident = incident_from_ledger(ledger_path(ledger), number)
        else:
            incident = find_incident(load_alerts(alerts_path), number, gap_min * 60)
        if capture is None:
            named = {a.capture for a in incident.alerts}
            if len(named) != 1 or None in named:
                where = alerts_path or 'the ledger'
                fail(f"{where}: the alerts do not name one capture file; pass --capture")
            capture = Path(str(named.pop()))
        if not capture.is_file():
            fail(f"{capture}: no such capture file; pass --capture")
        summary = make_case(
            output,
            incident,
            capture,
            ledger=ledger_path(ledger),
            key=key,
            actor=actor or _login(),
            margin_s=margin,
        )
    except CaseError as exc:
        fail(str(exc))
    click.echo(
        f"{output}: incident {number} ({incident.src} -> {incident.dst}, {len(incident.alerts)} alerts), "
        f"{summary.frames} frames, {summary.records} records, {len(summary.files) + 2} files"
    )
    click.echo(
        f"ledger entry seq {summary.ledger_seq}, checkpoint seq {summary.checkpoint_seq}, "
        f"signed by key {summary.key_id}"
    )
