"""S7comm codec: parse on PDUs taken from the shared captures, every Malformed reason, build.

Hex strings are COTP DT user data (the TPKT/COTP header ``0300LLLL02f080`` removed) copied from
the captures named in each test; expected values were checked against ``tshark -V``.
"""

from __future__ import annotations

import pytest

from interlock.protocols.base import Malformed
from interlock.protocols.s7comm import codec as c
from interlock.protocols.s7comm.fields import Area, Function, Reason, Rosctr, TransportSize


def pdu(frame_hex: str) -> bytes:
    """S7 PDU of a whole TPKT frame as tcp.payload shows it."""
    raw = bytes.fromhex(frame_hex)
    assert raw[:2] == b"\x03\x00" and raw[4:7] == b"\x02\xf0\x80"
    return raw[7:]


def ok(raw: bytes) -> c.S7Pdu:
    value = c.parse(raw)
    assert not isinstance(value, Malformed), value
    assert c.build(value) == raw  # the captures' bytes round-trip exactly
    return value


# --- job / ack_data -------------------------------------------------------------------


def test_setup_communication_job_and_ack_data() -> None:
    # 1-S7comm-VarService-Read-DB1DBD0.pcap frames 6 and 7
    job = ok(pdu("0300001902f08032010000ffff00080000f0000004000403c0"))
    assert job == c.SetupCommunication(Rosctr.JOB, 0xFFFF, 4, 4, 960)
    ack = ok(pdu("0300001b02f08032030000ffff000800000000f0000004000401e0"))
    assert ack == c.SetupCommunication(Rosctr.ACK_DATA, 0xFFFF, 4, 4, 480)


def test_read_var_db1_dbd0() -> None:
    # 1-S7comm-VarService-Read-DB1DBD0.pcap frames 10 and 11: DB1.DBB0 BYTE 4
    req = ok(pdu("0300001f02f080320100000000000e00000401120a10020004000184000000"))
    assert req == c.ReadVarRequest(0, (c.S7AnyItem(TransportSize.BYTE, 4, 1, Area.DB, 0),))
    resp = ok(pdu("0300001d02f0803203000000000002000800000401ff04002000010002"))
    assert resp == c.ReadVarResponse(0, (c.DataItem(0xFF, 0x04, 32, b"\x00\x01\x00\x02"),))


def test_write_var_real_to_m16() -> None:
    # snap7_s300_everything.pcapng frames 49 and 50: M16.0 REAL 1
    req = ok(pdu("0300002702f080320100001800000e00080501120a100800010000830000800007000479e9f642"))
    assert isinstance(req, c.WriteVarRequest)
    (item,) = req.items
    assert isinstance(item, c.S7AnyItem)
    assert (item.area, item.byte_address, item.bit_address) == (Area.FLAGS, 16, 0)
    assert item.transport_size == TransportSize.REAL
    assert req.data == (c.DataItem(0x00, 0x07, 4, bytes.fromhex("79e9f642")),)
    ack = ok(pdu("0300001602f0803203000018000002000100000501ff"))
    assert ack == c.WriteVarResponse(0x1800, (0xFF,))


def test_write_var_five_items_with_timer_and_counter() -> None:
    # snap7_s300_everything.pcapng frames 53 and 54: lengths in bits for 0x04, bytes for 0x09
    req = ok(pdu(
        "030000c302f080320100001a00003e00740505120a10040010000083000000120a1002001000008100"
        "0000120a10020010000082000000120a101d000800001d000000120a101c000800001c0000000004"
        "0100addeaddeaddeaddeaddeaddeaddeaddeefbeefbeefbeefbeefbeefbeefbeefbe00040080aaaa"
        "aaaaaaaaaaaabbbbbbbbbbbbbbbb00040080bbbbbbbbbbbbbbbbaddeaddeaddeadde00090010efbe"
        "efbeefbeefbeefbeefbeefbeefbe00090010fecafecafecafecafecafecafecafeca"
    ))  # fmt: skip
    assert isinstance(req, c.WriteVarRequest)
    assert [i.area for i in req.items if isinstance(i, c.S7AnyItem)] == [
        Area.FLAGS, Area.INPUTS, Area.OUTPUTS, Area.TIMER, Area.COUNTER]  # fmt: skip
    assert [len(d.data) for d in req.data] == [32, 16, 16, 16, 16]
    assert [d.length for d in req.data] == [256, 128, 128, 16, 16]
    ack = ok(pdu("0300001a02f080320300001a000002000500000505ffffff0303"))
    assert ack == c.WriteVarResponse(0x1A00, (0xFF, 0xFF, 0xFF, 0x03, 0x03))


