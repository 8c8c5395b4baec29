"""Modbus spec tables: function, sub-function, exception and MEI codes, limits, reasons.

Names follow the Modbus Application Protocol Specification v1.1b3 (sections 5 to 7) and the
Modbus Messaging on TCP/IP Implementation Guide v1.0b (section 3.1.3, the MBAP header). The
reason names follow Suricata's Modbus app-layer events, so rules read the same in both tools.
"""

from __future__ import annotations

import enum


class FunctionCode(enum.IntEnum):
    """Public function codes defined by the spec (section 5.1 and 6)."""

    READ_COILS = 0x01
    READ_DISCRETE_INPUTS = 0x02
    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_SINGLE_COIL = 0x05
    WRITE_SINGLE_REGISTER = 0x06
    READ_EXCEPTION_STATUS = 0x07
    DIAGNOSTICS = 0x08
    GET_COMM_EVENT_COUNTER = 0x0B
    GET_COMM_EVENT_LOG = 0x0C
    WRITE_MULTIPLE_COILS = 0x0F
    WRITE_MULTIPLE_REGISTERS = 0x10
    REPORT_SERVER_ID = 0x11
    READ_FILE_RECORD = 0x14
    WRITE_FILE_RECORD = 0x15
    MASK_WRITE_REGISTER = 0x16
    READ_WRITE_MULTIPLE_REGISTERS = 0x17
    READ_FIFO_QUEUE = 0x18
    ENCAPSULATED_INTERFACE_TRANSPORT = 0x2B


# Spec 5.1: the two ranges a vendor may use for its own functions.
USER_DEFINED_FUNCTION_CODES = frozenset((*range(65, 73), *range(100, 111)))
# Spec annex A: codes reserved for legacy products (8/19, 8/21 and 43/0-12 are sub-codes).
# 90 (0x5A) is where Schneider's UMAS engineering protocol rides: worth naming.
RESERVED_FUNCTION_CODES = frozenset((9, 10, 13, 14, 41, 42, 90, 91, 125, 126, 127))
EXCEPTION_BIT = 0x80


class DiagnosticSubFunction(enum.IntEnum):
    """Sub-function codes of FC 08 Diagnostics (spec 6.8.1)."""

    RETURN_QUERY_DATA = 0x00
    RESTART_COMMUNICATIONS_OPTION = 0x01
    RETURN_DIAGNOSTIC_REGISTER = 0x02
    CHANGE_ASCII_INPUT_DELIMITER = 0x03
    FORCE_LISTEN_ONLY_MODE = 0x04
    CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER = 0x0A
    RETURN_BUS_MESSAGE_COUNT = 0x0B
    RETURN_BUS_COMMUNICATION_ERROR_COUNT = 0x0C
    RETURN_BUS_EXCEPTION_ERROR_COUNT = 0x0D
    RETURN_SERVER_MESSAGE_COUNT = 0x0E
    RETURN_SERVER_NO_RESPONSE_COUNT = 0x0F
    RETURN_SERVER_NAK_COUNT = 0x10
    RETURN_SERVER_BUSY_COUNT = 0x11
    RETURN_BUS_CHARACTER_OVERRUN_COUNT = 0x12
    CLEAR_OVERRUN_COUNTER_AND_FLAG = 0x14


class ExceptionCode(enum.IntEnum):
    """Exception codes of an exception response (spec 7)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND = 0x0B


class MEIType(enum.IntEnum):
    """MODBUS Encapsulated Interface types carried by FC 43 (spec 6.19 to 6.21)."""

    CANOPEN_GENERAL_REFERENCE = 0x0D
    READ_DEVICE_IDENTIFICATION = 0x0E


class ReadDeviceIdCode(enum.IntEnum):
    """Access type of a Read Device Identification request (spec 6.21)."""

    BASIC = 0x01
    REGULAR = 0x02
    EXTENDED = 0x03
    SPECIFIC = 0x04


class DeviceIdObject(enum.IntEnum):
    """Object ids of Read Device Identification; spec names in DEVICE_ID_OBJECT_NAMES."""

    VENDOR_NAME = 0x00
    PRODUCT_CODE = 0x01
    MAJOR_MINOR_REVISION = 0x02
    VENDOR_URL = 0x03
    PRODUCT_NAME = 0x04
    MODEL_NAME = 0x05
    USER_APPLICATION_NAME = 0x06


# Spelled as in the spec's object table (6.21), which is also how tshark shows them.
DEVICE_ID_OBJECT_NAMES: dict[int, str] = {
    0x00: "VendorName",
    0x01: "ProductCode",
    0x02: "MajorMinorRevision",
    0x03: "VendorUrl",
    0x04: "ProductName",
    0x05: "ModelName",
    0x06: "UserApplicationName",
}

FILE_REFERENCE_TYPE = 6  # spec 6.14/6.15: the only legal reference type
COIL_ON = 0xFF00  # spec 6.5: the only two legal output values of Write Single Coil
COIL_OFF = 0x0000
MORE_FOLLOWS = 0xFF  # spec 6.21: More Follows is 0x00 or 0xFF

# Quantity limits (spec 6.1 to 6.18), inclusive.
MAX_READ_BITS = 2000  # 0x7D0
MAX_READ_REGISTERS = 125  # 0x7D
MAX_WRITE_BITS = 1968  # 0x7B0
MAX_WRITE_REGISTERS = 123  # 0x7B
MAX_RW_WRITE_REGISTERS = 121  # 0x79, FC 23
MAX_FIFO_COUNT = 31
MAX_PDU_SIZE = 253  # spec 4.1: 256-byte RS-485 ADU minus address and CRC
MAX_MBAP_LENGTH = MAX_PDU_SIZE + 1  # the MBAP length counts the unit id too
MBAP_SIZE = 7


class Reason(enum.StrEnum):
    """Why a PDU is malformed; names follow Suricata's Modbus events."""

    INVALID_PROTOCOL_ID = "INVALID_PROTOCOL_ID"  # MBAP protocol id is not 0
    INVALID_LENGTH = "INVALID_LENGTH"  # MBAP length or PDU size disagrees with the spec
    INVALID_FUNCTION_CODE = "INVALID_FUNCTION_CODE"  # 0, or the exception bit in a request
    INVALID_VALUE = "INVALID_VALUE"  # a field outside its spec range, or inconsistent
    INVALID_EXCEPTION_CODE = "INVALID_EXCEPTION_CODE"  # not a code of spec section 7
    VALUE_MISMATCH = "VALUE_MISMATCH"  # a response's size disagrees with its request


class Event(enum.StrEnum):
    """Stream anomalies on a well-formed PDU, reported in ``Operation.detail["event"]``.

    Kept apart from :class:`Reason` because the PDU itself decodes: a response whose request
    was not captured is normal when a capture starts mid-stream.
    """

    UNSOLICITED_RESPONSE = "UNSOLICITED_RESPONSE"  # no request with this unit and transaction
    FLOODED = "FLOODED"  # too many open transactions: the oldest was forgotten
    ECHO_MISMATCH = "ECHO_MISMATCH"  # a write response that does not echo its request
