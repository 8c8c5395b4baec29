"""IEC-104 session: Operation fields, framing recovery, bounded state, and the content probe."""

from __future__ import annotations

import pytest

from interlock.protocols.base import Direction, OpClass, Probe
from interlock.protocols.iec104 import PROTOCOL, Iec104Session, build, probe
from interlock.protocols.iec104 import session as session_module
from interlock.protocols.iec104.codec import (
    Asdu,
    CP56Time2a,
    IFormat,
    InterrogationCommand,
    MeasuredValueShortFloat,
    RawInformation,
    SingleCommand,
    SinglePointInformation,
    UFormat,
)
from interlock.protocols.iec104.fields import Cause, Quality, Reason, TypeID, UFunction


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def i_frame(asdu_hex: str, ns: int = 0, nr: int = 0) -> bytes:
    asdu = h(asdu_hex)
    return bytes([0x68, 4 + len(asdu)]) + (ns << 1).to_bytes(2, "little") + \
        (nr << 1).to_bytes(2, "little") + asdu


# A conversation from 104IPValue.pcap and 104_50.pcap: TESTFR, a set-point command with its
# confirmation and termination, spontaneous data, S format acknowledgements.
CLIENT = [h("680443000000"), h("681206002a00320106000100701700c3f59dc200"), h("680401000800")]
SERVER = [h("680483000000"), h("68122a000800320107000100701700c3f59dc200"),
          h("68122c00080032010a000100701700c3f59dc200"),
          h("68192e000800240103000100580200c3f59dc20090650210010a13")]


def test_operations_of_a_conversation() -> None:
    s = Iec104Session()
    testfr = s.feed(CLIENT[0], True)
    assert [(o.function, o.op_class, o.direction) for o in testfr] == [
        ("TESTFR_ACT", OpClass.SESSION, Direction.REQUEST)]
    (con,) = s.feed(SERVER[0], False)
    assert (con.function, con.direction, con.function_code) == (
        "TESTFR_CON", Direction.RESPONSE, None)
    (act,) = s.feed(CLIENT[1], True)
    assert act.protocol == "iec104"
    assert (act.op_class, act.function_code, act.function, act.object) == (
        OpClass.COMMAND, 50, "C_SE_NC_1", "C_SE_NC_1")
    assert (act.unit, act.transaction, act.address, act.count) == (1, 3, 6000, 1)
    assert act.values is not None and act.values[0] == pytest.approx(-78.98)
    assert act.status == "activation"
    assert act.detail == {"cot": 6, "originator": 0, "sq": False, "recv_seq": 21,
                          "select": False, "qualifier": 0}
    ops = s.feed(b"".join(SERVER[1:]), False)
    assert [o.status for o in ops] == ["activation_con", "activation_term", "spontaneous"]
    assert [o.transaction for o in ops] == [21, 22, 23]
    assert [o.detail.get("request_tx") for o in ops if o.detail] == [3, 3, None]
    spont = ops[2]
    assert (spont.op_class, spont.function, spont.address) == (OpClass.MONITOR, "M_ME_TF_1", 600)
    assert spont.detail is not None and spont.detail["time"] == "2019-10-01T16:02:26.000"
    (ack,) = s.feed(CLIENT[2], True)
    assert (ack.function, ack.op_class, ack.detail) == ("S", OpClass.SESSION, {"recv_seq": 4})


def test_interrogated_data_is_a_read_and_carries_ioas_and_quality() -> None:
    s = Iec104Session()
    # M_SP_NA_1, 3 objects, SQ=0, cause inrogen, one with IV
    (op,) = s.feed(i_frame("01 03 14 00 0a00 010000 01 020000 80 050000 00", ns=7), False)
    assert op.op_class is OpClass.READ
    assert op.values == (1.0, 0.0, 0.0)
    assert op.detail == {"cot": 20, "originator": 0, "sq": False, "recv_seq": 0,
                         "ioas": [1, 2, 5], "quality": ["", "IV", ""]}
    assert op.status == "inrogen"
    # SQ=1 gives consecutive IOAs
    (sq,) = s.feed(i_frame("0b 83 03 00 0a00 640000 0100 00 0200 00 0300 00", ns=8), False)
    assert (sq.op_class, sq.address, sq.count, sq.values) == (
        OpClass.MONITOR, 100, 3, (1.0, 2.0, 3.0))
    assert sq.detail is not None and sq.detail["ioas"] == [100, 101, 102] and sq.detail["sq"]