def test_read_response_error_items_carry_no_data() -> None:
    # s7ident.pcap frame 32: "0a 00 00 04" five times; the length is not followed by data
    resp = ok(bytes.fromhex("320300000a0000020014000004050a0000040a0000040a0000040a0000040a000004"))
    assert isinstance(resp, c.ReadVarResponse)
    assert resp.items == (c.DataItem(0x0A, 0, 4, b""),) * 5


def test_read_response_fill_byte_between_odd_items() -> None:
    items = (c.DataItem(0xFF, 0x04, 8, b"\x07"), c.DataItem(0xFF, 0x03, 1, b"\x01"))
    raw = c.build(c.ReadVarResponse(3, items))
    assert raw.endswith(bytes.fromhex("ff04000807" "00" "ff03000101"))  # fill after item 1
    assert c.parse(raw) == c.ReadVarResponse(3, items)


def test_ack_with_header_error() -> None:
    # s7ident.pcap frame 21: start upload refused, class 0xd2 code 0x41 (protection level)
    ack = ok(pdu("0300001302f08032020000060000000000d241"))
    assert ack == c.Ack(0x0600, 0xD2, 0x41)


def test_plc_stop_and_its_ack() -> None:
    # snap7_s300_everything.pcapng frames 57 and 58
    job = ok(pdu("0300002102f080320100001c000010000029000000000009505f50524f4752414d"))
    assert job == c.PlcStop(0x1C00, "P_PROGRAM")
    ack = ok(pdu("0300001402f080320300001c0000010000000029"))
    assert ack == c.FunctionAckData(Function.PLC_STOP, 0x1C00)


def test_pi_services() -> None:
    # snap7_s300_everything.pcapng frames 59 and 63, step7_s300_download.pcapng frame 93
    modu = ok(pdu("0300002302f080320100001d000012000028000000000000fd00024550055f4d4f4455"))
    assert modu == c.PiService(0x1D00, "_MODU", b"EP")
    cold = ok(pdu("0300002702f080320100001f000016000028000000000000fd0002432009505f50524f4752414d"))
    assert cold == c.PiService(0x1F00, "P_PROGRAM", b"C ")
    inse = ok(pdu(
        "0300002b02f080320100008400001a000028000000000000fd000a01003041303030303150055f494e5345"
    ))
    assert isinstance(inse, c.PiService)
    assert inse.service == "_INSE" and inse.parameter_block == b"\x01\x000A00001P"


def test_upload_sequence() -> None:
    # snap7_s300_everything.pcapng frames 17-22: start upload SDB0, upload, end upload
    start = ok(pdu("0300002302f080320100000800001200001d00000000000000095f3042303030303041"))
    assert start == c.BlockControlJob(Function.START_UPLOAD, 0x0800, 0, 0, 0, "_0B00000A")
    assert c.filename_block("_0B00000A") == "SDB0"
    started = ok(pdu("0300002302f0803203000008000010000000001d000100000000070730303030323136"))
    assert started == c.BlockControlAckData(
        Function.START_UPLOAD, 0x0800, 0, 0x0100, 7, "0000216")
    upload = ok(pdu("0300001902f080320100000900000800001e00000000000007"))
    assert upload == c.BlockControlJob(Function.UPLOAD, 0x0900, 0, 0, 7)
    end = ok(pdu("0300001402f080320300000a000001000000001f"))
    assert end == c.BlockControlAckData(Function.END_UPLOAD, 0x0A00)


def test_download_request_and_block() -> None:
    # step7_s300_download.pcapng frames 87 and 90 (the PLC asks for the block: a job from 102)
    req = ok(pdu(
        "0300003102f080320100008300002000001a00010000000000095f30413030303031500d3130303032"
        "3136303030303838"
    ))
    assert req == c.BlockControlJob(
        Function.REQUEST_DOWNLOAD, 0x8300, 0, 0x0100, 0, "_0A00001P", "1000216000088")
    block = c.parse(bytes.fromhex(
        "320300006501000200dc00001b0000d800fb" + "70700101050a0001000000d8" + "00" * 204
    ))
    assert isinstance(block, c.BlockControlAckData)
    assert block.function == Function.DOWNLOAD_BLOCK and block.data is not None
    assert len(block.data) == 216 and block.data[:4] == b"pp\x01\x01"


