"""DNP3 codec on hand-made and captured byte strings (IEEE 1815-2012 clauses 4, 8, 9, Annex A)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from interlock.protocols.base import Malformed
from interlock.protocols.dnp3 import (
    ApplicationRequest,
    ApplicationResponse,
    LinkFrame,
    ObjectHeader,
    TransportSegment,
    build,
    crc16,
    parse,
    parse_fragment,
    parse_segment,
    scan_fragment,
)
from interlock.protocols.dnp3.codec import build_fragment
from interlock.protocols.dnp3.fields import IIN, FunctionCode, OpType, Reason, TripCloseCode
from interlock.protocols.dnp3.link import build_frame, unblock

F = FunctionCode


def ms(year: int, month: int, day: int, hour: int, minute: int, second: int,
       microsecond: int) -> int:
    """DNP3 time (ms since the epoch, UTC) of a date."""
    when = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)
    return int(when.timestamp() * 1000)


def fragment_of(frame_hex: str) -> bytes:
    """The application fragment of a single-frame, single-segment capture frame."""
    frame = parse(bytes.fromhex(frame_hex))
    assert isinstance(frame, LinkFrame)
    seg = parse_segment(frame.user_data)
    assert isinstance(seg, TransportSegment) and seg.fir and seg.fin
    return seg.data


def frame(user: bytes, *, master: bool = True, function: int = 4, dst: int = 1,
          src: int = 2) -> bytes:
    return build_frame(LinkFrame(master, True, False, False, function, dst, src, user))


# --------------------------------------------------------------------------- CRC and link layer


def test_crc_check_value() -> None:
    # CRC-16/DNP catalogue check value, and a header from a capture (CRC sent low octet first)
    assert crc16(b"123456789") == 0xEA82
    assert crc16(bytes.fromhex("056405c000040100")) == 0xF7D7


def test_link_only_frames_from_opendnp3_capture() -> None:
    reset = parse(bytes.fromhex("056405c000040100d7f7"))
    assert reset == LinkFrame(dir=True, prm=True, fcb=False, fcv=False, function=0,
                              destination=1024, source=1)
    ack = parse(bytes.fromhex("05640500010000042770"))
    assert ack == LinkFrame(dir=False, prm=False, fcb=False, fcv=False, function=0,
                            destination=1, source=1024)


def test_link_frame_with_two_blocks() -> None:
    # SELECT from DNP3-SelectOperate.pcap: 21 octets of user data in a 16 + 5 block layout
    raw = bytes.fromhex("05641ac403000400c9b7c1c1030c0128010001000301640000007b5e64000000"
                        "00005b")
    f = parse(raw)
    assert isinstance(f, LinkFrame)
    assert (f.dir, f.prm, f.function, f.destination, f.source) == (True, True, 4, 3, 4)
    assert f.user_data == bytes.fromhex("c1c1030c012801000100030164000000640000000000")[:21]
    assert build(f) == raw


def test_unblock_reports_offset_of_bad_crc() -> None:
    raw = bytearray(frame(bytes(range(40))))
    raw[10 + 18 + 3] ^= 0xFF  # second block
    assert unblock(bytes(raw), 10, 40) == 10 + 18 + 16


def header(length: int, control: int, dst: int = 1, src: int = 2) -> bytes:
    """A link header with a correct CRC."""
    head = bytes((0x05, 0x64, length, control)) + dst.to_bytes(2, "little") + src.to_bytes(
        2, "little")
    return head + crc16(head).to_bytes(2, "little")


@pytest.mark.parametrize(("raw", "reason"), [
    (bytes.fromhex("0565050001000004"), Reason.BAD_START),
    (bytes.fromhex("0565050001000004aaaa"), Reason.BAD_START),
    (bytes.fromhex("05640500010000042771"), Reason.BAD_HEADER_CRC),
    (bytes.fromhex("056405000100"), Reason.BAD_LENGTH),  # cut short
    (header(4, 0xC0), Reason.BAD_LENGTH),  # length below 5
    (frame(b"\xc0\xc0\x01")[:-1], Reason.BAD_LENGTH),  # last CRC octet missing
    (frame(b"\xc0\xc0\x01") + b"\x00", Reason.BAD_LENGTH),  # trailing octet
    (frame(b"\xc0\xc0\x01")[:-1] + b"\x00", Reason.BAD_DATA_CRC),
])
def test_parse_frame_malformed(raw: bytes, reason: Reason) -> None:
    got = parse(raw)
    assert isinstance(got, Malformed) and got.reason == reason


def test_length_and_link_function_rules() -> None:
    # a user data function with no user data: the one malformed frame of the QUT flooding capture
    got = parse(bytes.fromhex("056405c40000000061b6"))
    assert isinstance(got, Malformed) and got.reason == Reason.BAD_LENGTH
    # user data on RESET_LINK_STATES
    body = frame(b"\xc0\xc0\x01")[10:]
    got = parse(header(8, 0xC0) + body)
    assert isinstance(got, Malformed) and got.reason == Reason.BAD_LENGTH
    # reserved primary function 5, reserved secondary function 3
    for control in (0xC5, 0x03):
        got = parse(header(5, control))
        assert isinstance(got, Malformed) and got.reason == Reason.UNKNOWN_LINK_FUNCTION


def test_transport_segment() -> None:
    assert parse_segment(b"\x7f\x01") == TransportSegment(fin=False, fir=True, seq=63, data=b"\x01")
    got = parse_segment(b"")
    assert isinstance(got, Malformed) and got.reason == Reason.BAD_LENGTH
    assert build(TransportSegment(True, False, 5, b"ab")) == b"\x85ab"


# --------------------------------------------------------------------------- application layer


def test_select_crob_from_capture() -> None:
    frag = fragment_of("05641ac403000400c9b7c1c1030c0128010001000301640000007b5e6400000000005b")
    got = parse_fragment(frag)
    assert got == ApplicationRequest(F.SELECT, seq=1, headers=(ObjectHeader(
        12, 1, 0x28, count=1, indexes=(1,), objects=((3, 1, 100, 100, 0),)),))
    crob = got.headers[0].objects[0]
    assert OpType(int(crob[0]) & 0x0F) is OpType.LATCH_ON
    assert TripCloseCode(int(crob[0]) >> 6) is TripCloseCode.NUL
    assert got.headers[0].values == (3,)
    s = scan_fragment(frag)
    assert (s.function, s.address, s.points, s.values, s.label) == (3, 1, 1, (3,), "g12v1")
    assert s.objects == [{"group": 12, "variation": 1, "qualifier": 0x28, "count": 1,
                          "indexes": [1], "crob": [[3, 1, 100, 100, 0]]}]


def test_write_time_and_date_from_capture() -> None:
    frag = fragment_of("056412c403000400152dc1c10232010701fa7d0b460d01c863")
    got = parse_fragment(frag)
    assert got == ApplicationRequest(F.WRITE, seq=1, headers=(ObjectHeader(
        50, 1, 0x07, count=1, objects=((0x010D460B7DFA,),)),))
    assert got.headers[0].values == (0x010D460B7DFA,)  # 2006-08-25, ms since 1970


def test_response_iin_no_func_code_support() -> None:
    # the outstation refuses COLD_RESTART (cold_restart_and_response.pcap)
    got = parse_fragment(fragment_of("05640a4401000a006e25c0c0810001c2de"))
    assert got == ApplicationResponse(F.RESPONSE, seq=0, iin=IIN.NO_FUNC_CODE_SUPPORT)


def test_counter_event_with_time_from_capture() -> None:
    got = parse_fragment(fragment_of(
        "05641c440200010008e3d0ef8100001605280100000001010000fcf00048542e026d01c891"))
    assert isinstance(got, ApplicationResponse) and got.con and got.seq == 15
    (h,) = got.headers
    assert (h.group, h.variation, h.indexes) == (22, 5, (0,))
    assert h.objects == ((1, 1, ms(2019, 9, 5, 16, 7, 33, 704000)),)  # flags, value, time
    assert h.values == (1,)


def test_class0_response_with_packed_flags_and_analogs() -> None:
    frag = fragment_of(
        "05644e44030004006f4dd8c58100000101000005020a02000005ac11010101010101140500000000"
        "000000154e0d09000000000000001e03000006c50000f0ff00c7000000c800000001000000251c00"
        "68ac000e1c0000101c00002a73")
    got = parse_fragment(frag)
    assert isinstance(got, ApplicationResponse)
    assert [h.label for h in got.headers] == ["g1v1", "g10v2", "g20v5", "g21v9", "g30v3"]
    assert got.headers[0].values == (0, 1, 0, 0, 0, 0)  # packed 0x02
    assert got.headers[1].objects == ((1,),) * 6  # flags: online
    assert got.headers[1].values == (0,) * 6  # state is flag bit 7
    assert got.headers[4].values == (197, 199, 200, 1, 7205, 7182, 7184)
    s = scan_fragment(frag)
    assert s.values == (0, 1, 0, 0, 0, 0) + (0,) * 6 + (0, 0) + (197, 199, 200, 1, 7205,
                                                                   7182, 7184)
    assert (s.address, s.points, s.label) == (0, 21, "g1v1")


def test_binary_and_double_bit_events_from_captures() -> None:
    b = parse_fragment(fragment_of(  # dnpbinaryIN.pcap frame 19
        "056418440200010066aee5e4810000020228010000008188c20caad3026d01c351"))
    assert isinstance(b, ApplicationResponse)
    assert b.headers[0].objects == ((0x81, ms(2019, 9, 5, 15, 30, 53, 704000)),)
    assert b.headers[0].values == (1,)  # bit 7 of the flags
    d = parse_fragment(fragment_of(  # dnpDobleIN.pcap frame 5
        "056418440200010066aedae9810000040228010000004188b00f8aa2026d01c351"))
    assert isinstance(d, ApplicationResponse)
    assert d.headers[0].objects == ((0x41, ms(2019, 9, 5, 15, 34, 5, 704000)),)
    assert d.headers[0].values == (1,)  # bits 7..6: determined OFF


def test_read_class_poll_has_no_object_data() -> None:
    frag = fragment_of("05640bc400040100ca8ac0c0013c0106ff50")
    assert parse_fragment(frag) == ApplicationRequest(F.READ, headers=(ObjectHeader(60, 1, 6),))
    # READ with an index list: indexes but no object data
    read = ApplicationRequest(F.READ, headers=(ObjectHeader(30, 1, 0x17, count=2, indexes=(3, 9)),))
    assert build_fragment(read) == bytes.fromhex("c001" "1e0117020309")
    assert parse_fragment(build_fragment(read)) == read


def test_freeze_at_time_carries_data_for_g50_only() -> None:
    frz = ApplicationRequest(F.FREEZE_AT_TIME, headers=(
        ObjectHeader(50, 2, 0x07, count=1, objects=((1_000_000, 60_000),)),
        ObjectHeader(20, 0, 0x00, 0, 3)))
    data = build_fragment(frz)
    assert data == bytes.fromhex("c00b" "320207" "01" "40420f000000" "60ea0000" "14000000 03"
                                 .replace(" ", ""))
    assert parse_fragment(data) == frz


def test_write_iin_restart_bit_and_delay_and_file_objects() -> None:
    clear = parse_fragment(bytes.fromhex("c4025001000707" "00"))
    assert clear == ApplicationRequest(F.WRITE, seq=4, headers=(
        ObjectHeader(80, 1, 0, 7, 7, objects=((0,),)),))
    delay = parse_fragment(bytes.fromhex("c081000034020701" "8813"))
    assert isinstance(delay, ApplicationResponse) and delay.headers[0].values == (5000,)
    # DELETE_FILE with a size-prefixed g70v3 (file_delete.pcap, dnp3.pcap frame 1)
    frag = fragment_of(
        "056438c404000300f731f0c11b46035b012a001a001000000000300400000000000000000000000000"
        "000000ffff0012002e2f68656c6c6f776f726c642ea42d7478745eda")
    got = parse_fragment(frag)
    assert isinstance(got, ApplicationRequest) and got.function is F.DELETE_FILE
    (h,) = got.headers
    assert (h.group, h.variation, h.qualifier, h.count) == (70, 3, 0x5B, 1)
    octets = h.objects[0][0]
    assert isinstance(octets, bytes) and len(octets) == 0x2A
    assert octets.endswith(b"/helloworld.txt")


def test_unknown_object_stops_decoding_without_malformed() -> None:
    frag = bytes.fromhex("c105" "0c0107" "01" "0300000000000000000000" "63010101020304")
    got = parse_fragment(frag)
    assert isinstance(got, ApplicationRequest)
    assert got.headers[1] == ObjectHeader(99, 1, 1, 0x0201, 0x0403, rest=b"")
    s = scan_fragment(frag)
    assert s.reason is None and "g99v1" in s.detail


def test_variable_objects_without_size_prefix_stop_decoding() -> None:
    frag = bytes.fromhex("c020" "780106" "aabbcc")  # AUTHENTICATE_REQ g120v1, all
    got = parse_fragment(frag)
    assert got == ApplicationRequest(F.AUTHENTICATE_REQ, headers=(
        ObjectHeader(120, 1, 6, rest=b"\xaa\xbb\xcc"),))
    assert build_fragment(got) == frag


def test_device_attributes_and_octet_strings() -> None:
    frag = bytes.fromhex("c0810000" "00fc000000" "0702" "4142" "6e0317010363 6465".replace(" ", ""))
    got = parse_fragment(frag)
    assert isinstance(got, ApplicationResponse)
    assert got.headers[0].objects == ((7, b"AB"),)
    assert got.headers[1] == ObjectHeader(110, 3, 0x17, count=1, indexes=(3,),
                                          objects=((b"cde",),))


# --------------------------------------------------------------------------- malformed fragments


@pytest.mark.parametrize(("hexfrag", "reason"), [
    ("c0", Reason.BAD_APPLICATION_HEADER),
    ("c081", Reason.BAD_APPLICATION_HEADER),  # response without IIN
    ("c064", Reason.UNKNOWN_FUNCTION),
    ("c0051e01", Reason.TRUNCATED_OBJECT),  # header cut short
    ("c0051e0100", Reason.TRUNCATED_OBJECT),  # range field cut short
    ("c0811234" "1e01000001" "01ffffffff", Reason.TRUNCATED_OBJECT),  # 2 objects, 1 present
    ("c0051e010a00", Reason.BAD_QUALIFIER),  # reserved range code 0xA
    ("c0053c04ed", Reason.BAD_QUALIFIER),  # dnp3.pcap frame 154: bit 7 and range code 13
    ("c0050c010b01", Reason.BAD_QUALIFIER),  # free format without size prefix
    ("c08100000101170100ff", Reason.BAD_QUALIFIER),  # packed object with an index prefix
    ("c0050c01000100", Reason.BAD_RANGE),  # stop < start
    ("c0027000010000ffff", Reason.BAD_VARIATION),  # write_vto_empty_string.pcap
])
def test_fragment_malformed(hexfrag: str, reason: Reason) -> None:
    frag = bytes.fromhex(hexfrag)
    got = parse_fragment(frag)
    assert isinstance(got, Malformed) and got.reason == reason
    assert 0 <= got.offset <= len(frag)
    assert scan_fragment(frag).reason == reason


def test_malformed_keeps_what_was_read() -> None:
    s = scan_fragment(bytes.fromhex("c005" "0c010700" "0000000100"))  # DNP3-Malformed #157
    assert s.reason == Reason.BAD_RANGE and s.function == 5
    assert s.objects == [{"group": 12, "variation": 1, "qualifier": 7, "count": 0, "crob": []}]


# --------------------------------------------------------------------------- build


@pytest.mark.parametrize("bad", [
    LinkFrame(True, True, False, False, 4, 70000, 1, b"\xc0"),
    LinkFrame(True, True, False, False, 16, 1, 1),
    LinkFrame(True, True, False, False, 4, 1, 1, bytes(251)),
    LinkFrame(True, True, False, False, 4, 1, 1),  # user data function without data
    LinkFrame(True, True, False, False, 0, 1, 1, b"\x00"),  # data on a link-only function
    TransportSegment(True, True, 64),
    ApplicationRequest(F.RESPONSE),
    ApplicationResponse(F.READ),
    ApplicationRequest(F.READ, seq=16),
    ApplicationResponse(F.RESPONSE, iin=0x10000),
    ApplicationRequest(F.READ, headers=(ObjectHeader(30, 1, 0, 5, 4),)),  # stop < start
    ApplicationRequest(F.READ, headers=(ObjectHeader(30, 1, 0, 0, 300),)),  # 8-bit stop
    ApplicationRequest(F.READ, headers=(ObjectHeader(30, 1, 0x0A),)),  # reserved qualifier
    ApplicationRequest(F.READ, headers=(ObjectHeader(30, 1, 0, 0, 1, objects=((1, 2),)),)),
    ApplicationRequest(F.WRITE, headers=(ObjectHeader(30, 1, 0, 0, 1, objects=((1, 2),)),)),
    ApplicationRequest(F.WRITE, headers=(ObjectHeader(41, 2, 0x17, count=1, indexes=(0,),
                                                      objects=((70000, 0),)),)),
    ApplicationRequest(F.WRITE, headers=(ObjectHeader(50, 1, 0x07, count=1,
                                                      objects=((1 << 48,),)),)),
    ApplicationRequest(F.WRITE, headers=(ObjectHeader(1, 1, 0, 0, 0, objects=((2,),)),)),
    ApplicationRequest(F.WRITE, headers=(ObjectHeader(112, 0, 1, 0, 3),)),
    ApplicationRequest(F.WRITE, headers=(ObjectHeader(99, 1, 0, 0, 0, rest=b"x"),
                                         ObjectHeader(60, 1, 6))),  # unknown size not last
])
def test_build_rejects_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError):
        build(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("group", "variation", "qualifier", "obj"), [
    (30, 1, 0x01, lambda i: (1, -i)),  # two items per object: per-object format
    (30, 3, 0x01, lambda i: (i * 7,)),  # one item: repeat count
    (32, 7, 0x28, lambda i: (1, i / 4, 1_600_000_000_000 + i)),  # index prefix, 48-bit time
    (110, 5, 0x01, lambda i: (bytes([i & 0xFF]) * 5,)),  # octet strings
])
def test_long_runs_decode_like_short_ones(group: int, variation: int, qualifier: int,
                                          obj: object) -> None:
    for n in (3, 32, 33, 300):
        objects = tuple(obj(i) for i in range(n))  # type: ignore[operator]
        if qualifier == 0x28:
            h = ObjectHeader(group, variation, qualifier, count=n, indexes=tuple(range(n, 0, -1)),
                             objects=objects)
        else:
            h = ObjectHeader(group, variation, qualifier, 10, 10 + n - 1, objects=objects)
        resp = ApplicationResponse(F.RESPONSE, headers=(h,))
        data = build_fragment(resp)
        assert parse_fragment(data) == resp
        assert scan_fragment(data).values == (h.values or None)
