"""IEC 60870-5-104 spec tables: APCI control functions, ASDU type identifications, causes.

Names follow IEC 60870-5-101 §7.2 (type identification, cause of transmission, qualifiers) and
IEC 60870-5-104 §5 (APCI). Security types 81..95 and causes 14..16 come from IEC 60870-5-7.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Why an APDU is malformed; each value is a finding with its own detection rule."""

    BAD_START = "BAD_START"  # first octet is not the start character 0x68
    BAD_LENGTH = "BAD_LENGTH"  # APDU length outside 4..253, or not the bytes given
    BAD_CONTROL_FIELD = "BAD_CONTROL_FIELD"  # no valid I, S or U format in the control octets
    UNKNOWN_TYPE_ID = "UNKNOWN_TYPE_ID"  # type identification not defined by the standard
    BAD_ASDU_LENGTH = "BAD_ASDU_LENGTH"  # ASDU size disagrees with type and number of objects


APCI_START = 0x68
APDU_MIN_LENGTH = 4  # 104 §5: the length octet counts the four control octets and the ASDU
APDU_MAX_LENGTH = 253
ASDU_HEADER_LENGTH = 6  # type, VSQ, 2-octet COT, 2-octet common address (104 §9 profile)
IOA_LENGTH = 3
MAX_OBJECTS = 127  # VSQ number of information objects is 7 bits


class UFunction(enum.IntEnum):
    """U format control octet 1 (104 §5.3): exactly one function bit plus the 0b11 format bits."""

    STARTDT_ACT = 0x07
    STARTDT_CON = 0x0B
    STOPDT_ACT = 0x13
    STOPDT_CON = 0x23
    TESTFR_ACT = 0x43
    TESTFR_CON = 0x83


class TypeID(enum.IntEnum):
    """Type identification (101 §7.2.1.1, 104 §8 table 1; 60870-5-7 for S_* 81..95)."""

    # process information in monitor direction
    M_SP_NA_1 = 1
    M_SP_TA_1 = 2
    M_DP_NA_1 = 3
    M_DP_TA_1 = 4
    M_ST_NA_1 = 5
    M_ST_TA_1 = 6
    M_BO_NA_1 = 7
    M_BO_TA_1 = 8
    M_ME_NA_1 = 9
    M_ME_TA_1 = 10
    M_ME_NB_1 = 11
    M_ME_TB_1 = 12
    M_ME_NC_1 = 13
    M_ME_TC_1 = 14
    M_IT_NA_1 = 15
    M_IT_TA_1 = 16
    M_EP_TA_1 = 17
    M_EP_TB_1 = 18
    M_EP_TC_1 = 19
    M_PS_NA_1 = 20
    M_ME_ND_1 = 21
    M_SP_TB_1 = 30
    M_DP_TB_1 = 31
    M_ST_TB_1 = 32
    M_BO_TB_1 = 33
    M_ME_TD_1 = 34
    M_ME_TE_1 = 35
    M_ME_TF_1 = 36
    M_IT_TB_1 = 37
    M_EP_TD_1 = 38
    M_EP_TE_1 = 39
    M_EP_TF_1 = 40
    S_IT_TC_1 = 41
    # process information in control direction
    C_SC_NA_1 = 45
    C_DC_NA_1 = 46
    C_RC_NA_1 = 47
    C_SE_NA_1 = 48
    C_SE_NB_1 = 49
    C_SE_NC_1 = 50
    C_BO_NA_1 = 51
    C_SC_TA_1 = 58
    C_DC_TA_1 = 59
    C_RC_TA_1 = 60
    C_SE_TA_1 = 61
    C_SE_TB_1 = 62
    C_SE_TC_1 = 63
    C_BO_TA_1 = 64
    # system information in monitor direction
    M_EI_NA_1 = 70
    # secure authentication (IEC 60870-5-7)
    S_CH_NA_1 = 81
    S_RP_NA_1 = 82
    S_AR_NA_1 = 83
    S_KR_NA_1 = 84
    S_KS_NA_1 = 85
    S_KC_NA_1 = 86
    S_ER_NA_1 = 87
    S_US_NA_1 = 90
    S_UQ_NA_1 = 91
    S_UR_NA_1 = 92
    S_UK_NA_1 = 93
    S_UA_NA_1 = 94
    S_UC_NA_1 = 95
    # system information in control direction
    C_IC_NA_1 = 100
    C_CI_NA_1 = 101
    C_RD_NA_1 = 102
    C_CS_NA_1 = 103
    C_TS_NA_1 = 104
    C_RP_NA_1 = 105
    C_CD_NA_1 = 106
    C_TS_TA_1 = 107
    # parameter in control direction
    P_ME_NA_1 = 110
    P_ME_NB_1 = 111
    P_ME_NC_1 = 112
    P_AC_NA_1 = 113
    # file transfer
    F_FR_NA_1 = 120
    F_SR_NA_1 = 121
    F_SC_NA_1 = 122
    F_LS_NA_1 = 123
    F_AF_NA_1 = 124
    F_SG_NA_1 = 125
    F_DR_TA_1 = 126
    F_SC_NB_1 = 127