def test_header_error_keeps_what_there_is() -> None:
    # an ack_data refusing a read with no data item: not the read layout, still decoded
    raw = bytes.fromhex("32030000000500020000850004 01".replace(" ", ""))
    value = c.parse(raw)
    assert value == c.FunctionAckData(Function.READ_VAR, 5, b"\x01", b"", 0x85, 0x00)
    assert c.build(value) == raw


# --- userdata -------------------------------------------------------------------------


def test_userdata_read_szl_request_and_response() -> None:
    # s7ident.pcap frames 10 and 11: SZL 0x0011 index 0
    req = ok(pdu("0300002102f080320700000100000800080001120411440100ff09000400110000"))
    assert req == c.Userdata(0x0100, 4, 4, 1, 0, 0x11, None, None, None, 0xFF, 0x09,
                             bytes.fromhex("00110000"))  # fmt: skip
    head = "0300009902f080320700000100000c007c000112081284010000000000ff09007800110000001c0004"
    resp = c.parse(pdu(head + "00" * 112))
    assert isinstance(resp, c.Userdata)
    assert (resp.type, resp.function_group, resp.subfunction) == (8, 4, 1)
    assert (resp.data_unit_ref, resp.last_data_unit, resp.error_code) == (0, 0, 0)
    assert resp.data[:8] == bytes.fromhex("00110000001c0004")


def test_userdata_read_clock() -> None:
    # snap7_s300_everything.pcapng frames 45 and 46
    req = ok(pdu("0300001d02f0803207000016000008000400011204114701000a000000"))
    assert isinstance(req, c.Userdata)
    assert (req.function_group, req.return_code, req.data) == (7, 0x0A, b"")
    resp = ok(pdu("0300002b02f080320700001600000c000e000112081287010200000000ff09000a00191602081451379162"))
    assert isinstance(resp, c.Userdata)
    assert c.s7_timestamp(resp.data) == "2016-02-08T14:51:37.916"


def test_userdata_block_info_error_code() -> None:
    # snap7_s300_everything.pcapng frames 23 and 24: DB0 not found (0xd209)
    req = ok(pdu("0300002502f080320700000b000008000c0001120411430300ff0900083041303030303041"))
    assert isinstance(req, c.Userdata)
    assert c.block_info_block(req.data) == "DB0"
    resp = ok(pdu("0300002102f080320700000b00000c000400011208128303000000d2090a000000"))
    assert isinstance(resp, c.Userdata) and resp.error_code == 0xD209


def test_userdata_mode_transition_push_keeps_its_odd_length_byte() -> None:
    # step7_s300_stop.pcapng frame 4: head 0x010010, length byte 16, 8-byte parameter
    push = ok(pdu("0300001902f080320700000000000800000100101000000000"))
    assert push == c.Userdata(0, 0, 0, 0, 0, 0x00, head=0x010010, param_length=16)


def test_cyclic_subscription_and_data() -> None:
    # 2-S7comm-VarService-CyclicData-1s.pcap frames 17 and 25: 11 DB words every second
    req = pdu(
        "030000a502f0803207000000010008008c0001120411420100ff090088000b0101120a10040001012c"
        "84000020120a1004000100c884000000120a10040001012c84000000120a10040001012c8400001012"
        "0a1004000100c884000038120a10040001012c84000030120a1004000100c884000018120a100400"
        "0100c884000010120a1004000100c884000050120a10040001012c84000040120a1004000100c88400"
        "0028"
    )  # fmt: skip
    ud = ok(req)
    assert isinstance(ud, c.Userdata)
    sub = c.parse_cyclic_request(ud.data)
    assert isinstance(sub, c.CyclicSubscription)
    assert (sub.timebase, sub.factor, len(sub.items)) == (1, 1, 11)
    assert sub.items[0] == c.S7AnyItem(TransportSize.WORD, 1, 300, Area.DB, 4 * 8)
    assert c.build_cyclic_request(sub) == ud.data
    resp = ok(pdu(
        "0300006502f080320700000001000c0048000112081282010200000000ff090044000bff04001030"
        "00ff0400100060ff0400103000ff0400103000ff0400100007ff0400100000ff040010e000ff0400"
        "1000e0ff040010e000ff0400100000ff040010004b"
    ))  # fmt: skip
    assert isinstance(resp, c.Userdata)
    data = c.parse_cyclic_data(resp.data)
    assert isinstance(data, tuple) and len(data) == 11
    assert data[0] == c.DataItem(0xFF, 0x04, 16, b"\x30\x00")
    assert c.build_cyclic_data(data) == resp.data