@pytest.mark.parametrize(("asdu", "op_class", "status"), [
    ("67 01 06 00 0100 000000 0000 00 00 01 01 00", OpClass.CONTROL, "activation"),  # C_CS
    ("69 01 06 00 0100 000000 01", OpClass.CONTROL, "activation"),  # C_RP
    ("6b 01 06 00 0100 000000 0100 00000000010100", OpClass.DIAGNOSTIC, "activation"),  # C_TS_TA
    ("70 01 06 00 0100 010000 0000803f 01", OpClass.WRITE, "activation"),  # P_ME_NC
    ("78 01 0d 00 0100 010000 0100 000000 00", OpClass.FILE, "file"),  # F_FR_NA_1
    ("46 01 04 00 0100 000000 02", OpClass.MONITOR, "initialized"),  # M_EI
    ("66 01 05 00 0100 010000", OpClass.READ, "request"),  # C_RD
    ("65 01 06 00 0100 000000 05", OpClass.READ, "activation"),  # C_CI
    ("2d 01 47 00 0100 010000 01", OpClass.COMMAND, "activation_con,negative"),
    ("2d 01 86 00 0100 010000 01", OpClass.COMMAND, "activation,test"),
    ("0d 01 05 00 0100 010000 00000000 00", OpClass.READ, "request"),
    ("0d 01 25 00 0100 010000 00000000 00", OpClass.READ, "reqcogen"),
    ("0d 01 01 00 0100 010000 00000000 00", OpClass.MONITOR, "periodic"),
    ("0d 01 3f 00 0100 010000 00000000 00", OpClass.MONITOR, "cause_63"),
    ("51 01 0e 00 0100 0102030405", OpClass.OTHER, "authentication"),  # S_CH_NA_1
])
def test_op_class_and_status(asdu: str, op_class: OpClass, status: str) -> None:
    (op,) = Iec104Session().feed(i_frame(asdu), True)
    assert op.malformed is None, op
    assert (op.op_class, op.status) == (op_class, status)


def test_qualifiers_and_time_in_detail() -> None:
    s = Iec104Session()
    (ic,) = s.feed(i_frame("64 01 06 00 ffff 000000 14"), True)
    assert ic.detail is not None and ic.detail["qualifier"] == 20 and ic.values is None
    (cs,) = s.feed(i_frame("67 01 06 00 ffff 000000 fa04 13 11 18 0a 13"), True)
    assert cs.detail is not None and cs.detail["time"] == "2019-10-24T17:19:01.274"
    (sco,) = s.feed(i_frame("3a 01 06 00 0100 320000 85 c05d 17 11 18 0a 13"), True)
    assert sco.values == (1.0,)
    assert sco.detail is not None
    assert (sco.detail["select"], sco.detail["qualifier"], sco.detail["time"]) == (
        True, 1, "2019-10-24T17:23:24.000")
    (sp,) = s.feed(i_frame("02 01 03 00 0100 0a0000 01 e803 05"), False)
    assert sp.detail is not None and sp.detail["time"] == "05:01.000"


def test_sequence_gap_is_noted() -> None:
    s = Iec104Session()
    s.feed(i_frame("01 01 03 00 0100 010000 01", ns=5), False)
    (ok,) = s.feed(i_frame("01 01 03 00 0100 010000 00", ns=6), False)
    assert ok.detail is not None and "expected_tx" not in ok.detail
    (gap,) = s.feed(i_frame("01 01 03 00 0100 010000 00", ns=9), False)
    assert gap.detail is not None and gap.detail["expected_tx"] == 7
    # the other direction counts on its own
    (other,) = s.feed(i_frame("64 01 06 00 0100 000000 14", ns=0), True)
    assert other.detail is not None and "expected_tx" not in other.detail


def test_garbage_is_skipped_and_reported_once() -> None:
    s = Iec104Session()
    ops = s.feed(b"\x00" + h("680443000000"), False)  # Windows keep-alive octet first
    assert [(o.op_class, o.malformed) for o in ops] == [
        (OpClass.MALFORMED, Reason.BAD_START), (OpClass.SESSION, None)]
    assert ops[0].detail == {"skipped": 1}
    # a bad length octet loses framing too; a 0x68 in the garbage is not trusted blindly
    ops = s.feed(h("6802 1122 68ff 33") + h("680483000000"), False)
    assert [(o.malformed, o.detail) for o in ops] == [
        (Reason.BAD_LENGTH, {"skipped": 7}), (None, None)]


