"""DNP3 session: framing, transport reassembly, pairing, resynchronisation, caps, probe."""

from __future__ import annotations

import os

import pytest

from interlock.protocols.base import Direction, OpClass, Operation, Probe
from interlock.protocols.dnp3 import PROTOCOL, DNP3Session, ObjectHeader, probe
from interlock.protocols.dnp3.fields import IIN, MAX_FRAME_SIZE, FunctionCode, Reason
from interlock.protocols.dnp3.link import LinkFrame, build_frame, crc16
from interlock.protocols.dnp3.session import MAX_OPEN_REQUESTS, MAX_REASSEMBLIES

from ._streams import MASTER, OUTSTATION, class0_response, frames, request, response

F = FunctionCode
READ_CLASS0 = request(F.READ, 3, ObjectHeader(60, 1, 6))


def feed_all(chunks: list[tuple[bytes, bool]]) -> list[Operation]:
    s = DNP3Session()
    return [op for data, from_client in chunks for op in s.feed(data, from_client)]


def reasons(ops: list[Operation]) -> list[str | None]:
    return [op.malformed for op in ops]


def test_class0_poll() -> None:
    s = DNP3Session()
    (req,) = s.feed(READ_CLASS0, True)
    assert req == Operation(
        "dnp3", Direction.REQUEST, OpClass.READ, 1, "READ", OUTSTATION, 3, None, 0, None,
        "g60v1", None, None,
        {"link_src": MASTER, "link_dst": OUTSTATION,
         "objects": [{"group": 60, "variation": 1, "qualifier": 6}]})
    (resp,) = s.feed(response(3, ObjectHeader(30, 1, 0, 5, 7, objects=((1, -5), (1, 0), (1, 7))),
                              iin=IIN.DEVICE_RESTART | IIN.NEED_TIME | IIN.OBJECT_UNKNOWN), False)
    assert (resp.direction, resp.op_class, resp.function_code, resp.function) == (
        Direction.RESPONSE, OpClass.READ, 129, "RESPONSE")
    assert (resp.unit, resp.transaction, resp.address, resp.count, resp.values) == (
        OUTSTATION, 3, 5, 3, (-5, 0, 7))
    assert resp.object == "g30v1"
    assert resp.status == "NEED_TIME,DEVICE_RESTART,OBJECT_UNKNOWN"


def test_link_only_frames_and_dir_bit() -> None:
    s = DNP3Session()
    # opendnp3 capture: master 1 resets the link of outstation 1024, which ACKs; the bytes are
    # fed as from the "wrong" side to show that DIR, not the TCP role, sets the direction
    (reset,) = s.feed(bytes.fromhex("056405c000040100d7f7"), False)
    (ack,) = s.feed(bytes.fromhex("05640500010000042770"), True)
    assert (reset.direction, reset.op_class, reset.function_code, reset.function, reset.unit) == (
        Direction.REQUEST, OpClass.SESSION, None, "RESET_LINK_STATES", 1024)
    assert (ack.direction, ack.function, ack.unit) == (Direction.RESPONSE, "ACK", 1024)


@pytest.mark.parametrize(("function", "headers", "op_class"), [
    (F.READ, (ObjectHeader(60, 2, 6),), OpClass.READ),
    (F.WRITE, (ObjectHeader(50, 1, 7, count=1, objects=((1,),)),), OpClass.WRITE),
    (F.SELECT, (ObjectHeader(12, 1, 0x17, count=1, indexes=(4,),
                             objects=((0x41, 1, 100, 0, 0),)),), OpClass.COMMAND),
    (F.IMMED_FREEZE, (ObjectHeader(20, 0, 6),), OpClass.COMMAND),
    (F.COLD_RESTART, (), OpClass.CONTROL),
    (F.DISABLE_UNSOLICITED, (ObjectHeader(60, 2, 6),), OpClass.CONTROL),
    (F.ACTIVATE_CONFIG, (), OpClass.CONTROL),
    (F.DELAY_MEASURE, (), OpClass.DIAGNOSTIC),
    (F.RECORD_CURRENT_TIME, (), OpClass.DIAGNOSTIC),
    (F.DELETE_FILE, (), OpClass.FILE),
    (F.AUTHENTICATE_REQ, (), OpClass.SESSION),
])
def test_responses_inherit_the_request_class(function: FunctionCode,
                                             headers: tuple[ObjectHeader, ...],
                                             op_class: OpClass) -> None:
    s = DNP3Session()
    (req,) = s.feed(request(function, 7, *headers), True)
    (resp,) = s.feed(response(7), False)
    assert req.op_class == op_class and resp.op_class == op_class