# --- S7comm-plus ----------------------------------------------------------------------


def test_s7comm_plus_v2_response() -> None:
    # S7-1200-Uploading-OB1-TIAV12.pcap frame 11: SetMultiVariables response, sequence 2
    plus = ok(pdu("0300001f02f080720200103200000542000000023400000000000072020000"))
    assert isinstance(plus, c.S7CommPlusPdu)
    assert (plus.version, plus.opcode, plus.function_code) == (2, 0x32, 0x0542)
    assert plus.sequence_number == 2 and plus.trailer


def test_s7comm_plus_v3_request_skips_the_digest() -> None:
    # s7comm_plus.pcap frame 7: SetVariable request behind a 32-byte integrity digest
    plus = ok(pdu(
        "0300006802f0807203005920e969a95a852ab0e288480ccecb618e48779f4b68a1ce9a9c42cd6aa536"
        "80068331000004f20000831a70000e4d7470000e5101881d000700ce000004e88969001200000000896a"
        "001300896b000400000084eb270000000072030000"
    ))  # fmt: skip
    assert isinstance(plus, c.S7CommPlusPdu)
    assert (plus.opcode, plus.function_code, plus.sequence_number) == (0x31, 0x04F2, 0x831A)
    assert plus.session_id == 0x70000E4D


def test_s7comm_plus_fragment_has_no_trailer() -> None:
    frag = ok(b"\x72\x02\x00\x03abc")
    assert frag == c.S7CommPlusPdu(2, b"abc", trailer=False)


# --- every malformed reason -----------------------------------------------------------

GOOD_READ = bytes.fromhex("32010000000a000e00000401120a10020004000184000000")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x45\x01\x00\x00\x00\x00\x00\x00\x00\x00", Reason.BAD_PROTOCOL_ID),
        (b"\x16\x03", Reason.BAD_PROTOCOL_ID),
        (b"", Reason.TRUNCATED),
        (b"\x32\x01\x00\x00", Reason.TRUNCATED),
        (GOOD_READ[:-1], Reason.TRUNCATED),
        (bytes.fromhex("3203000000010002000000"), Reason.TRUNCATED),  # 11 bytes, ack is 12
        (GOOD_READ + b"\x00", Reason.BAD_LENGTH),
        (bytes.fromhex("32050000000000000000"), Reason.UNKNOWN_ROSCTR),
        (bytes.fromhex("320100000001000000 00".replace(" ", "")), Reason.BAD_LENGTH),  # no param
        (bytes.fromhex("32010000000100020000" "3301"), Reason.UNKNOWN_FUNCTION),
        (bytes.fromhex("32030000000100020000" "0000" "3301"), Reason.UNKNOWN_FUNCTION),
        (bytes.fromhex("32010000000a000e0000" "0401" "130a10020004000184000000"), Reason.BAD_ITEM),
        (bytes.fromhex("32010000000a000e0000" "0401" "120b10020004000184000000"), Reason.BAD_ITEM),
        (bytes.fromhex("32010000000a000e0000" "0401" "1210100200040001840000" "00"),
         Reason.BAD_ITEM),  # spec length 16 runs past the parameter
        (bytes.fromhex("32010000000a000e0000" "0402" "120a10020004000184000000"),
         Reason.BAD_ITEM_COUNT),  # two items announced, one present
        (bytes.fromhex("32010000000a00100000" "0401" "120a10020004000184000000" "0000"),
         Reason.BAD_ITEM_COUNT),  # bytes after the last item
        (bytes.fromhex("32030000000a000200050000" "0401" "ff040020" "00"), Reason.BAD_DATA_ITEM),
        (bytes.fromhex("32030000000a000200020000" "0401" "ff04"), Reason.BAD_DATA_ITEM),
        (bytes.fromhex("32030000000a000200000000" "0401"), Reason.BAD_ITEM_COUNT),
        (bytes.fromhex("32030000000a000200010000" "0502" "ff"), Reason.BAD_ITEM_COUNT),
        (bytes.fromhex("32070000000a00060000" "000112021144"), Reason.BAD_USERDATA),
        (bytes.fromhex("32070000000a000a0000" "00011206124401000000"), Reason.BAD_USERDATA),
        (bytes.fromhex("32070000000a00080002" "0001120411440100" "ff09"), Reason.BAD_LENGTH),
        (bytes.fromhex("32070000000a00080005" "0001120411440100" "ff09000400"), Reason.BAD_LENGTH),
        (bytes.fromhex("32010000000a00070000" "f0000001000100"), Reason.BAD_LENGTH),  # setup
        (bytes.fromhex("32010000000a00040000" "1d000000"), Reason.BAD_LENGTH),  # block ctl
        (bytes.fromhex("32010000000a000a0000" "28000000000000fd0000" ), Reason.BAD_LENGTH),
        (bytes.fromhex("32010000000a00080000" "290000000000097a"), Reason.BAD_LENGTH),
        (b"\x72\x01\x00\x10abc", Reason.BAD_PLUS_HEADER),
        (b"\x72\x01", Reason.BAD_PLUS_HEADER),
    ],
)
def test_malformed_reasons(raw: bytes, reason: Reason) -> None:
    value = c.parse(raw)
    assert isinstance(value, Malformed), value
    assert value.reason == reason, value
    assert 0 <= value.offset <= len(raw)
    assert value.raw == raw