def test_garbage_byte_by_byte_is_reported_when_framing_returns() -> None:
    s = Iec104Session()
    ops = []
    for b in b"GET / HTTP/1.1\r\n" + h("680443000000"):
        ops += s.feed(bytes([b]), True)
    assert [(o.malformed, o.function) for o in ops] == [
        (Reason.BAD_START, None), (None, "TESTFR_ACT")]
    assert ops[0].detail == {"skipped": 16}


def test_endless_garbage_is_bounded() -> None:
    s = Iec104Session()
    ops = s.feed(b"\x00" * (2 * session_module.SKIP_REPORT + 10), True)
    assert [o.detail for o in ops] == [{"skipped": session_module.SKIP_REPORT}] * 2
    assert len(s._pending[True]) == 0
    # still resynchronising: 68 68 00 looks like an I format APCI but its cause octet is 0
    ops = s.feed(b"\x68\x68\x00" * 40_000, True)
    assert len(s._pending[True]) < 9
    assert [o.malformed for o in ops] == [Reason.BAD_START]
    ops = s.feed(b"\x68\x02" * 50_000, True)  # bad length after bad length
    assert len(s._pending[True]) <= 255
    assert all(o.op_class is OpClass.MALFORMED for o in ops)


def test_malformed_apdu_keeps_what_can_be_read() -> None:
    s = Iec104Session()
    (op,) = s.feed(i_frame("16 01 03 00 0700 000000 00", ns=12), False)  # type 22
    assert (op.op_class, op.malformed) == (OpClass.MALFORMED, Reason.UNKNOWN_TYPE_ID)
    assert (op.function_code, op.function, op.unit, op.transaction, op.status) == (
        22, None, 7, 12, "spontaneous")
    assert op.detail is not None and op.detail["offset"] == 6
    (short,) = s.feed(i_frame("0d 02 03 00 0700 010000 00000000 00", ns=13), False)
    assert (short.malformed, short.function, short.object) == (
        Reason.BAD_ASDU_LENGTH, "M_ME_NC_1", "M_ME_NC_1")
    (u,) = s.feed(h("680443010000"), True)
    assert (u.malformed, u.function) == (Reason.BAD_CONTROL_FIELD, "TESTFR_ACT")
    # SQ=1 announcing no object but carrying an IOA: the fast path must not accept it
    (sq0,) = s.feed(i_frame("0d 80 03 00 0700 010000"), False)
    assert sq0.malformed == Reason.BAD_ASDU_LENGTH


def test_open_activations_are_capped() -> None:
    s = Iec104Session()
    for ioa in range(3 * session_module.MAX_OPEN):
        s.feed(build(IFormat(ioa % 0x8000, 0, Asdu(TypeID.C_SC_NA_1, Cause.ACTIVATION, 1, (
            SingleCommand(ioa, True),)))), True)
    assert len(s._open) == session_module.MAX_OPEN
    # the newest is still paired, the oldest was forgotten
    newest = 3 * session_module.MAX_OPEN - 1
    (con,) = s.feed(build(IFormat(0, 0, Asdu(TypeID.C_SC_NA_1, Cause.ACTIVATION_CON, 1, (
        SingleCommand(newest, True),)))), False)
    assert con.detail is not None and con.detail["request_tx"] == newest % 0x8000
    (old,) = s.feed(build(IFormat(1, 0, Asdu(TypeID.C_SC_NA_1, Cause.ACTIVATION_CON, 1, (
        SingleCommand(0, True),)))), False)
    assert old.detail is not None and "request_tx" not in old.detail


def test_termination_closes_the_activation() -> None:
    s = Iec104Session()
    act = Asdu(TypeID.C_IC_NA_1, Cause.ACTIVATION, 1, (InterrogationCommand(0, 20),))
    s.feed(build(IFormat(4, 0, act)), True)
    for cause, expected in ((Cause.ACTIVATION_CON, 4), (Cause.ACTIVATION_TERM, 4),
                            (Cause.ACTIVATION_TERM, None)):
        reply = Asdu(TypeID.C_IC_NA_1, cause, 1, (InterrogationCommand(0, 20),))
        (op,) = s.feed(build(IFormat(0, 0, reply)), False)
        assert op.detail is not None and op.detail.get("request_tx") == expected


