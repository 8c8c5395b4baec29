"""ModbusSession: framing, pairing, anomalies, and the content probe."""

from __future__ import annotations

import random

import pytest

from interlock.protocols.base import Direction, OpClass, Operation, Probe
from interlock.protocols.modbus import (
    PROTOCOL,
    ModbusSession,
    ReadHoldingRegistersRequest,
    Reason,
    build_adu,
    probe,
)
from interlock.protocols.modbus.session import MAX_FRAMED_LENGTH, MAX_OPEN_TRANSACTIONS

H = bytes.fromhex


def exchange(request_hex: str, response_hex: str) -> tuple[Operation, Operation]:
    s = ModbusSession()
    (req,) = s.feed(H(request_hex), True)
    (rsp,) = s.feed(H(response_hex), False)
    return req, rsp


def test_read_holding_registers_paired() -> None:
    # modbus_example.pcap frames 24 and 26
    req, rsp = exchange("000600000006050300010008",
                        "00060000001305031000aa00aa00bb00ccef84e3eb9f8be4c1")
    assert req == Operation("modbus", Direction.REQUEST, OpClass.READ, 3,
                            "read_holding_registers", 5, 6, 1, 8, None, "holding_registers")
    assert rsp == Operation("modbus", Direction.RESPONSE, OpClass.READ, 3,
                            "read_holding_registers", 5, 6, 1, 8,
                            (170, 170, 187, 204, 61316, 58347, 40843, 58561),
                            "holding_registers")


def test_coils_trimmed_to_quantity() -> None:
    _, rsp = exchange("000200000006050100010008", "000200000004050101e9")  # 0xE9 = 11101001
    assert (rsp.address, rsp.count, rsp.values) == (1, 8, (1, 0, 0, 1, 0, 1, 1, 1))
    _, rsp = exchange("000100000006040100010001", "00010000000404010101")
    assert rsp.values == (1,)
    # spec 6.1: 19 coils from 0xCD 0x6B 0x05
    _, rsp = exchange("000100000006010100130013", "0001000000060101 03cd6b05".replace(" ", ""))
    assert rsp.values == (1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1)
    assert rsp.object == "coils"
    _, rsp = exchange("000100000006010200c40016", "00010000000601020 3acdb35".replace(" ", ""))
    assert len(rsp.values or ()) == 22 and rsp.object == "discrete_inputs"


def test_single_writes_and_mask() -> None:
    req, rsp = exchange("00090000000606050001ff00", "00090000000606050001ff00")
    assert (req.op_class, req.address, req.count, req.values) == (OpClass.WRITE, 1, 1, (1,))
    assert rsp.values == (1,) and rsp.detail is None
    req, _ = exchange("000a0000000607060001abcd", "000a0000000607060001abcd")
    assert (req.function, req.values) == ("write_single_register", (0xABCD,))
    req, rsp = exchange("0012000000080416000adead0000", "0012000000080416000adead0000")
    assert (req.address, req.values, rsp.values) == (10, (0xDEAD, 0), (0xDEAD, 0))


def test_multiple_writes() -> None:
    req, rsp = exchange("000d00000008070f000100040109", "000d00000006070f00010004")
    assert (req.address, req.count, req.values) == (1, 4, (1, 0, 0, 1))
    assert (rsp.address, rsp.count, rsp.values) == (1, 4, None)
    req, rsp = exchange("000e0000000f0710000100040800aa00bb00cc00dd",
                        "000e00000006071000010004")
    assert (req.count, req.values, rsp.count) == (4, (0xAA, 0xBB, 0xCC, 0xDD), 4)


def test_read_write_multiple_uses_read_part() -> None:
    req, rsp = exchange("001500000011061700010004000200030600aa00bb00cc",
                        "00150000000b06170800aa00aa00bb00cc")
    detail = {"write_address": 2, "write_quantity": 3, "write_values": [0xAA, 0xBB, 0xCC]}
    assert (req.op_class, req.address, req.count, req.values, req.detail) == (
        OpClass.WRITE, 1, 4, None, detail)
    assert (rsp.address, rsp.count, rsp.values, rsp.detail) == (
        1, 4, (0xAA, 0xAA, 0xBB, 0xCC), detail)


