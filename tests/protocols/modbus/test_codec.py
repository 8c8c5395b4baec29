"""parse_pdu / build_pdu / MBAP on byte strings from the spec's examples and real captures."""

from __future__ import annotations

import pytest

from interlock.protocols.base import Direction, Malformed
from interlock.protocols.modbus import (
    Adu,
    DiagnosticsRequest,
    DiagnosticsResponse,
    EncapsulatedInterfaceTransportRequest,
    ExceptionResponse,
    FileRecord,
    FileSubRequest,
    GenericPdu,
    GetCommEventCounterRequest,
    GetCommEventCounterResponse,
    GetCommEventLogResponse,
    MaskWriteRegisterRequest,
    MaskWriteRegisterResponse,
    MbapHeader,
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDeviceIdentificationRequest,
    ReadDeviceIdentificationResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
    ReadExceptionStatusRequest,
    ReadExceptionStatusResponse,
    ReadFifoQueueRequest,
    ReadFifoQueueResponse,
    ReadFileRecordRequest,
    ReadFileRecordResponse,
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    ReadWriteMultipleRegistersRequest,
    ReadWriteMultipleRegistersResponse,
    Reason,
    ReportServerIdRequest,
    ReportServerIdResponse,
    WriteFileRecordRequest,
    WriteFileRecordResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
    build,
    build_adu,
    build_pdu,
    parse,
    parse_adu,
    parse_mbap,
    parse_pdu,
)

REQ, RSP = Direction.REQUEST, Direction.RESPONSE

