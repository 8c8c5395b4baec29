"""IP -> MAC from the frames' link headers, checked against tshark."""

from __future__ import annotations

import socket
import struct

import pytest

from interlock.capture.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW
from interlock.inventory import Inventory
from interlock.inventory.cli import inventory_of
from interlock.inventory.macs import MacTable
from tests.inventory.conftest import shared, tshark_fields


@pytest.mark.parametrize(("capture", "field"), [("s7comm/Plant1_S7comm.pcap", "eth.src"),
                                                ("s7comm/s7comm_plus.pcap", "sll.src.eth")])
def test_macs_match_tshark(capture: str, field: str) -> None:
    path = shared(capture)
    inv, error = inventory_of((path,))
    assert error is None
    expected: dict[str, set[str]] = {}
    for ip, mac in tshark_fields(path, "ip", "ip.src", field):
        expected.setdefault(ip, set()).add(mac)
    assert inv.assets
    for a in inv.assets:
        assert set(a.macs) == expected[a.address], a.address


def test_loopback_zero_macs_are_left_out(sample: Inventory) -> None:
    assert all(a.macs == () for a in sample.assets)


def _eth(src_mac: str, src_ip: str, vlan: int | None = None) -> bytes:
    mac = bytes.fromhex(src_mac.replace(":", ""))
    tag = struct.pack(">HH", 0x8100, vlan) if vlan is not None else b""
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20, 0, 0, 64, 6, 0, socket.inet_aton(src_ip),
                     socket.inet_aton("10.0.0.1"))
    return b"\xff" * 6 + mac + tag + b"\x08\x00" + ip


def test_vlan_frames_and_a_router_mac_shared_by_many_addresses() -> None:
    table = MacTable()
    frames = [(1, 0.0, LINKTYPE_ETHERNET, _eth("00:0e:8c:00:00:01", "10.0.0.5", vlan=10)),
              (2, 0.0, LINKTYPE_RAW, _eth("00:0e:8c:00:00:02", "10.0.0.6")[14:]),  # no link header
              *((3 + i, 0.0, LINKTYPE_ETHERNET, _eth("00:00:5e:00:01:01", f"10.9.0.{i}"))
                for i in range(4))]
    assert list(table.tap(frames)) == frames  # frames pass through unchanged
    by_address = table.by_address()
    assert by_address["10.0.0.5"] == ("00:0e:8c:00:00:01",)
    assert "10.0.0.6" not in by_address
    assert table.shared(by_address) == {"00:00:5e:00:01:01": 4}
