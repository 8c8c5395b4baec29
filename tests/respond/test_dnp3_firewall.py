"""The DNP3 firewall between a real dnp3py master and outstation (tests/peers/dnp3_peer.py).

Requests the policy forbids are written as raw frames built with Interlock's codec, so a test
can show exactly what reached the outstation: its command handler records every CROB carried
out (``Dnp3Peer.operated``), and a request it never saw gets no answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.protocols.base import Malformed
from interlock.protocols.dnp3 import (
    ApplicationResponse,
    LinkFrame,
    TransportSegment,
    build,
    parse_fragment,
    parse_frame,
    parse_segment,
)
from interlock.protocols.dnp3.fields import IIN
from interlock.protocols.dnp3.link import frame_size
from interlock.respond.dnp3_firewall import Dnp3Firewall
from interlock.respond.policy import parse_policy
from tests.peers.capture import wait_port
from tests.peers.dnp3_peer import (
    ANALOG_INPUTS,
    BINARY_INPUTS,
    COUNTERS,
    MASTER,
    OUTSTATION,
    Dnp3Peer,
    run_session,
)
from tests.respond.test_firewall import HOST, Running, free_port

POLICY = f"""\
protocol: dnp3
default: deny
rules:
  - name: scada-polls
    clients: [127.0.0.0/8]
    units: [{OUTSTATION}]
    functions: [read]
    groups: [g60, g1, g30, g20]
  - name: operators-breaker-2
    clients: [127.0.0.200]
    units: [{OUTSTATION}]
    functions: [select, operate, direct_operate]
    groups: [g12v1]
    indexes: [2]
