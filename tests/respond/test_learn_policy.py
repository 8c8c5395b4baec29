"""``interlock learn --policy``: a benign capture becomes a policy that allows exactly it.

The capture is built from codec output (tests/detect/captures.py); the learned policy is then
enforced by a real firewall between a real pymodbus client and server on 127.0.0.41.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from interlock.capture.pcap import PcapWriter
from interlock.cli import main
from interlock.protocols.modbus import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
    build_adu,
)
from interlock.respond.policy import Request, decide, load_policy
from tests.detect.captures import TcpFlow, write_capture
from tests.peers.modbus_peer import DEVICE_ID, HOLDING, ModbusPeer
from tests.respond.test_firewall import HOST, Running, client, free_port

SERVER = "127.0.0.41"


def benign(path: Path) -> Path:
    """The HMI at HOST polls registers 0-9 of unit 17 and sets register 52 to 1000..1200."""

    def build(w: PcapWriter) -> None:
        flow = TcpFlow(w, f"{HOST}:40100", f"{SERVER}:502", 1.0)
        for i in range(20):
            t = 1.0 + i
            flow.client(t, build_adu(i, DEVICE_ID, ReadHoldingRegistersRequest(0, 10)))
            flow.server(t + 0.01, build_adu(i, DEVICE_ID,
                                            ReadHoldingRegistersResponse(tuple(HOLDING[:10]))))
            if i % 5 == 0:
                value = 1000 + 50 * (i // 5)
                flow.client(t + 0.5, build_adu(100 + i, DEVICE_ID,
                                               WriteSingleRegisterRequest(52, value)))
                flow.server(t + 0.51, build_adu(100 + i, DEVICE_ID,
                                                WriteSingleRegisterResponse(52, value)))
        other = TcpFlow(w, "127.0.0.99:40200", "127.0.0.98:502", 1.0)  # another PLC
        other.client(2.0, build_adu(1, 1, ReadHoldingRegistersRequest(100, 1)))

    return write_capture(path, build)


def learn(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "policy.yaml"
    r = CliRunner().invoke(main, ["learn", str(benign(tmp_path / "benign.pcap")), "--policy",
                                  "-o", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out


def test_learned_policy_allows_exactly_what_was_seen(tmp_path: Path) -> None:
    policy = load_policy(learn(tmp_path, "--target", SERVER))
    assert policy.default == "deny" and len(policy.rules) == 2
    seen = [Request(DEVICE_ID, 3, ((0, 9),)), Request(DEVICE_ID, 3, ((2, 4),)),
            Request(DEVICE_ID, 6, ((52, 52),), (1000,)), Request(DEVICE_ID, 6, ((52, 52),), (1150,))]
    assert all(decide(r, HOST, policy).allow for r in seen)
    unseen = {  # request -> the exception a gateway would answer
        Request(DEVICE_ID, 3, ((8, 12),)): 2, Request(DEVICE_ID, 6, ((52, 52),), (1300,)): 3,
        Request(DEVICE_ID, 6, ((53, 53),), (1000,)): 2, Request(DEVICE_ID, 16, ((52, 52),), (1,)): 1,
        Request(1, 3, ((0, 0),)): 1,
    }
    for req, code in unseen.items():
        assert decide(req, HOST, policy).exception == code, req
    assert not decide(seen[0], "127.0.0.77", policy).allow  # another client
    # without --target, the other PLC's reader is learned too
    assert len(load_policy(learn(tmp_path)).rules) == 3


def test_learn_policy_bad_input(tmp_path: Path) -> None:
    empty = write_capture(tmp_path / "empty.pcap", lambda w: None)
    r = CliRunner().invoke(main, ["learn", str(empty), "--policy", "-o", str(tmp_path / "p.yaml")])
    assert r.exit_code == 2 and "no Modbus requests" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "p.yaml").exists()
    r = CliRunner().invoke(main, ["learn", str(empty), "--target", "1.2.3.4", "-o", "x"])
    assert r.exit_code == 2 and "--target only applies to --policy" in r.output


@pytest.fixture(scope="module")
def server() -> Iterator[ModbusPeer]:
    with ModbusPeer(SERVER, free_port()) as peer:
        yield peer


def test_enforcing_a_learned_policy(server: ModbusPeer, tmp_path: Path) -> None:
    """The issue's acceptance: a write the capture never showed gets an exception and an
    alert line; what the capture showed passes."""
    policy = load_policy(learn(tmp_path, "--target", SERVER))
    fw = Running((SERVER, server.port), policy, "enforce", tmp_path / "alerts.jsonl")
    try:
        c = client(fw.port)
        try:
            assert c.read_holding_registers(0, count=10, device_id=DEVICE_ID).registers \
                == HOLDING[:10]
            assert not c.write_register(52, 1100, device_id=DEVICE_ID).isError()
            assert c.write_register(52, 4000, device_id=DEVICE_ID).exception_code == 3
            assert c.write_register(10, 1, device_id=DEVICE_ID).exception_code == 2
        finally:
            c.close()
        alerts = fw.alerts(2)
        assert [a["technique"] for a in alerts] == ["T0836", "T0855"]
        assert "4000" in alerts[0]["explanation"]
        json.dumps(alerts)  # plain JSON lines
    finally:
        fw.stop()


def test_connection_records_teach_no_rule() -> None:
    """The decoder's ``tcp`` records (a SYN, a RST) are no Modbus request: nothing to allow."""
    from interlock.respond.learned import request_of_record

    syn = {"protocol": "tcp", "transport": "tcp", "direction": "request", "op_class": "session",
           "function": "syn", "src": HOST, "dst": SERVER, "sport": 40100, "dport": 502}
    assert request_of_record(syn) is None
