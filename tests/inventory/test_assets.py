"""Assets, roles and conversations from real captures and from records of the real Modbus session."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from interlock.capture.decode import decode_path
from interlock.inventory import Inventory, InventoryBuilder, Role, RoleThresholds, build
from tests.inventory.conftest import SAMPLE, inventory, modbus_batch, shared


def roles(inv: Inventory) -> dict[str, Role]:
    return {a.address: a.role for a in inv.assets}


def test_sample_roles_protocols_and_edges(sample: Inventory) -> None:
    assert roles(sample) == {
        "127.0.0.1": Role.ENGINEERING,  # PLC stop and hot start, SZL reads...
        "127.0.0.11": Role.PLC,
        "127.0.0.12": Role.RTU,  # IEC-104 controlled station
        "127.0.0.13": Role.PLC,
        "127.0.0.14": Role.RTU,  # DNP3 outstation
        "127.0.0.66": Role.ENGINEERING,  # the new host's FC43 scan and diagnostics
    }
    ews = sample.asset("127.0.0.1")
    assert ews is not None
    assert ews.because[0] == ("engineering functions to 127.0.0.13: 1 s7comm plc_stop, "
                              "1 s7comm pi_service")
    assert ews.also == (Role.HMI,)  # ...and it polls, as the SCADA master of the sample does
    assert ews.evidence[Role.HMI][0].startswith("polls 127.0.0.11 (modbus) every 501 ms: "
                                                "3 reads repeated, 84 requests")
    assert ews.protocols == ("dnp3", "iec104", "modbus", "s7comm")
    assert len(ews.peers) == 4
    assert ews.sent["control"] == 2 and ews.sent["read"] == 95
    scanner = sample.asset("127.0.0.66")
    assert scanner is not None
    assert scanner.because == ("identity and diagnostics to 127.0.0.11: "
                               "4 modbus encapsulated_interface_transport, 1 modbus diagnostics",)
    plc = sample.asset("127.0.0.11")
    assert plc is not None
    assert [(s.protocol, s.side, s.ports, s.units) for s in plc.services] == [
        ("modbus", "server", (502,), (17,))]
    assert plc.peers == ("127.0.0.1", "127.0.0.66")
    edges = {(e.client, e.server, e.protocol): e for e in sample.edges}
    assert set(edges) == {("127.0.0.1", "127.0.0.11", "modbus"), ("127.0.0.1", "127.0.0.12", "iec104"),
                          ("127.0.0.1", "127.0.0.13", "s7comm"), ("127.0.0.1", "127.0.0.14", "dnp3"),
                          ("127.0.0.66", "127.0.0.11", "modbus")}
    assert edges[("127.0.0.1", "127.0.0.11", "modbus")].label() == "modbus: read 84, write 2"
    s7 = edges[("127.0.0.1", "127.0.0.13", "s7comm")]
    assert s7.functions["plc_stop"] == 1 and s7.functions["pi_service"] == 1
    assert edges[("127.0.0.1", "127.0.0.12", "iec104")].operations["monitor"] == 3


def test_batches_of_any_size_give_the_same_inventory() -> None:
    whole = build(decode_path(SAMPLE)[0]).to_json()
    small = build(decode_path(SAMPLE, batch_size=7)[0]).to_json()
    assert small == whole


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        # WinCC reads 87 SZL lists, but subscribes to cyclic data and writes: an HMI
        ("s7comm/wincc_s400_production.pcapng", {"194.250.63.239": Role.HMI, "194.250.63.170": Role.PLC}),
        ("s7comm/step7_s300_download.pcapng", {"134.249.53.130": Role.ENGINEERING,
                                               "134.249.61.182": Role.PLC}),
        ("dnp3/dnp3_example.pcap", {"10.10.20.5": Role.HMI, "10.10.20.8": Role.RTU}),
        ("iec104/iec104_baselines.pcap", {"10.20.102.1": Role.HMI, "10.20.100.108": Role.RTU}),
        ("modbus/modbus_test_data_part1.pcap", {"10.0.0.57": Role.ENGINEERING, "10.0.0.3": Role.PLC,
                                                "10.0.0.8": Role.PLC, "10.0.0.9": Role.CLIENT}),
    ],
)
def test_roles_on_shared_captures(capture: str, expected: dict[str, Role]) -> None:
    assert roles(inventory(shared(capture))) == expected


def test_plant_with_one_master_and_twelve_plcs() -> None:
    inv = inventory(shared("s7comm/Plant1_S7comm.pcap"))
    found = roles(inv)
    assert found.pop("141.81.0.10") is Role.HMI
    assert set(found.values()) == {Role.PLC} and len(found) == 12
    assert {e.client for e in inv.edges} == {"141.81.0.10"}
    assert {e.server for e in inv.edges} == set(found)
    outstation = inventory(shared("dnp3/dnp3_example.pcap")).asset("10.10.20.8")
    assert outstation is not None
    assert outstation.because == ("dnp3 outstation on tcp/20000 (unit 5) for 1 client",)


def _hour_of_polls(writes_at: tuple[int, ...] = (), polls: int = 360) -> list[pa.RecordBatch]:
    """Two servers read every 10 s (120 registers in all) by one client."""
    return [modbus_batch("10.0.0.5", "10.0.0.21", 1.7e9, 10.0, polls, [(0, 60), (100, 30)], writes_at),
            modbus_batch("10.0.0.5", "10.0.0.22", 1.7e9 + 3, 10.0, polls, [(0, 30)])]


def test_a_reader_of_many_points_for_an_hour_is_a_historian() -> None:
    inv = build(_hour_of_polls())
    client = inv.asset("10.0.0.5")
    assert client is not None
    assert client.role is Role.HISTORIAN
    assert client.because[-1] == "reads only: 120 points from 2 servers over 59.9 min"
    assert client.because[0] == "polls 10.0.0.21 (modbus) every 10.0 s: 2 reads repeated, 720 requests"


def test_one_write_or_a_short_capture_makes_it_an_hmi() -> None:
    with_write = build(_hour_of_polls(writes_at=(100,))).asset("10.0.0.5")
    assert with_write is not None and with_write.role is Role.HMI
    assert with_write.because[-1] == ("writes and commands to 10.0.0.21: "
                                      "1 modbus write_single_register")
    short = build(_hour_of_polls(polls=60)).asset("10.0.0.5")  # 10 minutes
    assert short is not None and short.role is Role.HMI
    lenient = build(_hour_of_polls(polls=60), RoleThresholds(historian_min_span_s=300)).asset("10.0.0.5")
    assert lenient is not None and lenient.role is Role.HISTORIAN


def test_irregular_reads_are_not_polls() -> None:
    builder = InventoryBuilder()
    # the same read three times, but 1 s then 30 s apart: not a steady pace
    for start in (0.0, 1.0, 31.0):
        builder.update(modbus_batch("10.0.0.5", "10.0.0.21", 1.7e9 + start, 1.0, 1, [(0, 10)]))
    client = builder.finish().asset("10.0.0.5")
    assert client is not None
    assert client.role is Role.CLIENT
    assert client.because == ("too little behaviour to say more: 3 reads",)


def test_json_is_plain_data(sample: Inventory) -> None:
    doc = json.loads(json.dumps(sample.to_json()))
    assert [a["address"] for a in doc["assets"]] == [a.address for a in sample.assets]
    first = doc["assets"][1]
    assert first["role"] == "PLC" and first["identity"]["vendor"] == "Interlock Peer Works"
    assert first["first_seen"].endswith("Z")
    assert doc["edges"][0]["operations"] == {"read": 84, "write": 2}
