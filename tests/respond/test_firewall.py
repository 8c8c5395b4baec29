"""The firewall on loopback between a real pymodbus client and a real pymodbus server.

Server, firewalls and clients all live on 127.0.0.41; each firewall listens on a port the kernel
picks. Alerts go through the JSON-lines writer into a file that the tests read back.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from interlock.cli import main
from interlock.detect.alerts import Alert, JsonlAlertWriter
from interlock.protocols.modbus import ReadHoldingRegistersRequest, build_adu
from interlock.respond.firewall import Firewall, FirewallConfig, Mode
from interlock.respond.policy import Policy, parse_policy
from tests.peers.loop import LoopThread
from tests.peers.modbus_peer import COILS, DEVICE_ID, HOLDING, ModbusPeer

HOST = "127.0.0.41"
POLICY = f"""\
default: deny
rules:
  - name: reads
    clients: [127.0.0.0/8]
    functions: [read_coils, read_holding_registers]
    addresses: [0-99]
  - name: setpoints
    clients: [{HOST}]
    units: [{DEVICE_ID}]
    functions: [write_single_register]
    addresses: [50-59]
    values: [0-2000]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Running:
    """A firewall served from its own event-loop thread; alerts appended to ``path``."""

    def __init__(self, upstream: tuple[str, int], policy: Policy, mode: Mode, path: Path,
                 timeout: float = 1.0, kind: type[Any] = Firewall, **options: Any) -> None:
        self.path = path
        self.fh = path.open("a", encoding="utf-8")
        writer = JsonlAlertWriter(self.fh)

        def sink(alert: Alert) -> None:
            writer.write(alert)
            self.fh.flush()

        self.fw = kind(FirewallConfig((HOST, 0), upstream, policy, mode, response_timeout=timeout,
                                      connect_timeout=timeout, **options), sink)
        self.thread = LoopThread("firewall")
        self.thread.call(self.fw.start())
        self.port = self.fw.port

    def alerts(self, at_least: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 3
        while True:
            lines = [json.loads(x) for x in self.path.read_text().splitlines() if x]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def stop(self) -> None:
        self.thread.close(self.fw.close)
        self.fh.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ModbusPeer]:
    with ModbusPeer(HOST, free_port()) as peer:
        yield peer


def client(port: int) -> Any:
    from pymodbus.client import ModbusTcpClient

    # the source address matters: the policy's setpoint rule names this client
    c = ModbusTcpClient(HOST, port=port, timeout=3, retries=0, source_address=(HOST, 0))
    assert c.connect(), f"cannot connect to {HOST}:{port}"
    return c


@pytest.fixture
def enforce(server: ModbusPeer, tmp_path: Path) -> Iterator[Running]:
    fw = Running((HOST, server.port), parse_policy(POLICY), "enforce", tmp_path / "alerts.jsonl")
    yield fw
    fw.stop()


def direct_register(server: ModbusPeer, address: int) -> int:
    c = client(server.port)
    try:
        return int(c.read_holding_registers(address, count=1, device_id=DEVICE_ID).registers[0])
    finally:
        c.close()


def test_allowed_reads_and_writes_pass(enforce: Running, server: ModbusPeer) -> None:
    c = client(enforce.port)
    try:
        rr = c.read_holding_registers(20, count=6, device_id=DEVICE_ID)
        assert not rr.isError() and rr.registers == HOLDING[20:26]
        assert c.read_coils(10, count=12, device_id=DEVICE_ID).bits[:12] == COILS[10:22]
        assert not c.write_register(52, 1234, device_id=DEVICE_ID).isError()
    finally:
        c.close()
    assert direct_register(server, 52) == 1234
    assert enforce.fw.stats.forwarded == 3 and enforce.fw.stats.blocked == 0
    assert enforce.alerts(0) == []


