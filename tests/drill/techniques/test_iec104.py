"""IEC-104 techniques against a real c104 (lib60870) server on 127.0.0.64:25404.

A command counts as carried out when the c104 server's callback saw it, not just when the
confirmation came back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("c104", reason="c104 is not installed (pip install c104)")

from interlock.drill.techniques import Action, Target, execute
from interlock.protocols.iec104 import IFormat, UFormat, parse
from interlock.range.boundary import Boundary
from tests.drill.techniques.conftest import ATTACKER
from tests.peers.iec104_peer import CA, ME_IOA, ME_TF_IOA, ME_VALUE, SC_IOA, SE_IOA, SP_IOA, Iec104Peer

HOST, PORT = "127.0.0.64", 25404
pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def peer() -> Iterator[Iec104Peer]:
    with Iec104Peer(HOST, PORT) as p:
        yield p


@pytest.fixture()
def boundary(peer: Iec104Peer) -> Boundary:
    b = Boundary()
    b.register(HOST, PORT, "rtu")
    return b


def run(tid: str, boundary: Boundary, **params: Any) -> Action:
    [action] = asyncio.run(execute(tid, Target(HOST, PORT, "iec104", CA, "rtu"), params, boundary=boundary))
    assert action.technique == tid and action.target == f"{HOST}:{PORT}"
    assert action.source.startswith(f"{ATTACKER}:")
    assert action.bytes_sent == sum(map(len, action.frames))
    return action


def i_frames(action: Action) -> list[IFormat]:
    apdus = [parse(f) for f in action.frames]
    assert isinstance(apdus[0], UFormat) and apdus[0].function == 0x07  # STARTDT_ACT first
    return [a for a in apdus if isinstance(a, IFormat)]


def test_interrogation_returns_the_points(boundary: Boundary) -> None:
    a = run("iec104.interrogation", boundary)
    assert a.outcome == "ok"
    points = a.detail["points"]
    assert isinstance(points, dict)
    assert points[SP_IOA] is True and points[ME_IOA] == pytest.approx(ME_VALUE)
    assert ME_TF_IOA in points
    [ic] = i_frames(a)
    assert (ic.asdu.type_id, ic.asdu.common_address, ic.send_seq) == (100, CA, 0)


def test_single_command_reaches_the_server(boundary: Boundary, peer: Iec104Peer) -> None:
    before = len(peer.received)
    a = run("iec104.single_command", boundary, ioa=SC_IOA, value=True)
    assert a.outcome == "ok"
    assert peer.received[before:] == [(SC_IOA, 1.0)]
    [sc] = i_frames(a)
    assert (sc.asdu.type_id, sc.asdu.cot, sc.asdu.objects[0].ioa) == (45, 6, SC_IOA)


def test_setpoint_reaches_the_server(boundary: Boundary, peer: Iec104Peer) -> None:
    before = len(peer.received)
    a = run("iec104.setpoint", boundary, ioa=SE_IOA, value=12.5, repeat=2, interval_s=0.05)
    assert a.outcome == "ok" and a.requests == 3  # STARTDT and two set-points
    assert peer.received[before:] == [(SE_IOA, 12.5)] * 2
    assert [f.send_seq for f in i_frames(a)] == [0, 1]


def test_refused_commands_are_negative(boundary: Boundary, peer: Iec104Peer) -> None:
    before = len(peer.received)
    assert run("iec104.double_command", boundary, ioa=SC_IOA).outcome != "ok"  # wrong type for the point
    assert run("iec104.single_command", boundary, ioa=4242).outcome != "ok"  # no such point
    assert peer.received[before:] == []


def test_ioa_sweep_finds_the_command_point(boundary: Boundary, peer: Iec104Peer) -> None:
    before = len(peer.received)
    a = run("iec104.ioa_sweep", boundary, start=SC_IOA - 3, stop=SC_IOA + 3, wait_s=0.5)
    assert a.detail["accepted"] == [SC_IOA]
    assert [f.asdu.objects[0].ioa for f in i_frames(a)] == list(range(SC_IOA - 3, SC_IOA + 4))
    assert peer.received[before:] == [(SC_IOA, 1.0)]
