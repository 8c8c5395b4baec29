"""DNP3 spec tables (IEEE 1815-2012), named as the standard names them.

Clause 9.2.4.1.3 (link function codes), 8.2.1 (transport header), 4.2.2.4 (application function
codes, Table 4-1), 4.2.2.6 (internal indications), 4.2.2.7 (object header qualifiers), Annex A
(object library: CROB control codes, command status codes) and the malformed reasons Interlock
reports. IIN flag names follow Suricata's ``dnp3.ind`` keyword (OISF/suricata
``rust/src/dnp3/detect.rs``), so a rule written for one reads the same in the other.
"""

from __future__ import annotations

import enum

START = b"\x05\x64"  # 9.2.4.1.1: every link frame begins with these two octets
HEADER_SIZE = 10  # start(2) length(1) control(1) destination(2) source(2) CRC(2)
BLOCK_SIZE = 16  # 9.2.4.2: user data travels in blocks of at most 16 octets, each with a CRC
MIN_LENGTH = 5  # the length octet counts control, destination, source and user data
MAX_USER_DATA = 250  # 255 - 5
MAX_FRAME_SIZE = HEADER_SIZE + MAX_USER_DATA + 2 * 16  # 292 octets on the wire

# Link control octet (9.2.4.1.3).
LINK_DIR = 0x80  # 1: sent by a master
LINK_PRM = 0x40  # 1: primary (initiating) frame
LINK_FCB = 0x20  # frame count bit (primary); reserved in secondary frames
LINK_FCV = 0x10  # frame count valid (primary); DFC, data flow control, in secondary frames
LINK_FUNC = 0x0F

# Transport header octet (8.2.1).
TRANSPORT_FIN = 0x80
TRANSPORT_FIR = 0x40
TRANSPORT_SEQ = 0x3F

# Application control octet (4.2.2.3).
APP_FIR = 0x80
APP_FIN = 0x40
APP_CON = 0x20
APP_UNS = 0x10
APP_SEQ = 0x0F


class PrimaryFunction(enum.IntEnum):
    """Link function codes of frames with PRM=1 (9.2.4.1.3.5, Table 9-1)."""

    RESET_LINK_STATES = 0
    RESET_USER_PROCESS = 1  # obsolete since 2012, still seen on the wire
    TEST_LINK_STATES = 2
    CONFIRMED_USER_DATA = 3
    UNCONFIRMED_USER_DATA = 4
    REQUEST_LINK_STATUS = 9


class SecondaryFunction(enum.IntEnum):
    """Link function codes of frames with PRM=0 (9.2.4.1.3.5, Table 9-2)."""

    ACK = 0
    NACK = 1
    LINK_STATUS = 11
    NOT_FUNCTIONING = 14  # obsolete since 2012
    NOT_SUPPORTED = 15


class FunctionCode(enum.IntEnum):
    """Application layer function codes (4.2.2.4, Table 4-1)."""

    CONFIRM = 0
    READ = 1
    WRITE = 2
    SELECT = 3
    OPERATE = 4
    DIRECT_OPERATE = 5
    DIRECT_OPERATE_NR = 6
    IMMED_FREEZE = 7
    IMMED_FREEZE_NR = 8
    FREEZE_CLEAR = 9
    FREEZE_CLEAR_NR = 10
    FREEZE_AT_TIME = 11
    FREEZE_AT_TIME_NR = 12
    COLD_RESTART = 13
    WARM_RESTART = 14
    INITIALIZE_DATA = 15
    INITIALIZE_APPL = 16
    START_APPL = 17
    STOP_APPL = 18
    SAVE_CONFIG = 19
    ENABLE_UNSOLICITED = 20
    DISABLE_UNSOLICITED = 21
    ASSIGN_CLASS = 22
    DELAY_MEASURE = 23
    RECORD_CURRENT_TIME = 24
    OPEN_FILE = 25
    CLOSE_FILE = 26
    DELETE_FILE = 27
    GET_FILE_INFO = 28
    AUTHENTICATE_FILE = 29
    ABORT_FILE = 30
    ACTIVATE_CONFIG = 31
    AUTHENTICATE_REQ = 32
    AUTH_REQ_NO_ACK = 33
    RESPONSE = 129
    UNSOLICITED_RESPONSE = 130
    AUTHENTICATE_RESP = 131


