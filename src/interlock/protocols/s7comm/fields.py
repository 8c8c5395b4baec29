"""S7comm spec tables: TPKT/COTP codes, S7 header, functions, items, userdata, S7comm-plus.

Names follow the terms of RFC 1006 (TPKT), ISO 8073 / X.224 (COTP) and, for S7comm, which
Siemens never published, the names used by the Wireshark ``s7comm`` dissector (Thomas Wiens),
which is the de-facto reference. Every table is an ``IntEnum`` so logs show names.
"""

from __future__ import annotations

import enum

TPKT_VERSION = 3  # RFC 1006 section 6
TPKT_HEADER_LEN = 4
MAX_TPKT_LEN = 0xFFFF
S7_PROTOCOL_ID = 0x32
S7PLUS_PROTOCOL_ID = 0x72
ISO_TSAP_PORT = 102  # RFC 1006: ISO transport services on top of TCP


class Reason(enum.StrEnum):
    """Why a TPKT frame, a COTP TPDU or an S7 PDU could not be decoded."""

    BAD_TPKT_VERSION = "BAD_TPKT_VERSION"  # first byte is not 3: framing lost
    BAD_TPKT_LENGTH = "BAD_TPKT_LENGTH"  # TPKT length below the 7-byte minimum or not the frame's
    BAD_COTP_LENGTH = "BAD_COTP_LENGTH"  # COTP length indicator too short for the type, or past end
    UNKNOWN_COTP_TYPE = "UNKNOWN_COTP_TYPE"  # TPDU code not allowed in class 0
    BAD_COTP_PARAMETER = "BAD_COTP_PARAMETER"  # variable-part parameter runs past the header
    REASSEMBLY_OVERFLOW = "REASSEMBLY_OVERFLOW"  # DT segments without EOT beyond the 64 KiB cap
    BAD_PROTOCOL_ID = "BAD_PROTOCOL_ID"  # COTP user data is neither S7comm (0x32) nor plus (0x72)
    UNKNOWN_ROSCTR = "UNKNOWN_ROSCTR"  # PDU type other than job, ack, ack_data, userdata
    TRUNCATED = "TRUNCATED"  # PDU ends before its header or a declared field
    BAD_LENGTH = "BAD_LENGTH"  # declared lengths do not add up (extra bytes, wrong sizes)
    UNKNOWN_FUNCTION = "UNKNOWN_FUNCTION"  # parameter function code not in the spec table
    BAD_ITEM = "BAD_ITEM"  # variable specification is not 0x12 or its address is malformed
    BAD_ITEM_COUNT = "BAD_ITEM_COUNT"  # item count disagrees with the items present
    BAD_DATA_ITEM = "BAD_DATA_ITEM"  # data item runs past the data part
    BAD_USERDATA = "BAD_USERDATA"  # userdata parameter head too short
    BAD_PLUS_HEADER = "BAD_PLUS_HEADER"  # S7comm-plus data length disagrees with the PDU


# --- COTP (ISO 8073 section 13) ----------------------------------------------------------


class CotpType(enum.IntEnum):
    """TPDU code: the high nibble of the second header byte (ISO 8073 table 8)."""

    ED = 0x10  # expedited data (not class 0)
    EA = 0x20  # expedited data acknowledgement (not class 0)
    RJ = 0x50  # reject (not class 0)
    AK = 0x60  # data acknowledgement (not class 0)
    ER = 0x70  # TPDU error
    DR = 0x80  # disconnect request
    DC = 0xC0  # disconnect confirm
    CC = 0xD0  # connection confirm
    CR = 0xE0  # connection request
    DT = 0xF0  # data


class CotpParameter(enum.IntEnum):
    """Variable-part parameter codes of CR/CC/DR/ER (ISO 8073 section 13.3.4)."""

    TPDU_SIZE = 0xC0
    SRC_TSAP = 0xC1  # calling transport selector
    DST_TSAP = 0xC2  # called transport selector
    CHECKSUM = 0xC3
    VERSION = 0xC4
    PROTECTION = 0xC5
    ADDITIONAL_OPTIONS = 0xC6
    ALTERNATIVE_CLASSES = 0xC7
    PREFERRED_MAX_TPDU_SIZE = 0xF0
    INACTIVITY_TIMER = 0xF2
    ADDITIONAL_INFO = 0xE0  # DR: additional information on the disconnect


