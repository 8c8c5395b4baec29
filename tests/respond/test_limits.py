"""Failure behaviour of the Modbus firewall: fail open/closed, connection limits, learn mode
and policy reload, on loopback with a real pymodbus server and clients."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlock.respond.policy import load_policy, parse_policy
from tests.peers.capture import wait_port
from tests.peers.modbus_peer import DEVICE_ID, HOLDING, ModbusPeer
from tests.respond.test_firewall import HOST, POLICY, Running, client, free_port

OTHER = "127.0.0.42"  # a second client host


@pytest.fixture(scope="module")
def server() -> Iterator[ModbusPeer]:
    with ModbusPeer(HOST, free_port()) as peer:
        yield peer


def _boom(*_: Any) -> Any:
    raise RuntimeError("policy engine bug")


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_fail_open_and_closed(server: ModbusPeer, tmp_path: Path, fail: str) -> None:
    fw = Running((HOST, server.port), parse_policy(POLICY), "enforce", tmp_path / "a.jsonl",
                 fail=fail)
    fw.fw._verdict = _boom  # the engine raises on every request
    try:
        c = client(fw.port)
        try:
            rr = c.read_holding_registers(1, count=2, device_id=DEVICE_ID)
            if fail == "open":
                assert rr.registers == HOLDING[1:3]
            else:
                assert rr.exception_code == 0x04  # SERVER_DEVICE_FAILURE, nothing forwarded
        finally:
            c.close()
        (alert,) = fw.alerts(1)
        assert alert["rule"] == f"firewall/fail-{fail}" and "policy engine bug" in \
            alert["explanation"]
        assert fw.fw.stats.engine_errors == 1
        assert fw.fw.stats.forwarded == (1 if fail == "open" else 0)
    finally:
        fw.stop()


def _refused(source: str, port: int) -> bool:
    """Connect and send a request; True if the firewall reset or closed without answering."""
    try:
        s = socket.create_connection((HOST, port), timeout=3, source_address=(source, 0))
    except ConnectionResetError:
        return True  # the reset can beat connect() back to the caller on loopback
    with s:
        try:
            s.sendall(bytes.fromhex("000100000006") + bytes([DEVICE_ID]) + bytes.fromhex(
                "0300000001"))
            return s.recv(64) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True


def _reads(c: Any) -> bool:
    return bool(c.read_holding_registers(0, count=1, device_id=DEVICE_ID).registers == HOLDING[:1])


def test_max_connections(server: ModbusPeer, tmp_path: Path) -> None:
    fw = Running((HOST, server.port), parse_policy(POLICY), "enforce", tmp_path / "a.jsonl",
                 max_connections=2)
    try:
        first, second = client(fw.port), client(fw.port)
        try:
            assert _reads(first) and _reads(second)
            assert all(_refused(HOST, fw.port) for _ in range(5))  # the excess is refused
            assert _reads(first) and _reads(second)  # the admitted ones keep working
        finally:
            first.close()
            second.close()
        deadline = time.monotonic() + 3
        while fw.fw.limits.open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _refused(HOST, fw.port)  # room again once they left
        assert fw.fw.stats.refused == 5
        alerts = fw.alerts(1)
        assert len(alerts) == 1  # one alert per host per 10 s, not one per refusal
        assert alerts[0]["technique"] == "T0814" and "--max-connections 2" in \
            alerts[0]["explanation"]
    finally:
        fw.stop()


def test_max_clients_per_host(server: ModbusPeer, tmp_path: Path) -> None:
    fw = Running((HOST, server.port), parse_policy(POLICY), "enforce", tmp_path / "a.jsonl",
                 max_clients_per_host=1)
    try:
        first = client(fw.port)
        try:
            assert _reads(first)
            assert _refused(HOST, fw.port)  # a second from the same host
            assert not _refused(OTHER, fw.port)  # another host is served
            assert _reads(first)
        finally:
            first.close()
    finally:
        fw.stop()


def test_cli_learn_mode_writes_the_policy_it_saw(server: ModbusPeer, tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "learned.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.cli", "firewall", "--listen", f"{HOST}:{port}",
         "--upstream", f"{HOST}:{server.port}", "--mode", "learn", "--learn-out", str(out),
         "--alerts", str(tmp_path / "a.jsonl"), "--no-ledger"],
        stderr=subprocess.PIPE, text=True)
    try:
        wait_port(HOST, port)
        c = client(port)
        try:
            assert c.read_holding_registers(5, count=3, device_id=DEVICE_ID).registers \
                == HOLDING[5:8]
            assert not c.write_register(30, 77, device_id=DEVICE_ID).isError()  # forwarded
        finally:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "learned policy from 2 requests" in err
    policy = load_policy(out)
    assert [(sorted(r.functions or ()), r.addresses, r.values) for r in policy.rules] == [
        ([3], ((5, 7),), None), ([6], ((30, 30),), ((77, 77),))]


def test_cli_reloads_policy_on_change_and_sighup(server: ModbusPeer, tmp_path: Path) -> None:
    port, policy = free_port(), tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.cli", "firewall", "--listen", f"{HOST}:{port}",
         "--upstream", f"{HOST}:{server.port}", "--policy", str(policy), "--alerts",
         str(tmp_path / "a.jsonl"), "--no-ledger"],
        stderr=subprocess.PIPE, text=True)
    try:
        wait_port(HOST, port)
        c = client(port)
        try:
            assert _reads(c)
            policy.write_text("default: deny\nrules: []\n")  # changed on disk: everything denied
            deadline = time.monotonic() + 5
            while _reads(c) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert c.read_holding_registers(0, count=1, device_id=DEVICE_ID).exception_code == 1
            policy.write_text("default: deny\nrules: [broken")  # kept: the previous one stays
            time.sleep(0.6)
            assert c.read_holding_registers(0, count=1, device_id=DEVICE_ID).exception_code == 1
            policy.write_text(POLICY)
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while not _reads(c) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _reads(c)  # the same connection, served by the reloaded policy
        finally:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "policy not reloaded, keeping the previous one" in err and "reloaded from" in err


def test_monitor_mode_drops_malformed_requests(server: ModbusPeer, tmp_path: Path) -> None:
    fw = Running((HOST, server.port), parse_policy(POLICY), "monitor", tmp_path / "m.jsonl")
    try:
        with socket.create_connection((HOST, fw.port), timeout=3) as s:
            # FC 3 for 0 registers, then a good request: only the good one is answered
            s.sendall(bytes.fromhex("000100000006") + bytes([DEVICE_ID]) + bytes.fromhex(
                "0300000000"))
            s.sendall(bytes.fromhex("000200000006") + bytes([DEVICE_ID]) + bytes.fromhex(
                "0300000001"))
            answer = s.recv(64)
            assert answer[:2] == b"\x00\x02" and answer[7:9] == bytes([3, 2])
        (alert,) = fw.alerts(1)
        assert alert["rule"] == "firewall/malformed" and "dropped" in alert["title"]
    finally:
        fw.stop()
