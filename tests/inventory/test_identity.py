"""Device identity: SZL and FC43 decoding, checked against the spec layouts and against tshark."""

from __future__ import annotations

import json
import struct

import pytest

from interlock.inventory import Inventory
from interlock.inventory.identity import (
    IdentityCollector,
    decode_szl_001c,
    decode_szl_0011,
    dnp3_attributes_from_headers,
    dnp3_device_attributes,
    modbus_device_id,
    s7_firmware,
    vendor_from_order_number,
)
from interlock.protocols.dnp3 import codec as dnp3
from interlock.protocols.dnp3.fields import FunctionCode
from tests.inventory.conftest import SAMPLE, inventory, shared, tshark_fields


def _szl_0011(index: int, mlfb: str, ausbg: int, ausbe: int) -> bytes:
    return struct.pack(">H20sHHH", index, mlfb.encode().ljust(20), 0x00C0, ausbg, ausbe)


def _szl_001c(index: int, text: str) -> bytes:
    return struct.pack(">H32s", index, text.encode())


def test_szl_0011_gives_order_number_hardware_and_firmware() -> None:
    records = (_szl_0011(1, "6ES7 412-2EK06-0AB0 ", 7, 1) + _szl_0011(6, "6ES7 412-2EK06-0AB0 ", 7, 1)
               + _szl_0011(7, " " * 20, 0x5606, 0x0203))
    assert decode_szl_0011(records, 28) == {
        "order_number": "6ES7 412-2EK06-0AB0", "hardware": "7", "firmware": "V6.2.3"}
    assert decode_szl_0011(records, 10) == {}  # a record length below the layout: nothing
    assert s7_firmware(0x4120, 0x0909) is None  # the boot loader's word is not a 'V' version
    assert vendor_from_order_number("6es7315-2eh14-0ab0") == ("Siemens", "SIMATIC S7")
    assert vendor_from_order_number("140CPU65150") is None


def test_szl_001c_reads_indexes_and_falls_back_to_the_standard_order() -> None:
    good = _szl_001c(1, "station") + _szl_001c(7, "CPU 416-2") + _szl_001c(5, "S Q-123")
    fields, note = decode_szl_001c(good, 34)
    assert fields == {"station_name": "station", "module_type": "CPU 416-2", "serial": "S Q-123"}
    assert note is None
    # python-snap7's server: zero record length, zero indexes, records in the standard order
    zeroed = _szl_001c(0, "SNAP7") + _szl_001c(0, "module") + _szl_001c(0, "") + _szl_001c(0, "(c)")
    fields, note = decode_szl_001c(zeroed, 0)
    assert fields == {"station_name": "SNAP7", "module_name": "module", "copyright": "(c)"}
    assert note is not None and "standard order" in note


def test_modbus_model_prefers_model_name_then_product_name_then_code() -> None:
    basic = {"VendorName": "Acme", "ProductCode": "X-1", "MajorMinorRevision": "1.2"}
    assert modbus_device_id(basic) == {"vendor": "Acme", "product_code": "X-1", "firmware": "1.2",
                                       "model": "X-1"}
    assert modbus_device_id({**basic, "ProductName": "Pump PLC"})["model"] == "Pump PLC"
    assert modbus_device_id({**basic, "ProductName": "P", "ModelName": "M-7"})["model"] == "M-7"


def test_sample_modbus_fc43_identity_matches_tshark() -> None:
    ident = inventory(SAMPLE).asset("127.0.0.11")
    assert ident is not None
    got = ident.identity
    assert (got.vendor, got.model, got.firmware) == ("Interlock Peer Works", "ILK-PLC-5020", "3.1.4")
    assert got.evidence == ("Modbus FC43 device identification: 3 answers, first in frame 252",)
    rows = tshark_fields(SAMPLE, "frame.number == 252", "modbus.object_str_value")
    assert rows[0][0].split(",") == ["Interlock Peer Works", "ILK-PLC-5020", "3.1.4"]