class DisconnectReason(enum.IntEnum):
    """DR reason codes (ISO 8073 section 13.5.3 e)."""

    NOT_SPECIFIED = 0
    CONGESTION_AT_TSAP = 1
    SESSION_ENTITY_NOT_ATTACHED = 2
    ADDRESS_UNKNOWN = 3
    NORMAL = 128
    REMOTE_CONGESTION = 129
    NEGOTIATION_FAILED = 130
    DUPLICATE_SOURCE_REFERENCE = 131
    MISMATCHED_REFERENCES = 132
    PROTOCOL_ERROR = 133
    REFERENCE_OVERFLOW = 135
    CONNECTION_REFUSED = 136
    HEADER_OR_PARAMETER_LENGTH_INVALID = 138


class ConnectionType(enum.IntEnum):
    """First byte of an S7 destination TSAP: the connection resource asked for."""

    PG = 1  # programming device (engineering station)
    OP = 2  # operator panel / HMI
    S7_BASIC = 3  # S7 basic communication (other PLCs, Snap7 default)


# --- S7comm header and functions --------------------------------------------------------


class Rosctr(enum.IntEnum):
    """Remote Operating Service Control: the S7 PDU type (header byte 1)."""

    JOB = 0x01
    ACK = 0x02
    ACK_DATA = 0x03
    USERDATA = 0x07


class ErrorClass(enum.IntEnum):
    """Header error class of ack / ack_data."""

    NO_ERROR = 0x00
    APPLICATION_RELATIONSHIP = 0x81
    OBJECT_DEFINITION = 0x82
    NO_RESOURCES_AVAILABLE = 0x83
    ERROR_ON_SERVICE_PROCESSING = 0x84
    ERROR_ON_SUPPLIES = 0x85
    ACCESS_ERROR = 0x87


class ErrorCode(enum.IntEnum):
    """Error class and code as one 16-bit value (header of ack/ack_data, userdata parameter).

    The subset of the Wireshark table that matters to a defender: protection, block and
    mode errors. Unknown values are shown as ``ERROR_0xNNNN``.
    """

    NO_ERROR = 0x0000
    INVALID_BLOCK_NUMBER = 0x0110
    INVALID_REQUEST_LENGTH = 0x0111
    INVALID_PARAMETER = 0x0112
    INVALID_BLOCK_TYPE = 0x0113
    BLOCK_NOT_FOUND = 0x0114
    BLOCK_ALREADY_EXISTS = 0x0115
    BLOCK_WRITE_PROTECTED = 0x0116
    INCORRECT_PASSWORD = 0x0119
    PROTOCOL_ERROR = 0x011C
    SERVICE_NOT_ALLOWED_IN_BLOCK_STATUS = 0x8001
    SERVICE_UNKNOWN = 0x8100
    SERVICE_NOT_IMPLEMENTED = 0x8104
    OBJECT_TYPE_INCONSISTENT = 0x8204
    INSUFFICIENT_MEMORY = 0x8301
    FUNCTION_NOT_AVAILABLE = 0x8305
    INVALID_SERVICE_SEQUENCE = 0x8401
    SERVICE_BLOCKED_BY_OBJECT_STATUS = 0x8402
    FUNCTION_CANNOT_BE_PERFORMED = 0x8404
    WRONG_FRAMES = 0x8500
    OBJECT_ADDRESSING_ERROR = 0x8701
    SERVICE_NOT_SUPPORTED = 0x8702
    ACCESS_REFUSED = 0x8703
    OBJECT_DAMAGED = 0x8704
    ILLEGAL_JOB_NUMBER = 0xD001
    WRONG_JOB_LENGTH = 0xD033
    ILLEGAL_STATUS_LIST_ID = 0xD041
    FUNCTION_NOT_PERMITTED_IN_MODE = 0xD081
    NOT_PERMITTED_IN_PROTECTION_LEVEL = 0xD0A1  # debugging (TIS) jobs
    OPERATING_MODE_ALREADY_SET = 0xD0AD
    SYNTAX_ERROR_IN_BLOCK_NAME = 0xD201
    SYNTAX_ERROR_IN_FUNCTION_PARAMETERS = 0xD202
    BLOCK_NOT_FOUND_ON_MODULE = 0xD209
    OB_PRIORITY_CLASS_MISSING = 0xD20C
    NO_FURTHER_BLOCK = 0xD20E
    FUNCTION_NOT_PERMITTED_IN_PROTECTION_LEVEL = 0xD241  # e.g. upload on a protected CPU
    INFORMATION_FUNCTION_UNAVAILABLE = 0xD401
    SECURITY_SYNTAX_ERROR = 0xD601
    PLC_PASSWORD_INCORRECT = 0xD602
    CONNECTION_ALREADY_LEGITIMIZED = 0xD603
    CONNECTION_ALREADY_ENABLED = 0xD604
    PASSWORD_DOES_NOT_EXIST = 0xD605
    INVALID_TAG_ADDRESS = 0xD801  # cyclic services
    JOB_DOES_NOT_EXIST = 0xD802
    INVALID_DATE_TIME = 0xDC01