def test_no_ack_requests_are_not_awaited() -> None:
    s = DNP3Session()
    s.feed(request(F.DIRECT_OPERATE_NR, 4, ObjectHeader(12, 1, 0x17, count=1, indexes=(0,),
                                                        objects=((3, 1, 0, 0, 0),))), True)
    assert not s._requests
    s.feed(request(F.WRITE, 4, ObjectHeader(80, 1, 0, 7, 7, objects=((0,),))), True)
    assert s._requests == {(OUTSTATION, 4): OpClass.WRITE}


def test_unpaired_unsolicited_confirm() -> None:
    s = DNP3Session()
    assert s.feed(response(9), False)[0].op_class == OpClass.READ  # no request seen
    (uns,) = s.feed(response(2, function=F.UNSOLICITED_RESPONSE), False)
    assert uns.op_class == OpClass.MONITOR and uns.function == "UNSOLICITED_RESPONSE"
    (conf,) = s.feed(request(F.CONFIRM, 2), True)
    assert conf.op_class == OpClass.SESSION and conf.function == "CONFIRM"


def test_multi_fragment_response_keeps_the_class() -> None:
    s = DNP3Session()
    s.feed(request(F.IMMED_FREEZE, 14, ObjectHeader(20, 0, 6)), True)
    (first,) = s.feed(response(14, fin=False), False)
    (second,) = s.feed(response(15, fir=False), False)
    (third,) = s.feed(response(15), False)  # already answered: READ
    assert [first.op_class, second.op_class, third.op_class] == [
        OpClass.COMMAND, OpClass.COMMAND, OpClass.READ]


def test_transport_reassembly_over_three_frames() -> None:
    stream = class0_response(seq=1, n=100)  # 4 + 5 + 500 octets: three segments
    assert stream.count(b"\x05\x64") == 3
    s = DNP3Session()
    ops = s.feed(stream, False)
    assert len(ops) == 1 and ops[0].values == tuple(100 * i for i in range(100))
    assert ops[0].count == 100 and not ops[0].malformed


def test_transport_sequence_wraps() -> None:
    # segments 62, 63, 0: tshark 4.0 loses this fragment (see test_vs_tshark.WRAP), we do not
    stream = class0_response(seq=1, n=100, tseq=62)
    (op,) = DNP3Session().feed(stream, False)
    assert op.malformed is None and op.values == tuple(100 * i for i in range(100))


def _segment(th: int, payload: bytes) -> bytes:
    return build_frame(LinkFrame(False, True, False, False, 4, MASTER, OUTSTATION,
                                 bytes((th,)) + payload))


def test_transport_errors() -> None:
    s = DNP3Session()
    first = _segment(0x40 | 10, bytes.fromhex("c0810000") + bytes(20))
    (bad,) = s.feed(first + _segment(12, bytes(20)), False)
    assert bad.malformed == Reason.BAD_TRANSPORT_SEQUENCE and bad.unit == OUTSTATION
    (orphan,) = s.feed(_segment(0x80 | 13, bytes(5)), False)
    assert orphan.malformed == Reason.BAD_TRANSPORT_SEQUENCE
    ops = s.feed(first + class0_response(seq=2), False)
    assert reasons(ops) == [Reason.INCOMPLETE_FRAGMENT, None]


def test_fragment_too_long() -> None:
    s = DNP3Session()
    chunk = bytes(249)
    ops = s.feed(_segment(0x40, chunk), False)
    for k in range(1, 300):
        ops += s.feed(_segment(k & 63, chunk), False)
    assert Reason.FRAGMENT_TOO_LONG in reasons(ops)
    assert len(s._reassembly) <= 1


def test_resynchronises_after_garbage_once() -> None:
    junk = b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n" * 40
    stream = READ_CLASS0 + junk + READ_CLASS0
    whole = feed_all([(stream, True)])
    assert reasons(whole) == [None, Reason.BAD_START, None]
    bytewise = feed_all([(stream[i : i + 1], True) for i in range(len(stream))])
    assert bytewise == whole


def test_mid_stream_pickup_is_silent_but_long_garbage_is_not() -> None:
    tail = class0_response(n=30)[40:]  # the end of a frame the capture missed
    assert reasons(feed_all([(tail + class0_response(), False)])) == [None]
    ops = feed_all([(os.urandom(MAX_FRAME_SIZE + 50).replace(b"\x05", b"\x06"), False)])
    assert reasons(ops) == [Reason.BAD_START]


def test_bad_header_crc_then_resync() -> None:
    broken = bytearray(READ_CLASS0)
    broken[8] ^= 0xFF
    ops = feed_all([(READ_CLASS0 + bytes(broken) + READ_CLASS0, True)])
    assert reasons(ops) == [None, Reason.BAD_HEADER_CRC, None]
    assert ops[1].direction == Direction.REQUEST  # from from_client: the header is not trusted


