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
from interlock.detect.network.rules import Rule, RuleEngine, run_rules
from interlock.protocols.dnp3 import codec as dnp3
from interlock.protocols.dnp3.fields import FunctionCode
from interlock.protocols.dnp3.link import LinkFrame, TransportSegment, build_segment
from interlock.protocols.iec104 import codec as iec104
from interlock.protocols.iec104.fields import Cause, TypeID, UFunction
from interlock.protocols.modbus.codec import (
    ReadHoldingRegistersRequest,
    WriteSingleRegisterRequest,
    build_adu,
)

from .captures import ACK, RST, SYN, TcpFlow, tcp_segment, write_capture
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


def replayed_write(w: PcapWriter) -> None:
    """The HMI writes a setpoint; ten minutes later another host sends the same write again."""
    hmi = TcpFlow(w, "10.1.0.20:40500", f"{PLC}:502", 500.0)
    hmi.client(500.1, build_adu(7, 1, WriteSingleRegisterRequest(3, 1150)))
    hmi.client(530.1, build_adu(8, 1, WriteSingleRegisterRequest(4, 20)))  # another write
    replay = TcpFlow(w, f"{SCANNER}:40501", f"{PLC}:502", 1100.0)
    replay.client(1100.1, build_adu(9, 1, WriteSingleRegisterRequest(3, 1150)))


def _dnp3(app: dnp3.ApplicationRequest | dnp3.ApplicationResponse, master: bool, dst: int, src: int) -> bytes:
    segment = build_segment(TransportSegment(fin=True, fir=True, seq=0, data=dnp3.build(app)))
    return dnp3.build(LinkFrame(dir=master, prm=True, fcb=False, fcv=False, function=4,
                                destination=dst, source=src, user_data=segment))


def _read(seq: int) -> bytes:
    header = dnp3.ObjectHeader(60, 2, 6)  # class 1 data, all points
    return _dnp3(dnp3.ApplicationRequest(FunctionCode.READ, seq, (header,)), True, 10, 1)


def dnp3_second_master(w: PcapWriter) -> None:
    """The master polls with sequence 5, 6, 7; 20 s later another host sends number 6 again."""
    master = TcpFlow(w, "10.2.0.1:40600", "10.2.0.9:20000", 600.0)
    for k, seq in enumerate((5, 6, 7)):
        master.client(600.1 + k, _read(seq))
    other = TcpFlow(w, "10.2.0.66:40601", "10.2.0.9:20000", 622.0)
    other.client(622.1, _read(6))


def dnp3_second_outstation(w: PcapWriter) -> None:
    """The outstation reports unsolicited 3, 4; a second host posing as it sends 4 again."""
    def unsolicited(seq: int) -> bytes:
        app = dnp3.ApplicationResponse(FunctionCode.UNSOLICITED_RESPONSE, seq, 0, (), con=True, uns=True)
        return _dnp3(app, False, 1, 10)

    real = TcpFlow(w, "10.2.0.1:40700", "10.2.0.9:20000", 700.0)
    real.server(700.1, unsolicited(3))
    real.server(701.1, unsolicited(4))
    fake = TcpFlow(w, "10.2.0.1:40701", "10.2.0.77:20000", 710.0)
    fake.server(710.1, unsolicited(4))


def port_scan(w: PcapWriter) -> None:
    """A SYN scan of 100 ports of the PLC, refused with RST/ACK (nmap -sS)."""
    for i, port in enumerate(range(1, 101)):
        tcp_segment(w, 900.0 + i / 100, f"{SCANNER}:41000", f"{PLC}:{port}", SYN)
        tcp_segment(w, 900.0 + i / 100 + 0.001, f"{PLC}:{port}", f"{SCANNER}:41000", RST | ACK, 0, 1001)


def host_sweep(w: PcapWriter) -> None:
    """SYNs to port 502 of 30 hosts within 3 s (nmap -p 502 over a /24)."""
    for i in range(30):
        tcp_segment(w, 950.0 + i / 10, f"{SCANNER}:41001", f"10.1.0.{10 + i}:502", SYN)


BUILT: dict[str, Callable[[PcapWriter], None]] = {
    "port_scan": port_scan, "host_sweep": host_sweep,
    "fc_scan": fc_scan, "broadcast_write": broadcast_write, "reset_process": reset_process, "flood": flood,
    "replayed_write": replayed_write, "dnp3_second_master": dnp3_second_master,
    "dnp3_second_outstation": dnp3_second_outstation,
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
    "tcp/port_scan.yml": "built:port_scan",
    "tcp/host_sweep.yml": "built:host_sweep",
    "any/replayed_command.yml": "built:replayed_write",
    "any/response_flood.yml": "dnp3/qut_dnp3_flooding_training_infrequent.pcap",
    "dnp3/unsolicited_flood.yml": "dnp3/qut_dnp3_masquerading_training_infrequent.pcap",
    "dnp3/replayed_request.yml": "dnp3/qut_dnp3_replay_training_frequent.pcap",
    "dnp3/sequence_from_second_sender.yml": "built:dnp3_second_master",
    "dnp3/unsolicited_sequence_from_second_sender.yml": "built:dnp3_second_outstation",
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


def test_early_alert_at_the_threshold_then_the_complete_one(rules: tuple[Rule, ...],
                                                           tmp_path: Path) -> None:
    """Live use: the flood is reported when its 500th request arrives, then in full at its end."""
    capture = write_capture(tmp_path / "flood.pcap", flood)
    batches, _ = decode_path(capture)
    engine = RuleEngine(rules, early=True)
    during = [a for b in batches for a in engine.process(b)]
    at_end = engine.finish()
    (early,) = during
    (complete,) = at_end
    assert early.count == 500 and len(early.frames) == 500 and "still going" in early.explanation
    assert complete.count == 600 and early.frames == complete.frames[:500]
    assert (early.ts, early.rule, early.src, early.dst) == (complete.ts, complete.rule, complete.src,
                                                             complete.dst)


def test_replay_and_second_sender_alerts_name_the_earlier_frame(rules: tuple[Rule, ...],
                                                               tmp_path: Path) -> None:
    (write,) = alerts_of(rules, write_capture(tmp_path / "rw.pcap", replayed_write))
    assert write.src == SCANNER and write.technique == "T0855" and len(write.frames) == 1
    assert "the content of frame 3" in write.explanation  # the HMI's write, 600 s before
    found = alerts_of(rules, write_capture(tmp_path / "sm.pcap", dnp3_second_master))
    (seq,) = by_rule(rules, found, "dnp3/sequence_from_second_sender.yml")
    # the same fragment, number 6 included, over another connection: a replay as well
    (replayed,) = by_rule(rules, found, "dnp3/replayed_request.yml")
    assert len(found) == 2 and replayed.frames == seq.frames
    assert seq.src == "10.2.0.66" and seq.technique == "T0848"
    assert "sequence number 6 after 7 from 10.2.0.1" in seq.explanation and "gone back" in seq.explanation
    (uns,) = alerts_of(rules, write_capture(tmp_path / "so.pcap", dnp3_second_outstation))
    # a rule on responses names the host answered as src, the sender as dst
    assert uns.dst == "10.2.0.77" and uns.technique == "T0856" and "repeated" in uns.explanation


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
