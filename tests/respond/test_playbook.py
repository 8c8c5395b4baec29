"""Playbooks and ``interlock respond``: dry runs change nothing; executed steps reach a running
firewall, a real pymodbus server and (as root, with nftables) two Interlock network namespaces;
every step taken is in the ledger."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from interlock.cli import main
from interlock.evidence.ledger import Ledger
from interlock.respond.netns import MARKER_DIR, NamespaceError, create_namespace, delete_namespace
from interlock.respond.playbook import PlaybookError, load_playbook, parse_playbook
from interlock.respond.respond_cli import shipped_playbooks
from tests.peers.capture import wait_port
from tests.peers.modbus_peer import DEVICE_ID, ModbusPeer
from tests.respond.test_firewall import HOST, free_port

ATTACKER = "127.0.0.43"
FIREWALL_POLICY = """\
# the plant's firewall policy; comments must survive a block step
default: deny
rules:
  - name: reads
    clients: [127.0.0.0/8]
    functions: [read_holding_registers]
    addresses: [0-99]
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ModbusPeer]:
    with ModbusPeer(HOST, free_port()) as peer:
        yield peer


def incident(tmp_path: Path, attacker: str = ATTACKER) -> Path:
    path = tmp_path / "incident.json"
    path.write_text(json.dumps({"number": 1, "attacker": attacker, "target": HOST,
                                "severity": "high", "techniques": ["T0855", "T0836"]}))
    return path


def playbook(tmp_path: Path, server: ModbusPeer, policy: Path) -> Path:
    path = tmp_path / "pb.yaml"
    path.write_text(f"""\
name: contain
steps:
  - kind: block
    policy: {policy}
  - kind: safe_state
    host: {HOST}
    port: {server.port}
    unit: {DEVICE_ID}
    writes: [[10, 0], [11, 7]]
  - kind: notify
    file: {tmp_path / "notes.jsonl"}
    message: "{{attacker}} blocked ({{techniques}})"
""")
    return path


def respond(*args: str) -> Result:
    return CliRunner().invoke(main, ["respond", *args])


def register(server: ModbusPeer, address: int) -> int:
    from pymodbus.client import ModbusTcpClient

    c = ModbusTcpClient(HOST, port=server.port, timeout=3, retries=0)
    assert c.connect()
    try:
        return int(c.read_holding_registers(address, count=1, device_id=DEVICE_ID).registers[0])
    finally:
        c.close()


def entries(ledger: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(ledger)
    try:
        return [json.loads(bytes(c)) for (c,) in db.execute(
            "SELECT canonical FROM entries ORDER BY seq")]
    finally:
        db.close()


def test_dry_run_prints_every_step_and_changes_nothing(server: ModbusPeer, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(FIREWALL_POLICY)
    before = register(server, 10), register(server, 11)
    ledger = tmp_path / "ledger.sqlite"
    r = respond(str(playbook(tmp_path, server, policy)), str(incident(tmp_path)), "--ledger",
                str(ledger))
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("would")]
    assert len(lines) == 3
    assert f"deny rule for {ATTACKER}" in lines[0] and str(policy) in lines[0]
    assert "holding_registers 10=0, 11=7 to unit 17" in lines[1]
    assert f"{ATTACKER} blocked (T0855, T0836)" in lines[2]
    assert policy.read_text() == FIREWALL_POLICY
    assert (register(server, 10), register(server, 11)) == before
    assert not (tmp_path / "notes.jsonl").exists() and not ledger.exists()


def test_execute_block_makes_a_running_firewall_refuse_the_attacker(
        server: ModbusPeer, tmp_path: Path) -> None:
    from pymodbus.client import ModbusTcpClient

    policy, ledger, port = tmp_path / "policy.yaml", tmp_path / "ledger.sqlite", free_port()
    policy.write_text(FIREWALL_POLICY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.cli", "firewall", "--listen", f"{HOST}:{port}",
         "--upstream", f"{HOST}:{server.port}", "--policy", str(policy), "--alerts",
         str(tmp_path / "alerts.jsonl"), "--no-ledger"], stderr=subprocess.PIPE, text=True)
    clients = []
    try:
        wait_port(HOST, port)
        for source in (ATTACKER, HOST):
            c = ModbusTcpClient(HOST, port=port, timeout=3, retries=0, source_address=(source, 0))
            assert c.connect()
            clients.append(c)
        attacker, operator = clients

        def reads(c: Any) -> bool:
            return not c.read_holding_registers(0, count=1, device_id=DEVICE_ID).isError()

        assert reads(attacker) and reads(operator)
        r = respond(str(playbook(tmp_path, server, policy)), str(incident(tmp_path)),
                    "--execute", "--ledger", str(ledger))
        assert r.exit_code == 0, r.output
        assert [x.split(".")[0] for x in r.output.splitlines() if x[:4] in ("done", "FAIL")] \
            == ["done 1", "done 2", "done 3"]
        deadline = time.monotonic() + 5
        while reads(attacker) and time.monotonic() < deadline:
            time.sleep(0.1)
        rr = attacker.read_holding_registers(0, count=1, device_id=DEVICE_ID)
        assert rr.exception_code == 1  # refused, on the connection it already had
        assert reads(operator)  # everyone else still served
        # the engineer's comments survive; the deny rule is first
        text = policy.read_text()
        assert text.startswith("# the plant's firewall policy")
        assert f"- {{name: block-{ATTACKER}, action: deny, clients: [{ATTACKER}]}}" in text
    finally:
        for c in clients:
            c.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert "policy reloaded" in err
    assert (register(server, 10), register(server, 11)) == (0, 7)  # safe_state reached it
    note = json.loads((tmp_path / "notes.jsonl").read_text())
    assert note["message"] == f"{ATTACKER} blocked (T0855, T0836)"
    recorded = [e for e in entries(ledger) if e["kind"] == "analyst_action"]
    assert [(e["body"]["kind"], e["body"]["ok"]) for e in recorded] == [
        ("block", True), ("safe_state", True), ("notify", True)]
    assert "written to unit 17" in recorded[1]["body"]["outcome"]
    # a second run does not stack rules
    r = respond(str(playbook(tmp_path, server, policy)), str(incident(tmp_path)), "--execute",
                "--no-ledger")
    assert "already blocked" in r.output and text == policy.read_text()