@pytest.mark.parametrize(
    ("capture", "plc", "firmware", "hardware", "serial", "name", "card"),
    [
        ("s7comm/s7ident.pcap", "172.17.0.2", "V3.2.6", "4", "S C-C2UR28922012", "SNAP7-SERVER",
         "MMC 267FF11F"),
        # goOnline: the 0x001C answer comes in two fragments, the card serial is in the second
        ("s7comm/tia_s300_goOnline.pcapng", "134.217.61.211", "V3.2.7", "3", "S C-B1U393142011",
         "S7300/ET200M station_1", "MMC 4A1AC019"),
    ],
)
def test_s7_identity_from_szl_matches_tshark(capture: str, plc: str, firmware: str, hardware: str,
                                             serial: str, name: str, card: str) -> None:
    path = shared(capture)
    asset = inventory(path).asset(plc)
    assert asset is not None
    ident = asset.identity
    assert ident.vendor == "Siemens"
    assert ident.order_number == "6ES7 315-2EH14-0AB0"
    assert ident.model == "CPU 315-2 PN/DP"
    assert (ident.firmware, ident.serial, ident.name) == (firmware, serial, name)
    assert ident.attributes["hardware"] == hardware
    assert ident.attributes["memory_card_serial"] == card
    assert not ident.conflicts
    # tshark: MLFB, Ausbg/Ausbe of the 0011 records, and the 001C strings (reassembled)
    rows = tshark_fields(path, "s7comm.szl.xy11.0001.ausbe", "s7comm.szl.xy11.0001.anz",
                         "s7comm.szl.xy11.0001.index", "s7comm.szl.xy11.0001.ausbg",
                         "s7comm.szl.xy11.0001.ausbe")
    mlfb, index, ausbg, ausbe = (v.split(",") for v in rows[0])
    assert mlfb[0].strip() == ident.order_number
    fw = index.index("0x0007")
    assert s7_firmware(int(ausbg[fw]), int(ausbe[fw])) == firmware
    assert ausbg[index.index("0x0001")] == hardware
    rows = tshark_fields(path, "s7comm.szl.001c.0005.serialn", "s7comm.szl.001c.0001.name",
                         "s7comm.szl.001c.0005.serialn", "s7comm.szl.001c.0007.cputypname",
                         "s7comm.szl.001c.0008.snmcmmc")
    assert rows[0] == [name, serial, ident.model, card]


def test_sample_snap7_server_identity_is_read_in_the_standard_order(sample: Inventory) -> None:
    plc = sample.asset("127.0.0.13")
    assert plc is not None
    ident = plc.identity
    assert (ident.vendor, ident.model, ident.name, ident.serial) == (
        "Siemens", "CPU 315-2 PN/DP", "SNAP7-SERVER", "S C-C2UR28922012")
    assert "without indexes" in ident.evidence[0]
    # the client asked for a programming-device connection: kept as a note on the client
    client = sample.asset("127.0.0.1")
    assert client is not None
    assert "asked 127.0.0.13 for a PG (programming device) connection" in client.notes


def test_dnp3_device_attributes_from_decoded_objects() -> None:
    """g0 attributes built with the DNP3 codec, parsed back, read as vendor, model, firmware."""
    def attr(variation: int, data_type: int, value: bytes) -> dnp3.ObjectHeader:
        return dnp3.ObjectHeader(0, variation, 0x00, start=variation, stop=variation,
                                 objects=((data_type, value),))

    response = dnp3.ApplicationResponse(FunctionCode.RESPONSE, 3, 0, (
        attr(252, 1, b"ACME Grid"), attr(250, 1, b"RTU-5000"), attr(242, 1, b"4.2.1"),
        attr(248, 1, b"SN0042"), attr(240, 2, (2048).to_bytes(2, "little"))))
    parsed = dnp3.parse_fragment(dnp3.build_fragment(response))
    assert isinstance(parsed, dnp3.ApplicationResponse)
    attributes = dnp3_attributes_from_headers(parsed.headers)
    assert attributes == {252: "ACME Grid", 250: "RTU-5000", 242: "4.2.1", 248: "SN0042", 240: "2048"}
    fields = dnp3_device_attributes(attributes)
    assert (fields["vendor"], fields["model"], fields["firmware"], fields["serial"]) == (
        "ACME Grid", "RTU-5000", "4.2.1", "SN0042")
    assert fields["max_transmit_fragment"] == "2048"


