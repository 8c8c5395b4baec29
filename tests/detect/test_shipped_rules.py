"""Every shipped rule fires on a capture that shows its behaviour, and benign traffic is silent.

Captures come from ../shared (real third-party traffic: Digital Bond Quickdraw test data,
ITI firewall tests, gymgit s7-pcaps, CSET'16), from the sample bundled with Interlock (real
peers on loopback), or are built here from the codecs' ``build`` functions when no shared capture
shows the behaviour (broadcast writes, a reset process command, a function-code sweep, a flood).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from interlock.capture.decode import decode_path
from interlock.capture.pcap import PcapWriter
from interlock.detect.alerts import Alert
from interlock.detect.network.rules import Rule, run_rules
from interlock.protocols.iec104 import codec as iec104
from interlock.protocols.iec104.fields import Cause, TypeID, UFunction
from interlock.protocols.modbus.codec import (
    ReadHoldingRegistersRequest,
    WriteSingleRegisterRequest,
    build_adu,
)

from .captures import TcpFlow, write_capture
from .conftest import RULES_DIR, shared

SAMPLE = Path(str(resources.files("interlock") / "data" / "sample.pcap"))
SCANNER, PLC, RTU = "10.9.9.9", "10.1.0.6", "10.1.0.5"


def alerts_of(rules: tuple[Rule, ...], capture: Path, **kwargs: object) -> list[Alert]:
    batches, _ = decode_path(capture)
    return run_rules(rules, batches, **kwargs)


def by_rule(rules: tuple[Rule, ...], alerts: list[Alert], rule_file: str) -> list[Alert]:
    rule = next(r for r in rules if Path(r.path) == RULES_DIR / rule_file)
    return [a for a in alerts if a.rule == rule.id]


# --- captures built from the codecs ----------------------------------------------------------


def fc_scan(w: PcapWriter, codes: range = range(1, 21)) -> None:
    """A scanner tries each function code once; the PLC refuses most with ILLEGAL_FUNCTION."""
    flow = TcpFlow(w, f"{SCANNER}:40100", f"{PLC}:502", 100.0)
    for tid, fc in enumerate(codes, start=1):
        flow.client(100 + tid, build_adu(tid, 1, bytes([fc, 0, 0, 0, 1])))
        flow.server(100 + tid + 0.01, build_adu(tid, 1, bytes([fc | 0x80, 0x01])))


def broadcast_write(w: PcapWriter) -> None:
    """A unit-1 write (ordinary) then a unit-0 write (broadcast) of the same register."""
    flow = TcpFlow(w, f"{SCANNER}:40200", f"{PLC}:502", 200.0)
    flow.client(200.1, build_adu(1, 1, WriteSingleRegisterRequest(3, 1150)))
    flow.client(200.2, build_adu(2, 0, WriteSingleRegisterRequest(3, 65000)))


def reset_process(w: PcapWriter) -> None:
    flow = TcpFlow(w, f"{SCANNER}:40300", f"{RTU}:2404", 300.0)
    flow.client(300.1, iec104.build(iec104.UFormat(UFunction.STARTDT_ACT)))
    flow.server(300.2, iec104.build(iec104.UFormat(UFunction.STARTDT_CON)))
    asdu = iec104.Asdu(TypeID.C_RP_NA_1, Cause.ACTIVATION, 7, (iec104.ResetProcessCommand(0, 1),))
    flow.client(301.0, iec104.build(iec104.IFormat(0, 0, asdu)))


def flood(w: PcapWriter) -> None:
    """600 reads in 5 s from one host: 120 a second, ten times a busy poller."""
    flow = TcpFlow(w, f"{SCANNER}:40400", f"{PLC}:502", 400.0)
    for tid in range(600):
        flow.client(400 + tid / 120, build_adu(tid, 1, ReadHoldingRegistersRequest(0, 10)))


BUILT: dict[str, Callable[[PcapWriter], None]] = {
    "fc_scan": fc_scan, "broadcast_write": broadcast_write, "reset_process": reset_process, "flood": flood,
}

# rule file -> capture that shows its behaviour: "built:NAME", "sample", or a shared capture
FIRES = {
    "dnp3/request_with_outstation_direction.yml": "dnp3/qut_dnp3_injection_training_frequent.pcap",
    "modbus/function_code_scan.yml": "built:fc_scan",
    "modbus/address_scan.yml": "modbus/characterization_modbus_6RTU_with_operate.pcap",
    "modbus/diagnostics_restart_communications.yml": "modbus/modbus_test_data_part1.pcap",
    "modbus/diagnostics_force_listen_only.yml": "modbus/modbus_test_data_part1.pcap",
    "modbus/diagnostics_clear_counters.yml": "modbus/modbus_test_data_part1.pcap",
    "modbus/broadcast_write.yml": "built:broadcast_write",
    "modbus/device_identification.yml": "sample",
    "modbus/exception_burst.yml": "modbus/IllegalFunction.pcap",
    "dnp3/restart.yml": "dnp3/cold_restart_and_response.pcap",
    "dnp3/disable_unsolicited.yml": "dnp3/disable_unsolcited_and_response.pcap",
    "dnp3/stop_initialize_application.yml": "dnp3/dnp3_test_data_part1.pcap",
    "dnp3/file_delete.yml": "dnp3/file_delete.pcap",
    "dnp3/file_transfer.yml": "dnp3/file_list_directory.pcap",
    "s7comm/plc_stop.yml": "s7comm/step7_s300_stop.pcapng",
    "s7comm/plc_start.yml": "sample",
    "s7comm/program_download.yml": "s7comm/step7_s300_download.pcapng",
    "s7comm/program_upload.yml": "s7comm/s7ident.pcap",
    "s7comm/szl_identification.yml": "s7comm/s7ident.pcap",
    "iec104/command_from_unlisted_master.yml": "iec104/iec104.pcap",
    "iec104/reset_process.yml": "built:reset_process",
    "any/malformed.yml": "dnp3/DNP3-Malformed.pcap",
    "any/flood.yml": "built:flood",
}


def capture_for(source: str, tmp_path: Path) -> Path:
    if source == "sample":
        return SAMPLE
    if source.startswith("built:"):
        name = source.removeprefix("built:")
        return write_capture(tmp_path / f"{name}.pcap", BUILT[name])
    return shared(source)


def test_every_shipped_rule_has_a_capture_that_fires_it() -> None:
    shipped = {str(p.relative_to(RULES_DIR)) for p in RULES_DIR.rglob("*.yml")}
    assert shipped == set(FIRES)


@pytest.mark.parametrize("rule_file", sorted(FIRES))
def test_rule_fires_on_its_behaviour(rules: tuple[Rule, ...], rule_file: str, tmp_path: Path) -> None:
    alerts = alerts_of(rules, capture_for(FIRES[rule_file], tmp_path))
    mine = by_rule(rules, alerts, rule_file)
    assert mine, f"{rule_file} did not fire on {FIRES[rule_file]}"
    rule = next(r for r in rules if r.id == mine[0].rule)
    for a in mine:
        assert a.technique == rule.techniques[0]
        assert a.frames and a.count >= len(a.frames)
        assert a.explanation.endswith(".") and a.src in a.explanation


@pytest.mark.parametrize(
    "benign",
    ["modbus/ModbusTCP.pcap", "s7comm/s7comm_clean.pcap", "s7comm/Plant1_S7comm.pcap"],
)
def test_normal_operation_is_silent(rules: tuple[Rule, ...], benign: str) -> None:
    alerts = alerts_of(rules, shared(benign))
    assert alerts == [], [a.explanation for a in alerts]


# --- what the alerts say, checked against what the captures hold ---------------------------


def test_s7_stop_names_the_engineering_station_and_the_cpu(rules: tuple[Rule, ...]) -> None:
    (alert,) = alerts_of(rules, shared("s7comm/step7_s300_stop.pcapng"))
    assert (alert.src, alert.dst, alert.asset) == ("134.249.62.199", "134.249.61.163", "134.249.61.163:102")
    assert (alert.technique, alert.severity, alert.frames) == ("T0858", "critical", (1,))
    assert alert.flow.dport == 102 and alert.flow.protocol == "s7comm"


def test_quickdraw_diagnostics_frames(rules: tuple[Rule, ...]) -> None:
    alerts = alerts_of(rules, shared("modbus/modbus_test_data_part1.pcap"))
    listen = by_rule(rules, alerts, "modbus/diagnostics_force_listen_only.yml")
    restart = by_rule(rules, alerts, "modbus/diagnostics_restart_communications.yml")
    assert [a.frames for a in listen] == [(8,), (10,), (12,)]  # requests only, not the answers
    assert [a.frames for a in restart] == [(15,), (17,), (20,)]
    assert {a.asset for a in listen + restart} == {"10.0.0.3:502/10"}
    assert "FORCE_LISTEN_ONLY_MODE" in listen[0].explanation


def test_dnp3_cold_restart_asset_is_the_outstation(rules: tuple[Rule, ...]) -> None:
    (alert,) = alerts_of(rules, shared("dnp3/cold_restart_and_response.pcap"))
    assert alert.asset == "192.168.60.130:20000/10" and alert.frames == (4,)
    assert alert.technique == "T0816" and alert.tactics == ("Inhibit Response Function",)


def test_address_scan_and_exception_burst_point_at_the_scanner(rules: tuple[Rule, ...]) -> None:
    alerts = alerts_of(rules, shared("modbus/characterization_modbus_6RTU_with_operate.pcap"))
    assert {(a.src, a.asset) for a in alerts} == {("192.168.1.101", "192.168.1.104:502/1")}
    (burst,) = by_rule(rules, alerts, "modbus/exception_burst.yml")
    assert burst.flow.src == "192.168.1.104"  # the evidence flow keeps the responses' direction
    assert burst.count > 3000


def test_exception_burst_counts_every_exception(rules: tuple[Rule, ...]) -> None:
    (alert,) = by_rule(rules, alerts_of(rules, shared("modbus/IllegalFunction.pcap")),
                       "modbus/exception_burst.yml")
    assert alert.count == 20 and "ILLEGAL_FUNCTION" in alert.explanation


def test_function_code_scan_needs_eight_codes(rules: tuple[Rule, ...], tmp_path: Path) -> None:
    seven = write_capture(tmp_path / "seven.pcap", lambda w: fc_scan(w, range(1, 8)))
    eight = write_capture(tmp_path / "eight.pcap", lambda w: fc_scan(w, range(1, 9)))
    assert not by_rule(rules, alerts_of(rules, seven), "modbus/function_code_scan.yml")
    (alert,) = by_rule(rules, alerts_of(rules, eight), "modbus/function_code_scan.yml")
    assert alert.count == 8
    assert "8 distinct function_code values (1, 2, 3, 4, 5, 6, 7, 8)" in alert.explanation


def test_broadcast_write_is_the_unit_0_write_only(rules: tuple[Rule, ...], tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "bc.pcap", broadcast_write)
    (alert,) = alerts_of(rules, capture)
    assert alert.asset == f"{PLC}:502/0" and alert.technique == "T0855"
    assert "address 3" in alert.explanation


def test_a_flood_is_one_alert_with_every_request(rules: tuple[Rule, ...], tmp_path: Path) -> None:
    (alert,) = alerts_of(rules, write_capture(tmp_path / "flood.pcap", flood))
    assert alert.count == 600 and len(alert.frames) == 600
    assert alert.severity == "high" and alert.src == SCANNER


def test_iec104_commands_low_until_masters_are_listed(rules: tuple[Rule, ...]) -> None:
    capture = shared("iec104/iec104.pcap")
    unconfigured = alerts_of(rules, capture)
    assert len(unconfigured) == 14 and {a.severity for a in unconfigured} == {"low"}
    master = unconfigured[0].src
    assert alerts_of(rules, capture, options={"allowed_masters": [master]}) == []
    assert alerts_of(rules, capture, options={"allowed_masters": [f"{master}/32"]}) == []
    other = alerts_of(rules, capture, options={"allowed_masters": ["192.0.2.0/24"]})
    assert len(other) == 14 and {a.severity for a in other} == {"high"}


def test_iec104_reset_process(rules: tuple[Rule, ...], tmp_path: Path) -> None:
    (alert,) = alerts_of(rules, write_capture(tmp_path / "rp.pcap", reset_process))
    assert alert.asset == f"{RTU}:2404/7" and alert.technique == "T0816" and alert.severity == "high"
    assert "C_RP_NA_1" in alert.explanation


def test_sample_capture_story(rules: tuple[Rule, ...]) -> None:
    """The bundled sample's suspicious steps (data/README.md) are the ones reported."""
    titles = {a.title for a in alerts_of(rules, SAMPLE) if a.severity != "low" or "Modbus" in a.title}
    assert {"S7 PLC stop", "S7 PLC start or restart (PI service P_PROGRAM)",
            "Modbus device identification request"} <= titles
