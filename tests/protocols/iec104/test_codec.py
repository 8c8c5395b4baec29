"""IEC-104 codec on hand-made and captured APDUs: decoded values, every malformed reason, and
the ValueError of build on out-of-range fields."""

from __future__ import annotations

import doctest
import struct

import pytest

from interlock.protocols.base import Malformed
from interlock.protocols.iec104 import codec
from interlock.protocols.iec104.codec import (
    Asdu,
    Bitstring32,
    Bitstring32Command,
    ClockSynchronisationCommand,
    CounterInterrogationCommand,
    CP24Time2a,
    CP56Time2a,
    DoubleCommand,
    DoublePointInformation,
    EndOfInitialisation,
    IFormat,
    IntegratedTotals,
    InterrogationCommand,
    MeasuredValueNormalized,
    MeasuredValueScaled,
    MeasuredValueShortFloat,
    ParameterNormalized,
    ParameterShortFloat,
    RawInformation,
    ReadCommand,
    RegulatingStepCommand,
    SetpointNormalized,
    SetpointShortFloat,
    SFormat,
    SingleCommand,
    SinglePointInformation,
    StepPositionInformation,
    UFormat,
    build,
    build_asdu,
    parse,
    parse_asdu,
)
from interlock.protocols.iec104.fields import (
    ELEMENT_LENGTH,
    Cause,
    DoublePoint,
    Quality,
    Reason,
    TypeID,
    UFunction,
)


