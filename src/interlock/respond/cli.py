"""``interlock firewall``: run the inline Modbus/TCP firewall in front of a PLC.

Alerts go to ``--alerts FILE`` (JSON lines, appended) or standard output; status goes to
standard error. Enforce mode needs a policy: without one it would allow everything and call
that enforcement.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from interlock.detect.alerts import Alert, JsonlAlertWriter
from interlock.respond.firewall import Firewall, FirewallConfig, Mode
from interlock.respond.policy import MONITOR_POLICY, PolicyError, load_policy


def _fail(message: str) -> NoReturn:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


def parse_endpoint(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        _fail(f"{option} {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:5020")
    return host, int(port)


@click.command()
@click.option("--listen", required=True, metavar="ADDR:PORT", help="Where clients connect.")
@click.option("--upstream", required=True, metavar="ADDR:PORT", help="The PLC or gateway.")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), default=None,
              help="Policy file (YAML, see docs/firewall.md). Required in enforce mode.")
@click.option("--mode", type=click.Choice(["enforce", "monitor"]), default="enforce",
              show_default=True, help="monitor alerts on what enforce would block, and forwards it.")
@click.option("--alerts", "alerts_path", type=click.Path(path_type=Path), default=None,
              help="Append alerts (JSON lines) here; standard output if absent.")
@click.option("--timeout", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="Seconds to wait for the upstream's response before answering 0x0B.")
@click.option("--ledger", "ledger_file", type=click.Path(path_type=Path), default=None,
              help="Record every alert in this tamper-evident ledger, within a second "
              "[default: ledger.sqlite in the per-user data folder].")
@click.option("--no-ledger", is_flag=True, help="Do not record the alerts in any ledger.")
def firewall(listen: str, upstream: str, policy_path: Path | None, mode: Mode,
             alerts_path: Path | None, timeout: float, ledger_file: Path | None,
             no_ledger: bool) -> None:
    """Inline Modbus/TCP firewall: forward what the policy allows, answer the rest."""
    listen_at = parse_endpoint(listen, "--listen")
    upstream_at = parse_endpoint(upstream, "--upstream")
    if policy_path is None:
        if mode == "enforce":
            _fail("--mode enforce needs --policy FILE; use --mode monitor to run without one")
        policy = MONITOR_POLICY
    else:
        try:
            policy = load_policy(policy_path)
        except PolicyError as e:
            _fail(str(e))
    out: IO[str]
    if alerts_path is None:
        out = sys.stdout
    else:
        try:
            out = alerts_path.open("a", encoding="utf-8")
        except OSError as e:
            _fail(f"{alerts_path}: cannot open for alerts: {e.strerror}")
    writer = JsonlAlertWriter(out)
    ledger = None if no_ledger else _open_ledger(ledger_file)
    unrecorded: list[Alert] = []

    def sink(alert: Alert) -> None:
        writer.write(alert)
        out.flush()  # an alert that waits in a buffer is not seen by the SOC
        unrecorded.append(alert)

    def record() -> None:
        """Alerts into the ledger, a batch at a time (one commit), so a flood of blocks costs
        the proxy one fsync a second, not one per block."""
        if ledger is not None and unrecorded:
            batch = [("alert", a.to_dict()) for a in unrecorded]
            unrecorded.clear()
            ledger.extend(batch, actor="interlock firewall")

    fw = Firewall(FirewallConfig(listen_at, upstream_at, policy, mode, response_timeout=timeout),
                  sink)

    async def run() -> None:
        try:
            await fw.start()
        except OSError as e:
            _fail(f"--listen {listen}: {e.strerror or e}")
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        click.echo(f"interlock firewall: {mode} {listen_at[0]}:{fw.port} -> "
                   f"{upstream_at[0]}:{upstream_at[1]}, policy {policy.source}", err=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            record()
        await fw.close()
        record()

    asyncio.run(run())
    s = fw.stats
    click.echo(f"interlock firewall: stopped; {s.connections} connections, {s.forwarded} "
               f"forwarded, {s.blocked} blocked, {s.malformed} malformed, "
               f"{s.upstream_failures} upstream failures", err=True)
    if out is not sys.stdout:
        out.close()
    if ledger is not None:
        ledger.close()


def _open_ledger(path: Path | None) -> Any:
    from interlock.evidence.keys import default_ledger_path
    from interlock.evidence.ledger import Ledger, LedgerError

    try:
        return Ledger(path if path is not None else default_ledger_path())
    except LedgerError as exc:
        _fail(f"{exc} (or pass --no-ledger)")
