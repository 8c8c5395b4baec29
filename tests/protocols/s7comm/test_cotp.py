"""TPKT (RFC 1006) and COTP class 0 (ISO 8073): parse on capture bytes, reasons, build."""

from __future__ import annotations

import pytest

from interlock.protocols.base import Malformed
from interlock.protocols.s7comm.cotp import (
    ConnectionConfirm,
    ConnectionRequest,
    Data,
    DisconnectConfirm,
    DisconnectRequest,
    Tpdu,
    TpduError,
    build_tpkt,
    parse_tpkt,
)
from interlock.protocols.s7comm.fields import Reason


def test_connection_request_s7_300() -> None:
    # s7ident.pcap frame 4: PG connection to rack 0, slot 1, TPDU size 1024
    raw = bytes.fromhex("0300001611e00000000100c0010ac1020100c2020101")
    cr = parse_tpkt(raw)
    assert cr == ConnectionRequest(0, 1, 0, ((0xC0, b"\x0a"), (0xC1, b"\x01\x00"), (0xC2, b"\x01\x01")))
    assert isinstance(cr, ConnectionRequest)
    assert (cr.src_tsap, cr.dst_tsap, cr.tpdu_size) == (b"\x01\x00", b"\x01\x01", 1024)
    assert build_tpkt(cr) == raw


def test_connection_confirm_and_string_tsap() -> None:
    # s7ident.pcap frame 6, S7-1200-Uploading-OB1-TIAV12.pcap frame 4
    cc = parse_tpkt(bytes.fromhex("0300001611d00001000100c0010ac1020100c2020101"))
    assert isinstance(cc, ConnectionConfirm) and (cc.dst_ref, cc.src_ref) == (1, 1)
    cr = parse_tpkt(bytes.fromhex(
        "030000231ee00000001100c1020600c20f53494d415449432d524f4f542d4553c0010a"))
    assert isinstance(cr, ConnectionRequest)
    assert cr.dst_tsap == b"SIMATIC-ROOT-ES" and cr.tpdu_size == 1024


def test_data_tpdus() -> None:
    # 2-S7comm-VarService-CyclicData-1s.pcap frame 7: an empty DT without EOT
    assert parse_tpkt(bytes.fromhex("0300000702f000")) == Data(b"", eot=False)
    dt = parse_tpkt(bytes.fromhex("0300000902f0803201"))
    assert dt == Data(b"\x32\x01", eot=True, tpdu_number=0)


@pytest.mark.parametrize(
    "tpdu",
    [
        DisconnectRequest(0x0102, 0x0304, 128, ((0xE0, b"bye"),), b"x"),
        DisconnectConfirm(7, 8),
        TpduError(5, 2, ((0xC1, b"\x02\xf0"),)),
        Data(b"\x32" * 300, eot=False, tpdu_number=127),
        Data(b"", parameters=((0xC3, b"\x00\x00"),)),
        ConnectionRequest(0, 1, 0, (), b"user data"),
    ],
)
def test_round_trip(tpdu: Tpdu) -> None:
    assert parse_tpkt(build_tpkt(tpdu)) == tpdu


@pytest.mark.parametrize(
    ("hexstr", "reason"),
    [
        ("0400000702f080", Reason.BAD_TPKT_VERSION),
        ("030000", Reason.BAD_TPKT_LENGTH),  # shorter than the TPKT header
        ("0300000802f080", Reason.BAD_TPKT_LENGTH),  # says 8, has 7
        ("03000006 01f0".replace(" ", ""), Reason.BAD_TPKT_LENGTH),  # below the 7-byte minimum
        ("0300000702e000", Reason.BAD_COTP_LENGTH),  # CR needs LI >= 6
        ("0300000807f08000", Reason.BAD_COTP_LENGTH),  # LI 7 runs past the frame
        ("0300000b05c0000100027a", Reason.BAD_COTP_LENGTH),  # DC followed by user data
        ("03000007026000", Reason.UNKNOWN_COTP_TYPE),  # AK is not class 0
        ("0300000e09e000000001000c0505", Reason.BAD_COTP_PARAMETER),  # 5-byte value, 1 left
    ],
)
def test_malformed_reasons(hexstr: str, reason: Reason) -> None:
    raw = bytes.fromhex(hexstr)
    value = parse_tpkt(raw)
    assert isinstance(value, Malformed), value
    assert value.reason == reason


@pytest.mark.parametrize(
    "tpdu",
    [
        ConnectionRequest(0x10000, 1),
        ConnectionRequest(0, 1, 256),
        ConnectionRequest(0, 1, 0, ((0xC1, b"x" * 256),)),
        ConnectionRequest(0, 1, 0, ((0x1C1, b"x"),)),
        ConnectionRequest(0, 1, 0, tuple((0xC1, b"x" * 100) for _ in range(3))),  # LI > 254
        Data(b"", tpdu_number=128),
        Data(b"x" * 65535),
        DisconnectRequest(0, 0, 300),
        TpduError(0, 256),
    ],
)
def test_build_rejects_out_of_range(tpdu: Tpdu) -> None:
    with pytest.raises(ValueError):
        build_tpkt(tpdu)
