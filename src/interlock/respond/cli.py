"""``interlock firewall``: run the inline Modbus/TCP firewall in front of a PLC.

Alerts go to ``--alerts FILE`` (JSON lines, appended) or standard output; status goes to
standard error. Enforce mode needs a policy: without one it would allow everything and call
that enforcement. Modbus/TCP or DNP3 by ``--protocol``, else by the policy's ``protocol:``, else
by the upstream port (20000: DNP3). The policy file is reloaded on SIGHUP and when it changes
(checked every quarter second), so a playbook's ``block`` step reaches a running firewall; a policy that
no longer parses is reported and the previous one kept.
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
from interlock.respond.dnp3_firewall import DEFAULT_PORT as DNP3_PORT
from interlock.respond.dnp3_firewall import Dnp3Firewall
from interlock.respond.firewall import FailMode, Firewall, FirewallConfig, Mode
from interlock.respond.policy import MONITOR_POLICY, Policy, PolicyError, load_policy


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
@click.option("--mode", type=click.Choice(["enforce", "monitor", "learn"]), default="enforce",
              show_default=True, help="monitor alerts on what enforce would block, and forwards "
              "it; learn forwards everything and writes the policy it saw to --learn-out.")
@click.option("--protocol", type=click.Choice(["auto", "modbus", "dnp3"]), default="auto",
              show_default=True, help="auto: the policy's protocol, else DNP3 when the upstream "
              "port is 20000, else Modbus/TCP.")
@click.option("--learn-out", type=click.Path(path_type=Path), default=None,
              help="--mode learn: write the learned policy here when the firewall stops.")
@click.option("--fail", "fail_mode", type=click.Choice(["open", "closed"]), default="closed",
              show_default=True, help="When decoding or the policy engine fails unexpectedly: "
              "open forwards the request, closed blocks it (both alert).")
@click.option("--max-connections", type=click.IntRange(min=1), default=None,
              help="Refuse client connections beyond this many open at once.")
@click.option("--max-clients-per-host", type=click.IntRange(min=1), default=None,
              help="Refuse a host's connections beyond this many open at once.")
@click.option("--alerts", "alerts_path", type=click.Path(path_type=Path), default=None,
              help="Append alerts (JSON lines) here; standard output if absent.")
@click.option("--timeout", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="Seconds to wait for the upstream's response before answering 0x0B.")
@click.option("--ledger", "ledger_file", type=click.Path(path_type=Path), default=None,
              help="Record every alert in this tamper-evident ledger, within a second "
              "[default: ledger.sqlite in the per-user data folder].")
@click.option("--no-ledger", is_flag=True, help="Do not record the alerts in any ledger.")
def firewall(listen: str, upstream: str, policy_path: Path | None, mode: Mode, protocol: str,
             learn_out: Path | None, fail_mode: FailMode, max_connections: int | None,
             max_clients_per_host: int | None, alerts_path: Path | None, timeout: float,
             ledger_file: Path | None, no_ledger: bool) -> None:
    """Inline Modbus/TCP or DNP3 firewall: forward what the policy allows, block the rest."""
    listen_at = parse_endpoint(listen, "--listen")
    upstream_at = parse_endpoint(upstream, "--upstream")
    if mode == "learn" and learn_out is None:
        _fail("--mode learn needs --learn-out FILE (where the learned policy is written)")
    if mode != "learn" and learn_out is not None:
        _fail("--learn-out only applies to --mode learn; add --mode learn or drop --learn-out")
    if policy_path is None:
        if mode == "enforce":
            _fail("--mode enforce needs --policy FILE; use --mode monitor to run without one")
        policy = MONITOR_POLICY
    else:
        try:
            policy = load_policy(policy_path)
        except PolicyError as e:
            _fail(str(e))
    if protocol == "auto":
        protocol = "dnp3" if policy.protocol == "dnp3" or (
            policy_path is None and upstream_at[1] == DNP3_PORT) else "modbus"
    if policy_path is not None and policy.protocol != protocol:
        _fail(f"{policy_path}: a {policy.protocol} policy, but --protocol {protocol}; "
              f"write 'protocol: {protocol}' in the policy or change --protocol")
    if policy_path is None:
        policy = Policy(source="<none>", protocol="dnp3" if protocol == "dnp3" else "modbus")
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

    config = FirewallConfig(listen_at, upstream_at, policy, mode, response_timeout=timeout,
                            fail=fail_mode, max_connections=max_connections,
                            max_clients_per_host=max_clients_per_host, learn_out=learn_out)
    fw: Firewall | Dnp3Firewall = (Dnp3Firewall if protocol == "dnp3" else Firewall)(config, sink)
    watch = _PolicyWatch(policy_path, protocol)

    def reload() -> None:
        new = watch.load()
        if new is not None:
            fw.reload(new)
            click.echo(f"interlock firewall: policy reloaded from {policy_path} "
                       f"({len(new.rules)} rules)", err=True)

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
        hup = asyncio.Event()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, hup.set)
        click.echo(f"interlock firewall: {protocol} {mode} (fail {fail_mode}) "
                   f"{listen_at[0]}:{fw.port} -> {upstream_at[0]}:{upstream_at[1]}, "
                   f"policy {policy.source}", err=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.25)
            if hup.is_set() or watch.changed():
                hup.clear()
                reload()
            record()
        await fw.close()
        record()

    asyncio.run(run())
    s = fw.stats
    click.echo(f"interlock firewall: stopped; {s.connections} connections, {s.forwarded} "
               f"forwarded, {s.blocked} blocked, {s.malformed} malformed, "
               f"{s.upstream_failures} upstream failures, {s.refused} refused, "
               f"{s.engine_errors} engine errors, {s.reloads} reloads", err=True)
    if mode == "learn":
        try:
            written = fw.write_learned()
        except OSError as e:
            _fail(f"{learn_out}: cannot write the learned policy ({e.strerror})")
        learner = fw.learner
        n = learner.requests if learner is not None else 0
        click.echo(f"interlock firewall: learned policy from {n} requests -> {written}", err=True)
    if out is not sys.stdout:
        out.close()
    if ledger is not None:
        ledger.close()


class _PolicyWatch:
    """Notices a changed policy file (mtime and size) and reloads it, keeping the previous
    policy when the new text does not parse."""

    def __init__(self, path: Path | None, protocol: str) -> None:
        self.path, self.protocol = path, protocol
        self.stamp = self._stamp()

    def _stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def changed(self) -> bool:
        stamp = self._stamp()
        return stamp is not None and stamp != self.stamp

    def load(self) -> Policy | None:
        if self.path is None:
            return None
        self.stamp = self._stamp()
        try:
            policy = load_policy(self.path)
            if policy.protocol != self.protocol:
                raise PolicyError(f"{self.path}:1: a {policy.protocol} policy for a "
                                  f"{self.protocol} firewall")
        except PolicyError as e:
            click.echo(f"interlock firewall: policy not reloaded, keeping the previous one: {e}",
                       err=True)
            return None
        return policy


def _open_ledger(path: Path | None) -> Any:
    from interlock.evidence.keys import default_ledger_path
    from interlock.evidence.ledger import Ledger, LedgerError

    try:
        return Ledger(path if path is not None else default_ledger_path())
    except LedgerError as exc:
        _fail(f"{exc} (or pass --no-ledger)")
