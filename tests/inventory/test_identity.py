"""Device identity: SZL and FC43 decoding, checked against the spec layouts and against tshark."""

from __future__ import annotations

import struct

import pytest

from interlock.inventory import Inventory
from interlock.inventory.identity import (
    decode_szl_001c,
    decode_szl_0011,
    modbus_device_id,
    s7_firmware,
    vendor_from_order_number,
)
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