def test_u_operations_are_shared_and_immutable() -> None:
    s = Iec104Session()
    a = s.feed(h("680407000000"), True)[0]
    b = s.feed(h("680407000000"), True)[0]
    assert a == b and a.function == "STARTDT_ACT" and a.direction is Direction.REQUEST
    assert s.feed(h("68040b000000"), False)[0].direction is Direction.RESPONSE


def test_time_tagged_float_fields() -> None:
    apdu = IFormat(1, 2, Asdu(TypeID.M_ME_TF_1, Cause.SPONTANEOUS, 3, (
        MeasuredValueShortFloat(10, 1.5, Quality.NT, CP56Time2a(1500, 2, 3, 4, 5, 24)),
        MeasuredValueShortFloat(11, -2.0, Quality(0), CP56Time2a(0, 0, 0, 1, 1, 24)))))
    (op,) = Iec104Session().feed(build(apdu), False)
    assert op.values == (1.5, -2.0)
    assert op.detail is not None
    assert op.detail["quality"] == ["NT", ""]
    assert op.detail["time"] == "2024-05-04T03:02:01.500"


# ---------------------------------------------------------------------------------------------
# probe

FOREIGN = {
    "http request": b"GET /index.html HTTP/1.1\r\nHost: plc\r\n\r\n",
    "http response": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "tls client hello": h("16030100a5010000a10303") + bytes(160),
    "modbus read holding registers": h("000100000006010300000002"),
    "modbus with transaction 0x6804": h("680400000006010300000002"),
    "modbus write registers, transaction 0x680f": h("680f0000000b011000000002040001 0002"),
    "modbus response with transaction 0x6807": h("68070000000701030400010002"),
    "dnp3 link header": h("056405c901000400e4a0"),
    "tpkt cotp connection request": h("0300001611e00000000100c0010ac1020100c2020102"),
    "iec104 I format with cause 0": i_frame("64 01 00 00 0100 000000 14"),
    "samc (vinci104 port 22350)": h("73616d63e10200004000010000000000"),
    "ssh banner": b"SSH-2.0-OpenSSH_9.6\r\n",
    "keep-alive then garbage": b"\x00\x00\x68\x04",
}


@pytest.mark.parametrize("data", FOREIGN.values(), ids=FOREIGN.keys())
def test_probe_rejects_other_protocols(data: bytes) -> None:
    assert probe(data, True) is Probe.NO
    assert probe(data, False) is Probe.NO


@pytest.mark.parametrize(("data", "answer"), [
    (b"", Probe.NEED_MORE),
    (b"\x68", Probe.NEED_MORE),
    (b"\x00", Probe.NEED_MORE),
    (h("6804"), Probe.NEED_MORE),
    (h("680407"), Probe.NEED_MORE),
    (h("680407000000"), Probe.YES),
    (h("00680407000000"), Probe.YES),  # keep-alive octet before STARTDT act
    (h("680401002200"), Probe.YES),
    (h("681206001e003201060001002823"), Probe.NEED_MORE),
    (h("681206001e003201060001002823000000504200"), Probe.YES),
    (h("681206001e00"), Probe.NEED_MORE),
    (h("681206001f00"), Probe.NO),  # N(R) octet with bit 1 set
    (h("680447000000"), Probe.NO),
    (h("68ff"), Probe.NO),
])
def test_probe_answers(data: bytes, answer: Probe) -> None:
    assert probe(data, True) is answer


def test_protocol_descriptor() -> None:
    assert PROTOCOL.name == "iec104"
    assert PROTOCOL.tcp_ports == frozenset({2404}) and PROTOCOL.udp_ports == frozenset()
    assert PROTOCOL.probe(build(UFormat(UFunction.STARTDT_ACT)), True) is Probe.YES
    session = PROTOCOL.session()
    assert isinstance(session, Iec104Session)
    op = session.feed(build(IFormat(0, 0, Asdu(TypeID.M_SP_NA_1, Cause.SPONTANEOUS, 1, (
        SinglePointInformation(1, True),)))), False)[0]
    assert op.values == (1.0,)


def test_raw_information_types_have_no_values() -> None:
    apdu = IFormat(0, 0, Asdu(TypeID.M_EP_TD_1, Cause.SPONTANEOUS, 1, (
        RawInformation(20, bytes(10)),)))
    (op,) = Iec104Session().feed(build(apdu), False)
    assert (op.values, op.address, op.count, op.op_class) == (None, 20, 1, OpClass.MONITOR)