def test_dnp3_group_0_values_in_a_record_become_the_outstation_identity() -> None:
    objects = [{"group": 0, "variation": 252, "qualifier": 0, "value": "ACME Grid"},
               {"group": 0, "variation": 250, "qualifier": 0, "value": "RTU-5000"},
               {"group": 0, "variation": 242, "qualifier": 0, "value": "4.2.1"}]
    row = {"protocol": "dnp3", "direction": "response", "src": "10.2.0.9", "dst": "10.2.0.1",
           "frame": 17, "function": "RESPONSE", "op_class": "read",
           "detail": json.dumps({"link_src": 10, "link_dst": 1, "objects": objects},
                                separators=(",", ":"))}
    collector = IdentityCollector()
    assert collector.wants(row)
    collector.add(row)
    ident = collector.identities()["10.2.0.9"]
    assert (ident.vendor, ident.model, ident.firmware) == ("ACME Grid", "RTU-5000", "4.2.1")
    assert ident.evidence == ("DNP3 device attributes (group 0): 1 answer, first in frame 17",)
    # without values (a request for them, or an answer cut short), only a note that they were read
    bare = {**row, "detail": json.dumps({"objects": [{"group": 0, "variation": 254, "qualifier": 6}]},
                                        separators=(",", ":"))}
    collector = IdentityCollector()
    collector.add(bare)
    assert collector.identities() == {} and "g0v254" in collector.notes["10.2.0.9"][0]


def test_dnp3_session_records_group_0_values_and_the_inventory_reads_them() -> None:
    """An outstation's g0 answer on the wire (link frames as a DNP3 device sends them) goes
    through Interlock's DNP3 session into the record's objects, values included."""
    from dataclasses import replace

    from interlock.protocols.dnp3 import PROTOCOL
    from interlock.protocols.dnp3.link import LinkFrame, build_frame, parse_frame
    from interlock.protocols.dnp3.stream import Segmenter

    def attr(variation: int, data_type: int, value: bytes) -> dnp3.ObjectHeader:
        return dnp3.ObjectHeader(0, variation, 0x00, start=variation, stop=variation,
                                 objects=((data_type, value),))

    response = dnp3.ApplicationResponse(FunctionCode.RESPONSE, 3, 0, (
        attr(252, 1, b"ACME Grid"), attr(250, 1, b"RTU-5000"), attr(242, 1, b"4.2.1")))
    # The outstation's frames: the segmenter builds master-direction frames, so flip DIR/PRM
    # to make them come from outstation 10 to master 1.
    frames = Segmenter(master=10, outstation=1).frames(dnp3.build_fragment(response))
    out = []
    for raw in frames:
        frame = parse_frame(raw)
        assert isinstance(frame, LinkFrame)
        out.append(replace(frame, dir=False))
    wire = b"".join(build_frame(f) for f in out)
    session = PROTOCOL.session()
    ops = session.feed(wire, False)
    objects = [o for op in ops for o in (op.detail or {}).get("objects", ())]
    assert [(o["variation"], o["value"]) for o in objects] == [
        (252, "ACME Grid"), (250, "RTU-5000"), (242, "4.2.1")]
    row = {"protocol": "dnp3", "direction": "response", "src": "10.2.0.9", "dst": "10.2.0.1",
           "frame": 5, "function": "RESPONSE", "op_class": "read",
           "detail": json.dumps({"objects": objects}, separators=(",", ":"))}
    collector = IdentityCollector()
    collector.add(row)
    ident = collector.identities()["10.2.0.9"]
    assert (ident.vendor, ident.model, ident.firmware) == ("ACME Grid", "RTU-5000", "4.2.1")