class Function(enum.IntEnum):
    """Parameter function code of job and ack_data PDUs."""

    CPU_SERVICES = 0x00
    READ_VAR = 0x04
    WRITE_VAR = 0x05
    REQUEST_DOWNLOAD = 0x1A
    DOWNLOAD_BLOCK = 0x1B
    DOWNLOAD_ENDED = 0x1C
    START_UPLOAD = 0x1D
    UPLOAD = 0x1E
    END_UPLOAD = 0x1F
    PI_SERVICE = 0x28
    PLC_STOP = 0x29
    SETUP_COMMUNICATION = 0xF0


BLOCK_CONTROL_FUNCTIONS = frozenset(range(Function.REQUEST_DOWNLOAD, Function.END_UPLOAD + 1))


class SyntaxId(enum.IntEnum):
    """Addressing mode of a variable specification (item)."""

    S7ANY = 0x10
    PBC_R_ID = 0x13
    ALARM_LOCKFREE = 0x15
    ALARM_IND = 0x16
    ALARM_ACK = 0x19
    ALARM_QUERYREQ = 0x1A
    NOTIFY_IND = 0x1C
    NCK = 0x82
    NCK_M = 0x83
    NCK_I = 0x84
    DRIVEESANY = 0xA2
    DBREAD = 0xB0
    SYM1200 = 0xB2


class TransportSize(enum.IntEnum):
    """Transport size of an S7ANY item in the parameter part (the element type)."""

    BIT = 1
    BYTE = 2
    CHAR = 3
    WORD = 4
    INT = 5
    DWORD = 6
    DINT = 7
    REAL = 8
    DATE = 9
    TOD = 10
    TIME = 11
    S5TIME = 12
    DATE_AND_TIME = 15
    COUNTER = 28
    TIMER = 29
    IEC_TIMER = 30
    IEC_COUNTER = 31
    HS_COUNTER = 32


class DataTransportSize(enum.IntEnum):
    """Transport size of a data item (data part); 3, 4 and 5 count their length in bits."""

    NULL = 0x00
    BIT = 0x03
    BYTE_WORD_DWORD = 0x04
    INTEGER = 0x05
    DINTEGER = 0x06
    REAL = 0x07
    OCTET_STRING = 0x09
    NCK_ADDRESS1 = 0x11
    NCK_ADDRESS2 = 0x12


DATA_SIZES_IN_BITS = frozenset({0x03, 0x04, 0x05})


class Area(enum.IntEnum):
    """Memory area of an S7ANY item."""

    DATA_RECORD = 0x01
    SYSINFO_200 = 0x03
    SYSFLAGS_200 = 0x05
    ANAIN_200 = 0x06
    ANAOUT_200 = 0x07
    COUNTER = 0x1C  # S7 counters (C)
    TIMER = 0x1D  # S7 timers (T)
    IEC_COUNTER_200 = 0x1E
    IEC_TIMER_200 = 0x1F
    PERIPHERAL = 0x80  # direct peripheral access (P)
    INPUTS = 0x81  # I
    OUTPUTS = 0x82  # Q
    FLAGS = 0x83  # M
    DB = 0x84
    DI = 0x85  # instance data blocks
    LOCAL = 0x86  # L
    V = 0x87  # S7-200 variable memory


AREA_LABEL: dict[int, str] = {
    Area.DATA_RECORD: "RECORD",
    Area.SYSINFO_200: "SI200",
    Area.SYSFLAGS_200: "SF200",
    Area.ANAIN_200: "AI200",
    Area.ANAOUT_200: "AQ200",
    Area.COUNTER: "C",
    Area.TIMER: "T",
    Area.IEC_COUNTER_200: "IC200",
    Area.IEC_TIMER_200: "IT200",
    Area.PERIPHERAL: "P",
    Area.INPUTS: "I",
    Area.OUTPUTS: "Q",
    Area.FLAGS: "M",
    Area.DB: "DB",
    Area.DI: "DI",
    Area.LOCAL: "L",
    Area.V: "V",
}
"""Short area labels as engineers write addresses (``DB1.DBW0``, ``M16.0``, ``T 3``)."""