def test_safe_state_refuses_non_loopback_and_records_the_failure(server: ModbusPeer,
                                                                 tmp_path: Path) -> None:
    pb = tmp_path / "pb.yaml"
    pb.write_text("steps:\n  - kind: safe_state\n    host: 10.0.0.5\n    port: 502\n"
                  "    unit: 1\n    writes: [[1, 0]]\n  - kind: notify\n")
    ledger = tmp_path / "ledger.sqlite"
    r = respond(str(pb), str(incident(tmp_path)), "--execute", "--ledger", str(ledger))
    assert r.exit_code == 1 and "FAILED 1." in r.output and "loopback" in r.output
    assert "Traceback" not in r.output
    (entry,) = entries(ledger)
    assert entry["kind"] == "analyst_action" and entry["body"]["ok"] is False


def test_incident_from_the_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with Ledger(ledger) as led:
        led.append("alert", {"id": "x"}, actor="test")
        seq = led.append("incident", {"number": 1, "attacker": ATTACKER, "target": HOST,
                                      "severity": "high", "techniques": ["T0855"]},
                         actor="test").seq
    r = respond("notify-only", str(seq), "--ledger", str(ledger), "--execute")
    assert r.exit_code == 0, r.output
    line = json.loads(next(x for x in r.output.splitlines() if x.startswith("{")))
    assert line["attacker"] == ATTACKER and line["incident"] == f"ledger:{seq}"
    assert entries(ledger)[-1]["body"]["kind"] == "notify"
    r = respond("notify-only", "1", "--ledger", str(ledger))
    assert r.exit_code == 2 and "entry 1 is a alert, not an incident" in r.output


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    inc = incident(tmp_path)
    cases = {
        "steps:\n  - kind: nuke\n": "pb.yaml:2: unknown step kind 'nuke'",
        "steps:\n  - kind: notify\n    message: '{victim}'\n": "unknown placeholder {victim}",
        "steps:\n  - kind: block\n": "pb.yaml:2: block step needs policy",
        "steps:\n  - kind: safe_state\n    host: 127.0.0.1\n    port: 502\n    unit: 1\n"
        "    writes: [[1]]\n": "writes must be a list of [address, value] pairs",
        "name: x\n": "no steps",
    }
    pb = tmp_path / "pb.yaml"
    for text, message in cases.items():
        pb.write_text(text)
        r = respond(str(pb), str(inc))
        assert r.exit_code == 2 and message in r.output, (text, r.output)
        assert "Traceback" not in r.output
    r = respond("no-such-playbook", str(inc))
    assert r.exit_code == 2 and "shipped: " in r.output
    r = respond("notify-only", "nonsense")
    assert r.exit_code == 2 and "not a file, nor a ledger sequence number" in r.output


