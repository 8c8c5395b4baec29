"""The registry, parameter checks and the safety boundary (no peer needed: nothing is sent)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import interlock.drill.techniques as techniques
from interlock.detect.attack import load
from interlock.drill.techniques import TECHNIQUES, Target, TargetRefused, execute, get
from interlock.range.boundary import Boundary

BRIEF_IDS = {
    "modbus.read_coils", "modbus.read_discrete_inputs", "modbus.read_holding_registers",
    "modbus.read_input_registers", "modbus.write_coil", "modbus.write_register", "modbus.write_coils",
    "modbus.write_registers", "modbus.read_device_id", "modbus.fuzz", "modbus.function_scan",
    "modbus.address_scan", "modbus.flood", "modbus.brute_io", "modbus.restart_comms",
    "modbus.force_listen_only",
    "dnp3.integrity_poll", "dnp3.read_class", "dnp3.cold_restart", "dnp3.warm_restart",
    "dnp3.disable_unsolicited", "dnp3.enable_unsolicited", "dnp3.direct_operate", "dnp3.select_operate",
    "dnp3.direct_operate_analog", "dnp3.write_time", "dnp3.stop_application", "dnp3.initialize_data",
    "s7.szl_read", "s7.cpu_stop", "s7.cpu_start", "s7.read_db", "s7.write_db", "s7.download_block",
    "iec104.interrogation", "iec104.single_command", "iec104.double_command", "iec104.setpoint",
    "iec104.ioa_sweep",
}


def test_every_brief_id_is_registered() -> None:
    missing = BRIEF_IDS - set(TECHNIQUES)
    assert not missing, sorted(missing)


def test_ids_and_attack_ids_are_consistent() -> None:
    table = load().techniques
    for tid, tech in TECHNIQUES.items():
        assert tech.id == tid
        assert tech.attack_ids, tid
        for aid in tech.attack_ids:
            assert aid in table, f"{tid}: {aid} is not in ATT&CK for ICS"
        family = tid.split(".")[0]
        assert tech.description
        protocols = {"modbus": "modbus", "dnp3": "dnp3", "s7": "s7comm", "iec104": "iec104", "mitm": "modbus"}
        assert tech.protocol == protocols[family]


def test_get_unknown_lists_the_known_ids() -> None:
    with pytest.raises(KeyError, match=r"modbus\.nope.*modbus\.read_coils"):
        get("modbus.nope")


def _boundary() -> Boundary:
    b = Boundary()
    b.register("127.0.0.60", 25999, "nothing listens")
    return b


def test_unknown_parameter_is_named_with_the_accepted_ones() -> None:
    target = Target("127.0.0.60", 25999, "modbus")
    with pytest.raises(ValueError, match=r"bogus.*accepted: address, count"):
        asyncio.run(execute("modbus.read_coils", target, {"bogus": 1}, boundary=_boundary()))


def test_protocol_mismatch() -> None:
    target = Target("127.0.0.60", 25999, "dnp3")
    with pytest.raises(ValueError, match="speaks modbus"):
        asyncio.run(execute("modbus.read_coils", target, {}, boundary=_boundary()))


@pytest.fixture()
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record any connection attempt (there must be none)."""
    calls: list[Any] = []

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(asyncio, "open_connection", refuse)
    return calls


@pytest.mark.parametrize("host", ["127.0.0.60", "10.0.0.1", "192.0.2.1"])
@pytest.mark.parametrize("tid", sorted(TECHNIQUES))
def test_unregistered_targets_are_refused_before_any_socket(tid: str, host: str,
                                                            no_sockets: list[Any]) -> None:
    protocol = TECHNIQUES[tid].protocol
    port = 20502  # 127.0.0.60:20502 is not registered (25999 is)
    with pytest.raises(TargetRefused, match=rf"{host}:{port}"):
        asyncio.run(execute(tid, Target(host, port, protocol), {}, boundary=_boundary()))
    assert no_sockets == []


def test_refusal_comes_before_parameter_checks(no_sockets: list[Any]) -> None:
    with pytest.raises(TargetRefused, match=r"192\.0\.2\.1:502"):
        asyncio.run(execute("no.such", Target("192.0.2.1", 502, "modbus"), {"bogus": 1}, boundary=Boundary()))
    assert no_sockets == []
    assert techniques.TECHNIQUES is TECHNIQUES