"""
DIRECT_OPERATE_CROB_2 = bytes.fromhex("c0050c011701020301000000000000000000")  # dnp3py's bytes
COLD_RESTART = bytes.fromhex("c10d")
DISABLE_UNSOLICITED = bytes.fromhex("c2153c0206")  # class 1 events
READ_CLASS0 = bytes.fromhex("c3013c0106")


def frame(fragment: bytes, tseq: int = 0, destination: int = OUTSTATION) -> bytes:
    """One fragment in one unconfirmed user-data frame from the master."""
    seg = build(TransportSegment(True, True, tseq, fragment))
    return build(LinkFrame(True, True, False, False, 4, destination, MASTER, seg))


def read_response(sock: socket.socket) -> ApplicationResponse | None:
    """The next application response on ``sock`` (one-segment fragments), None on timeout."""
    try:
        head = sock.recv(10, socket.MSG_WAITALL)
        rest = sock.recv(frame_size(head[2]) - 10, socket.MSG_WAITALL)
    except (TimeoutError, IndexError):
        return None
    link = parse_frame(head + rest)
    assert not isinstance(link, Malformed), link
    seg = parse_segment(link.user_data)
    assert isinstance(seg, TransportSegment)
    app = parse_fragment(seg.data)
    assert isinstance(app, ApplicationResponse), app
    return app


@pytest.fixture(scope="module")
def outstation() -> Iterator[Dnp3Peer]:
    with Dnp3Peer(HOST, free_port()) as peer:
        yield peer


@pytest.fixture
def firewall(outstation: Dnp3Peer, tmp_path: Path) -> Iterator[Running]:
    outstation.operated.clear()
    fw = Running((HOST, outstation.port), parse_policy(POLICY), "enforce",
                 tmp_path / "alerts.jsonl", kind=Dnp3Firewall)
    yield fw
    fw.stop()


def test_allowed_integrity_poll_returns_the_values(firewall: Running, outstation: Dnp3Peer) -> None:
    session = run_session(HOST, firewall.port, operate=False)
    assert session.binary_inputs == dict(enumerate(BINARY_INPUTS))
    assert session.analog_inputs == {i: float(v) for i, v in enumerate(ANALOG_INPUTS)}
    assert session.counters == dict(enumerate(COUNTERS))
    assert firewall.fw.stats.forwarded >= 2 and firewall.fw.stats.blocked == 0
    assert firewall.alerts(0) == []


def test_blocked_direct_operate_never_reaches_the_outstation(firewall: Running,
                                                             outstation: Dnp3Peer) -> None:
    with socket.create_connection((HOST, firewall.port), timeout=1) as s:
        s.sendall(frame(DIRECT_OPERATE_CROB_2))  # from 127.0.0.1, not the operators' host
        assert read_response(s) is None  # dropped: the master hears nothing
        s.sendall(frame(READ_CLASS0, 1))  # the same connection still polls
        answer = read_response(s)
        assert answer is not None and answer.seq == 3
    assert outstation.operated == []  # the command handler was never called
    (alert,) = firewall.alerts(1)
    assert alert["technique"] == "T0855" and alert["severity"] == "high"
    assert alert["title"] == "DNP3 request dropped by firewall policy"
    assert "DIRECT_OPERATE to outstation 10 objects g12v1 indexes 2" in alert["explanation"]
    assert alert["asset"] == f"{HOST}:{outstation.port}/{OUTSTATION}"


def test_allowed_operator_operates_and_restarts_are_blocked(firewall: Running,
                                                            outstation: Dnp3Peer) -> None:
    with socket.create_connection((HOST, firewall.port), timeout=1,
                                  source_address=("127.0.0.200", 0)) as s:
        s.sendall(frame(DIRECT_OPERATE_CROB_2))  # the operators' host may operate breaker 2
        answer = read_response(s)
        assert answer is not None and answer.headers[0].label == "g12v1"
        s.sendall(frame(COLD_RESTART, 1))
        s.sendall(frame(DISABLE_UNSOLICITED, 2))
        assert read_response(s) is None
    assert outstation.operated == [(2, 3)]
    alerts = firewall.alerts(2)
    assert [a["technique"] for a in alerts] == ["T0816", "T0815"]
    assert "COLD_RESTART" in alerts[0]["explanation"]


def test_exception_action_answers_with_iin2(outstation: Dnp3Peer, tmp_path: Path) -> None:
    outstation.operated.clear()
    policy = parse_policy(POLICY.replace("default: deny", "default: deny\naction: exception"))
    fw = Running((HOST, outstation.port), policy, "enforce", tmp_path / "a.jsonl",
                 kind=Dnp3Firewall)
    try:
        with socket.create_connection((HOST, fw.port), timeout=2) as s:
            s.sendall(frame(COLD_RESTART))
            answer = read_response(s)
            assert answer is not None and answer.seq == 1
            assert answer.iin & IIN.NO_FUNC_CODE_SUPPORT
            s.sendall(frame(DIRECT_OPERATE_CROB_2.replace(b"\x17\x01\x02", b"\x17\x01\x03"), 1))
            answer = read_response(s)  # function not allowed for this client: IIN2.0
            assert answer is not None and answer.iin & IIN.NO_FUNC_CODE_SUPPORT
        with socket.create_connection((HOST, fw.port), timeout=2,
                                      source_address=("127.0.0.200", 0)) as s:
            s.sendall(frame(DIRECT_OPERATE_CROB_2.replace(b"\x17\x01\x02", b"\x17\x01\x03")))
            answer = read_response(s)  # the operators' host, the wrong breaker: parameter error
            assert answer is not None and answer.iin & IIN.PARAMETER_ERROR
        assert outstation.operated == []
    finally:
        fw.stop()


def test_garbage_does_not_crash_the_proxy(firewall: Running) -> None:
    with socket.create_connection((HOST, firewall.port), timeout=1) as s:
        s.sendall(os.urandom(500) + b"\x05\x64\x05\xc0\x01\x00" + b"\xff" * 20)
        bad_crc = bytearray(frame(READ_CLASS0))
        bad_crc[-1] ^= 0xFF  # a data block CRC broken
        s.sendall(bytes(bad_crc))
        s.sendall(frame(READ_CLASS0, 1))  # resynchronised: the good one is answered
        answer = read_response(s)
        assert answer is not None and answer.seq == 3
    for _ in range(3):  # connections closed mid-frame
        with socket.create_connection((HOST, firewall.port), timeout=1) as s:
            s.sendall(frame(READ_CLASS0)[:13])
    session = run_session(HOST, firewall.port, operate=False)
    assert session.counters == dict(enumerate(COUNTERS))
    rules = {a["rule"] for a in firewall.alerts(2)}
    assert rules == {"firewall/malformed"} and firewall.fw.stats.malformed >= 2


def test_connection_limit(outstation: Dnp3Peer, tmp_path: Path) -> None:
    fw = Running((HOST, outstation.port), parse_policy(POLICY), "enforce", tmp_path / "a.jsonl",
                 kind=Dnp3Firewall, max_clients_per_host=1)
    try:
        with socket.create_connection((HOST, fw.port), timeout=1) as kept:
            kept.sendall(frame(READ_CLASS0))
            assert read_response(kept) is not None
            with contextlib.suppress(ConnectionResetError):  # at connect() or at recv()
                extra = socket.create_connection((HOST, fw.port), timeout=1)
                with extra:
                    assert extra.recv(10) == b""
            kept.sendall(frame(READ_CLASS0, 1))
            assert read_response(kept) is not None  # the admitted one keeps working
        assert fw.fw.stats.refused == 1
    finally:
        fw.stop()


def test_cli_picks_dnp3_by_port_20000(tmp_path: Path) -> None:
    host = "127.0.0.47"
    try:
        with socket.socket() as probe:
            # as asyncio's servers do: a connection in TIME_WAIT does not make the port busy
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, 20000))
    except OSError:
        pytest.skip(f"{host}:20000 is in use by another test run")
    port = free_port()
    with Dnp3Peer(host, 20000):
        proc = subprocess.Popen(
            [sys.executable, "-m", "interlock.cli", "firewall", "--listen", f"{HOST}:{port}",
             "--upstream", f"{host}:20000", "--mode", "monitor", "--no-ledger", "--alerts",
             str(tmp_path / "a.jsonl")], stderr=subprocess.PIPE, text=True)
        try:
            wait_port(HOST, port)
            session = run_session(HOST, port, operate=False)
            assert session.binary_inputs == dict(enumerate(BINARY_INPUTS))
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "dnp3 monitor" in err