def f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# (capture / spec example, APDU hex, expected value). Hex strings come from the shared captures.
CASES = [
    ("STARTDT act", "680407000000", UFormat(UFunction.STARTDT_ACT)),
    ("STARTDT con", "68040b000000", UFormat(UFunction.STARTDT_CON)),
    ("STOPDT act", "680413000000", UFormat(UFunction.STOPDT_ACT)),
    ("STOPDT con", "680423000000", UFormat(UFunction.STOPDT_CON)),
    ("TESTFR act", "680443000000", UFormat(UFunction.TESTFR_ACT)),
    ("TESTFR con", "680483000000", UFormat(UFunction.TESTFR_CON)),
    ("S format, 104IPValue frame 58", "680401002200", SFormat(17)),
    ("C_SE_NC_1 act, 104_50 frame 1", "681206001e003201060001002823000000504200",
     IFormat(3, 15, Asdu(TypeID.C_SE_NC_1, Cause.ACTIVATION, 1,
                         (SetpointShortFloat(9000, 52.0),)))),
    ("M_ME_TF_1 spont, 104IPValue frame 40",
     "68192000060024010300010058020079e9f64200581b0110010a13",
     IFormat(16, 3, Asdu(TypeID.M_ME_TF_1, Cause.SPONTANEOUS, 1, (
         MeasuredValueShortFloat(600, f32(123.456), Quality(0),
                                 CP56Time2a(7000, 1, 16, 1, 10, 19)),)))),
    ("M_DP_TB_1 spont, 104IPValue frame 84", "6815240006001f0103000100c8000003606d0110010a13",
     IFormat(18, 3, Asdu(TypeID.M_DP_TB_1, Cause.SPONTANEOUS, 1, (
         DoublePointInformation(200, DoublePoint.INDETERMINATE, Quality(0),
                                CP56Time2a(28000, 1, 16, 1, 10, 19)),)))),
    ("M_ST_TB_1 with VTI -1, iec104 frame 43",
     "681664001000200103000a000c00007f00648f170884070d",
     IFormat(50, 8, Asdu(TypeID.M_ST_TB_1, Cause.SPONTANEOUS, 10, (
         StepPositionInformation(12, -1, False, Quality(0),
                                 CP56Time2a(36708, 23, 8, 4, 7, 13, day_of_week=4)),)))),
    ("C_CS_NA_1 broadcast, 104deneme frame 10", "68140000000067010600ffff000000fa041311180a13",
     IFormat(0, 0, Asdu(TypeID.C_CS_NA_1, Cause.ACTIVATION, 65535, (
         ClockSynchronisationCommand(0, CP56Time2a(1274, 19, 17, 24, 10, 19)),)))),
    ("C_CI_NA_1 con, 104deneme frame 27", "680e1200060065010700010000000005",
     IFormat(9, 3, Asdu(TypeID.C_CI_NA_1, Cause.ACTIVATION_CON, 1,
                        (CounterInterrogationCommand(0, 5, 0),)))),
    ("M_IT_NA_1 reqcogen, 104deneme frame 29", "6812140006000f01250001000a00000000000000",
     IFormat(10, 3, Asdu(TypeID.M_IT_NA_1, Cause.REQCOGEN, 1, (IntegratedTotals(10, 0),)))),
    ("M_EP_TD_1 labelled only, 104deneme frame 96",
     "68171c00060026010300010014000043010010a4130e180a13",
     IFormat(14, 3, Asdu(TypeID.M_EP_TD_1, Cause.SPONTANEOUS, 1,
                         (RawInformation(20, h("43010010a4130e180a13")),)))),
    ("P_ME_NC_1 negative unknown IOA, 104IPValue frame 407",
     "681236000c0070016f0001002100000000400003",
     IFormat(27, 6, Asdu(TypeID.P_ME_NC_1, Cause.UNKNOWN_IOA, 1,
                         (ParameterShortFloat(33, struct.unpack("<f", h("00004000"))[0], 3),),
                         negative=True))),
    ("M_ME_ND_1, 104deneme frame 146", "680f220006001501030001003200003800",
     IFormat(17, 3, Asdu(TypeID.M_ME_ND_1, Cause.SPONTANEOUS, 1,
                         (MeasuredValueNormalized(50, 56, None),)))),
    ("C_SC_TA_1 negative, 104deneme frame 462",
     "68154a000a003a016f00010032000001c05d1711180a13",
     IFormat(37, 5, Asdu(TypeID.C_SC_TA_1, Cause.UNKNOWN_IOA, 1, (
         SingleCommand(50, True, 0, False, CP56Time2a(24000, 23, 17, 24, 10, 19)),),
         negative=True))),
    ("P_ME_NA_1 act, 104IPValue frame 243", "6810080030006e01060001000b00000f0001",
     IFormat(4, 24, Asdu(TypeID.P_ME_NA_1, Cause.ACTIVATION, 1, (ParameterNormalized(11, 15, 1),)))),
    ("M_EI_NA_1, iec104 frame 10", "680e00000000460104000a0000000000",
     IFormat(0, 0, Asdu(TypeID.M_EI_NA_1, Cause.INITIALIZED, 10, (EndOfInitialisation(0, 0),)))),
    ("C_BO_NA_1 (octets LSB first), iec104 frame 49", "681110006600330106000a0003000002000000",
     IFormat(8, 51, Asdu(TypeID.C_BO_NA_1, Cause.ACTIVATION, 10, (Bitstring32Command(3, 2),)))),
    ("C_RC_NA_1 higher, iec104 frame 39", "680e0c005a002f0106000a0001000002",
     IFormat(6, 45, Asdu(TypeID.C_RC_NA_1, Cause.ACTIVATION, 10,
                         (RegulatingStepCommand(1, 2),)))),
    ("C_IC_NA_1 station, 104deneme frame 13", "680e0200040064010700010000000014",
     IFormat(1, 2, Asdu(TypeID.C_IC_NA_1, Cause.ACTIVATION_CON, 1,
                        (InterrogationCommand(0, 20),)))),
    ("M_SP_NA_1 SQ=1 16 points, IEC104_SQ frame 1",
     "681d02000200019014001e0400000000000000000000000000000000000101",
     IFormat(1, 1, Asdu(TypeID.M_SP_NA_1, Cause.INROGEN, 1054, tuple(
         SinglePointInformation(i, i >= 14) for i in range(16)), sq=True))),
]


