"""Modbus techniques against a real pymodbus server on 127.0.0.61:25502.

Writes are read back with pymodbus' own client (an independent implementation), and one run is
captured with dumpcap: the capture must show exactly the frames the Action lists.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pymodbus", reason="pymodbus is not installed (pip install pymodbus)")

from interlock.capture.decode import decode_records
from interlock.drill.techniques import Action, Target, execute
from interlock.protocols.base import Direction
from interlock.protocols.modbus import parse_adu
from interlock.range.boundary import Boundary
from tests.drill.techniques.conftest import ATTACKER, sent_payloads
from tests.peers.conftest import StartCapture
from tests.peers.modbus_peer import COILS, DEVICE_ID, HOLDING, IDENTITY, INPUT, SIZE, ModbusPeer

HOST, PORT = "127.0.0.61", 25502
pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def peer() -> Iterator[ModbusPeer]:
    with ModbusPeer(HOST, PORT) as p:
        yield p


@pytest.fixture()
def boundary(peer: ModbusPeer) -> Boundary:
    b = Boundary()
    b.register(HOST, PORT, "plc")
    return b


TARGET = Target(HOST, PORT, "modbus", DEVICE_ID, "plc")


def run(tid: str, boundary: Boundary, **params: Any) -> Action:
    [action] = asyncio.run(execute(tid, TARGET, params, boundary=boundary))
    assert action.technique == tid
    assert action.target == f"{HOST}:{PORT}"
    assert action.source.startswith(f"{ATTACKER}:") and not action.source.endswith(":0")
    assert action.requests == len(action.frames) and action.bytes_sent == sum(map(len, action.frames))
    assert action.started <= action.ended
    return action


def client() -> Any:
    from pymodbus.client import ModbusTcpClient

    c = ModbusTcpClient(HOST, port=PORT, timeout=3, retries=0)
    assert c.connect()
    return c


def requests_of(action: Action) -> list[Any]:
    adus = [parse_adu(f, Direction.REQUEST) for f in action.frames]
    return [a.pdu for a in adus]  # type: ignore[union-attr]


def test_reads_return_the_datastore(boundary: Boundary) -> None:
    a = run("modbus.read_holding_registers", boundary, address=20, count=6)
    assert a.outcome == "ok" and a.detail["values"] == HOLDING[20:26]
    assert (a.requests, a.responses) == (1, 1)
    a = run("modbus.read_input_registers", boundary, address=30, count=4)
    assert a.detail["values"] == INPUT[30:34]
    a = run("modbus.read_coils", boundary, address=10, count=12)
    assert a.detail["values"] == [int(c) for c in COILS[10:22]]
    a = run("modbus.read_discrete_inputs", boundary, address=5, count=3, repeat=3, interval_s=0.05)
    assert a.requests == 3 and a.responses == 3 and a.ended - a.started >= 0.1
    tids = [int.from_bytes(f[:2], "big") for f in a.frames]
    assert tids == [1, 2, 3]


def test_read_past_the_table_is_an_exception(boundary: Boundary) -> None:
    a = run("modbus.read_holding_registers", boundary, address=SIZE - 2, count=8)
    assert a.outcome == "exception 0x02"


def test_write_register_changes_the_register(boundary: Boundary) -> None:
    a = run("modbus.write_register", boundary, address=52, value=4321)
    assert a.outcome == "ok"
    assert requests_of(a)[0].address == 52
    c = client()
    try:
        assert c.read_holding_registers(52, count=1, device_id=DEVICE_ID).registers == [4321]
    finally:
        c.close()


def test_write_coil_coils_and_registers(boundary: Boundary) -> None:
    assert run("modbus.write_coil", boundary, address=41, value=not COILS[41]).outcome == "ok"
    assert run("modbus.write_coils", boundary, address=80, values=[1, 0, 1, 1, 0]).outcome == "ok"
    assert run("modbus.write_registers", boundary, address=61, values=[11, 22, 33]).outcome == "ok"
    c = client()
    try:
        assert c.read_coils(41, count=1, device_id=DEVICE_ID).bits[0] == (not COILS[41])
        assert c.read_coils(80, count=5, device_id=DEVICE_ID).bits[:5] == [True, False, True, True, False]
        assert c.read_holding_registers(61, count=3, device_id=DEVICE_ID).registers == [11, 22, 33]
    finally:
        c.close()


def test_read_device_id_returns_the_vendor(boundary: Boundary) -> None:
    a = run("modbus.read_device_id", boundary)
    assert a.outcome == "ok"
    assert a.detail["objects"] == IDENTITY
    assert a.frames[0][7:] == bytes.fromhex("2b0e0100")


def test_brute_io_toggles(boundary: Boundary) -> None:
    a = run("modbus.brute_io", boundary, kind="register", address=70, values=[1, 2, 3], repeat=7)
    assert a.outcome == "ok" and a.requests == 7
    assert [p.value for p in requests_of(a)] == [1, 2, 3, 1, 2, 3, 1]
    c = client()
    try:
        assert c.read_holding_registers(70, count=1, device_id=DEVICE_ID).registers == [1]
    finally:
        c.close()


def test_address_scan_finds_the_table_end(boundary: Boundary) -> None:
    a = run("modbus.address_scan", boundary, table="input", address=SIZE - 5, count=10)
    assert a.detail["valid"] == [[SIZE - 5, SIZE - 1]]
    assert a.detail["outcomes"] == {"ok": 5, "exception 0x02": 5}


def test_function_scan_sends_each_code_once(boundary: Boundary) -> None:
    a = run("modbus.function_scan", boundary)
    fcs = [f[7] for f in a.frames]
    assert fcs == list(range(1, 128))
    supported = a.detail["supported"]
    assert isinstance(supported, list)
    assert {1, 2, 3, 4, 43}.issubset(supported)
    assert 100 not in supported


def test_fuzz_is_seeded(boundary: Boundary) -> None:
    a = run("modbus.fuzz", boundary, seed=7, count=15)
    b = run("modbus.fuzz", boundary, seed=7, count=15)
    assert a.requests == 15
    strip = [f[2:] for f in a.frames]  # transaction ids restart per run, the rest is the seed's
    assert strip == [f[2:] for f in b.frames]
    regs = run("modbus.fuzz", boundary, mode="registers", seed=1, count=5, address=90, span=5, min=7, max=9)
    for pdu in requests_of(regs):
        assert 90 <= pdu.address < 95 and 7 <= pdu.value <= 9


def test_flood_counts(boundary: Boundary) -> None:
    a = run("modbus.flood", boundary, count=200)
    assert a.outcome == "ok" and a.requests == 200 and a.responses == 200
    paced = run("modbus.flood", boundary, count=10, rate=50.0)
    assert paced.ended - paced.started >= 0.17


def test_restart_comms_is_answered(boundary: Boundary) -> None:
    a = run("modbus.restart_comms", boundary)
    assert a.outcome == "ok"
    assert a.frames[0][7:] == bytes.fromhex("0800010000")


def test_injected_clock(boundary: Boundary) -> None:
    ticks = iter([1000.0, 1001.5])
    [a] = asyncio.run(execute("modbus.read_coils", TARGET, {}, boundary=boundary, now=lambda: next(ticks)))
    assert (a.started, a.ended) == (1000.0, 1001.5)


def test_refused_connection_is_an_outcome(boundary: Boundary) -> None:
    boundary.register(HOST, PORT + 1, "down")
    [a] = asyncio.run(execute("modbus.read_coils", Target(HOST, PORT + 1, "modbus"), {}, boundary=boundary))
    assert a.outcome == "connection refused" and a.frames == () and a.requests == 0


def test_capture_shows_exactly_the_action_frames(boundary: Boundary, capture: StartCapture) -> None:
    dumpcap = capture("drill-modbus", [(HOST, PORT)])
    try:
        a = run("modbus.write_registers", boundary, address=62, values=[5, 6], repeat=3, interval_s=0.02)
    finally:
        path = dumpcap.stop()
    assert sent_payloads(path, ATTACKER, HOST, PORT) == list(a.frames)
    rows = [r for r in decode_records(path) if r["protocol"] == "modbus" and r["direction"] == "request"]
    mine = [parse_adu(f, Direction.REQUEST) for f in a.frames]
    assert [(r["src"], r["transaction"], r["function_code"], r["address"], list(r["values"] or []))
            for r in rows] == [(ATTACKER, m.header.transaction_id, 16, 62, [5.0, 6.0])  # type: ignore[union-attr]
                               for m in mine]
    responses = [r for r in decode_records(path)
                 if r["protocol"] == "modbus" and r["direction"] == "response"]
    assert len(responses) == a.responses == 3


def test_force_listen_only_and_serialisable_truth(boundary: Boundary) -> None:
    a = run("modbus.force_listen_only", boundary, wait_s=0.3)
    assert a.frames[0][7:] == bytes.fromhex("0800040000")
    # the spec says no answer; pymodbus 3.16 answers a truncated echo (08 0004), kept in the detail
    assert a.outcome in ("no response", "malformed response")
    text = json.dumps(dataclasses.asdict(a), default=lambda b: b.hex())
    assert '"technique": "modbus.force_listen_only"' in text


def test_procedures_repeat_too(boundary: Boundary) -> None:
    a = run("modbus.flood", boundary, count=20, repeat=2)
    assert a.outcome == "ok" and a.requests == a.responses == 40
    assert a.detail["runs"] == ["ok", "ok"] and a.detail["answered"] == 20
    b = run("modbus.read_device_id", boundary, repeat=2, interval_s=0.05)
    assert b.requests == 2 and b.ended - b.started >= 0.05
