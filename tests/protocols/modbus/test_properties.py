"""Hypothesis properties: round trips for every message kind, no exception on any input,
and the same operations whatever the chunking of a stream."""

from __future__ import annotations

import itertools
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.protocols.base import Direction, Malformed, Operation, Probe
from interlock.protocols.modbus import (
    DiagnosticsRequest,
    DiagnosticsResponse,
    EncapsulatedInterfaceTransportRequest,
    EncapsulatedInterfaceTransportResponse,
    ExceptionCode,
    ExceptionResponse,
    FileRecord,
    FileSubRequest,
    FunctionCode,
    GenericPdu,
    GetCommEventCounterRequest,
    GetCommEventCounterResponse,
    GetCommEventLogRequest,
    GetCommEventLogResponse,
    MaskWriteRegisterRequest,
    MaskWriteRegisterResponse,
    ModbusPdu,
    ModbusSession,
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
    build_adu,
    build_pdu,
    parse_pdu,
    probe,
)
from interlock.protocols.modbus.fields import DiagnosticSubFunction

REQ, RSP = Direction.REQUEST, Direction.RESPONSE
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)


def regs(lo: int, hi: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(u16, min_size=lo, max_size=hi).map(tuple)


def even_bytes(max_size: int) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size).map(lambda b: b[:len(b) // 2 * 2])


_KNOWN_SUBS = [int(c) for c in DiagnosticSubFunction if c]
diagnostic_args = st.one_of(
    st.tuples(st.sampled_from(_KNOWN_SUBS), st.binary(min_size=2, max_size=2)),
    st.tuples(st.just(0), st.binary(max_size=250)),
    st.tuples(u16.filter(lambda s: s not in DiagnosticSubFunction._value2member_map_),
              st.binary(max_size=250)),
)
_USED = set(FunctionCode._value2member_map_)
generic_fc = st.integers(1, 0x7F).filter(lambda fc: fc not in _USED)
mei_type = u8.filter(lambda t: t != 14)

REQUESTS: dict[type, st.SearchStrategy[ModbusPdu]] = {
    ReadCoilsRequest: st.builds(ReadCoilsRequest, u16, st.integers(1, 2000)),
    ReadDiscreteInputsRequest: st.builds(ReadDiscreteInputsRequest, u16, st.integers(1, 2000)),
    ReadHoldingRegistersRequest: st.builds(ReadHoldingRegistersRequest, u16,
                                           st.integers(1, 125)),
    ReadInputRegistersRequest: st.builds(ReadInputRegistersRequest, u16, st.integers(1, 125)),
    WriteSingleCoilRequest: st.builds(WriteSingleCoilRequest, u16, st.booleans()),
    WriteSingleRegisterRequest: st.builds(WriteSingleRegisterRequest, u16, u16),
    ReadExceptionStatusRequest: st.just(ReadExceptionStatusRequest()),
    DiagnosticsRequest: diagnostic_args.map(lambda a: DiagnosticsRequest(*a)),
    GetCommEventCounterRequest: st.just(GetCommEventCounterRequest()),
    GetCommEventLogRequest: st.just(GetCommEventLogRequest()),
    WriteMultipleCoilsRequest: st.integers(1, 1968).flatmap(lambda q: st.builds(
        WriteMultipleCoilsRequest, u16, st.just(q),
        st.binary(min_size=(q + 7) // 8, max_size=(q + 7) // 8))),
    WriteMultipleRegistersRequest: st.builds(WriteMultipleRegistersRequest, u16, regs(1, 123)),
    ReportServerIdRequest: st.just(ReportServerIdRequest()),
    ReadFileRecordRequest: st.lists(st.builds(FileSubRequest, u16, u16, u16), max_size=35).map(
        lambda s: ReadFileRecordRequest(tuple(s))),
    WriteFileRecordRequest: st.lists(st.builds(FileRecord, u16, u16, even_bytes(20)),
                                     max_size=8).map(lambda s: WriteFileRecordRequest(tuple(s))),
    MaskWriteRegisterRequest: st.builds(MaskWriteRegisterRequest, u16, u16, u16),
    ReadWriteMultipleRegistersRequest: st.builds(
        ReadWriteMultipleRegistersRequest, u16, st.integers(1, 125), u16, regs(1, 121)),
    ReadFifoQueueRequest: st.builds(ReadFifoQueueRequest, u16),
    ReadDeviceIdentificationRequest: st.builds(ReadDeviceIdentificationRequest,
                                               st.integers(1, 4), u8),
    EncapsulatedInterfaceTransportRequest: st.builds(
        EncapsulatedInterfaceTransportRequest, mei_type, st.binary(max_size=251)),
    GenericPdu: st.builds(GenericPdu, generic_fc, st.binary(max_size=252)),
}
RESPONSES: dict[type, st.SearchStrategy[ModbusPdu]] = {
    ReadCoilsResponse: st.builds(ReadCoilsResponse, st.binary(min_size=1, max_size=250)),
    ReadDiscreteInputsResponse: st.builds(ReadDiscreteInputsResponse,
                                          st.binary(min_size=1, max_size=250)),
    ReadHoldingRegistersResponse: st.builds(ReadHoldingRegistersResponse, regs(1, 125)),
    ReadInputRegistersResponse: st.builds(ReadInputRegistersResponse, regs(1, 125)),
    WriteSingleCoilResponse: st.builds(WriteSingleCoilResponse, u16, st.booleans()),
    WriteSingleRegisterResponse: st.builds(WriteSingleRegisterResponse, u16, u16),
    ReadExceptionStatusResponse: st.builds(ReadExceptionStatusResponse, u8),
    DiagnosticsResponse: diagnostic_args.map(lambda a: DiagnosticsResponse(*a)),
    GetCommEventCounterResponse: st.builds(GetCommEventCounterResponse, u16, u16),
    GetCommEventLogResponse: st.builds(GetCommEventLogResponse, u16, u16, u16,
                                       st.binary(max_size=245)),
    WriteMultipleCoilsResponse: st.builds(WriteMultipleCoilsResponse, u16, st.integers(1, 1968)),
    WriteMultipleRegistersResponse: st.builds(WriteMultipleRegistersResponse, u16,
                                              st.integers(1, 123)),
    ReportServerIdResponse: st.builds(ReportServerIdResponse, st.binary(max_size=251)),
    ReadFileRecordResponse: st.lists(even_bytes(20), max_size=10).map(
        lambda r: ReadFileRecordResponse(tuple(r))),
    WriteFileRecordResponse: st.lists(st.builds(FileRecord, u16, u16, even_bytes(20)),
                                      max_size=8).map(lambda s: WriteFileRecordResponse(tuple(s))),
    MaskWriteRegisterResponse: st.builds(MaskWriteRegisterResponse, u16, u16, u16),
    ReadWriteMultipleRegistersResponse: st.builds(ReadWriteMultipleRegistersResponse,
                                                  regs(1, 125)),
    ReadFifoQueueResponse: st.builds(ReadFifoQueueResponse, regs(0, 31)),
    ReadDeviceIdentificationResponse: st.builds(
        ReadDeviceIdentificationResponse, st.integers(1, 4), u8, st.booleans(), u8,
        st.lists(st.tuples(u8, st.binary(max_size=30)), max_size=7).map(tuple)),
    EncapsulatedInterfaceTransportResponse: st.builds(
        EncapsulatedInterfaceTransportResponse, mei_type, st.binary(max_size=251)),
    ExceptionResponse: st.builds(ExceptionResponse, st.integers(1, 0x7F),
                                 st.sampled_from(list(ExceptionCode))),
    GenericPdu: st.builds(GenericPdu, generic_fc, st.binary(max_size=252)),
}
requests = st.one_of(list(REQUESTS.values()))
responses = st.one_of(list(RESPONSES.values()))


def test_strategies_cover_every_message_kind() -> None:
    assert set(REQUESTS) | set(RESPONSES) == set(typing.get_args(ModbusPdu))


@settings(max_examples=300)
@given(st.data())
def test_each_strategy_makes_its_kind(data: st.DataObject) -> None:
    table = data.draw(st.sampled_from([REQUESTS, RESPONSES]))
    kind = data.draw(st.sampled_from(sorted(table, key=lambda t: t.__name__)))
    assert type(data.draw(table[kind])) is kind


@settings(max_examples=1500)
@given(requests)
def test_request_round_trip(message: ModbusPdu) -> None:
    assert parse_pdu(build_pdu(message), REQ) == message


@settings(max_examples=1500)
@given(responses)
def test_response_round_trip(message: ModbusPdu) -> None:
    assert parse_pdu(build_pdu(message), RSP) == message


@settings(max_examples=1500)
@given(st.binary(max_size=300), st.sampled_from([REQ, RSP]))
def test_parse_never_raises_on_random_bytes(data: bytes, direction: Direction) -> None:
    result = parse_pdu(data, direction)
    assert isinstance(result, Malformed) or build_pdu(result) == data


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, Direction]:
    direction = draw(st.sampled_from([REQ, RSP]))
    pdu = bytearray(build_pdu(draw(requests if direction == REQ else responses)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "grow", "insert"]))
        at = draw(st.integers(0, len(pdu)))
        if op == "flip" and pdu:
            pdu[min(at, len(pdu) - 1)] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del pdu[at:at + draw(st.integers(1, 8))]
        elif op == "grow":
            pdu += draw(st.binary(min_size=1, max_size=8))
        else:
            pdu[at:at] = draw(st.binary(min_size=1, max_size=3))
    return bytes(pdu), direction


@settings(max_examples=3000)
@given(mutated())
def test_parse_never_raises_on_mutated_pdus(case: tuple[bytes, Direction]) -> None:
    data, direction = case
    result = parse_pdu(data, direction)
    # Whatever decodes must be exactly what the bytes say: building it gives them back.
    assert isinstance(result, Malformed) or build_pdu(result) == data


# --- sessions


@st.composite
def conversations(draw: st.DrawFn) -> tuple[bytes, bytes, int, int]:
    """Client and server streams (requests, answers to some), and their ADU counts."""
    client, server = [], []
    for tid in range(draw(st.integers(1, 12))):
        unit = draw(st.integers(0, 3))
        client.append(build_adu(tid, unit, draw(requests)))
        if draw(st.booleans()):
            server.append(build_adu(tid, unit, draw(responses)))
    return b"".join(client), b"".join(server), len(client), len(server)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def run(client: list[bytes], server: list[bytes]) -> list[Operation]:
    s = ModbusSession()
    ops = [op for chunk in client for op in s.feed(chunk, True)]
    return ops + [op for chunk in server for op in s.feed(chunk, False)]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.lists(st.integers(0, 5000), max_size=20),
       st.lists(st.integers(0, 5000), max_size=20))
def test_chunking_does_not_change_operations(
        streams: tuple[bytes, bytes, int, int], cuts_c: list[int], cuts_s: list[int]) -> None:
    client, server, n_client, n_server = streams
    whole = run([client], [server])
    requests_out = [op for op in whole if op.direction == REQ]
    assert len(requests_out) == n_client and len(whole) == n_client + n_server
    assert all(op.malformed is None for op in requests_out)
    assert run([bytes([b]) for b in client], [bytes([b]) for b in server]) == whole
    assert run(chunked(client, cuts_c), chunked(server, cuts_s)) == whole


@settings(max_examples=1000)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=400)), max_size=10))
def test_feed_never_raises_on_random_bytes(chunks: list[tuple[bool, bytes]]) -> None:
    s = ModbusSession()
    for from_client, data in chunks:
        for op in s.feed(data, from_client):
            assert isinstance(op, Operation) and op.protocol == "modbus"
        probe(data, from_client)


@st.composite
def mutated_streams(draw: st.DrawFn) -> list[tuple[bool, bytes]]:
    client, server, _, _ = draw(conversations())
    out = []
    for from_client, data in ((True, client), (False, server)):
        buf = bytearray(data)
        for _ in range(draw(st.integers(0, 6))):
            if not buf:
                break
            at = draw(st.integers(0, len(buf) - 1))
            kind = draw(st.sampled_from(["flip", "cut", "insert"]))
            if kind == "flip":
                buf[at] ^= draw(st.integers(1, 255))
            elif kind == "cut":
                del buf[at:at + draw(st.integers(1, 10))]
            else:
                buf[at:at] = draw(st.binary(min_size=1, max_size=10))
        out += [(from_client, c) for c in chunked(bytes(buf), draw(st.lists(st.integers(0, 3000),
                                                                              max_size=6)))]
    return out


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_streams())
def test_feed_never_raises_on_mutated_streams(chunks: list[tuple[bool, bytes]]) -> None:
    s = ModbusSession()
    for from_client, data in chunks:
        for op in s.feed(data, from_client):
            assert op.malformed is None or op.op_class == "malformed"
        assert probe(data, from_client) in Probe