@pytest.mark.parametrize(("name", "hexa", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parse_known_apdus(name: str, hexa: str, expected: object) -> None:
    data = h(hexa)
    assert parse(data) == expected
    assert build(expected) == data  # type: ignore[arg-type]


def test_values_of_captured_apdus() -> None:
    apdu = parse(h("68192000060024010300010058020079e9f64200581b0110010a13"))
    assert isinstance(apdu, IFormat)
    obj = apdu.asdu.objects[0]
    assert isinstance(obj, MeasuredValueShortFloat)
    assert obj.value == pytest.approx(123.456, rel=1e-7)
    assert isinstance(obj.time, CP56Time2a)
    assert obj.time.isoformat() == "2019-10-01T16:01:07.000"
    nd = parse(h("680f220006001501030001003200003800"))
    assert isinstance(nd, IFormat)
    assert nd.asdu.objects[0].value == pytest.approx(0.001708984375)  # type: ignore[union-attr]


def test_quality_and_qualifier_bits() -> None:
    # M_SP_NA_1 with SIQ = IV|NT|SB|BL|SPI, QDS with OV and IV, SCO select + long pulse
    sp = parse_asdu(h("01 01 03 00 0100 050000 f1"))
    assert sp == Asdu(TypeID.M_SP_NA_1, Cause.SPONTANEOUS, 1, (SinglePointInformation(
        5, True, Quality.IV | Quality.NT | Quality.SB | Quality.BL),))
    me = parse_asdu(h("0b 01 03 00 0100 060000 ffff 81"))
    assert me == Asdu(TypeID.M_ME_NB_1, Cause.SPONTANEOUS, 1,
                      (MeasuredValueScaled(6, -1, Quality.IV | Quality.OV),))
    sco = parse_asdu(h("2d 01 06 00 0100 070000 89"))
    assert sco == Asdu(TypeID.C_SC_NA_1, Cause.ACTIVATION, 1, (SingleCommand(7, True, 2, True),))
    dco = parse_asdu(h("2e 01 06 00 0100 070000 06"))
    assert dco == Asdu(TypeID.C_DC_NA_1, Cause.ACTIVATION, 1, (DoubleCommand(7, 2, 1, False),))
    qcc = parse_asdu(h("65 01 06 00 0100 000000 45"))
    assert qcc == Asdu(TypeID.C_CI_NA_1, Cause.ACTIVATION, 1,
                       (CounterInterrogationCommand(0, 5, 1),))
    se = parse_asdu(h("30 01 06 00 0100 080000 0040 85"))
    assert se == Asdu(TypeID.C_SE_NA_1, Cause.ACTIVATION, 1, (SetpointNormalized(8, 0x4000, 5, True),))
    assert se.objects[0].value == 0.5  # type: ignore[union-attr]
    bo = parse_asdu(h("07 01 c3 00 0100 090000 78563412 00"))
    assert bo == Asdu(TypeID.M_BO_NA_1, Cause.SPONTANEOUS, 1, (Bitstring32(9, 0x12345678),),
                      negative=True, test=True)


def test_cp24_time_and_test_command() -> None:
    sp = parse_asdu(h("02 01 03 00 0100 0a0000 01 e803 85"))
    assert sp == Asdu(TypeID.M_SP_TA_1, Cause.SPONTANEOUS, 1, (SinglePointInformation(
        10, True, Quality(0), CP24Time2a(1000, 5, True)),))
    ts = parse_asdu(h("6b 01 06 00 0100 000000 3412 e803 05 06 07 08 09"))
    assert ts == Asdu(TypeID.C_TS_TA_1, Cause.ACTIVATION, 1, (codec.TestCommandWithTime(
        0, 0x1234, CP56Time2a(1000, 5, 6, 7, 8, 9)),))


def test_sq_one_gives_consecutive_ioas() -> None:
    asdu = parse_asdu(h("0d 82 14 00 0100 e80300 0000803f 00 00000040 10"))
    assert asdu == Asdu(TypeID.M_ME_NC_1, Cause.INROGEN, 1, (
        MeasuredValueShortFloat(1000, 1.0), MeasuredValueShortFloat(1001, 2.0, Quality.BL)),
        sq=True)


def test_read_command_and_file_segment() -> None:
    assert parse_asdu(h("66 01 05 00 0100 112233")) == Asdu(
        TypeID.C_RD_NA_1, Cause.REQUEST, 1, (ReadCommand(0x332211),))
    seg = parse_asdu(h("7d 01 0d 00 0100 010000 0100 01 03 aabbcc"))
    assert seg == Asdu(TypeID.F_SG_NA_1, Cause.FILE, 1, (RawInformation(1, h("010001 03aabbcc")),))


def i_frame(asdu_hex: str) -> str:
    """An I format APDU (N(S) = N(R) = 0) around the given ASDU, its length octet right."""
    asdu = h(asdu_hex)
    return (bytes([0x68, 4 + len(asdu), 0, 0, 0, 0]) + asdu).hex()


MALFORMED = [
    ("empty", "", Reason.BAD_START, 0),
    ("no start octet", "000407000000", Reason.BAD_START, 0),
    ("truncated APCI", "680407", Reason.BAD_LENGTH, 1),
    ("length below 4", "680307000000", Reason.BAD_LENGTH, 1),
    ("length above 253", "68fe07000000" + "00" * 250, Reason.BAD_LENGTH, 1),
    ("length disagrees with octets", "68040700000000", Reason.BAD_LENGTH, 1),
    ("U format with ASDU", "6805070000000000", Reason.BAD_LENGTH, 1),
    ("two U functions", "680447000000", Reason.BAD_CONTROL_FIELD, 2),
    ("U with octet 2 set", "680443010000", Reason.BAD_CONTROL_FIELD, 2),
    ("U code 0x03 without function", "680403000000", Reason.BAD_CONTROL_FIELD, 2),
    ("format bits 01 but not S", "680405000000", Reason.BAD_CONTROL_FIELD, 2),
    ("S with octet 2 set", "680401010000", Reason.BAD_CONTROL_FIELD, 3),
    ("S with octet 3 bit 1", "680401000100", Reason.BAD_CONTROL_FIELD, 3),
    ("I with octet 3 bit 1", "680e00000100640106000100000000" + "14", Reason.BAD_CONTROL_FIELD, 4),
    ("I without ASDU", "680400000000", Reason.BAD_ASDU_LENGTH, 6),
    ("I with short ASDU header", i_frame("64 01 06 00"), Reason.BAD_ASDU_LENGTH, 6),
    ("type id 0", i_frame("00 01 06 00 0100 000000 14"), Reason.UNKNOWN_TYPE_ID, 6),
    ("type id 22 (reserved)", i_frame("16 01 03 00 0100 000000 00"), Reason.UNKNOWN_TYPE_ID, 6),
    ("type id 200", i_frame("c8 01 03 00 0100 000000 00"), Reason.UNKNOWN_TYPE_ID, 6),
    ("two objects announced, one sent", i_frame("64 02 06 00 0100 000000 14"),
     Reason.BAD_ASDU_LENGTH, 12),
    ("SQ=1 with an extra octet", i_frame("01 82 03 00 0100 010000 00 00 00"),
     Reason.BAD_ASDU_LENGTH, 12),
    ("float truncated", i_frame("24 01 03 00 0100 580200 79e9f6"), Reason.BAD_ASDU_LENGTH, 12),
    ("labelled type truncated", i_frame("26 01 03 00 0100 140000 430100"),
     Reason.BAD_ASDU_LENGTH, 15),
    ("file segment longer than sent", i_frame("7d 01 0d 00 0100 010000 0100 01 05 aabb"),
     Reason.BAD_ASDU_LENGTH, 15),
    ("labelled type without IOA", i_frame("26 01 03 00 0100 1400"), Reason.BAD_ASDU_LENGTH, 12),
    ("octets after the labelled objects", i_frame("7c 01 0d 00 0100 010000 01000100 ff"),
     Reason.BAD_ASDU_LENGTH, 19),
]


@pytest.mark.parametrize(("name", "hexa", "reason", "offset"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed(name: str, hexa: str, reason: Reason, offset: int) -> None:
    data = h(hexa)
    result = parse(data)
    assert isinstance(result, Malformed), result
    assert (result.reason, result.offset) == (reason, offset)
    assert result.raw == data
    assert result.detail


def test_every_reason_is_exercised() -> None:
    assert {m[2] for m in MALFORMED} == set(Reason)


def test_parse_asdu_malformed() -> None:
    assert parse_asdu(b"\x64\x01") == Malformed(Reason.BAD_ASDU_LENGTH, 0, b"\x64\x01",
                                                "shorter than the ASDU header")
    bad = parse_asdu(h("1601030001000000"))
    assert isinstance(bad, Malformed) and bad.reason == Reason.UNKNOWN_TYPE_ID


IC = IFormat(0, 0, Asdu(TypeID.C_IC_NA_1, Cause.ACTIVATION, 1, (InterrogationCommand(0, 20),)))


@pytest.mark.parametrize(("apdu", "message"), [
    (SFormat(0x8000), "recv_seq"),
    (IFormat(0x8000, 0, IC.asdu), "send_seq"),
    (IFormat(0, -1, IC.asdu), "recv_seq"),
    (IFormat(0, 0, Asdu(TypeID.C_IC_NA_1, 64, 1, (InterrogationCommand(0, 20),))), "cot"),
    (IFormat(0, 0, Asdu(TypeID.C_IC_NA_1, 6, 0x10000, (InterrogationCommand(0, 20),))),
     "common_address"),
    (IFormat(0, 0, Asdu(TypeID.C_IC_NA_1, 6, 1, (InterrogationCommand(0, 20),),
                        originator=256)), "originator"),
    (IFormat(0, 0, Asdu(TypeID.C_IC_NA_1, 6, 1, (InterrogationCommand(1 << 24, 20),))), "ioa"),
    (IFormat(0, 0, Asdu(TypeID.C_IC_NA_1, 6, 1, (InterrogationCommand(0, 256),))), "qoi"),
    (IFormat(0, 0, Asdu(TypeID.C_IC_NA_1, 6, 1, (ReadCommand(0),))), "cannot be sent"),
    (IFormat(0, 0, Asdu(22, 6, 1, ())), "not defined"),  # type: ignore[arg-type]
    (IFormat(0, 0, Asdu(TypeID.M_ME_NA_1, 3, 1, (MeasuredValueNormalized(0, 40000),))), "nva"),
    (IFormat(0, 0, Asdu(TypeID.M_ME_NA_1, 3, 1, (MeasuredValueNormalized(0, 1, None),))),
     "3 octets, not 2"),
    (IFormat(0, 0, Asdu(TypeID.M_ME_ND_1, 3, 1, (MeasuredValueNormalized(0, 1),))), "octets"),
    (IFormat(0, 0, Asdu(TypeID.M_SP_NA_1, 3, 1, (SinglePointInformation(0, True, Quality.OV),))),
     "quality"),
    (IFormat(0, 0, Asdu(TypeID.M_SP_TB_1, 3, 1, (SinglePointInformation(0, True),))),
     "CP56Time2a"),
    (IFormat(0, 0, Asdu(TypeID.M_SP_TA_1, 3, 1, (SinglePointInformation(0, True),))),
     "CP24Time2a"),
    (IFormat(0, 0, Asdu(TypeID.M_SP_NA_1, 3, 1, (SinglePointInformation(
        0, True, Quality(0), CP24Time2a(0, 0)),))), "no time tag"),
    (IFormat(0, 0, Asdu(TypeID.M_SP_TB_1, 3, 1, (SinglePointInformation(
        0, True, Quality(0), CP56Time2a(0, 64, 0, 1, 1, 0)),))), "minute"),
    (IFormat(0, 0, Asdu(TypeID.M_ME_NC_1, 3, 1, (MeasuredValueShortFloat(0, 1e39),))),
     "short float"),
    (IFormat(0, 0, Asdu(TypeID.M_ST_NA_1, 3, 1, (StepPositionInformation(0, 64),))), "value"),
    (IFormat(0, 0, Asdu(TypeID.C_DC_NA_1, 6, 1, (DoubleCommand(0, 4),))), "value"),
    (IFormat(0, 0, Asdu(TypeID.C_SC_NA_1, 6, 1, (SingleCommand(0, True, 32),))), "qu"),
    (IFormat(0, 0, Asdu(TypeID.M_SP_NA_1, 3, 1, (
        SinglePointInformation(1, True), SinglePointInformation(3, True)), sq=True)),
     "consecutive"),
    (IFormat(0, 0, Asdu(TypeID.M_SP_NA_1, 20, 1, tuple(
        SinglePointInformation(i, False) for i in range(128)), sq=True)), "VSQ"),
    (IFormat(0, 0, Asdu(TypeID.M_ME_TF_1, 20, 1, tuple(
        MeasuredValueShortFloat(i, 0.0, Quality(0), CP56Time2a(0, 0, 0, 1, 1, 0))
        for i in range(17)))), "exceeds"),
    (IFormat(0, 0, Asdu(TypeID.M_EP_TD_1, 3, 1, (RawInformation(0, b"\x00"),))), "octets"),
    (IFormat(0, 0, Asdu(TypeID.F_SG_NA_1, 13, 1, (RawInformation(0, h("01000105")),))),
     "segment length"),
    (IFormat(0, 0, Asdu(TypeID.S_CH_NA_1, 14, 1, (RawInformation(5, b"ab"),))),
     "secure-authentication"),
])
def test_build_rejects_out_of_range(apdu: codec.Apdu, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(apdu)


def test_build_asdu_alone() -> None:
    assert build_asdu(IC.asdu) == h("64 01 06 00 0100 000000 14")


def test_element_table_matches_decoders() -> None:
    # every type the codec decodes has its element length in fields.ELEMENT_LENGTH
    for t in TypeID:
        if t in (TypeID.F_SG_NA_1,) or 81 <= t <= 95:
            continue
        assert t in ELEMENT_LENGTH, t


def test_module_doctest() -> None:
    result = doctest.testmod(codec)
    assert result.attempted > 0 and result.failed == 0