# (hex PDU, direction, expected value). "spec x.y" rows are the examples of the Modbus
# Application Protocol v1.1b3; "capture" rows come from the shared pcaps (Zeek's
# modbus_example.pcap, Wireshark's sample captures).
DECODED = [
    ("0100130013", REQ, ReadCoilsRequest(19, 19)),  # spec 6.1
    ("0103cd6b05", RSP, ReadCoilsResponse(bytes.fromhex("cd6b05"))),
    ("0200c40016", REQ, ReadDiscreteInputsRequest(196, 22)),  # spec 6.2
    ("0203acdb35", RSP, ReadDiscreteInputsResponse(bytes.fromhex("acdb35"))),
    ("03006b0003", REQ, ReadHoldingRegistersRequest(107, 3)),  # spec 6.3
    ("0306022b00000064", RSP, ReadHoldingRegistersResponse((555, 0, 100))),
    ("0400080001", REQ, ReadInputRegistersRequest(8, 1)),  # spec 6.4
    ("0402000a", RSP, ReadInputRegistersResponse((10,))),
    ("0500acff00", REQ, WriteSingleCoilRequest(172, True)),  # spec 6.5
    ("0500ac0000", RSP, WriteSingleCoilResponse(172, False)),
    ("0600010003", REQ, WriteSingleRegisterRequest(1, 3)),  # spec 6.6
    ("0600010003", RSP, WriteSingleRegisterResponse(1, 3)),
    ("07", REQ, ReadExceptionStatusRequest()),  # spec 6.7
    ("076d", RSP, ReadExceptionStatusResponse(0x6D)),
    ("080000a537", REQ, DiagnosticsRequest(0, bytes.fromhex("a537"))),  # spec 6.8
    ("0800040000", REQ, DiagnosticsRequest(4, b"\x00\x00")),  # capture: force listen only
    ("080002abcd", RSP, DiagnosticsResponse(2, bytes.fromhex("abcd"))),
    ("0b", REQ, GetCommEventCounterRequest()),  # spec 6.9
    ("0bffff0108", RSP, GetCommEventCounterResponse(0xFFFF, 0x108)),
    ("0c080000010801212000", RSP,  # spec 6.10
     GetCommEventLogResponse(0, 0x108, 0x121, bytes.fromhex("2000"))),
    ("0f0013000a02cd01", REQ, WriteMultipleCoilsRequest(19, 10, bytes.fromhex("cd01"))),
    ("0f0013000a", RSP, WriteMultipleCoilsResponse(19, 10)),  # spec 6.11
    ("100001000204000a0102", REQ, WriteMultipleRegistersRequest(1, (10, 258))),  # spec 6.12
    ("1000010002", RSP, WriteMultipleRegistersResponse(1, 2)),
    ("11", REQ, ReportServerIdRequest()),
    ("11051200ff5769", RSP, ReportServerIdResponse(bytes.fromhex("1200ff5769"))),
    ("140e0600040001000206000300090002", REQ,  # spec 6.14
     ReadFileRecordRequest((FileSubRequest(4, 1, 2), FileSubRequest(3, 9, 2)))),
    ("140c05060dfe00200506 33cd0040".replace(" ", ""), RSP,
     ReadFileRecordResponse((bytes.fromhex("0dfe0020"), bytes.fromhex("33cd0040")))),
    ("1400", REQ, ReadFileRecordRequest(())),  # capture: modbus_example frame 64
    ("150d0600040007000306af04be100d", REQ,  # spec 6.15
     WriteFileRecordRequest((FileRecord(4, 7, bytes.fromhex("06af04be100d")),))),
    ("150d0600040007000306af04be100d", RSP,
     WriteFileRecordResponse((FileRecord(4, 7, bytes.fromhex("06af04be100d")),))),
    ("16000400f20025", REQ, MaskWriteRegisterRequest(4, 0xF2, 0x25)),  # spec 6.16
    ("1600000001 0001".replace(" ", ""), REQ, MaskWriteRegisterRequest(0, 1, 1)),
    ("160000007d007d", RSP, MaskWriteRegisterResponse(0, 0x7D, 0x7D)),  # capture
    ("170003000600 0e000306 00ff00ff00ff".replace(" ", ""), REQ,  # spec 6.17
     ReadWriteMultipleRegistersRequest(3, 6, 14, (255, 255, 255))),
    ("170c00fe0acd00010003000d00ff", RSP,
     ReadWriteMultipleRegistersResponse((0xFE, 0xACD, 1, 3, 0xD, 0xFF))),
    ("1804de", REQ, ReadFifoQueueRequest(0x4DE)),  # spec 6.18
    ("18000600020 1b81284".replace(" ", ""), RSP, ReadFifoQueueResponse((0x1B8, 0x1284))),
    ("1800020000", RSP, ReadFifoQueueResponse(())),  # capture: modbus_example frame 90
    ("2b0e0100", REQ, ReadDeviceIdentificationRequest(1, 0)),  # spec 6.21
    ("2b0e0183000003" "00105a65656b204d6f646275732054657374"
     "011850726f746f636f6c2050617273696e672069732066756e21" "0207312e322e332e36", RSP,
     ReadDeviceIdentificationResponse(1, 0x83, False, 0, (
         (0, b"Zeek Modbus Test"), (1, b"Protocol Parsing is fun!"), (2, b"1.2.3.6")))),
    ("2b0d0001020304", REQ, EncapsulatedInterfaceTransportRequest(13, bytes.fromhex("0001020304"))),
    ("8102", RSP, ExceptionResponse(1, 2)),  # spec 7
    ("830b", RSP, ExceptionResponse(3, 11)),
    ("c101", RSP, ExceptionResponse(65, 1)),  # exception of a user-defined function
    ("41deadbeef", REQ, GenericPdu(65, bytes.fromhex("deadbeef"))),  # user-defined 65
    ("5a000a", REQ, GenericPdu(90, bytes.fromhex("000a"))),  # capture: UMAS on FC 90
    ("2a0e0401", RSP, GenericPdu(42, bytes.fromhex("0e0401"))),  # capture: reserved 42
]


@pytest.mark.parametrize(("hexpdu", "direction", "expected"), DECODED,
                         ids=[f"{d.value}-{h[:8]}" for h, d, _ in DECODED])
def test_parse_known_pdus(hexpdu: str, direction: Direction, expected: object) -> None:
    pdu = bytes.fromhex(hexpdu)
    assert parse_pdu(pdu, direction) == expected
    assert parse(pdu, direction=direction) == expected
    assert build_pdu(expected) == pdu  # type: ignore[arg-type]
    assert build(expected) == pdu  # type: ignore[arg-type]