NUMBERED_AREAS = frozenset({Area.COUNTER, Area.TIMER, Area.IEC_COUNTER_200, Area.IEC_TIMER_200})
"""Areas whose address is an element number, not byte.bit."""


class ReturnCode(enum.IntEnum):
    """Return code of a data item (read/write var) and of the userdata data part."""

    RESERVED = 0x00
    HARDWARE_ERROR = 0x01
    ACCESS_NOT_ALLOWED = 0x03
    INVALID_ADDRESS = 0x05
    DATA_TYPE_NOT_SUPPORTED = 0x06
    DATA_TYPE_INCONSISTENT = 0x07
    OBJECT_DOES_NOT_EXIST = 0x0A
    SUCCESS = 0xFF


class BlockType(enum.IntEnum):
    """Block type as the two hex digits of a block file name (``_0A00001P`` is DB 1)."""

    OB = 0x08
    CMOD = 0x09
    DB = 0x0A
    SDB = 0x0B
    FC = 0x0C
    SFC = 0x0D
    FB = 0x0E
    SFB = 0x0F


class PiServiceName(enum.StrEnum):
    """PI (program invocation) services of S7-300/400 seen on the wire."""

    INSE = "_INSE"  # activate (insert) downloaded blocks
    DELE = "_DELE"  # delete blocks
    P_PROGRAM = "P_PROGRAM"  # start / stop / restart the user program
    MODU = "_MODU"  # copy RAM to ROM
    GARB = "_GARB"  # compress memory
    N_LOGIN = "_N_LOGIN_"
    N_LOGOUT = "_N_LOGOUT"
    N_CANCEL = "_N_CANCEL"
    EXEC = "_EXEC"


# --- Userdata ---------------------------------------------------------------------------


class UserdataType(enum.IntEnum):
    """High nibble of the userdata type/group byte."""

    PUSH = 0x0
    NC_PUSH = 0x3
    REQUEST = 0x4
    NC_REQUEST = 0x7
    RESPONSE = 0x8
    NC_RESPONSE = 0xB


class UserdataMethod(enum.IntEnum):
    """Method byte of the userdata parameter."""

    UNDEF = 0x00
    REQUEST = 0x11
    RESPONSE = 0x12


class FunctionGroup(enum.IntEnum):
    """Low nibble of the userdata type/group byte."""

    MODE_TRANSITION = 0x0
    PROGRAMMER = 0x1  # programmer commands: variable tables, force, breakpoints
    CYCLIC = 0x2  # cyclic and change-driven data subscriptions
    BLOCK = 0x3  # block functions: list blocks, block info
    CPU = 0x4  # CPU functions: SZL, alarms, diagnostic messages
    SECURITY = 0x5
    PBC = 0x6  # programmed block communication BSEND/BRECV
    TIME = 0x7
    NC = 0xF  # NC programming (Sinumerik)


GROUP_LABEL: dict[int, str] = {
    FunctionGroup.MODE_TRANSITION: "mode_transition",
    FunctionGroup.PROGRAMMER: "programmer",
    FunctionGroup.CYCLIC: "cyclic",
    FunctionGroup.BLOCK: "block",
    FunctionGroup.CPU: "cpu",
    FunctionGroup.SECURITY: "security",
    FunctionGroup.PBC: "pbc",
    FunctionGroup.TIME: "time",
    FunctionGroup.NC: "nc",
}


class ModeTransition(enum.IntEnum):
    """Group 0: the subfunction byte is the CPU's new mode."""

    STOP = 0
    WARM_RESTART = 1
    RUN = 2
    HOT_RESTART = 3
    HOLD = 4
    COLD_RESTART = 6
    RUN_R = 9
    LINK_UP = 11
    UPDATE = 12


class ProgrammerSubfunction(enum.IntEnum):
    """Group 1 subfunctions (TIS: test and installation jobs)."""

    BLOCK_STATUS = 1
    VARIABLE_STATUS = 2
    OUTPUT_ISTACK = 3
    OUTPUT_BSTACK = 4
    OUTPUT_LSTACK = 5
    TIME_MEASUREMENT = 6
    FORCE_SELECTION = 7
    MODIFY_VARIABLE = 8
    FORCE = 9
    BREAKPOINT = 10
    EXIT_HOLD = 11
    MEMORY_RESET = 12
    DISABLE_JOB = 13
    ENABLE_JOB = 14
    DELETE_JOB = 15
    READ_JOB_LIST = 16
    READ_JOB = 17
    REPLACE_JOB = 18
    BLOCK_STATUS_V2 = 19
    FLASH_LED = 22