# 4.2.2.7: in these requests object headers carry no object data (a READ names points, a
# freeze names counters...). FREEZE_AT_TIME carries data for its g50 time object only.
HEADERS_ONLY_FUNCTIONS = frozenset({
    FunctionCode.READ, FunctionCode.IMMED_FREEZE, FunctionCode.IMMED_FREEZE_NR,
    FunctionCode.FREEZE_CLEAR, FunctionCode.FREEZE_CLEAR_NR, FunctionCode.ENABLE_UNSOLICITED,
    FunctionCode.DISABLE_UNSOLICITED, FunctionCode.ASSIGN_CLASS,
})
FREEZE_AT_TIME_FUNCTIONS = frozenset({FunctionCode.FREEZE_AT_TIME, FunctionCode.FREEZE_AT_TIME_NR})
FIRST_RESPONSE_FUNCTION = 129  # 129..131 carry the two IIN octets


class IIN(enum.IntFlag):
    """Internal indications (4.2.2.6) as a 16-bit value: IIN1 in the high octet, IIN2 low."""

    ALL_STATIONS = 0x0100  # IIN1.0, broadcast received
    CLASS_1_EVENTS = 0x0200
    CLASS_2_EVENTS = 0x0400
    CLASS_3_EVENTS = 0x0800
    NEED_TIME = 0x1000
    LOCAL_CONTROL = 0x2000
    DEVICE_TROUBLE = 0x4000
    DEVICE_RESTART = 0x8000
    NO_FUNC_CODE_SUPPORT = 0x0001  # IIN2.0
    OBJECT_UNKNOWN = 0x0002
    PARAMETER_ERROR = 0x0004
    EVENT_BUFFER_OVERFLOW = 0x0008
    ALREADY_EXECUTING = 0x0010
    CONFIG_CORRUPT = 0x0020
    RESERVED_2 = 0x0040
    RESERVED_1 = 0x0080


class PrefixCode(enum.IntEnum):
    """Object prefix code, bits 6..4 of the qualifier (4.2.2.7.3.2, Table 4-4)."""

    NONE = 0
    INDEX_1 = 1  # each object prefixed by a 1-octet index
    INDEX_2 = 2
    INDEX_4 = 3
    SIZE_1 = 4  # each object prefixed by a 1-octet object size
    SIZE_2 = 5
    SIZE_4 = 6


class RangeCode(enum.IntEnum):
    """Range specifier code, bits 3..0 of the qualifier (4.2.2.7.3.3, Table 4-5)."""

    START_STOP_1 = 0x0
    START_STOP_2 = 0x1
    START_STOP_4 = 0x2
    ADDRESS_1 = 0x3  # virtual addresses, obsolete
    ADDRESS_2 = 0x4
    ADDRESS_4 = 0x5
    NO_RANGE = 0x6  # "all objects"
    COUNT_1 = 0x7
    COUNT_2 = 0x8
    COUNT_4 = 0x9
    FREE_FORMAT = 0xB  # 1-octet count; objects prefixed by their size (qualifier 0x5B)


class OpType(enum.IntEnum):
    """CROB control code, operation type field (bits 3..0), Annex A g12v1."""

    NUL = 0
    PULSE_ON = 1
    PULSE_OFF = 2
    LATCH_ON = 3
    LATCH_OFF = 4


class TripCloseCode(enum.IntEnum):
    """CROB control code, trip-close field (bits 7..6), Annex A g12v1."""

    NUL = 0
    CLOSE = 1
    TRIP = 2
    RESERVED = 3


class CommandStatus(enum.IntEnum):
    """Control status codes of g12, g41 and g43 objects (Table 11-6 of IEEE 1815-2012)."""

    SUCCESS = 0
    TIMEOUT = 1
    NO_SELECT = 2
    FORMAT_ERROR = 3
    NOT_SUPPORTED = 4
    ALREADY_ACTIVE = 5
    HARDWARE_ERROR = 6
    LOCAL = 7
    TOO_MANY_OBJS = 8
    NOT_AUTHORIZED = 9
    AUTOMATION_INHIBIT = 10
    PROCESSING_LIMITED = 11
    OUT_OF_RANGE = 12
    DOWNSTREAM_LOCAL = 13
    ALREADY_COMPLETE = 14
    BLOCKED = 15
    CANCELLED = 16
    BLOCKED_OTHER_MASTER = 17
    DOWNSTREAM_FAIL = 18
    NON_PARTICIPATING = 126
    UNDEFINED = 127