def test_fifo_diagnostics_file_and_others() -> None:
    req, rsp = exchange("0016000000040a1804de", "00160000000a 0a1800060002 01b81284".replace(
        " ", ""))
    assert (req.op_class, req.address, rsp.address, rsp.count, rsp.values) == (
        OpClass.READ, 0x4DE, 0x4DE, 2, (0x1B8, 0x1284))
    req, rsp = exchange("0000000000060a0800040000", "0000000000030a880b")  # capture
    assert req.op_class == OpClass.DIAGNOSTIC
    assert req.detail == {"sub_function": 4, "sub_function_name": "FORCE_LISTEN_ONLY_MODE",
                          "data": "0000"}
    assert (rsp.status, rsp.function_code, rsp.malformed) == (
        "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND", 8, None)
    req, rsp = exchange("0001000000110114 0e0600040001000206000300090002".replace(" ", ""),
                        "0001000000 0f01140c05060dfe00200506 33cd0040".replace(" ", ""))
    assert req.op_class == OpClass.FILE
    assert rsp.values == (0x0DFE, 0x20, 0x33CD, 0x40)
    assert rsp.detail and rsp.detail["record_words"] == [2, 2]
    _, rsp = exchange("000f000000020211", "000f00000007021104414243ff")
    assert (rsp.op_class, rsp.detail) == (OpClass.DIAGNOSTIC, {"data": "414243ff"})


def test_device_identification() -> None:
    req, rsp = exchange(
        "001700000005012b0e0100",
        "00170000003d012b0e018300000300105a65656b204d6f646275732054657374011850726f746f636f6c"
        "2050617273696e672069732066756e210207312e322e332e36")
    assert (req.op_class, req.object) == (OpClass.IDENTIFY, "read_device_identification")
    assert rsp.op_class == OpClass.IDENTIFY and rsp.detail is not None
    assert rsp.detail["objects"] == {"VendorName": "Zeek Modbus Test",
                                     "ProductCode": "Protocol Parsing is fun!",
                                     "MajorMinorRevision": "1.2.3.6"}
    req, _ = exchange("000100000007012b0d00010203", "000100000007012b0d00010203")
    assert (req.op_class, req.object) == (OpClass.OTHER, "canopen_general_reference")


def test_exception_carries_request_address() -> None:
    _req, rsp = exchange("00010000000600030258000a", "000100000003008302")  # capture
    assert (rsp.function_code, rsp.function, rsp.op_class) == (3, "read_holding_registers",
                                                               OpClass.READ)
    assert (rsp.status, rsp.address, rsp.count, rsp.malformed) == (
        "ILLEGAL_DATA_ADDRESS", 600, 10, None)


def test_unknown_user_defined_and_reserved_functions() -> None:
    s = ModbusSession()
    ops = s.feed(build_adu(1, 1, H("41aa")) + build_adu(2, 1, H("5a000a"))
                 + build_adu(3, 1, H("3200")), True)
    assert [(o.function, o.status, o.op_class, o.malformed) for o in ops] == [
        ("user_defined", "USER_DEFINED_FUNCTION", OpClass.OTHER, None),
        ("reserved", "RESERVED_FUNCTION", OpClass.OTHER, None),
        ("unknown", "UNKNOWN_FUNCTION", OpClass.OTHER, None)]
    (rsp,) = s.feed(build_adu(2, 1, H("da01")), False)  # exception of FC 90
    assert (rsp.function_code, rsp.status, rsp.detail) == (90, "ILLEGAL_FUNCTION", None)


def test_unpaired_response_still_decodes() -> None:
    s = ModbusSession()
    (rsp,) = s.feed(H("00050000000504030200aa"), False)
    assert rsp.malformed is None and rsp.op_class == OpClass.READ
    assert (rsp.address, rsp.count, rsp.values) == (None, 1, (170,))
    assert rsp.detail == {"event": "UNSOLICITED_RESPONSE"}
    # same transaction id, other unit: not a match
    s.feed(H("000600000006050300010001"), True)
    (rsp,) = s.feed(H("00060000000504030200aa"), False)
    assert rsp.detail == {"event": "UNSOLICITED_RESPONSE"}
    # same unit and id, other function: not a match either, the request stays open
    (rsp,) = s.feed(H("00060000000605060001abcd"), False)
    assert rsp.detail == {"event": "UNSOLICITED_RESPONSE"}
    (rsp,) = s.feed(H("00060000000505030200aa"), False)
    assert (rsp.address, rsp.detail) == (1, None)