class CyclicSubfunction(enum.IntEnum):
    """Group 2 subfunctions."""

    CYCLIC_TRANSFER = 1
    UNSUBSCRIBE = 4
    CHANGE_DRIVEN_TRANSFER = 5
    CHANGE_DRIVEN_TRANSFER_MODIFY = 7
    RDREC = 8


class BlockSubfunction(enum.IntEnum):
    """Group 3 subfunctions."""

    LIST_BLOCKS = 1
    LIST_BLOCKS_OF_TYPE = 2
    GET_BLOCK_INFO = 3


class CpuSubfunction(enum.IntEnum):
    """Group 4 subfunctions."""

    READ_SZL = 1
    MESSAGE_SERVICE = 2
    DIAGNOSTIC_MESSAGE = 3
    ALARM8_INDICATION = 5
    NOTIFY_INDICATION = 6
    ALARM8_LOCK = 7
    ALARM8_UNLOCK = 8
    SCAN_INDICATION = 9
    ALARM_ACK = 11
    ALARM_ACK_INDICATION = 12
    ALARM_LOCK_INDICATION = 13
    ALARM_UNLOCK_INDICATION = 14
    ALARM_SQ_INDICATION = 17
    ALARM_S_INDICATION = 18
    ALARM_QUERY = 19
    NOTIFY8_INDICATION = 22


class SecuritySubfunction(enum.IntEnum):
    """Group 5 subfunctions."""

    PLC_PASSWORD = 1
    CLEAR_PASSWORD = 2


class TimeSubfunction(enum.IntEnum):
    """Group 7 subfunctions."""

    READ_CLOCK = 1
    SET_CLOCK = 2
    READ_CLOCK_FOLLOWING = 3
    SET_CLOCK_2 = 4


class NcSubfunction(enum.IntEnum):
    """Group 15 subfunctions (NC program transfer)."""

    REQUEST_DOWNLOAD = 1
    DOWNLOAD_BLOCK = 2
    CONTINUE_DOWNLOAD = 3
    DOWNLOAD_ENDED = 4
    START_UPLOAD = 6
    UPLOAD = 7
    CONTINUE_UPLOAD = 8


SUBFUNCTIONS: dict[int, type[enum.IntEnum]] = {
    FunctionGroup.MODE_TRANSITION: ModeTransition,
    FunctionGroup.PROGRAMMER: ProgrammerSubfunction,
    FunctionGroup.CYCLIC: CyclicSubfunction,
    FunctionGroup.BLOCK: BlockSubfunction,
    FunctionGroup.CPU: CpuSubfunction,
    FunctionGroup.SECURITY: SecuritySubfunction,
    FunctionGroup.TIME: TimeSubfunction,
    FunctionGroup.NC: NcSubfunction,
}


# --- S7comm-plus (S7-1200/1500, TIA portal) --------------------------------------------


class PlusOpcode(enum.IntEnum):
    """First byte of an S7comm-plus data part."""

    REQUEST = 0x31
    RESPONSE = 0x32
    NOTIFICATION = 0x33
    RESPONSE2 = 0x02


class PlusFunction(enum.IntEnum):
    """S7comm-plus function codes of requests and responses (Wireshark s7comm_plus plugin)."""

    EXPLORE = 0x04BB
    CREATE_OBJECT = 0x04CA
    DELETE_OBJECT = 0x04D4
    SET_VARIABLE = 0x04F2
    GET_VARIABLE = 0x04FC
    ADD_LINK = 0x0506
    REMOVE_LINK = 0x051A
    GET_LINK = 0x0524
    SET_MULTI_VARIABLES = 0x0542
    GET_MULTI_VARIABLES = 0x054C
    BEGIN_SEQUENCE = 0x0556
    END_SEQUENCE = 0x0560
    INVOKE = 0x056B
    SET_VAR_SUB_STREAMED = 0x0586
    GET_VAR_SUB_STREAMED = 0x0598
    GET_VARIABLES_ADDRESS = 0x05A9
    ABORT = 0x05B3
    ERROR = 0x05C8
    INIT_SSL = 0x05D5