def test_shipped_playbooks_load() -> None:
    shipped = shipped_playbooks()
    assert shipped is not None
    names = {load_playbook(p).name for p in shipped.glob("*.yaml")}
    assert {"contain-modbus-attacker", "quarantine-host", "notify-only"} <= names
    with pytest.raises(PlaybookError, match="<playbook>:1: no steps"):
        parse_playbook("steps: []\n")


def test_quarantine_refuses_foreign_namespaces(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yaml"
    for ns, why in (("plant", "named ilk-*"), ("ilk-no-marker", "no Interlock marker")):
        pb.write_text(f"steps:\n  - kind: quarantine\n    namespace: {ns}\n")
        r = respond(str(pb), str(incident(tmp_path)), "--execute", "--no-ledger")
        assert r.exit_code == 1 and why in r.output, r.output


# --- quarantine between two real namespaces

NS_A, NS_B = "ilk-test-a", "ilk-test-b"
ADDR_A, ADDR_B = "10.231.77.1", "10.231.77.2"


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed; CI: apt-get install iproute2"
    if shutil.which("nft") is None:
        return "nftables (nft) is not installed; CI: apt-get install nftables"
    probe = subprocess.run(["ip", "netns", "add", "ilk-probe-" + str(os.getpid())],
                           capture_output=True, text=True, check=False)
    if probe.returncode:
        return f"ip netns add does not work here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", "ilk-probe-" + str(os.getpid())], check=False)
    return None


def _in(ns: str, *cmd: str, timeout: float = 5) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _tcp_works() -> bool:
    """A TCP connection from A to a listener in B, with one byte each way."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", NS_B, sys.executable, "-c",
         "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
         f"s.bind(('{ADDR_B}',7777));s.listen();s.settimeout(4);c,_=s.accept();"
         "c.sendall(c.recv(1))"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        r = _in(NS_A, sys.executable, "-c",
                "import socket,time\n"
                "for _ in range(20):\n"
                "    try:\n"
                f"        c=socket.create_connection(('{ADDR_B}',7777),timeout=1);break\n"
                "    except ConnectionRefusedError: time.sleep(0.1)\n"
                "c.sendall(b'x');assert c.recv(1)==b'x'")
        return r.returncode == 0
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def namespaces() -> Iterator[None]:
    why = _netns_unavailable()
    if why:
        pytest.skip(why)
    va, vb = f"ilkqa{os.getpid() % 100000}", f"ilkqb{os.getpid() % 100000}"
    for ns in (NS_A, NS_B):
        if (MARKER_DIR / ns).exists():
            delete_namespace(ns)  # left over by an interrupted run
    made = []
    try:
        for ns in (NS_A, NS_B):
            create_namespace(ns)
            made.append(ns)
        for cmd in (["link", "add", va, "type", "veth", "peer", "name", vb],
                    ["link", "set", va, "netns", NS_A], ["link", "set", vb, "netns", NS_B],
                    ["-n", NS_A, "addr", "add", f"{ADDR_A}/24", "dev", va],
                    ["-n", NS_B, "addr", "add", f"{ADDR_B}/24", "dev", vb],
                    ["-n", NS_A, "link", "set", va, "up"], ["-n", NS_B, "link", "set", vb, "up"]):
            subprocess.run(["ip", *cmd], check=True, capture_output=True)
        yield
    finally:
        for ns in made:
            with contextlib.suppress(NamespaceError):
                delete_namespace(ns)
        subprocess.run(["ip", "link", "delete", va], capture_output=True, check=False)


def test_quarantine_cuts_the_attacker_off(namespaces: None, tmp_path: Path) -> None:
    assert _tcp_works(), "the veth pair should carry TCP before the quarantine"
    pb = tmp_path / "pb.yaml"
    pb.write_text(f"steps:\n  - kind: quarantine\n    namespace: {NS_B}\n")
    ledger = tmp_path / "ledger.sqlite"
    r = respond(str(pb), str(incident(tmp_path, attacker=ADDR_A)), "--execute", "--ledger",
                str(ledger))
    assert r.exit_code == 0, r.output
    assert not _tcp_works()
    rules = _in(NS_B, "nft", "list", "table", "inet", "interlock").stdout
    assert f"ip saddr {ADDR_A} drop" in rules and f"ip daddr {ADDR_A} drop" in rules
    assert entries(ledger)[0]["body"]["outcome"].startswith(f"{ADDR_A} quarantined in {NS_B}")