def test_bad_data_crc_reports_what_it_could_read() -> None:
    broken = bytearray(READ_CLASS0)
    broken[-1] ^= 0xFF
    (op,) = feed_all([(bytes(broken), True)])
    assert (op.op_class, op.malformed, op.function, op.unit, op.object) == (
        OpClass.MALFORMED, Reason.BAD_DATA_CRC, "READ", OUTSTATION, "g60v1")


def _header(length: int, control: int) -> bytes:
    head = bytes((0x05, 0x64, length, control, 10, 0, 1, 0))
    return head + crc16(head).to_bytes(2, "little")


# every Reason, through the session
REASON_STREAMS: dict[Reason, bytes] = {
    Reason.BAD_START: READ_CLASS0 + b"\x16\x03\x01\x02\x00" + READ_CLASS0,
    Reason.BAD_HEADER_CRC: _header(5, 0xC0)[:-1] + b"\x00",
    Reason.BAD_LENGTH: _header(4, 0xC0),
    Reason.UNKNOWN_LINK_FUNCTION: _header(5, 0xC7),
    Reason.BAD_DATA_CRC: READ_CLASS0[:-1] + bytes((READ_CLASS0[-1] ^ 1,)),
    Reason.BAD_TRANSPORT_SEQUENCE: _segment(0x80 | 5, b"\xc0\x81\x00\x00"),
    Reason.INCOMPLETE_FRAGMENT: _segment(0x40, b"\xc0\x81\x00\x00") + class0_response(),
    Reason.FRAGMENT_TOO_LONG: b"".join(
        [_segment(0x40, bytes(249))] + [_segment(k & 63, bytes(249)) for k in range(1, 300)]),
    Reason.BAD_APPLICATION_HEADER: b"".join(frames(b"\xc0", master=True)),
    Reason.UNKNOWN_FUNCTION: b"".join(frames(b"\xc0\x64", master=True)),
    Reason.BAD_QUALIFIER: b"".join(frames(bytes.fromhex("c0053c04ed"), master=True)),
    Reason.BAD_RANGE: b"".join(frames(bytes.fromhex("c0050c01000100"), master=True)),
    Reason.BAD_VARIATION: b"".join(frames(bytes.fromhex("c0027000010000ffff"), master=True)),
    Reason.TRUNCATED_OBJECT: b"".join(frames(bytes.fromhex("c0811234" "1e01000001" "01ffffffff"),
                                             master=False)),
}


def test_every_reason_is_reachable() -> None:
    assert set(REASON_STREAMS) == set(Reason)
    for reason, stream in REASON_STREAMS.items():
        ops = feed_all([(stream, True)])
        assert reason in reasons(ops), (reason, ops)
        assert all(op.op_class == OpClass.MALFORMED for op in ops if op.malformed)


def test_caps() -> None:
    s = DNP3Session()
    for unit in range(3 * MAX_OPEN_REQUESTS):
        s.feed(request(F.READ, unit & 15, ObjectHeader(60, 1, 6), outstation=unit), True)
    assert len(s._requests) == MAX_OPEN_REQUESTS
    for unit in range(3 * MAX_REASSEMBLIES):
        s.feed(b"".join(frames(bytes(600), master=False, outstation=unit))[:292], False)
    assert len(s._reassembly) == MAX_REASSEMBLIES
    for _ in range(20):
        s.feed(os.urandom(5000), False)
        assert len(s._streams[False].buf) <= MAX_FRAME_SIZE


@pytest.mark.parametrize(("data", "answer"), [
    (READ_CLASS0, Probe.YES),
    (_header(4, 0xC0), Probe.YES),  # malformed, but DNP3: the session reports it
    (b"", Probe.NEED_MORE),
    (b"\x05", Probe.NEED_MORE),
    (READ_CLASS0[:9], Probe.NEED_MORE),
    (READ_CLASS0[:8] + b"\x00\x00", Probe.NO),  # start octets, bad CRC
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Probe.NO),
    (b"HTTP/1.1 200 OK\r\n", Probe.NO),
    (bytes.fromhex("160301020001fc0303"), Probe.NO),  # TLS client hello
    (bytes.fromhex("000100000006010300000010"), Probe.NO),  # Modbus read holding registers
    (bytes.fromhex("0300001611e00000000100c0010ac1020100c2020102"), Probe.NO),  # TPKT/COTP
    (bytes.fromhex("680407000000"), Probe.NO),  # IEC-104 STARTDT act
    (b"\x06", Probe.NO),
])
def test_probe(data: bytes, answer: Probe) -> None:
    assert probe(data, True) is answer


def test_protocol_spec() -> None:
    assert PROTOCOL.name == "dnp3" and 20000 in PROTOCOL.tcp_ports and 20000 in PROTOCOL.udp_ports
    assert PROTOCOL.probe is probe
    assert isinstance(PROTOCOL.session(), DNP3Session)


def test_doctests() -> None:
    import doctest

    from interlock.protocols.dnp3 import session

    assert doctest.testmod(session).failed == 0