# (hex PDU, direction, reason, offset). Every Reason the codec itself can return is here;
# VALUE_MISMATCH needs the request and is tested on the session.
MALFORMED = [
    ("", REQ, Reason.INVALID_LENGTH, 0),
    ("03" + "00" * 253, REQ, Reason.INVALID_LENGTH, 0),  # 254 bytes > 253
    ("03000100", REQ, Reason.INVALID_LENGTH, 4),  # a byte short
    ("030001000800", REQ, Reason.INVALID_LENGTH, 5),  # a byte too many
    ("0304000a", RSP, Reason.INVALID_LENGTH, 1),  # byte count 4, 2 follow
    ("03", RSP, Reason.INVALID_LENGTH, 1),  # byte count missing
    ("100001000204000a01", REQ, Reason.INVALID_LENGTH, 5),
    ("810200", RSP, Reason.INVALID_LENGTH, 2),  # capture: exception with a trailing byte
    ("2b0e030100", REQ, Reason.INVALID_LENGTH, 4),  # capture: 43/14 request, 5 bytes
    ("2b0e0100", RSP, Reason.INVALID_LENGTH, 4),  # capture: 43/14 "response" echoing
    ("2b0e01830000020003414243", RSP, Reason.INVALID_LENGTH, 6),  # 2 objects announced
    ("2b0e018300000100054142", RSP, Reason.INVALID_LENGTH, 7),  # object overruns
    ("1407060001000200", REQ, Reason.INVALID_LENGTH, 1),  # 7 + 1 bytes
    ("140406060001", RSP, Reason.INVALID_LENGTH, 2),  # even file response length
    ("150906000100020002aabb", REQ, Reason.INVALID_LENGTH, 7),  # record overruns
    ("0800040000aa", REQ, Reason.INVALID_LENGTH, 5),  # known sub-function, 3 data bytes
    ("0c0400000000", RSP, Reason.INVALID_LENGTH, 1),  # event log byte count below 6
    ("1800040000", RSP, Reason.INVALID_LENGTH, 1),  # FIFO byte count 4, 2 follow
    ("00", REQ, Reason.INVALID_FUNCTION_CODE, 0),
    ("00", RSP, Reason.INVALID_FUNCTION_CODE, 0),
    ("8302", REQ, Reason.INVALID_FUNCTION_CODE, 0),  # exception bit in a request
    ("8001", RSP, Reason.INVALID_FUNCTION_CODE, 0),  # exception of function 0
    ("0300000000", REQ, Reason.INVALID_VALUE, 3),  # quantity 0
    ("030000007e", REQ, Reason.INVALID_VALUE, 3),  # 126 registers
    ("01000007d1", REQ, Reason.INVALID_VALUE, 3),  # 2001 coils
    ("0500011234", REQ, Reason.INVALID_VALUE, 3),  # coil value neither FF00 nor 0000
    ("0100", RSP, Reason.INVALID_VALUE, 1),  # byte count 0
    ("0303000102", RSP, Reason.INVALID_VALUE, 1),  # odd register byte count
    ("0f0000000a0100", REQ, Reason.INVALID_VALUE, 5),  # 1 byte for 10 coils
    ("10000000020200ff", REQ, Reason.INVALID_VALUE, 5),  # 2 bytes for 2 registers
    ("100000000000", REQ, Reason.INVALID_VALUE, 3),  # 0 registers
    ("0f00000000", RSP, Reason.INVALID_VALUE, 3),  # 0 coils written
    ("140707000100020003", REQ, Reason.INVALID_VALUE, 2),  # reference type 7
    ("2b0e0500", REQ, Reason.INVALID_VALUE, 2),  # read device id code 5
    ("2b0e0183010000", RSP, Reason.INVALID_VALUE, 4),  # more follows 0x01
    ("17000000010000000000", REQ, Reason.INVALID_VALUE, 7),  # write quantity 0
    ("18000400030000", RSP, Reason.INVALID_VALUE, 3),  # FIFO count 3 in 4 bytes
    ("8307", RSP, Reason.INVALID_EXCEPTION_CODE, 1),  # 7 is not in spec section 7
    ("8300", RSP, Reason.INVALID_EXCEPTION_CODE, 1),
]


@pytest.mark.parametrize(("hexpdu", "direction", "reason", "offset"), MALFORMED,
                         ids=[f"{r.value}-{h[:10]}" for h, _, r, _ in MALFORMED])