class Cause(enum.IntEnum):
    """Cause of transmission, the low 6 bits of the COT octet (101 §7.2.3)."""

    PERIODIC = 1
    BACKGROUND = 2
    SPONTANEOUS = 3
    INITIALIZED = 4
    REQUEST = 5
    ACTIVATION = 6
    ACTIVATION_CON = 7
    DEACTIVATION = 8
    DEACTIVATION_CON = 9
    ACTIVATION_TERM = 10
    RETURN_REMOTE = 11
    RETURN_LOCAL = 12
    FILE = 13
    AUTHENTICATION = 14
    SESSION_KEY = 15
    USER_KEY = 16
    INROGEN = 20
    INRO1 = 21
    INRO2 = 22
    INRO3 = 23
    INRO4 = 24
    INRO5 = 25
    INRO6 = 26
    INRO7 = 27
    INRO8 = 28
    INRO9 = 29
    INRO10 = 30
    INRO11 = 31
    INRO12 = 32
    INRO13 = 33
    INRO14 = 34
    INRO15 = 35
    INRO16 = 36
    REQCOGEN = 37
    REQCO1 = 38
    REQCO2 = 39
    REQCO3 = 40
    REQCO4 = 41
    UNKNOWN_TYPE_ID = 44
    UNKNOWN_CAUSE = 45
    UNKNOWN_COMMON_ADDRESS = 46
    UNKNOWN_IOA = 47


COT_NEGATIVE = 0x40  # P/N bit of the COT octet
COT_TEST = 0x80  # T bit
COT_CAUSE_MASK = 0x3F


class Quality(enum.IntFlag):
    """Quality descriptor bits shared by SIQ, DIQ and QDS (101 §7.2.6.1-3)."""

    OV = 0x01  # overflow (QDS only)
    BL = 0x10  # blocked
    SB = 0x20  # substituted
    NT = 0x40  # not topical
    IV = 0x80  # invalid


class DoublePoint(enum.IntEnum):
    """DPI of DIQ and DCS of DCO (101 §7.2.6.2, §7.2.6.16)."""

    INTERMEDIATE = 0  # indeterminate or intermediate state; "not permitted" in a DCS
    OFF = 1
    ON = 2
    INDETERMINATE = 3


class StepCommand(enum.IntEnum):
    """RCS of RCO (101 §7.2.6.17); 0 and 3 are not permitted."""

    LOWER = 1
    HIGHER = 2


class QualifierOfCommand(enum.IntEnum):
    """QU of SCO/DCO/RCO (101 §7.2.6.26); 4..31 reserved."""

    NO_ADDITIONAL_DEFINITION = 0
    SHORT_PULSE = 1
    LONG_PULSE = 2
    PERSISTENT = 3


class QualifierOfInterrogation(enum.IntEnum):
    """QOI (101 §7.2.6.22): station interrogation or one of 16 groups."""

    STATION = 20
    GROUP_1 = 21
    GROUP_2 = 22
    GROUP_3 = 23
    GROUP_4 = 24
    GROUP_5 = 25
    GROUP_6 = 26
    GROUP_7 = 27
    GROUP_8 = 28
    GROUP_9 = 29
    GROUP_10 = 30
    GROUP_11 = 31
    GROUP_12 = 32
    GROUP_13 = 33
    GROUP_14 = 34
    GROUP_15 = 35
    GROUP_16 = 36


class CounterRequest(enum.IntEnum):
    """RQT of QCC (101 §7.2.6.23)."""

    NONE = 0
    GROUP_1 = 1
    GROUP_2 = 2
    GROUP_3 = 3
    GROUP_4 = 4
    GENERAL = 5


class CounterFreeze(enum.IntEnum):
    """FRZ of QCC (101 §7.2.6.23)."""

    READ = 0
    FREEZE_WITHOUT_RESET = 1
    FREEZE_WITH_RESET = 2
    RESET = 3


class QualifierOfResetProcess(enum.IntEnum):
    """QRP (101 §7.2.6.27)."""

    NOT_USED = 0
    GENERAL_RESET = 1
    RESET_EVENT_BUFFER = 2  # reset of pending information with time tag of the event buffer


class CauseOfInitialisation(enum.IntEnum):
    """COI cause, low 7 bits (101 §7.2.6.21); bit 8 tells whether local parameters changed."""

    LOCAL_POWER_ON = 0
    LOCAL_MANUAL_RESET = 1
    REMOTE_RESET = 2


# Element length in octets after the IOA (101 §7.3), for the types of fixed layout.
ELEMENT_LENGTH: dict[int, int] = {
    1: 1, 2: 4, 3: 1, 4: 4, 5: 2, 6: 5, 7: 5, 8: 8, 9: 3, 10: 6, 11: 3, 12: 6, 13: 5, 14: 8,
    15: 5, 16: 8, 17: 6, 18: 7, 19: 7, 20: 5, 21: 2,
    30: 8, 31: 8, 32: 9, 33: 12, 34: 10, 35: 10, 36: 12, 37: 12, 38: 10, 39: 11, 40: 11, 41: 14,
    45: 1, 46: 1, 47: 1, 48: 3, 49: 3, 50: 5, 51: 4,
    58: 8, 59: 8, 60: 8, 61: 10, 62: 10, 63: 12, 64: 11,
    70: 1,
    100: 1, 101: 1, 102: 0, 103: 7, 104: 2, 105: 1, 106: 2, 107: 9,
    110: 3, 111: 3, 112: 5, 113: 1,
    120: 6, 121: 7, 122: 4, 123: 5, 124: 4, 126: 13, 127: 16,
}
# F_SG_NA_1 carries its own segment length; the secure-authentication ASDUs are variable.
VARIABLE_LENGTH_TYPES: frozenset[int] = frozenset({125, *range(81, 88), *range(90, 96)})