def test_every_codec_reason_has_a_case() -> None:
    session_only = {Reason.REASSEMBLY_OVERFLOW, Reason.BAD_TPKT_VERSION, Reason.BAD_TPKT_LENGTH,
                    Reason.BAD_COTP_LENGTH, Reason.UNKNOWN_COTP_TYPE, Reason.BAD_COTP_PARAMETER}
    cases = test_malformed_reasons.pytestmark[0].args[1]  # type: ignore[attr-defined]
    assert {r for _, r in cases} | session_only == set(Reason)


# --- build ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        c.ReadVarRequest(70000, ()),
        c.ReadVarRequest(1, (c.S7AnyItem(2, 1, 1, 0x84, 1 << 24),)),
        c.ReadVarRequest(1, (c.RawItem(0x10, b"\x00"),)),
        c.ReadVarRequest(1, (c.S7AnyItem(2, 1, 1, 0x84, 0),) * 256),
        c.ReadVarResponse(1, (c.DataItem(0xFF, 0x04, 16, b"\x00"),)),  # 16 bits need 2 bytes
        c.ReadVarResponse(1, (c.DataItem(0x0A, 0x00, 4, b"\x00" * 4),)),  # errors carry none
        c.WriteVarRequest(1, (c.S7AnyItem(2, 1, 1, 0x84, 0),), ()),
        c.WriteVarResponse(1, (256,)),
        c.SetupCommunication(Rosctr.JOB, 1, 1, 1, 480, error_class=0x85),
        c.SetupCommunication(Rosctr.USERDATA, 1, 1, 1, 480),
        c.BlockControlJob(Function.READ_VAR, 1),
        c.BlockControlJob(Function.UPLOAD, 1, part2="x"),
        c.BlockControlAckData(Function.UPLOAD, 1, None, 5),
        c.BlockControlAckData(Function.UPLOAD, 1, 0, 5),
        c.PiService(1, "_INSE", unknown=b"\x00"),
        c.PiService(1, "é" * 200 + "€"),
        c.PlcStop(1, "P" * 256),
        c.FunctionAckData(Function.READ_VAR, 1, b"\x01", b"\xff\x04\x00\x08\x01"),
        c.Ack(1, rosctr=Rosctr.JOB),
        c.Ack(1, rosctr=Rosctr.ACK_DATA, parameter=b"\x04"),
        c.Userdata(1, 4, 4, 1, data_unit_ref=0),
        c.Userdata(1, 4, 4, 1, data=b"\x01"),
        c.Userdata(1, 16, 4, 1),
        c.Userdata(1, 4, 4, 1, param_length=4),
        c.S7CommPlusPdu(256, b""),
    ],
)
def test_build_rejects_out_of_range(value: c.S7Pdu) -> None:
    with pytest.raises(ValueError):
        c.build(value)


def test_content_helpers() -> None:
    assert c.filename_block("_0800001P") == "OB1"
    assert c.filename_block("_0X00001P") is None
    assert c.filename_block("short") is None
    assert c.block_type_label(b"0E") == "FB"
    assert c.block_type_label(b"zz") is None
    assert c.block_info_block(b"0A00127A") == "DB127"
    assert c.s7_timestamp(bytes.fromhex("00199401092153421521")) == "1994-01-09T21:53:42.152"
    assert c.s7_timestamp(bytes.fromhex("001916130814513791ff")) is None  # month 13
    assert c.s7_timestamp(b"\x00" * 9) is None
    assert c.data_byte_length(0xFF, 0x04, 9) == 2
    assert c.data_byte_length(0xFF, 0x09, 9) == 9
    assert c.data_byte_length(0x05, 0x09, 9) == 0