def test_value_mismatch() -> None:
    _req, rsp = exchange("000100000006010300100002", "00010000000501030200aa")
    assert rsp.op_class == OpClass.MALFORMED and rsp.malformed == Reason.VALUE_MISMATCH
    assert (rsp.function_code, rsp.address, rsp.count, rsp.unit, rsp.transaction) == (
        3, 16, 2, 1, 1)
    _, rsp = exchange("000100000006010100000009", "000100000004010101ff")  # 9 coils, 1 byte
    assert rsp.malformed == Reason.VALUE_MISMATCH


def test_echo_mismatch() -> None:
    # modbus-mask-write-register.pcap: the device answers other masks than requested
    _req, rsp = exchange("0000000000080116000000010001", "00000000000801160000007d007d")
    assert rsp.malformed is None and rsp.detail == {"event": "ECHO_MISMATCH"}
    assert rsp.values == (0x7D, 0x7D)


def test_retries_with_one_transaction_id_pair_in_order() -> None:
    # modbus_test.pcap frames 68-72: the same id sent three times, three answers
    s = ModbusSession()
    s.feed(H("01f8000000060706000409c4"), True)
    s.feed(H("01f80000000607060004000001f8000000060706000536c1"), True)
    rsps = s.feed(H("01f8000000060706000409c4" "01f800000006070600040000"
                    "01f8000000060706000536c1"), False)
    assert [r.detail for r in rsps] == [None, None, None]
    assert [r.address for r in rsps] == [4, 4, 5]


def test_flood_is_capped_and_reported() -> None:
    s = ModbusSession()
    flooded = []
    for tid in range(3 * MAX_OPEN_TRANSACTIONS):
        (op,) = s.feed(build_adu(tid, 1, ReadHoldingRegistersRequest(0, 1)), True)
        if op.detail and op.detail.get("event") == "FLOODED":
            flooded.append(tid)
    half = MAX_OPEN_TRANSACTIONS // 2
    assert flooded == [MAX_OPEN_TRANSACTIONS + k * half for k in range(4)]
    # the newest requests are still open, the oldest were forgotten
    (rsp,) = s.feed(build_adu(3 * MAX_OPEN_TRANSACTIONS - 1, 1, H("03020001")), False)
    assert rsp.address == 0 and rsp.detail is None
    (rsp,) = s.feed(build_adu(0, 1, H("03020001")), False)
    assert rsp.detail == {"event": "UNSOLICITED_RESPONSE"}


def test_split_and_coalesced_adus() -> None:
    a = H("000600000006050300010008")
    b = H("000700000006050400010008")
    s = ModbusSession()
    assert s.feed(a[:5], True) == []
    assert s.feed(a[5:9], True) == []
    (op,) = s.feed(a[9:] + b[:3], True)
    assert op.transaction == 6
    ops = s.feed(b[3:] + a, True)
    assert [o.transaction for o in ops] == [7, 6]


def test_lost_framing_drops_the_buffer_once() -> None:
    # modbus_test_data_part1.pcap frame 76: MBAP length 34820, 451 bytes of it
    s = ModbusSession()
    (op,) = s.feed(H("000100008804050708091000") * 37 + H("00010000880405"), True)
    assert (op.op_class, op.malformed, op.transaction) == (
        OpClass.MALFORMED, Reason.INVALID_LENGTH, 1)
    assert op.detail and op.detail["dropped"] == 451
    (op,) = s.feed(H("000200000006010300000001"), True)  # the next segment decodes
    assert (op.malformed, op.transaction) == (None, 2)
    (op,) = s.feed(H("000300000001"), False)  # length 1: not even a function code
    assert op.malformed == Reason.INVALID_LENGTH


def test_bad_protocol_id_keeps_framing() -> None:
    s = ModbusSession()
    ops = s.feed(H("0001001000060a0100010003") + H("000200000006010300000001"), True)
    assert [(o.malformed, o.function_code, o.unit) for o in ops] == [
        (Reason.INVALID_PROTOCOL_ID, 1, 10), (None, 3, 1)]