def test_forbidden_requests_get_gateway_exceptions(enforce: Running, server: ModbusPeer) -> None:
    before = direct_register(server, 55), direct_register(server, 5)
    c = client(enforce.port)
    try:
        value = c.write_register(55, 9000, device_id=DEVICE_ID)  # outside 0-2000
        address = c.write_register(5, 10, device_id=DEVICE_ID)  # outside 50-59
        function = c.write_coil(3, True, device_id=DEVICE_ID)  # FC 5 allowed nowhere
        assert [r.exception_code for r in (value, address, function)] == [3, 2, 1]
        assert c.read_holding_registers(0, count=2, device_id=DEVICE_ID).registers == HOLDING[:2]
    finally:
        c.close()
    assert (direct_register(server, 55), direct_register(server, 5)) == before
    alerts = enforce.alerts(3)
    assert [a["technique"] for a in alerts] == ["T0836", "T0855", "T0855"]
    assert {a["src"] for a in alerts} == {HOST}
    assert alerts[0]["asset"] == f"{HOST}:{server.port}/{DEVICE_ID}"
    assert "9000" in alerts[0]["explanation"] and alerts[0]["severity"] == "high"


def test_monitor_mode_forwards_but_alerts(server: ModbusPeer, tmp_path: Path) -> None:
    fw = Running((HOST, server.port), parse_policy(POLICY), "monitor", tmp_path / "m.jsonl")
    try:
        c = client(fw.port)
        try:
            assert not c.write_register(57, 4321, device_id=DEVICE_ID).isError()
        finally:
            c.close()
        assert direct_register(server, 57) == 4321
        (alert,) = fw.alerts(1)
        assert alert["technique"] == "T0836" and "monitor" in alert["title"]
    finally:
        fw.stop()


def _exchange(sock: socket.socket, adu: bytes) -> bytes:
    sock.sendall(adu)
    head = sock.recv(7, socket.MSG_WAITALL)
    return head + sock.recv(struct.unpack(">H", head[4:6])[0] - 1, socket.MSG_WAITALL)


def test_malformed_frames_are_dropped_and_alerted(enforce: Running) -> None:
    with socket.create_connection((HOST, enforce.port), timeout=3, source_address=(HOST, 0)) as s:
        # FC 3 asking for 0 registers (spec: 1..125), then a good request on the same stream:
        # the only answer is the good one's, so the bad one was dropped, not forwarded
        s.sendall(bytes.fromhex("000100000006") + bytes([DEVICE_ID]) + bytes.fromhex("0300000000"))
        good = _exchange(s, build_adu(2, DEVICE_ID, ReadHoldingRegistersRequest(0, 1)))
        assert good[:2] == b"\x00\x02" and good[7:] == bytes([3, 2]) + HOLDING[0].to_bytes(2, "big")
    with socket.create_connection((HOST, enforce.port), timeout=3, source_address=(HOST, 0)) as s:
        s.sendall(bytes.fromhex("0003 0007 0006 11 0300000001"))  # protocol id 7: cut off
        assert s.recv(10) == b""
    with socket.create_connection((HOST, enforce.port), timeout=3, source_address=(HOST, 0)) as s:
        s.sendall(bytes.fromhex("0004 0000 0006 11 03"))  # truncated, then the client leaves
    c = client(enforce.port)  # still serving
    try:
        assert c.read_holding_registers(1, count=1, device_id=DEVICE_ID).registers == HOLDING[1:2]
    finally:
        c.close()
    alerts = enforce.alerts(3)
    assert [a["rule"] for a in alerts] == ["firewall/malformed"] * 3
    assert "INVALID" in alerts[0]["explanation"] and enforce.fw.stats.malformed == 3


def test_reset_action_resets_the_connection(server: ModbusPeer, tmp_path: Path) -> None:
    policy = parse_policy("action: reset\n" + POLICY)
    fw = Running((HOST, server.port), policy, "enforce", tmp_path / "r.jsonl")
    try:
        with socket.create_connection((HOST, fw.port), timeout=3, source_address=(HOST, 0)) as s:
            s.sendall(bytes.fromhex("0001 0000 0006 11 0500030000"))  # write coil: forbidden
            with pytest.raises(ConnectionResetError):
                s.recv(10)
        assert fw.alerts(1)[0]["title"] == "Modbus request reset by firewall policy"
    finally:
        fw.stop()