class Group(enum.IntEnum):
    """Object groups of Annex A that Interlock names (others are reported by number)."""

    DEVICE_ATTRIBUTES = 0
    BINARY_INPUT = 1
    BINARY_INPUT_EVENT = 2
    DOUBLE_BIT_BINARY_INPUT = 3
    DOUBLE_BIT_BINARY_INPUT_EVENT = 4
    BINARY_OUTPUT = 10
    BINARY_OUTPUT_EVENT = 11
    BINARY_OUTPUT_COMMAND = 12
    BINARY_OUTPUT_COMMAND_EVENT = 13
    COUNTER = 20
    FROZEN_COUNTER = 21
    COUNTER_EVENT = 22
    FROZEN_COUNTER_EVENT = 23
    ANALOG_INPUT = 30
    FROZEN_ANALOG_INPUT = 31
    ANALOG_INPUT_EVENT = 32
    FROZEN_ANALOG_INPUT_EVENT = 33
    ANALOG_INPUT_DEADBAND = 34
    ANALOG_OUTPUT_STATUS = 40
    ANALOG_OUTPUT = 41
    ANALOG_OUTPUT_EVENT = 42
    ANALOG_OUTPUT_COMMAND_EVENT = 43
    TIME_AND_DATE = 50
    TIME_AND_DATE_CTO = 51
    TIME_DELAY = 52
    CLASS_OBJECTS = 60
    FILE_CONTROL = 70
    INTERNAL_INDICATIONS = 80
    DEVICE_STORAGE = 81
    DEVICE_PROFILE = 82
    DATA_SET_PROTOTYPE = 85
    DATA_SET_DESCRIPTOR = 86
    DATA_SET = 87
    DATA_SET_EVENT = 88
    APPLICATION_IDENTIFIER = 90
    STATUS_OF_REQUESTED_OPERATION = 91
    BCD_INTEGER = 101
    UNSIGNED_INTEGER = 102
    OCTET_STRING = 110
    OCTET_STRING_EVENT = 111
    VIRTUAL_TERMINAL_OUTPUT_BLOCK = 112
    VIRTUAL_TERMINAL_EVENT_DATA = 113
    AUTHENTICATION = 120
    SECURITY_STATISTIC = 121
    SECURITY_STATISTIC_EVENT = 122


class Reason(enum.StrEnum):
    """Why a frame, segment or fragment breaks IEEE 1815 (Operation.malformed)."""

    BAD_START = "BAD_START"  # garbage where the 0x05 0x64 start octets should be
    BAD_HEADER_CRC = "BAD_HEADER_CRC"  # 9.2.4.1.6 (Suricata dnp3.bad_link_crc)
    BAD_LENGTH = "BAD_LENGTH"  # length < 5, user data function without data, data on a
    # link-only function, or bytes missing at the end (Suricata dnp3.len_too_small)
    UNKNOWN_LINK_FUNCTION = "UNKNOWN_LINK_FUNCTION"  # reserved link function code
    BAD_DATA_CRC = "BAD_DATA_CRC"  # 9.2.4.2 block CRC (Suricata dnp3.bad_transport_crc)
    BAD_TRANSPORT_SEQUENCE = "BAD_TRANSPORT_SEQUENCE"  # 8.2.1.2: segment out of sequence,
    # or a middle/final segment without a first one
    INCOMPLETE_FRAGMENT = "INCOMPLETE_FRAGMENT"  # a new FIR segment abandoned a partial fragment
    FRAGMENT_TOO_LONG = "FRAGMENT_TOO_LONG"  # reassembly beyond the 64 KiB cap
    BAD_APPLICATION_HEADER = "BAD_APPLICATION_HEADER"  # fragment shorter than its header
    UNKNOWN_FUNCTION = "UNKNOWN_FUNCTION"  # reserved application function code
    BAD_QUALIFIER = "BAD_QUALIFIER"  # reserved prefix or range code, or one the object forbids
    BAD_RANGE = "BAD_RANGE"  # stop index below start index
    BAD_VARIATION = "BAD_VARIATION"  # variation 0 ("any") where objects must follow, e.g. the
    # empty virtual-terminal strings of a WRITE g112v0
    TRUNCATED_OBJECT = "TRUNCATED_OBJECT"  # header or object data runs past the fragment end