def test_oversize_adu_is_framed_and_reported() -> None:
    # modicon_test.pcap frame 19: UMAS with MBAP length 255
    s = ModbusSession()
    adu = H("0007000000ff005a000a") + bytes(range(251))
    ops = s.feed(adu + H("000800000004005a0004"), True)
    assert [(o.malformed, o.function_code, o.transaction) for o in ops] == [
        (Reason.INVALID_LENGTH, 90, 7), (None, 90, 8)]
    (op,) = ModbusSession().feed(H("0001000002010103") + bytes(MAX_FRAMED_LENGTH), True)
    assert op.detail and op.detail["dropped"] == 8 + MAX_FRAMED_LENGTH


def test_garbage_keeps_buffers_small() -> None:
    rng = random.Random(7)
    s = ModbusSession()
    for _ in range(2000):
        chunk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
        if rng.random() < 0.3:  # make headers with protocol id 0 common
            chunk = chunk[:2] + b"\x00\x00" + chunk[4:]
        for from_client in (True, False):
            s.feed(chunk, from_client)
            assert len(s._client) < MAX_FRAMED_LENGTH + 6
            assert len(s._server) < MAX_FRAMED_LENGTH + 6
    assert len(s._pending) <= MAX_OPEN_TRANSACTIONS


# --- probe

MODBUS_REQUEST = H("000100000006010300000001")
MODBUS_RESPONSE = H("00010000000501030200aa")


@pytest.mark.parametrize(("data", "from_client", "answer"), [
    (MODBUS_REQUEST, True, Probe.YES),
    (MODBUS_RESPONSE, False, Probe.YES),
    (H("000100000003018302"), False, Probe.YES),  # exception response first
    (MODBUS_REQUEST + MODBUS_REQUEST[:3], True, Probe.YES),
    (MODBUS_REQUEST[:3], True, Probe.NEED_MORE),
    (MODBUS_REQUEST[:7], True, Probe.NEED_MORE),
    (MODBUS_REQUEST[:-1], True, Probe.NEED_MORE),
    (MODBUS_RESPONSE, True, Probe.YES),  # a malformed request, but framed exactly
    (H("000100000003018302"), True, Probe.NO),  # exception bit from the client
    (H("000100000002 0100".replace(" ", ""))[:8], True, Probe.NO),  # function 0
    (H("0001000000060a2b0e030100"), True, Probe.YES),  # malformed, but framed exactly
    (H("0001000000060a2b0e030100") + MODBUS_REQUEST, True, Probe.YES),
    (H("0001000000060a2b0e030100") + H("4745"), True, Probe.NEED_MORE),
    (H("0001000000060a2b0e030100") + b"GET / HTTP/1.1", True, Probe.NO),
    (H("000100000003015a00") + H("00020000ffff"), True, Probe.NO),  # next length 65535
    (H("000000000000"), False, Probe.NO),  # fuzz-72.pcap: length 0
    (H("00010000880405070809100001000088"), True, Probe.NO),  # length 34820
    (b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n", True, Probe.NO),
    (b"HTTP/1.1 200 OK\r\n\r\n", False, Probe.NO),
    (H("160301020001000200fc03"), True, Probe.NO),  # TLS ClientHello
    (H("056405c0010000000421"), True, Probe.NO),  # DNP3 link header
    (H("0300001611e00000000100c1020100c2020102c0010a"), True, Probe.NO),  # TPKT/COTP CR
    (H("680407000000"), True, Probe.NO),  # IEC-104 STARTDT act
    (H("680e0000000064010600010000000014"), True, Probe.NO),  # IEC-104 I-frame
    (H("680e00000002640106000100000000 14".replace(" ", "")), True, Probe.NO),
    (H("5300000001000000af10c0990305b18f"), True, Probe.NO),  # IllegalFunction.pcap port 808
])
def test_probe(data: bytes, from_client: bool, answer: Probe) -> None:
    assert probe(data, from_client) is answer


def test_probe_request_layout_matters() -> None:
    # A response-shaped FC 3 PDU sent by the client is a malformed request (byte count
    # where the quantity should be), framed exactly: recognised, then reported malformed.
    (op,) = ModbusSession().feed(MODBUS_RESPONSE, True)
    assert op.malformed == Reason.INVALID_LENGTH


def test_protocol_spec() -> None:
    assert PROTOCOL.name == "modbus"
    assert 502 in PROTOCOL.tcp_ports
    assert PROTOCOL.probe(MODBUS_REQUEST, True) is Probe.YES
    session = PROTOCOL.session()
    assert [op.function_code for op in session.feed(MODBUS_REQUEST, True)] == [3]