def test_upstream_down_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    fw = Running((HOST, port), parse_policy(POLICY), "enforce", tmp_path / "u.jsonl", timeout=0.5)
    try:
        c = client(fw.port)
        try:
            # nothing listens upstream: path unavailable, twice, the proxy still answering
            for _ in range(2):
                assert c.read_holding_registers(0, count=1, device_id=DEVICE_ID).exception_code \
                    == 0x0A
            with ModbusPeer(HOST, port):
                rr = c.read_holding_registers(3, count=1, device_id=DEVICE_ID)
                assert rr.registers == HOLDING[3:4]
            # the PLC went away under an open connection: target failed to respond
            assert c.read_holding_registers(0, count=1, device_id=DEVICE_ID).exception_code \
                in (0x0A, 0x0B)
            with ModbusPeer(HOST, port):  # back again: served without restarting the proxy
                assert c.read_holding_registers(4, count=1, device_id=DEVICE_ID).registers \
                    == HOLDING[4:5]
        finally:
            c.close()
        assert fw.fw.stats.upstream_failures >= 3
    finally:
        fw.stop()


def test_cli_rejects_broken_policy(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("default: deny\nrules:\n  - functions: [3]\n    adresses: [0-9]\n")
    r = CliRunner().invoke(main, ["firewall", "--listen", f"{HOST}:0", "--upstream",
                                  f"{HOST}:502", "--policy", str(bad)])
    assert r.exit_code == 2
    assert f"{bad}:4: unknown key 'adresses'" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["firewall", "--listen", f"{HOST}:0", "--upstream",
                                  f"{HOST}:502"])
    assert r.exit_code == 2 and "needs --policy" in r.output
    r = CliRunner().invoke(main, ["firewall", "--listen", "x", "--upstream", f"{HOST}:502",
                                  "--mode", "monitor"])
    assert r.exit_code == 2 and "--listen 'x': expected ADDR:PORT" in r.output


def test_cli_runs_in_monitor_mode_without_policy(server: ModbusPeer, tmp_path: Path) -> None:
    port, alerts = free_port(), tmp_path / "cli.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.cli", "firewall", "--listen", f"{HOST}:{port}",
         "--upstream", f"{HOST}:{server.port}", "--mode", "monitor", "--alerts", str(alerts)],
        stderr=subprocess.PIPE, text=True)
    try:
        from tests.peers.capture import wait_port

        wait_port(HOST, port)
        c = client(port)
        try:
            assert c.read_holding_registers(7, count=2, device_id=DEVICE_ID).registers \
                == HOLDING[7:9]
        finally:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "monitor" in err and "1 forwarded, 0 blocked" in err
    assert alerts.read_text() == ""


def test_cli_records_blocks_in_the_ledger(server: ModbusPeer, tmp_path: Path) -> None:
    """Every block the firewall answers is an alert, and every alert lands in the ledger."""
    import json
    import sqlite3

    port, alerts, ledger = free_port(), tmp_path / "cli.jsonl", tmp_path / "ledger.sqlite"
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: allow\nrules:\n  - name: no-writes\n    action: deny\n"
                      "    functions: [5, 6, 15, 16, 22, 23]\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.cli", "firewall", "--listen", f"{HOST}:{port}",
         "--upstream", f"{HOST}:{server.port}", "--policy", str(policy), "--alerts", str(alerts),
         "--ledger", str(ledger)],
        stderr=subprocess.PIPE, text=True)
    try:
        from tests.peers.capture import wait_port

        wait_port(HOST, port)
        c = client(port)
        try:
            assert c.write_register(7, 1234, device_id=DEVICE_ID).isError()
            assert c.read_holding_registers(7, count=1, device_id=DEVICE_ID).registers == HOLDING[7:8]
        finally:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    written = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert len(written) == 1 and written[0]["technique"] == "T0855"
    db = sqlite3.connect(ledger)
    stored = [json.loads(bytes(c)) for (c,) in db.execute("SELECT canonical FROM entries ORDER BY seq")]
    db.close()
    assert [(e["kind"], e["body"]["id"]) for e in stored] == [("alert", written[0]["id"])]
