"""IEC 60870-5-104 APDU codec: bytes to typed values and back, sans-I/O.

Spec sections followed:

* IEC 60870-5-104 §5: APCI, start character 0x68, APDU length 4..253, control field in I format
  (send and receive sequence numbers N(S), N(R)), S format (N(R)) and U format (STARTDT, STOPDT,
  TESTFR, act and con); §9: the ASDU profile of 104 (2-octet cause of transmission with
  originator address, 2-octet common address, 3-octet information object address).
* IEC 60870-5-101 §7.2: data unit identifier (type identification, variable structure qualifier
  SQ + number of objects, cause with P/N and T bits); §7.3: the information object of every
  type id; SQ=1 gives one IOA followed by consecutive elements.
* IEC 60870-5-4 §6: NVA (F16 normalised, value / 2^15), SVA (I16), R32 IEEE 754, BCR, VTI,
  CP24Time2a and CP56Time2a.

Why hand-written: the libraries that know 104 are protocol stacks (lib60870, c104) or packet
toolkits (scapy) that bring sockets, threads or their own packet machinery with them, raise or
log on bad input and lose the reason, and build a layered object per field; a passive sensor
decoding several hundred thousand APDUs a second needs a table-driven decoder that returns a
:class:`Malformed` value with its reason and offset instead.

>>> apdu = parse(bytes.fromhex("680e0000000064010600010000000014"))
>>> apdu.asdu.type_id.name, apdu.asdu.objects[0]
('C_IC_NA_1', InterrogationCommand(ioa=0, qoi=20))
>>> build(apdu).hex()
'680e0000000064010600010000000014'
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from interlock.protocols.base import Malformed
from interlock.protocols.iec104.fields import (
    APCI_START,
    APDU_MAX_LENGTH,
    APDU_MIN_LENGTH,
    ASDU_HEADER_LENGTH,
    ELEMENT_LENGTH,
    MAX_OBJECTS,
    VARIABLE_LENGTH_TYPES,
    Cause,
    DoublePoint,
    Quality,
    Reason,
    TypeID,
    UFunction,
)

# ---------------------------------------------------------------------------------------------
# Time tags (IEC 60870-5-4 §6.8)


@dataclass(frozen=True, slots=True)
class CP24Time2a:
    """Three-octet binary time: milliseconds of the minute, minute, IV. Reserved bit dropped."""

    milliseconds: int  # 0..59999 on a compliant device (16 bits on the wire)
    minute: int  # 0..59 (6 bits)
    invalid: bool = False


@dataclass(frozen=True, slots=True)
class CP56Time2a:
    """Seven-octet binary time. Reserved bits dropped; the year is two digits (00..99)."""

    milliseconds: int  # 0..59999 (16 bits)
    minute: int  # 0..59 (6 bits)
    hour: int  # 0..23 (5 bits)
    day: int  # 1..31 (5 bits)
    month: int  # 1..12 (4 bits)
    year: int  # 0..99 (7 bits)
    invalid: bool = False  # IV
    summer_time: bool = False  # SU
    day_of_week: int = 0  # 1..7, 0 when not used (3 bits)

    def isoformat(self) -> str:
        """The time as an ISO 8601 string without zone (the station's local time)."""
        ms = self.milliseconds
        return (f"{2000 + self.year:04d}-{self.month:02d}-{self.day:02d}T{self.hour:02d}:"
                f"{self.minute:02d}:{ms // 1000:02d}.{ms % 1000:03d}")


TimeTag = CP24Time2a | CP56Time2a
GOOD = Quality(0)  # no quality flag set

# ---------------------------------------------------------------------------------------------
# Information objects (101 §7.3): one class per information element, shared by the type ids
# that differ only in their time tag (e.g. M_SP_NA_1, M_SP_TA_1, M_SP_TB_1).


@dataclass(frozen=True, slots=True)
class SinglePointInformation:
    """SIQ (7.2.6.1), types 1, 2, 30."""

    ioa: int
    value: bool  # SPI
    quality: Quality = GOOD
    time: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class DoublePointInformation:
    """DIQ (7.2.6.2), types 3, 4, 31."""

    ioa: int
    value: int  # DPI, a DoublePoint
    quality: Quality = GOOD
    time: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class StepPositionInformation:
    """VTI + QDS (7.2.6.5), types 5, 6, 32."""

    ioa: int
    value: int  # -64..63
    transient: bool = False
    quality: Quality = GOOD
    time: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class Bitstring32:
    """BSI + QDS (7.2.6.13), types 7, 8, 33. Octets least significant first (60870-5-4)."""

    ioa: int
    value: int  # 0..2**32-1
    quality: Quality = GOOD
    time: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class MeasuredValueNormalized:
    """NVA + QDS (7.2.6.6), types 9, 10, 34; type 21 has no quality (``quality`` None)."""

    ioa: int
    nva: int  # -32768..32767, the value is nva / 32768
    quality: Quality | None = GOOD
    time: TimeTag | None = None

    @property
    def value(self) -> float:
        return self.nva / 32768.0


@dataclass(frozen=True, slots=True)
class MeasuredValueScaled:
    """SVA + QDS (7.2.6.7), types 11, 12, 35."""

    ioa: int
    value: int  # -32768..32767
    quality: Quality = GOOD
    time: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class MeasuredValueShortFloat:
    """IEEE STD 754 R32 + QDS (7.2.6.8), types 13, 14, 36."""

    ioa: int
    value: float  # a float32 value
    quality: Quality = GOOD
    time: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class IntegratedTotals:
    """BCR (7.2.6.9), types 15, 16, 37."""

    ioa: int
    value: int  # counter reading, I32
    sequence: int = 0  # SQ 0..31
    carry: bool = False  # CY
    adjusted: bool = False  # CA
    invalid: bool = False  # IV
    time: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class SingleCommand:
    """SCO (7.2.6.15), types 45, 58."""

    ioa: int
    value: bool  # SCS
    qu: int = 0  # QualifierOfCommand, 0..31
    select: bool = False  # S/E: True selects, False executes
    time: CP56Time2a | None = None


@dataclass(frozen=True, slots=True)
class DoubleCommand:
    """DCO (7.2.6.16), types 46, 59."""

    ioa: int
    value: int  # DCS 0..3 (1 OFF, 2 ON)
    qu: int = 0
    select: bool = False
    time: CP56Time2a | None = None


@dataclass(frozen=True, slots=True)
class RegulatingStepCommand:
    """RCO (7.2.6.17), types 47, 60."""

    ioa: int
    value: int  # RCS 0..3 (1 next step lower, 2 next step higher)
    qu: int = 0
    select: bool = False
    time: CP56Time2a | None = None


@dataclass(frozen=True, slots=True)
class SetpointNormalized:
    """NVA + QOS (7.2.6.39), types 48, 61."""

    ioa: int
    nva: int  # -32768..32767, the set-point is nva / 32768
    ql: int = 0  # QL 0..127
    select: bool = False
    time: CP56Time2a | None = None

    @property
    def value(self) -> float:
        return self.nva / 32768.0


@dataclass(frozen=True, slots=True)
class SetpointScaled:
    """SVA + QOS, types 49, 62."""

    ioa: int
    value: int  # -32768..32767
    ql: int = 0
    select: bool = False
    time: CP56Time2a | None = None


@dataclass(frozen=True, slots=True)
class SetpointShortFloat:
    """R32 + QOS, types 50, 63."""

    ioa: int
    value: float
    ql: int = 0
    select: bool = False
    time: CP56Time2a | None = None


@dataclass(frozen=True, slots=True)
class Bitstring32Command:
    """BSI (7.2.6.13), types 51, 64."""

    ioa: int
    value: int  # 0..2**32-1
    time: CP56Time2a | None = None


@dataclass(frozen=True, slots=True)
class EndOfInitialisation:
    """COI (7.2.6.21), type 70."""

    ioa: int
    coi: int  # CauseOfInitialisation, 0..127
    local_change: bool = False  # initialisation after change of local parameters


@dataclass(frozen=True, slots=True)
class InterrogationCommand:
    """QOI (7.2.6.22), type 100."""

    ioa: int
    qoi: int  # 0..255, 20 station, 21..36 groups


@dataclass(frozen=True, slots=True)
class CounterInterrogationCommand:
    """QCC (7.2.6.23), type 101."""

    ioa: int
    rqt: int  # CounterRequest, 0..63
    frz: int = 0  # CounterFreeze, 0..3


@dataclass(frozen=True, slots=True)
class ReadCommand:
    """Type 102: an IOA only."""

    ioa: int


@dataclass(frozen=True, slots=True)
class ClockSynchronisationCommand:
    """CP56Time2a, type 103."""

    ioa: int
    time: CP56Time2a


@dataclass(frozen=True, slots=True)
class TestCommand:
    """FBP fixed test pattern (7.2.6.14, 0x55AA), type 104 (not used in the 104 profile)."""

    ioa: int
    fbp: int  # 0..65535


@dataclass(frozen=True, slots=True)
class ResetProcessCommand:
    """QRP (7.2.6.27), type 105."""

    ioa: int
    qrp: int  # 0..255


@dataclass(frozen=True, slots=True)
class DelayAcquisitionCommand:
    """CP16Time2a, type 106 (not used in the 104 profile)."""

    ioa: int
    milliseconds: int  # 0..65535


@dataclass(frozen=True, slots=True)
class TestCommandWithTime:
    """TSC + CP56Time2a, type 107 (104 §8)."""

    ioa: int
    tsc: int  # test sequence counter 0..65535
    time: CP56Time2a


@dataclass(frozen=True, slots=True)
class ParameterNormalized:
    """NVA + QPM (7.2.6.24), type 110."""

    ioa: int
    nva: int
    qpm: int = 0  # KPA 0..63, LPC bit 7, POP bit 8

    @property
    def value(self) -> float:
        return self.nva / 32768.0


@dataclass(frozen=True, slots=True)
class ParameterScaled:
    """SVA + QPM, type 111."""

    ioa: int
    value: int
    qpm: int = 0


@dataclass(frozen=True, slots=True)
class ParameterShortFloat:
    """R32 + QPM, type 112."""

    ioa: int
    value: float
    qpm: int = 0


@dataclass(frozen=True, slots=True)
class ParameterActivation:
    """QPA (7.2.6.25), type 113."""

    ioa: int
    qpa: int  # 0..255


@dataclass(frozen=True, slots=True)
class RawInformation:
    """Element octets kept as they are: protection (17-19, 38-40), packed single points (20),
    security statistics (41), file transfer (120-127) and secure authentication (81-95, which
    have no IOA: the whole ASDU body is one RawInformation with ``ioa`` 0)."""

    ioa: int
    data: bytes


InformationObject = (
    SinglePointInformation | DoublePointInformation | StepPositionInformation | Bitstring32
    | MeasuredValueNormalized | MeasuredValueScaled | MeasuredValueShortFloat | IntegratedTotals
    | SingleCommand | DoubleCommand | RegulatingStepCommand | SetpointNormalized
    | SetpointScaled | SetpointShortFloat | Bitstring32Command | EndOfInitialisation
    | InterrogationCommand | CounterInterrogationCommand | ReadCommand
    | ClockSynchronisationCommand | TestCommand | ResetProcessCommand | DelayAcquisitionCommand
    | TestCommandWithTime | ParameterNormalized | ParameterScaled | ParameterShortFloat
    | ParameterActivation | RawInformation
)

# ---------------------------------------------------------------------------------------------
# ASDU and APDU


@dataclass(frozen=True, slots=True)
class Asdu:
    """Application service data unit (101 §7.1, 104 §9 field sizes)."""

    type_id: TypeID
    cot: int  # cause 0..63, a Cause member when the standard defines it
    common_address: int  # 0..65535, 65535 is the broadcast address
    objects: tuple[InformationObject, ...]
    sq: bool = False  # one IOA, then consecutive elements
    negative: bool = False  # P/N: negative confirmation
    test: bool = False  # T
    originator: int = 0  # originator address, 0 when not used


@dataclass(frozen=True, slots=True)
class IFormat:
    """Information transfer format (104 §5.1): numbered, carries one ASDU."""

    send_seq: int  # N(S) 0..32767
    recv_seq: int  # N(R) 0..32767
    asdu: Asdu


@dataclass(frozen=True, slots=True)
class SFormat:
    """Numbered supervisory functions (104 §5.2): acknowledges I format APDUs up to N(R)-1."""

    recv_seq: int


@dataclass(frozen=True, slots=True)
class UFormat:
    """Unnumbered control functions (104 §5.3)."""

    function: UFunction


Apdu = IFormat | SFormat | UFormat

# ---------------------------------------------------------------------------------------------
# Decoding

_TYPE = {int(t): t for t in TypeID}
_CAUSE: tuple[int, ...] = tuple(Cause(c) if c in Cause._value2member_map_ else c
                                for c in range(64))
_U_FUNCTION = {int(u): u for u in UFunction}
_DPI = tuple(DoublePoint(i) for i in range(4))
_QUALITY = tuple(Quality(i & 0xF1) for i in range(256))  # QDS; SIQ/DIQ index with & 0xF0

_H = struct.Struct("<H")
_h = struct.Struct("<h")
_I = struct.Struct("<I")
_HH = struct.Struct("<HH")
_hB = struct.Struct("<hB")
_fB = struct.Struct("<fB")
_iB = struct.Struct("<iB")
_IB = struct.Struct("<IB")
_f = struct.Struct("<f")
_HB = struct.Struct("<HB")
_CP56 = struct.Struct("<HBBBBB")
_HEADER = struct.Struct("<BBBBH")

_NO_TIME, _T24, _T56 = 0, 1, 2


def _cp24(b: bytes, p: int) -> CP24Time2a:
    ms, mi = _HB.unpack_from(b, p)
    return CP24Time2a(ms, mi & 0x3F, mi >= 0x80)


def _cp56(b: bytes, p: int) -> CP56Time2a:
    ms, mi, h, d, mo, y = _CP56.unpack_from(b, p)
    return CP56Time2a(ms, mi & 0x3F, h & 0x1F, d & 0x1F, mo & 0x0F, y & 0x7F,
                      mi >= 0x80, h >= 0x80, d >> 5)


def _time(b: bytes, p: int, tk: int) -> TimeTag | None:
    if tk == _NO_TIME:
        return None
    return _cp24(b, p) if tk == _T24 else _cp56(b, p)


def _d_sp(b: bytes, p: int, ioa: int, tk: int) -> SinglePointInformation:
    s = b[p]
    return SinglePointInformation(ioa, bool(s & 1), _QUALITY[s & 0xF0],
                                  _time(b, p + 1, tk) if tk else None)


def _d_dp(b: bytes, p: int, ioa: int, tk: int) -> DoublePointInformation:
    s = b[p]
    return DoublePointInformation(ioa, _DPI[s & 3], _QUALITY[s & 0xF0],
                                  _time(b, p + 1, tk) if tk else None)


def _d_st(b: bytes, p: int, ioa: int, tk: int) -> StepPositionInformation:
    v = b[p]
    value = v & 0x7F
    return StepPositionInformation(ioa, value - 128 if value & 0x40 else value, v >= 0x80,
                                   _QUALITY[b[p + 1]], _time(b, p + 2, tk) if tk else None)


def _d_bo(b: bytes, p: int, ioa: int, tk: int) -> Bitstring32:
    v, q = _IB.unpack_from(b, p)
    return Bitstring32(ioa, v, _QUALITY[q], _time(b, p + 5, tk) if tk else None)


def _d_nva(b: bytes, p: int, ioa: int, tk: int) -> MeasuredValueNormalized:
    v, q = _hB.unpack_from(b, p)
    return MeasuredValueNormalized(ioa, v, _QUALITY[q], _time(b, p + 3, tk) if tk else None)


def _d_nva_nq(b: bytes, p: int, ioa: int, tk: int) -> MeasuredValueNormalized:
    return MeasuredValueNormalized(ioa, _h.unpack_from(b, p)[0], None, None)


def _d_sva(b: bytes, p: int, ioa: int, tk: int) -> MeasuredValueScaled:
    v, q = _hB.unpack_from(b, p)
    return MeasuredValueScaled(ioa, v, _QUALITY[q], _time(b, p + 3, tk) if tk else None)


def _d_flt(b: bytes, p: int, ioa: int, tk: int) -> MeasuredValueShortFloat:
    v, q = _fB.unpack_from(b, p)
    return MeasuredValueShortFloat(ioa, v, _QUALITY[q], _time(b, p + 5, tk) if tk else None)


def _d_it(b: bytes, p: int, ioa: int, tk: int) -> IntegratedTotals:
    v, s = _iB.unpack_from(b, p)
    return IntegratedTotals(ioa, v, s & 0x1F, bool(s & 0x20), bool(s & 0x40), s >= 0x80,
                            _time(b, p + 5, tk) if tk else None)


def _d_sco(b: bytes, p: int, ioa: int, tk: int) -> SingleCommand:
    s = b[p]
    return SingleCommand(ioa, bool(s & 1), (s >> 2) & 0x1F, s >= 0x80,
                         _cp56(b, p + 1) if tk else None)


def _d_dco(b: bytes, p: int, ioa: int, tk: int) -> DoubleCommand:
    s = b[p]
    return DoubleCommand(ioa, _DPI[s & 3], (s >> 2) & 0x1F, s >= 0x80,
                         _cp56(b, p + 1) if tk else None)


def _d_rco(b: bytes, p: int, ioa: int, tk: int) -> RegulatingStepCommand:
    s = b[p]
    return RegulatingStepCommand(ioa, s & 3, (s >> 2) & 0x1F, s >= 0x80,
                                 _cp56(b, p + 1) if tk else None)


def _d_se_nva(b: bytes, p: int, ioa: int, tk: int) -> SetpointNormalized:
    v, q = _hB.unpack_from(b, p)
    return SetpointNormalized(ioa, v, q & 0x7F, q >= 0x80, _cp56(b, p + 3) if tk else None)


def _d_se_sva(b: bytes, p: int, ioa: int, tk: int) -> SetpointScaled:
    v, q = _hB.unpack_from(b, p)
    return SetpointScaled(ioa, v, q & 0x7F, q >= 0x80, _cp56(b, p + 3) if tk else None)


def _d_se_flt(b: bytes, p: int, ioa: int, tk: int) -> SetpointShortFloat:
    v, q = _fB.unpack_from(b, p)
    return SetpointShortFloat(ioa, v, q & 0x7F, q >= 0x80, _cp56(b, p + 5) if tk else None)


def _d_bo_cmd(b: bytes, p: int, ioa: int, tk: int) -> Bitstring32Command:
    return Bitstring32Command(ioa, _I.unpack_from(b, p)[0], _cp56(b, p + 4) if tk else None)


def _d_ei(b: bytes, p: int, ioa: int, tk: int) -> EndOfInitialisation:
    c = b[p]
    return EndOfInitialisation(ioa, c & 0x7F, c >= 0x80)


def _d_ic(b: bytes, p: int, ioa: int, tk: int) -> InterrogationCommand:
    return InterrogationCommand(ioa, b[p])


def _d_ci(b: bytes, p: int, ioa: int, tk: int) -> CounterInterrogationCommand:
    q = b[p]
    return CounterInterrogationCommand(ioa, q & 0x3F, q >> 6)


def _d_rd(b: bytes, p: int, ioa: int, tk: int) -> ReadCommand:
    return ReadCommand(ioa)


def _d_cs(b: bytes, p: int, ioa: int, tk: int) -> ClockSynchronisationCommand:
    return ClockSynchronisationCommand(ioa, _cp56(b, p))


def _d_ts(b: bytes, p: int, ioa: int, tk: int) -> TestCommand:
    return TestCommand(ioa, _H.unpack_from(b, p)[0])


def _d_rp(b: bytes, p: int, ioa: int, tk: int) -> ResetProcessCommand:
    return ResetProcessCommand(ioa, b[p])


def _d_cd(b: bytes, p: int, ioa: int, tk: int) -> DelayAcquisitionCommand:
    return DelayAcquisitionCommand(ioa, _H.unpack_from(b, p)[0])


def _d_ts_ta(b: bytes, p: int, ioa: int, tk: int) -> TestCommandWithTime:
    return TestCommandWithTime(ioa, _H.unpack_from(b, p)[0], _cp56(b, p + 2))


def _d_p_nva(b: bytes, p: int, ioa: int, tk: int) -> ParameterNormalized:
    v, q = _hB.unpack_from(b, p)
    return ParameterNormalized(ioa, v, q)


def _d_p_sva(b: bytes, p: int, ioa: int, tk: int) -> ParameterScaled:
    v, q = _hB.unpack_from(b, p)
    return ParameterScaled(ioa, v, q)


def _d_p_flt(b: bytes, p: int, ioa: int, tk: int) -> ParameterShortFloat:
    v, q = _fB.unpack_from(b, p)
    return ParameterShortFloat(ioa, v, q)


def _d_p_ac(b: bytes, p: int, ioa: int, tk: int) -> ParameterActivation:
    return ParameterActivation(ioa, b[p])


_Decoder = Callable[[bytes, int, int, int], InformationObject]

# type id -> (decoder, element class, time tag kind); element lengths are in fields.ELEMENT_LENGTH
_LAYOUT: dict[int, tuple[_Decoder | None, type, int]] = {
    1: (_d_sp, SinglePointInformation, _NO_TIME),
    2: (_d_sp, SinglePointInformation, _T24),
    30: (_d_sp, SinglePointInformation, _T56),
    3: (_d_dp, DoublePointInformation, _NO_TIME),
    4: (_d_dp, DoublePointInformation, _T24),
    31: (_d_dp, DoublePointInformation, _T56),
    5: (_d_st, StepPositionInformation, _NO_TIME),
    6: (_d_st, StepPositionInformation, _T24),
    32: (_d_st, StepPositionInformation, _T56),
    7: (_d_bo, Bitstring32, _NO_TIME),
    8: (_d_bo, Bitstring32, _T24),
    33: (_d_bo, Bitstring32, _T56),
    9: (_d_nva, MeasuredValueNormalized, _NO_TIME),
    10: (_d_nva, MeasuredValueNormalized, _T24),
    34: (_d_nva, MeasuredValueNormalized, _T56),
    21: (_d_nva_nq, MeasuredValueNormalized, _NO_TIME),
    11: (_d_sva, MeasuredValueScaled, _NO_TIME),
    12: (_d_sva, MeasuredValueScaled, _T24),
    35: (_d_sva, MeasuredValueScaled, _T56),
    13: (_d_flt, MeasuredValueShortFloat, _NO_TIME),
    14: (_d_flt, MeasuredValueShortFloat, _T24),
    36: (_d_flt, MeasuredValueShortFloat, _T56),
    15: (_d_it, IntegratedTotals, _NO_TIME),
    16: (_d_it, IntegratedTotals, _T24),
    37: (_d_it, IntegratedTotals, _T56),
    45: (_d_sco, SingleCommand, _NO_TIME),
    58: (_d_sco, SingleCommand, _T56),
    46: (_d_dco, DoubleCommand, _NO_TIME),
    59: (_d_dco, DoubleCommand, _T56),
    47: (_d_rco, RegulatingStepCommand, _NO_TIME),
    60: (_d_rco, RegulatingStepCommand, _T56),
    48: (_d_se_nva, SetpointNormalized, _NO_TIME),
    61: (_d_se_nva, SetpointNormalized, _T56),
    49: (_d_se_sva, SetpointScaled, _NO_TIME),
    62: (_d_se_sva, SetpointScaled, _T56),
    50: (_d_se_flt, SetpointShortFloat, _NO_TIME),
    63: (_d_se_flt, SetpointShortFloat, _T56),
    51: (_d_bo_cmd, Bitstring32Command, _NO_TIME),
    64: (_d_bo_cmd, Bitstring32Command, _T56),
    70: (_d_ei, EndOfInitialisation, _NO_TIME),
    100: (_d_ic, InterrogationCommand, _NO_TIME),
    101: (_d_ci, CounterInterrogationCommand, _NO_TIME),
    102: (_d_rd, ReadCommand, _NO_TIME),
    103: (_d_cs, ClockSynchronisationCommand, _T56),
    104: (_d_ts, TestCommand, _NO_TIME),
    105: (_d_rp, ResetProcessCommand, _NO_TIME),
    106: (_d_cd, DelayAcquisitionCommand, _NO_TIME),
    107: (_d_ts_ta, TestCommandWithTime, _T56),
    110: (_d_p_nva, ParameterNormalized, _NO_TIME),
    111: (_d_p_sva, ParameterScaled, _NO_TIME),
    112: (_d_p_flt, ParameterShortFloat, _NO_TIME),
    113: (_d_p_ac, ParameterActivation, _NO_TIME),
}
for _t in (*ELEMENT_LENGTH, *VARIABLE_LENGTH_TYPES):
    _LAYOUT.setdefault(_t, (None, RawInformation, _NO_TIME))  # labelled only
del _t
_FAST_LAYOUT = {t: (dec, ELEMENT_LENGTH.get(t, 0), tk) for t, (dec, _, tk) in _LAYOUT.items()}
_SECURITY_TYPES = VARIABLE_LENGTH_TYPES - {TypeID.F_SG_NA_1}


def parse(apdu: bytes) -> Apdu | Malformed:
    """Decode one complete APDU (start octet to last ASDU octet). Never raises.

    A buffer that is not exactly ``2 + length`` octets long is ``BAD_LENGTH``: framing is the
    session's job, this function sees one APDU.
    """
    n = len(apdu)
    if n == 0 or apdu[0] != APCI_START:
        return Malformed(Reason.BAD_START, 0, apdu, "first octet is not 0x68")
    if n < 6:
        return Malformed(Reason.BAD_LENGTH, 1, apdu, f"{n} octets, the APCI needs 6")
    length = apdu[1]
    if length < APDU_MIN_LENGTH or length > APDU_MAX_LENGTH or length + 2 != n:
        return Malformed(Reason.BAD_LENGTH, 1, apdu, f"length octet {length}, {n - 2} given")
    c1 = apdu[2]
    if not c1 & 1:  # I format
        if apdu[4] & 1:
            return Malformed(Reason.BAD_CONTROL_FIELD, 4, apdu, "I format octet 3 bit 1 set")
        ns, nr = _HH.unpack_from(apdu, 2)
        asdu = _parse_asdu(apdu, 6)
        if type(asdu) is Malformed:
            return asdu
        return IFormat(ns >> 1, nr >> 1, asdu)  # type: ignore[arg-type]
    if length != APDU_MIN_LENGTH:
        return Malformed(Reason.BAD_LENGTH, 1, apdu, f"S/U format with length {length}")
    if c1 == 0x01:
        if apdu[3] or apdu[4] & 1:
            return Malformed(Reason.BAD_CONTROL_FIELD, 3, apdu, "S format reserved bits set")
        return SFormat(_H.unpack_from(apdu, 4)[0] >> 1)
    fn = _U_FUNCTION.get(c1)
    if fn is None or apdu[3] or apdu[4] or apdu[5]:
        return Malformed(Reason.BAD_CONTROL_FIELD, 2, apdu,
                         f"control field {apdu[2:6].hex()} is no U function")
    return UFormat(fn)


def parse_asdu(data: bytes) -> Asdu | Malformed:
    """Decode an ASDU alone (what follows the APCI). Never raises."""
    return _parse_asdu(data, 0)


def _parse_asdu(b: bytes, off: int) -> Asdu | Malformed:
    end = len(b)
    if end - off < ASDU_HEADER_LENGTH:
        return Malformed(Reason.BAD_ASDU_LENGTH, off, b, "shorter than the ASDU header")
    t, vsq, cot, oa, ca = _HEADER.unpack_from(b, off)
    layout = _FAST_LAYOUT.get(t)
    if layout is None:
        return Malformed(Reason.UNKNOWN_TYPE_ID, off, b, f"type id {t}")
    dec, size, tk = layout
    sq = vsq >= 0x80
    n = vsq & 0x7F
    p = off + ASDU_HEADER_LENGTH
    objects: tuple[InformationObject, ...]
    if dec is None:
        raw = _parse_raw(b, p, end, t, n, sq, size)
        if type(raw) is Malformed:
            return raw
        objects = raw  # type: ignore[assignment]
    elif sq:
        if end - p != (3 + n * size if n else 0):
            return Malformed(Reason.BAD_ASDU_LENGTH, p, b,
                             f"{end - p} octets for {n} objects of {size} with SQ=1")
        ioa = b[p] | b[p + 1] << 8 | b[p + 2] << 16 if n else 0
        p += 3
        objects = tuple([dec(b, p + i * size, ioa + i, tk) for i in range(n)])
    else:
        step = size + 3
        if end - p != n * step:
            return Malformed(Reason.BAD_ASDU_LENGTH, p, b,
                             f"{end - p} octets for {n} objects of {step}")
        objects = tuple([dec(b, q + 3, b[q] | b[q + 1] << 8 | b[q + 2] << 16, tk)
                         for q in range(p, end, step)])
    return Asdu(_TYPE[t], _CAUSE[cot & 0x3F], ca, objects, sq, bool(cot & 0x40), cot >= 0x80, oa)


def _parse_raw(b: bytes, p: int, end: int, t: int, n: int, sq: bool,
               size: int) -> tuple[RawInformation, ...] | Malformed:
    """Objects of the labelled-only types, kept as octets but framed, so IOAs are right."""
    if t in _SECURITY_TYPES:
        return (RawInformation(0, b[p:end]),)
    objs: list[RawInformation] = []
    ioa = 0
    for i in range(n):
        if not sq or i == 0:
            if end - p < 3:
                return Malformed(Reason.BAD_ASDU_LENGTH, p, b, f"object {i} has no IOA")
            ioa = b[p] | b[p + 1] << 8 | b[p + 2] << 16
            p += 3
        else:
            ioa += 1
        length = size
        if t == TypeID.F_SG_NA_1:  # NOF(2) NOS(1) LOS(1) segment(LOS)
            length = 4 + b[p + 3] if end - p >= 4 else 4
        if end - p < length:
            return Malformed(Reason.BAD_ASDU_LENGTH, p, b, f"object {i} is truncated")
        objs.append(RawInformation(ioa, b[p:p + length]))
        p += length
    if p != end:
        return Malformed(Reason.BAD_ASDU_LENGTH, p, b, f"{end - p} octets after {n} objects")
    return tuple(objs)


# ---------------------------------------------------------------------------------------------
# Encoding


def _check(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}")
    return value


def _e_cp24(t: CP24Time2a) -> bytes:
    return _HB.pack(_check("milliseconds", t.milliseconds, 0, 0xFFFF),
                    _check("minute", t.minute, 0, 63) | (0x80 if t.invalid else 0))


def _e_cp56(t: CP56Time2a) -> bytes:
    return _CP56.pack(
        _check("milliseconds", t.milliseconds, 0, 0xFFFF),
        _check("minute", t.minute, 0, 63) | (0x80 if t.invalid else 0),
        _check("hour", t.hour, 0, 31) | (0x80 if t.summer_time else 0),
        _check("day", t.day, 0, 31) | _check("day_of_week", t.day_of_week, 0, 7) << 5,
        _check("month", t.month, 0, 15),
        _check("year", t.year, 0, 127),
    )


def _e_time(t: TimeTag | None, tk: int) -> bytes:
    if tk == _NO_TIME:
        if t is not None:
            raise ValueError("this type id carries no time tag")
        return b""
    if tk == _T24:
        if type(t) is not CP24Time2a:
            raise ValueError("this type id needs a CP24Time2a")
        return _e_cp24(t)
    if type(t) is not CP56Time2a:
        raise ValueError("this type id needs a CP56Time2a")
    return _e_cp56(t)


def _quality(q: int | None, mask: int) -> int:
    if q is None:
        raise ValueError("a quality descriptor is needed for this type id")
    if q & ~mask:
        raise ValueError(f"quality {q:#x} has bits outside {mask:#x}")
    return q


def _e_float(v: float) -> bytes:
    try:
        return _f.pack(v)
    except (OverflowError, struct.error) as exc:
        raise ValueError(f"{v} is no IEEE 754 short float") from exc


def _element(o: InformationObject, tk: int) -> bytes:
    """The octets of one element after its IOA; ValueError on out-of-range fields."""
    if isinstance(o, SinglePointInformation):
        return bytes([_quality(o.quality, 0xF0) | int(o.value)]) + _e_time(o.time, tk)
    if isinstance(o, DoublePointInformation):
        return (bytes([_quality(o.quality, 0xF0) | _check("dpi", o.value, 0, 3)])
                + _e_time(o.time, tk))
    if isinstance(o, StepPositionInformation):
        v = _check("value", o.value, -64, 63) & 0x7F
        return (bytes([v | (0x80 if o.transient else 0), _quality(o.quality, 0xF1)])
                + _e_time(o.time, tk))
    if isinstance(o, Bitstring32):
        return (_IB.pack(_check("value", o.value, 0, 0xFFFFFFFF), _quality(o.quality, 0xF1))
                + _e_time(o.time, tk))
    if isinstance(o, MeasuredValueNormalized):
        nva = _check("nva", o.nva, -0x8000, 0x7FFF)
        if o.quality is None:  # M_ME_ND_1
            if tk != _NO_TIME or o.time is not None:
                raise ValueError("a normalized value without quality has no time tag")
            return _h.pack(nva)
        return _hB.pack(nva, _quality(o.quality, 0xF1)) + _e_time(o.time, tk)
    if isinstance(o, MeasuredValueScaled):
        return (_hB.pack(_check("value", o.value, -0x8000, 0x7FFF), _quality(o.quality, 0xF1))
                + _e_time(o.time, tk))
    if isinstance(o, MeasuredValueShortFloat):
        return _e_float(o.value) + bytes([_quality(o.quality, 0xF1)]) + _e_time(o.time, tk)
    if isinstance(o, IntegratedTotals):
        s = (_check("sequence", o.sequence, 0, 31) | (0x20 if o.carry else 0)
             | (0x40 if o.adjusted else 0) | (0x80 if o.invalid else 0))
        return (_iB.pack(_check("value", o.value, -0x80000000, 0x7FFFFFFF), s)
                + _e_time(o.time, tk))
    if isinstance(o, SingleCommand | DoubleCommand | RegulatingStepCommand):
        state = int(o.value) if isinstance(o, SingleCommand) else _check("value", o.value, 0, 3)
        octet = state | _check("qu", o.qu, 0, 31) << 2 | (0x80 if o.select else 0)
        return bytes([octet]) + _e_time(o.time, tk)
    if isinstance(o, SetpointNormalized | SetpointScaled | SetpointShortFloat):
        qos = _check("ql", o.ql, 0, 127) | (0x80 if o.select else 0)
        if isinstance(o, SetpointShortFloat):
            head = _e_float(o.value)
        elif isinstance(o, SetpointNormalized):
            head = _h.pack(_check("nva", o.nva, -0x8000, 0x7FFF))
        else:
            head = _h.pack(_check("value", o.value, -0x8000, 0x7FFF))
        return head + bytes([qos]) + _e_time(o.time, tk)
    if isinstance(o, Bitstring32Command):
        return _I.pack(_check("value", o.value, 0, 0xFFFFFFFF)) + _e_time(o.time, tk)
    if isinstance(o, EndOfInitialisation):
        return bytes([_check("coi", o.coi, 0, 127) | (0x80 if o.local_change else 0)])
    if isinstance(o, InterrogationCommand):
        return bytes([_check("qoi", o.qoi, 0, 255)])
    if isinstance(o, CounterInterrogationCommand):
        return bytes([_check("rqt", o.rqt, 0, 63) | _check("frz", o.frz, 0, 3) << 6])
    if isinstance(o, ReadCommand):
        return b""
    if isinstance(o, ClockSynchronisationCommand):
        return _e_time(o.time, tk)
    if isinstance(o, TestCommand):
        return _H.pack(_check("fbp", o.fbp, 0, 0xFFFF))
    if isinstance(o, ResetProcessCommand):
        return bytes([_check("qrp", o.qrp, 0, 255)])
    if isinstance(o, DelayAcquisitionCommand):
        return _H.pack(_check("milliseconds", o.milliseconds, 0, 0xFFFF))
    if isinstance(o, TestCommandWithTime):
        return _H.pack(_check("tsc", o.tsc, 0, 0xFFFF)) + _e_time(o.time, tk)
    if isinstance(o, ParameterNormalized):
        return _hB.pack(_check("nva", o.nva, -0x8000, 0x7FFF), _check("qpm", o.qpm, 0, 255))
    if isinstance(o, ParameterScaled):
        return _hB.pack(_check("value", o.value, -0x8000, 0x7FFF), _check("qpm", o.qpm, 0, 255))
    if isinstance(o, ParameterShortFloat):
        return _e_float(o.value) + bytes([_check("qpm", o.qpm, 0, 255)])
    if isinstance(o, ParameterActivation):
        return bytes([_check("qpa", o.qpa, 0, 255)])
    return bytes(o.data)


def build_asdu(asdu: Asdu) -> bytes:
    """Encode an ASDU; ValueError when a field is out of range or objects do not fit the type."""
    t = int(asdu.type_id)
    layout = _LAYOUT.get(t)
    if layout is None:
        raise ValueError(f"type id {t} is not defined")
    _, cls, tk = layout
    objects = asdu.objects
    n = len(objects)
    if n > MAX_OBJECTS:
        raise ValueError(f"{n} objects, at most {MAX_OBJECTS} fit the VSQ")
    cot = (_check("cot", asdu.cot, 0, 63) | (0x40 if asdu.negative else 0)
           | (0x80 if asdu.test else 0))
    out = bytearray(_HEADER.pack(t, (0x80 if asdu.sq else 0) | n, cot,
                                 _check("originator", asdu.originator, 0, 255),
                                 _check("common_address", asdu.common_address, 0, 0xFFFF)))
    security = t in _SECURITY_TYPES
    if security and (n != 1 or objects[0].ioa != 0):
        raise ValueError("a secure-authentication ASDU is one RawInformation with ioa 0")
    size = ELEMENT_LENGTH.get(t)
    first = objects[0].ioa if objects else 0
    for i, o in enumerate(objects):
        if type(o) is not cls:
            raise ValueError(f"{type(o).__name__} cannot be sent as {TypeID(t).name}")
        if not security:
            if not asdu.sq or i == 0:
                out += _check("ioa", o.ioa, 0, 0xFFFFFF).to_bytes(3, "little")
            elif o.ioa != first + i:
                raise ValueError("with SQ=1 the IOAs must be consecutive")
        element = _element(o, tk)
        if size is not None and len(element) != size:
            raise ValueError(f"{TypeID(t).name} elements are {size} octets, not {len(element)}")
        if t == TypeID.F_SG_NA_1 and (len(element) < 4 or element[3] != len(element) - 4):
            raise ValueError("F_SG_NA_1 segment length octet disagrees with the segment")
        out += element
    return bytes(out)


def build(apdu: Apdu) -> bytes:
    """Encode an APDU; ValueError on out-of-range fields or an ASDU longer than 249 octets."""
    if isinstance(apdu, UFormat):
        return bytes([APCI_START, 4, UFunction(apdu.function), 0, 0, 0])
    if isinstance(apdu, SFormat):
        return bytes([APCI_START, 4, 1, 0]) + _H.pack(_check("recv_seq", apdu.recv_seq,
                                                              0, 0x7FFF) << 1)
    asdu = build_asdu(apdu.asdu)
    length = 4 + len(asdu)
    if length > APDU_MAX_LENGTH:
        raise ValueError(f"APDU length {length} exceeds {APDU_MAX_LENGTH}")
    return (bytes([APCI_START, length])
            + _HH.pack(_check("send_seq", apdu.send_seq, 0, 0x7FFF) << 1,
                       _check("recv_seq", apdu.recv_seq, 0, 0x7FFF) << 1)
            + asdu)