def test_malformed_reasons(hexpdu: str, direction: Direction, reason: Reason,
                           offset: int) -> None:
    pdu = bytes.fromhex(hexpdu)
    result = parse_pdu(pdu, direction)
    assert isinstance(result, Malformed), result
    assert (result.reason, result.offset) == (reason.value, offset), result.detail
    assert result.raw == pdu
    assert result.detail


def test_every_codec_reason_is_exercised() -> None:
    codec_reasons = set(Reason) - {Reason.VALUE_MISMATCH, Reason.INVALID_PROTOCOL_ID}
    assert {r for _, _, r, _ in MALFORMED} == codec_reasons


def test_mbap() -> None:
    assert parse_mbap(bytes.fromhex("00050000000604")) == MbapHeader(5, 0, 6, 4)
    bad = parse_mbap(bytes.fromhex("00010010000604"))  # capture: protocol id 16
    assert isinstance(bad, Malformed) and bad.reason == Reason.INVALID_PROTOCOL_ID
    assert bad.offset == 2
    for header in ("00010000880405", "00010000000105", "000100"):  # 34820, 1, truncated
        bad = parse_mbap(bytes.fromhex(header))
        assert isinstance(bad, Malformed) and bad.reason == Reason.INVALID_LENGTH


def test_adu_round_trip_and_errors() -> None:
    adu = bytes.fromhex("000600000013050310" "00aa00aa00bb00ccef84e3eb9f8be4c1")  # capture
    parsed = parse_adu(adu, RSP)
    assert parsed == Adu(MbapHeader(6, 0, 19, 5), ReadHoldingRegistersResponse(
        (170, 170, 187, 204, 61316, 58347, 40843, 58561)))
    assert isinstance(parsed, Adu)
    assert build_adu(6, 5, parsed.pdu) == adu
    assert build_adu(6, 5, adu[7:]) == adu
    short = parse_adu(adu[:-1], RSP)
    assert isinstance(short, Malformed) and short.reason == Reason.INVALID_LENGTH
    inner = parse_adu(bytes.fromhex("000100000006010300000000"), REQ)  # quantity 0
    assert isinstance(inner, Malformed)
    assert (inner.reason, inner.offset) == (Reason.INVALID_VALUE, 10)


@pytest.mark.parametrize("message", [
    ReadHoldingRegistersRequest(70000, 1),
    ReadHoldingRegistersRequest(0, 0),
    ReadHoldingRegistersRequest(0, 126),
    ReadCoilsRequest(0, 2001),
    ReadCoilsResponse(b""),
    ReadHoldingRegistersResponse(()),
    ReadHoldingRegistersResponse((1 << 16,)),
    WriteSingleCoilRequest(0, 1),  # type: ignore[arg-type]
    WriteSingleRegisterRequest(0, -1),
    WriteMultipleCoilsRequest(0, 10, b"\x00"),
    WriteMultipleRegistersRequest(0, tuple(range(124))),
    ReadWriteMultipleRegistersRequest(0, 1, 0, tuple(range(122))),
    ReadFifoQueueResponse(tuple(range(32))),
    ReadFileRecordResponse((b"\x00",)),
    WriteFileRecordRequest((FileRecord(1, 1, b"\x00"),)),
    DiagnosticsRequest(1, b""),
    ReadDeviceIdentificationRequest(0, 0),
    EncapsulatedInterfaceTransportRequest(14, b""),
    ExceptionResponse(3, 7),
    ExceptionResponse(0, 1),
    GenericPdu(3, b""),
    GenericPdu(0x83, b""),
    ReportServerIdResponse(b"\x00" * 252),
    "not a message",
], ids=repr)
def test_build_rejects_out_of_range(message: object) -> None:
    with pytest.raises(ValueError):
        build_pdu(message)  # type: ignore[arg-type]


def test_build_adu_rejects_bad_header_fields() -> None:
    with pytest.raises(ValueError):
        build_adu(1 << 16, 1, ReadCoilsRequest(0, 1))
    with pytest.raises(ValueError):
        build_adu(1, 256, ReadCoilsRequest(0, 1))
    with pytest.raises(ValueError):
        build_adu(1, 1, b"")
