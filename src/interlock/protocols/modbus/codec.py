"""Modbus PDU and MBAP codec: bytes in, frozen values out, and back.

Follows the Modbus Application Protocol Specification v1.1b3: PDU layouts of section 6 (function
codes 1-8, 11, 12, 15-17, 20-24 and 43/14), exception responses of section 7, quantity limits
as stated per function; and the Modbus Messaging on TCP/IP Implementation Guide v1.0b section
3.1.3 for the MBAP header. The MBAP header is parsed apart from the PDU (``parse_mbap``,
``parse_pdu``) so that a firewall can re-stamp transaction ids without touching the PDU.

Hand-written rather than pymodbus or scapy: pymodbus PDUs import asyncio and the server
datastore and turn a decoding failure into a log line and ``None``; scapy builds a layered
packet object per frame, far too slow for a passive sensor. Here ``parse_pdu`` never raises:
bad input returns a :class:`~interlock.protocols.base.Malformed` whose reason comes from
:class:`~interlock.protocols.modbus.fields.Reason`; ``build_pdu`` raises ``ValueError`` on a
field outside its spec range, so that ``parse_pdu(build_pdu(x), d) == x`` for every value.

Spec ranges are enforced both ways: a read of 0 or 126 registers is ``INVALID_VALUE``, as
Suricata reports it, since a compliant server must refuse it (exception 3).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from interlock.protocols.base import Direction, Malformed
from interlock.protocols.modbus.fields import (
    COIL_OFF,
    COIL_ON,
    EXCEPTION_BIT,
    FILE_REFERENCE_TYPE,
    MAX_FIFO_COUNT,
    MAX_MBAP_LENGTH,
    MAX_PDU_SIZE,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    MAX_RW_WRITE_REGISTERS,
    MAX_WRITE_BITS,
    MAX_WRITE_REGISTERS,
    MBAP_SIZE,
    MORE_FOLLOWS,
    DiagnosticSubFunction,
    ExceptionCode,
    FunctionCode,
    MEIType,
    Reason,
)

# --- MBAP header


@dataclass(frozen=True, slots=True)
class MbapHeader:
    """MBAP header (TCP guide 3.1.3). ``length`` counts the unit id and the PDU."""

    transaction_id: int
    protocol_id: int
    length: int
    unit_id: int


# --- bit access (6.1, 6.2)


@dataclass(frozen=True, slots=True)
class ReadCoilsRequest:
    """FC 1 (spec 6.1). No MBAP header inside, so the firewall can re-stamp transaction ids."""

    address: int  # zero-based, as on the wire
    quantity: int  # 1..2000


@dataclass(frozen=True, slots=True)
class ReadCoilsResponse:
    """FC 1 response: coil status packed LSB first; the request says how many bits count."""

    coil_status: bytes  # 1..250 bytes


@dataclass(frozen=True, slots=True)
class ReadDiscreteInputsRequest:
    """FC 2 (spec 6.2)."""

    address: int
    quantity: int  # 1..2000


@dataclass(frozen=True, slots=True)
class ReadDiscreteInputsResponse:
    """FC 2 response: input status packed LSB first."""

    input_status: bytes  # 1..250 bytes


# --- registers (6.3-6.6)


@dataclass(frozen=True, slots=True)
class ReadHoldingRegistersRequest:
    """FC 3 (spec 6.3)."""

    address: int
    quantity: int  # 1..125


@dataclass(frozen=True, slots=True)
class ReadHoldingRegistersResponse:
    """FC 3 response."""

    registers: tuple[int, ...]  # 1..125 unsigned 16-bit values


@dataclass(frozen=True, slots=True)
class ReadInputRegistersRequest:
    """FC 4 (spec 6.4)."""

    address: int
    quantity: int  # 1..125


@dataclass(frozen=True, slots=True)
class ReadInputRegistersResponse:
    """FC 4 response."""

    registers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WriteSingleCoilRequest:
    """FC 5 (spec 6.5): output value 0xFF00 is ON, 0x0000 OFF; anything else is refused."""

    address: int
    value: bool


@dataclass(frozen=True, slots=True)
class WriteSingleCoilResponse:
    """FC 5 response: an echo of the request."""

    address: int
    value: bool


@dataclass(frozen=True, slots=True)
class WriteSingleRegisterRequest:
    """FC 6 (spec 6.6)."""

    address: int
    value: int


@dataclass(frozen=True, slots=True)
class WriteSingleRegisterResponse:
    """FC 6 response: an echo of the request."""

    address: int
    value: int


# --- serial-line diagnostics


@dataclass(frozen=True, slots=True)
class ReadExceptionStatusRequest:
    """FC 7 (spec 6.7)."""


@dataclass(frozen=True, slots=True)
class ReadExceptionStatusResponse:
    """FC 7 response: eight exception status outputs."""

    output_data: int


@dataclass(frozen=True, slots=True)
class DiagnosticsRequest:
    """FC 8 (spec 6.8): a sub-function and its data (two bytes except for 0x0000)."""

    sub_function: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DiagnosticsResponse:
    """FC 8 response."""

    sub_function: int
    data: bytes


@dataclass(frozen=True, slots=True)
class GetCommEventCounterRequest:
    """FC 11 (spec 6.9)."""


@dataclass(frozen=True, slots=True)
class GetCommEventCounterResponse:
    """FC 11 response."""

    status: int
    event_count: int


@dataclass(frozen=True, slots=True)
class GetCommEventLogRequest:
    """FC 12 (spec 6.10)."""


@dataclass(frozen=True, slots=True)
class GetCommEventLogResponse:
    """FC 12 response: status, counters and up to 64 event bytes."""

    status: int
    event_count: int
    message_count: int
    events: bytes


# --- multiple writes (6.11, 6.12)


@dataclass(frozen=True, slots=True)
class WriteMultipleCoilsRequest:
    """FC 15 (spec 6.11): ``outputs_value`` packs ``quantity`` bits LSB first."""

    address: int
    quantity: int  # 1..1968
    outputs_value: bytes  # ceil(quantity / 8) bytes


@dataclass(frozen=True, slots=True)
class WriteMultipleCoilsResponse:
    """FC 15 response."""

    address: int
    quantity: int


@dataclass(frozen=True, slots=True)
class WriteMultipleRegistersRequest:
    """FC 16 (spec 6.12)."""

    address: int
    registers: tuple[int, ...]  # 1..123 values


@dataclass(frozen=True, slots=True)
class WriteMultipleRegistersResponse:
    """FC 16 response."""

    address: int
    quantity: int


@dataclass(frozen=True, slots=True)
class ReportServerIdRequest:
    """FC 17 (spec 6.13)."""


@dataclass(frozen=True, slots=True)
class ReportServerIdResponse:
    """FC 17 response: server id, run indicator and extra data, all device specific."""

    data: bytes


# --- file records (6.14, 6.15)


@dataclass(frozen=True, slots=True)
class FileSubRequest:
    """One sub-request of FC 20: reference type 6 is implied."""

    file_number: int
    record_number: int
    record_length: int  # in registers


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One sub-request of FC 21 (and its echo): ``record_data`` holds whole registers."""

    file_number: int
    record_number: int
    record_data: bytes


@dataclass(frozen=True, slots=True)
class ReadFileRecordRequest:
    """FC 20 (spec 6.14)."""

    sub_requests: tuple[FileSubRequest, ...]


@dataclass(frozen=True, slots=True)
class ReadFileRecordResponse:
    """FC 20 response: the record data of each sub-request, in order."""

    record_data: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class WriteFileRecordRequest:
    """FC 21 (spec 6.15)."""

    sub_requests: tuple[FileRecord, ...]


@dataclass(frozen=True, slots=True)
class WriteFileRecordResponse:
    """FC 21 response: an echo of the request."""

    sub_requests: tuple[FileRecord, ...]


# --- 6.16 to 6.18


@dataclass(frozen=True, slots=True)
class MaskWriteRegisterRequest:
    """FC 22 (spec 6.16): result = (current AND and_mask) OR (or_mask AND NOT and_mask)."""

    address: int
    and_mask: int
    or_mask: int


@dataclass(frozen=True, slots=True)
class MaskWriteRegisterResponse:
    """FC 22 response: an echo of the request."""

    address: int
    and_mask: int
    or_mask: int


@dataclass(frozen=True, slots=True)
class ReadWriteMultipleRegistersRequest:
    """FC 23 (spec 6.17): the write is done before the read."""

    read_address: int
    read_quantity: int  # 1..125
    write_address: int
    write_registers: tuple[int, ...]  # 1..121 values


@dataclass(frozen=True, slots=True)
class ReadWriteMultipleRegistersResponse:
    """FC 23 response: the registers read."""

    registers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReadFifoQueueRequest:
    """FC 24 (spec 6.18)."""

    address: int  # FIFO pointer address


@dataclass(frozen=True, slots=True)
class ReadFifoQueueResponse:
    """FC 24 response: 0..31 queued registers."""

    registers: tuple[int, ...]


# --- FC 43 (6.19 to 6.21)


@dataclass(frozen=True, slots=True)
class ReadDeviceIdentificationRequest:
    """FC 43 / MEI 14 (spec 6.21)."""

    read_device_id_code: int  # 1 basic, 2 regular, 3 extended, 4 one specific object
    object_id: int


@dataclass(frozen=True, slots=True)
class ReadDeviceIdentificationResponse:
    """FC 43 / MEI 14 response: ``objects`` are (object id, value) in wire order."""

    read_device_id_code: int
    conformity_level: int
    more_follows: bool
    next_object_id: int
    objects: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class EncapsulatedInterfaceTransportRequest:
    """FC 43 with another MEI type, e.g. 13 CANopen General Reference (spec 6.19): opaque."""

    mei_type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class EncapsulatedInterfaceTransportResponse:
    """FC 43 response with another MEI type: opaque."""

    mei_type: int
    data: bytes


# --- others


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """Spec 7: the function code with bit 7 set, then an exception code."""

    function_code: int  # without the exception bit
    exception_code: int


@dataclass(frozen=True, slots=True)
class GenericPdu:
    """A function code this codec does not lay out (user-defined, reserved, unassigned)."""

    function_code: int
    data: bytes


ModbusPdu = (
    ReadCoilsRequest | ReadCoilsResponse | ReadDiscreteInputsRequest | ReadDiscreteInputsResponse
    | ReadHoldingRegistersRequest | ReadHoldingRegistersResponse | ReadInputRegistersRequest
    | ReadInputRegistersResponse | WriteSingleCoilRequest | WriteSingleCoilResponse
    | WriteSingleRegisterRequest | WriteSingleRegisterResponse | ReadExceptionStatusRequest
    | ReadExceptionStatusResponse | DiagnosticsRequest | DiagnosticsResponse
    | GetCommEventCounterRequest | GetCommEventCounterResponse | GetCommEventLogRequest
    | GetCommEventLogResponse | WriteMultipleCoilsRequest | WriteMultipleCoilsResponse
    | WriteMultipleRegistersRequest | WriteMultipleRegistersResponse | ReportServerIdRequest
    | ReportServerIdResponse | ReadFileRecordRequest | ReadFileRecordResponse
    | WriteFileRecordRequest | WriteFileRecordResponse | MaskWriteRegisterRequest
    | MaskWriteRegisterResponse | ReadWriteMultipleRegistersRequest
    | ReadWriteMultipleRegistersResponse | ReadFifoQueueRequest | ReadFifoQueueResponse
    | ReadDeviceIdentificationRequest | ReadDeviceIdentificationResponse
    | EncapsulatedInterfaceTransportRequest | EncapsulatedInterfaceTransportResponse
    | ExceptionResponse | GenericPdu
)


@dataclass(frozen=True, slots=True)
class Adu:
    """A whole Modbus/TCP ADU: MBAP header and the PDU it frames."""

    header: MbapHeader
    pdu: ModbusPdu


# --- parsing helpers

_MBAP = struct.Struct(">HHHB")
_U16 = struct.Struct(">H")
_U16X2 = struct.Struct(">HH")
_U16X3 = struct.Struct(">HHH")
_U16X2_U8 = struct.Struct(">HHB")
_RW_HEAD = struct.Struct(">HHHHB")
_FILE_SUB = struct.Struct(">BHHH")
# One precompiled Struct per register count: a read response is one unpack_from call.
_REGS = tuple(struct.Struct(f">{n}H") for n in range(MAX_READ_REGISTERS + 2))

_INVALID_LENGTH = Reason.INVALID_LENGTH.value
_INVALID_VALUE = Reason.INVALID_VALUE.value
_EXCEPTION_CODES = frozenset(int(c) for c in ExceptionCode)
_DIAG_SUB_FUNCTIONS = frozenset(int(c) for c in DiagnosticSubFunction)

_Parser = Callable[[bytes], "ModbusPdu | Malformed"]


def _bad(reason: str, offset: int, pdu: bytes, detail: str) -> Malformed:
    return Malformed(reason, offset, pdu, detail)


def _size(pdu: bytes, want: int) -> Malformed:
    return Malformed(_INVALID_LENGTH, min(len(pdu), want), pdu,
                     f"PDU of {len(pdu)} bytes, function {pdu[0]} needs {want}")


def _byte_count(pdu: bytes, at: int) -> Malformed | None:
    """The one-byte count at ``at`` must cover the rest of the PDU exactly."""
    if len(pdu) <= at:
        return _bad(_INVALID_LENGTH, len(pdu), pdu, "byte count missing")
    if pdu[at] != len(pdu) - at - 1:
        return _bad(_INVALID_LENGTH, at, pdu,
                    f"byte count {pdu[at]} but {len(pdu) - at - 1} bytes follow")
    return None


def _read_request(cls: Callable[[int, int], ModbusPdu], limit: int) -> _Parser:
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        if len(pdu) != 5:
            return _size(pdu, 5)
        address, quantity = _U16X2.unpack_from(pdu, 1)
        if not 1 <= quantity <= limit:
            return _bad(_INVALID_VALUE, 3, pdu, f"quantity {quantity} outside 1..{limit}")
        return cls(address, quantity)
    return parse


def _bits_response(cls: Callable[[bytes], ModbusPdu]) -> _Parser:
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        bad = _byte_count(pdu, 1)
        if bad is not None:
            return bad
        if pdu[1] == 0:
            return _bad(_INVALID_VALUE, 1, pdu, "byte count 0")
        return cls(pdu[2:])
    return parse


def _registers_response(cls: Callable[[tuple[int, ...]], ModbusPdu]) -> _Parser:
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        # The hot path of a polling SCADA: one length test, one unpack.
        n = len(pdu)
        if n < 2 or pdu[1] != n - 2:
            return _byte_count(pdu, 1) or _size(pdu, 2)
        count = n - 2
        if count == 0 or count & 1 or count > 2 * MAX_READ_REGISTERS:
            return _bad(_INVALID_VALUE, 1, pdu, f"register byte count {count}")
        return cls(_REGS[count >> 1].unpack_from(pdu, 2))
    return parse


def _empty(cls: Callable[[], ModbusPdu]) -> _Parser:
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        if len(pdu) != 1:
            return _size(pdu, 1)
        return cls()
    return parse


def _coil(cls: Callable[[int, bool], ModbusPdu]) -> _Parser:
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        if len(pdu) != 5:
            return _size(pdu, 5)
        address, value = _U16X2.unpack_from(pdu, 1)
        if value != COIL_ON and value != COIL_OFF:
            return _bad(_INVALID_VALUE, 3, pdu, f"coil value 0x{value:04X}")
        return cls(address, value == COIL_ON)
    return parse


def _two_words(cls: Callable[[int, int], ModbusPdu], limit: int = 0) -> _Parser:
    """Address and a word; with ``limit``, the word is a quantity 1..limit."""
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        if len(pdu) != 5:
            return _size(pdu, 5)
        address, word = _U16X2.unpack_from(pdu, 1)
        if limit and not 1 <= word <= limit:
            return _bad(_INVALID_VALUE, 3, pdu, f"quantity {word} outside 1..{limit}")
        return cls(address, word)
    return parse


def _mask(cls: Callable[[int, int, int], ModbusPdu]) -> _Parser:
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        if len(pdu) != 7:
            return _size(pdu, 7)
        address, and_mask, or_mask = _U16X3.unpack_from(pdu, 1)
        return cls(address, and_mask, or_mask)
    return parse


def _diagnostics(cls: Callable[[int, bytes], ModbusPdu]) -> _Parser:
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        if len(pdu) < 3:
            return _size(pdu, 3)
        sub_function = _U16.unpack_from(pdu, 1)[0]
        # Known sub-functions other than Return Query Data carry exactly one word (6.8.1).
        if sub_function and sub_function in _DIAG_SUB_FUNCTIONS and len(pdu) != 5:
            return _size(pdu, 5)
        return cls(sub_function, pdu[3:])
    return parse


def _read_exception_status_response(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) != 2:
        return _size(pdu, 2)
    return ReadExceptionStatusResponse(pdu[1])


def _comm_event_counter_response(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) != 5:
        return _size(pdu, 5)
    status, count = _U16X2.unpack_from(pdu, 1)
    return GetCommEventCounterResponse(status, count)


def _comm_event_log_response(pdu: bytes) -> ModbusPdu | Malformed:
    bad = _byte_count(pdu, 1)
    if bad is not None:
        return bad
    if pdu[1] < 6:
        return _bad(_INVALID_LENGTH, 1, pdu, f"byte count {pdu[1]} below 6")
    status, event_count, message_count = _U16X3.unpack_from(pdu, 2)
    return GetCommEventLogResponse(status, event_count, message_count, pdu[8:])


def _write_multiple_coils_request(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) < 6:
        return _size(pdu, 6)
    address, quantity, count = _U16X2_U8.unpack_from(pdu, 1)
    if count != len(pdu) - 6:
        return _bad(_INVALID_LENGTH, 5, pdu, f"byte count {count} but {len(pdu) - 6} follow")
    if not 1 <= quantity <= MAX_WRITE_BITS:
        return _bad(_INVALID_VALUE, 3, pdu, f"quantity {quantity} outside 1..{MAX_WRITE_BITS}")
    if count != (quantity + 7) >> 3:
        return _bad(_INVALID_VALUE, 5, pdu, f"byte count {count} for {quantity} coils")
    return WriteMultipleCoilsRequest(address, quantity, pdu[6:])


def _write_multiple_registers_request(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) < 6:
        return _size(pdu, 6)
    address, quantity, count = _U16X2_U8.unpack_from(pdu, 1)
    if count != len(pdu) - 6:
        return _bad(_INVALID_LENGTH, 5, pdu, f"byte count {count} but {len(pdu) - 6} follow")
    if not 1 <= quantity <= MAX_WRITE_REGISTERS:
        return _bad(_INVALID_VALUE, 3, pdu,
                    f"quantity {quantity} outside 1..{MAX_WRITE_REGISTERS}")
    if count != 2 * quantity:
        return _bad(_INVALID_VALUE, 5, pdu, f"byte count {count} for {quantity} registers")
    return WriteMultipleRegistersRequest(address, _REGS[quantity].unpack_from(pdu, 6))


def _report_server_id_response(pdu: bytes) -> ModbusPdu | Malformed:
    bad = _byte_count(pdu, 1)
    if bad is not None:
        return bad
    return ReportServerIdResponse(pdu[2:])


def _read_file_record_request(pdu: bytes) -> ModbusPdu | Malformed:
    bad = _byte_count(pdu, 1)
    if bad is not None:
        return bad
    if pdu[1] % 7:
        return _bad(_INVALID_LENGTH, 1, pdu, f"byte count {pdu[1]} not a multiple of 7")
    subs = []
    for at in range(2, len(pdu), 7):
        ref, file_number, record_number, length = _FILE_SUB.unpack_from(pdu, at)
        if ref != FILE_REFERENCE_TYPE:
            return _bad(_INVALID_VALUE, at, pdu, f"reference type {ref}")
        subs.append(FileSubRequest(file_number, record_number, length))
    return ReadFileRecordRequest(tuple(subs))


def _read_file_record_response(pdu: bytes) -> ModbusPdu | Malformed:
    bad = _byte_count(pdu, 1)
    if bad is not None:
        return bad
    records = []
    at, end = 2, len(pdu)
    while at < end:
        size = pdu[at]
        if size < 1 or not size & 1 or at + 1 + size > end:
            return _bad(_INVALID_LENGTH, at, pdu, f"file response length {size}")
        if pdu[at + 1] != FILE_REFERENCE_TYPE:
            return _bad(_INVALID_VALUE, at + 1, pdu, f"reference type {pdu[at + 1]}")
        records.append(pdu[at + 2:at + 1 + size])
        at += 1 + size
    return ReadFileRecordResponse(tuple(records))


def _file_records(pdu: bytes) -> tuple[FileRecord, ...] | Malformed:
    bad = _byte_count(pdu, 1)
    if bad is not None:
        return bad
    records = []
    at, end = 2, len(pdu)
    while at < end:
        if at + 7 > end:
            return _bad(_INVALID_LENGTH, at, pdu, "truncated file sub-request")
        ref, file_number, record_number, length = _FILE_SUB.unpack_from(pdu, at)
        if ref != FILE_REFERENCE_TYPE:
            return _bad(_INVALID_VALUE, at, pdu, f"reference type {ref}")
        stop = at + 7 + 2 * length
        if stop > end:
            return _bad(_INVALID_LENGTH, at + 5, pdu, f"record length {length} overruns")
        records.append(FileRecord(file_number, record_number, pdu[at + 7:stop]))
        at = stop
    return tuple(records)


def _write_file_record(cls: Callable[[tuple[FileRecord, ...]], ModbusPdu]) -> _Parser:
    def parse(pdu: bytes) -> ModbusPdu | Malformed:
        records = _file_records(pdu)
        if isinstance(records, Malformed):
            return records
        return cls(records)
    return parse


def _read_write_request(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) < 10:
        return _size(pdu, 10)
    read_address, read_quantity, write_address, write_quantity, count = (
        _RW_HEAD.unpack_from(pdu, 1))
    if count != len(pdu) - 10:
        return _bad(_INVALID_LENGTH, 9, pdu, f"byte count {count} but {len(pdu) - 10} follow")
    if not 1 <= read_quantity <= MAX_READ_REGISTERS:
        return _bad(_INVALID_VALUE, 3, pdu, f"read quantity {read_quantity}")
    if not 1 <= write_quantity <= MAX_RW_WRITE_REGISTERS:
        return _bad(_INVALID_VALUE, 7, pdu, f"write quantity {write_quantity}")
    if count != 2 * write_quantity:
        return _bad(_INVALID_VALUE, 9, pdu, f"byte count {count} for {write_quantity} registers")
    return ReadWriteMultipleRegistersRequest(
        read_address, read_quantity, write_address, _REGS[write_quantity].unpack_from(pdu, 10))


def _read_fifo_request(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) != 3:
        return _size(pdu, 3)
    return ReadFifoQueueRequest(_U16.unpack_from(pdu, 1)[0])


def _read_fifo_response(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) < 5:
        return _size(pdu, 5)
    count, fifo_count = _U16X2.unpack_from(pdu, 1)
    if count != len(pdu) - 3:
        return _bad(_INVALID_LENGTH, 1, pdu, f"byte count {count} but {len(pdu) - 3} follow")
    if fifo_count > MAX_FIFO_COUNT or count != 2 + 2 * fifo_count:
        return _bad(_INVALID_VALUE, 3, pdu, f"FIFO count {fifo_count}, byte count {count}")
    return ReadFifoQueueResponse(_REGS[fifo_count].unpack_from(pdu, 5))


def _mei_request(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) < 2:
        return _size(pdu, 2)
    if pdu[1] != MEIType.READ_DEVICE_IDENTIFICATION:
        return EncapsulatedInterfaceTransportRequest(pdu[1], pdu[2:])
    if len(pdu) != 4:
        return _size(pdu, 4)
    if not 1 <= pdu[2] <= 4:
        return _bad(_INVALID_VALUE, 2, pdu, f"read device id code {pdu[2]}")
    return ReadDeviceIdentificationRequest(pdu[2], pdu[3])


def _mei_response(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) < 2:
        return _size(pdu, 2)
    if pdu[1] != MEIType.READ_DEVICE_IDENTIFICATION:
        return EncapsulatedInterfaceTransportResponse(pdu[1], pdu[2:])
    end = len(pdu)
    if end < 7:
        return _size(pdu, 7)
    code, conformity, more, next_id, number = pdu[2], pdu[3], pdu[4], pdu[5], pdu[6]
    if not 1 <= code <= 4:
        return _bad(_INVALID_VALUE, 2, pdu, f"read device id code {code}")
    if more != 0 and more != MORE_FOLLOWS:
        return _bad(_INVALID_VALUE, 4, pdu, f"more follows 0x{more:02X}")
    objects = []
    at = 7
    while at < end:
        if at + 2 > end or at + 2 + pdu[at + 1] > end:
            return _bad(_INVALID_LENGTH, at, pdu, "truncated device id object")
        stop = at + 2 + pdu[at + 1]
        objects.append((pdu[at], pdu[at + 2:stop]))
        at = stop
    if len(objects) != number:
        return _bad(_INVALID_LENGTH, 6, pdu, f"{number} objects announced, {len(objects)} sent")
    return ReadDeviceIdentificationResponse(code, conformity, more == MORE_FOLLOWS, next_id,
                                            tuple(objects))


def _exception_response(pdu: bytes) -> ModbusPdu | Malformed:
    if len(pdu) != 2:
        return _size(pdu, 2)
    function_code = pdu[0] & 0x7F
    if function_code == 0:
        return _bad(Reason.INVALID_FUNCTION_CODE.value, 0, pdu, "exception of function 0")
    if pdu[1] not in _EXCEPTION_CODES:
        return _bad(Reason.INVALID_EXCEPTION_CODE.value, 1, pdu, f"exception code {pdu[1]}")
    return ExceptionResponse(function_code, pdu[1])


_REQUEST_PARSERS: dict[int, _Parser] = {
    FunctionCode.READ_COILS: _read_request(ReadCoilsRequest, MAX_READ_BITS),
    FunctionCode.READ_DISCRETE_INPUTS: _read_request(ReadDiscreteInputsRequest, MAX_READ_BITS),
    FunctionCode.READ_HOLDING_REGISTERS: _read_request(
        ReadHoldingRegistersRequest, MAX_READ_REGISTERS),
    FunctionCode.READ_INPUT_REGISTERS: _read_request(
        ReadInputRegistersRequest, MAX_READ_REGISTERS),
    FunctionCode.WRITE_SINGLE_COIL: _coil(WriteSingleCoilRequest),
    FunctionCode.WRITE_SINGLE_REGISTER: _two_words(WriteSingleRegisterRequest),
    FunctionCode.READ_EXCEPTION_STATUS: _empty(ReadExceptionStatusRequest),
    FunctionCode.DIAGNOSTICS: _diagnostics(DiagnosticsRequest),
    FunctionCode.GET_COMM_EVENT_COUNTER: _empty(GetCommEventCounterRequest),
    FunctionCode.GET_COMM_EVENT_LOG: _empty(GetCommEventLogRequest),
    FunctionCode.WRITE_MULTIPLE_COILS: _write_multiple_coils_request,
    FunctionCode.WRITE_MULTIPLE_REGISTERS: _write_multiple_registers_request,
    FunctionCode.REPORT_SERVER_ID: _empty(ReportServerIdRequest),
    FunctionCode.READ_FILE_RECORD: _read_file_record_request,
    FunctionCode.WRITE_FILE_RECORD: _write_file_record(WriteFileRecordRequest),
    FunctionCode.MASK_WRITE_REGISTER: _mask(MaskWriteRegisterRequest),
    FunctionCode.READ_WRITE_MULTIPLE_REGISTERS: _read_write_request,
    FunctionCode.READ_FIFO_QUEUE: _read_fifo_request,
    FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT: _mei_request,
}

_RESPONSE_PARSERS: dict[int, _Parser] = {
    FunctionCode.READ_COILS: _bits_response(ReadCoilsResponse),
    FunctionCode.READ_DISCRETE_INPUTS: _bits_response(ReadDiscreteInputsResponse),
    FunctionCode.READ_HOLDING_REGISTERS: _registers_response(ReadHoldingRegistersResponse),
    FunctionCode.READ_INPUT_REGISTERS: _registers_response(ReadInputRegistersResponse),
    FunctionCode.WRITE_SINGLE_COIL: _coil(WriteSingleCoilResponse),
    FunctionCode.WRITE_SINGLE_REGISTER: _two_words(WriteSingleRegisterResponse),
    FunctionCode.READ_EXCEPTION_STATUS: _read_exception_status_response,
    FunctionCode.DIAGNOSTICS: _diagnostics(DiagnosticsResponse),
    FunctionCode.GET_COMM_EVENT_COUNTER: _comm_event_counter_response,
    FunctionCode.GET_COMM_EVENT_LOG: _comm_event_log_response,
    FunctionCode.WRITE_MULTIPLE_COILS: _two_words(WriteMultipleCoilsResponse, MAX_WRITE_BITS),
    FunctionCode.WRITE_MULTIPLE_REGISTERS: _two_words(
        WriteMultipleRegistersResponse, MAX_WRITE_REGISTERS),
    FunctionCode.REPORT_SERVER_ID: _report_server_id_response,
    FunctionCode.READ_FILE_RECORD: _read_file_record_response,
    FunctionCode.WRITE_FILE_RECORD: _write_file_record(WriteFileRecordResponse),
    FunctionCode.MASK_WRITE_REGISTER: _mask(MaskWriteRegisterResponse),
    FunctionCode.READ_WRITE_MULTIPLE_REGISTERS: _registers_response(
        ReadWriteMultipleRegistersResponse),
    FunctionCode.READ_FIFO_QUEUE: _read_fifo_response,
    FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT: _mei_response,
}


def parse_pdu(pdu: bytes, direction: Direction) -> ModbusPdu | Malformed:
    """Decode one PDU (function code first, no MBAP header). Never raises.

    >>> parse_pdu(bytes.fromhex("0300010008"), Direction.REQUEST)
    ReadHoldingRegistersRequest(address=1, quantity=8)
    >>> parse_pdu(bytes.fromhex("8302"), Direction.RESPONSE)
    ExceptionResponse(function_code=3, exception_code=2)
    """
    if not pdu or len(pdu) > MAX_PDU_SIZE:
        return _bad(_INVALID_LENGTH, 0, pdu, f"PDU of {len(pdu)} bytes")
    fc = pdu[0]
    if direction == Direction.REQUEST:
        parser = _REQUEST_PARSERS.get(fc)
        if parser is None:
            if fc == 0 or fc & EXCEPTION_BIT:
                return _bad(Reason.INVALID_FUNCTION_CODE.value, 0, pdu, f"request function {fc}")
            return GenericPdu(fc, pdu[1:])
    else:
        parser = _RESPONSE_PARSERS.get(fc)
        if parser is None:
            if fc & EXCEPTION_BIT:
                return _exception_response(pdu)
            if fc == 0:
                return _bad(Reason.INVALID_FUNCTION_CODE.value, 0, pdu, "function 0")
            return GenericPdu(fc, pdu[1:])
    return parser(pdu)


def parse(pdu: bytes, *, direction: Direction) -> ModbusPdu | Malformed:
    """The house-style name of :func:`parse_pdu`."""
    return parse_pdu(pdu, direction)


def parse_mbap(data: bytes) -> MbapHeader | Malformed:
    """Decode the 7-byte MBAP header at the start of ``data``. Never raises.

    >>> parse_mbap(bytes.fromhex("00050000000604"))
    MbapHeader(transaction_id=5, protocol_id=0, length=6, unit_id=4)
    """
    if len(data) < MBAP_SIZE:
        return _bad(_INVALID_LENGTH, len(data), bytes(data), "MBAP header truncated")
    tid, pid, length, unit = _MBAP.unpack_from(data, 0)
    if pid != 0:
        return _bad(Reason.INVALID_PROTOCOL_ID.value, 2, bytes(data[:MBAP_SIZE]),
                    f"protocol id {pid}")
    if not 2 <= length <= MAX_MBAP_LENGTH:
        return _bad(_INVALID_LENGTH, 4, bytes(data[:MBAP_SIZE]), f"MBAP length {length}")
    return MbapHeader(tid, pid, length, unit)


def parse_adu(adu: bytes, direction: Direction) -> Adu | Malformed:
    """Decode one whole ADU: MBAP header, then exactly ``length - 1`` PDU bytes."""
    header = parse_mbap(adu)
    if isinstance(header, Malformed):
        return header
    if len(adu) != MBAP_SIZE - 1 + header.length:
        return _bad(_INVALID_LENGTH, 4, adu,
                    f"MBAP length {header.length} but {len(adu) - 6} bytes follow")
    pdu = parse_pdu(adu[MBAP_SIZE:], direction)
    if isinstance(pdu, Malformed):
        return Malformed(pdu.reason, pdu.offset + MBAP_SIZE, adu, pdu.detail)
    return Adu(header, pdu)


# --- building


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _u16(value: int, name: str) -> int:
    _check(isinstance(value, int) and 0 <= value <= 0xFFFF, f"{name} {value!r} is not 0..65535")
    return value


def _u8(value: int, name: str) -> int:
    _check(isinstance(value, int) and 0 <= value <= 0xFF, f"{name} {value!r} is not 0..255")
    return value


def _quantity(value: int, limit: int, name: str = "quantity") -> int:
    _check(isinstance(value, int) and 1 <= value <= limit, f"{name} {value!r} is not 1..{limit}")
    return value


def _words(values: tuple[int, ...], lo: int, hi: int, name: str) -> bytes:
    _check(lo <= len(values) <= hi, f"{len(values)} {name}, spec allows {lo}..{hi}")
    for v in values:
        _u16(v, name)
    return _REGS[len(values)].pack(*values)


def _build_body(m: ModbusPdu) -> tuple[int, bytes]:
    """Function code and the bytes after it."""
    if isinstance(m, ReadCoilsRequest | ReadDiscreteInputsRequest):
        fc = 1 if isinstance(m, ReadCoilsRequest) else 2
        return fc, _U16X2.pack(_u16(m.address, "address"), _quantity(m.quantity, MAX_READ_BITS))
    if isinstance(m, ReadHoldingRegistersRequest | ReadInputRegistersRequest):
        fc = 3 if isinstance(m, ReadHoldingRegistersRequest) else 4
        return fc, _U16X2.pack(_u16(m.address, "address"),
                               _quantity(m.quantity, MAX_READ_REGISTERS))
    if isinstance(m, ReadCoilsResponse | ReadDiscreteInputsResponse):
        data = m.coil_status if isinstance(m, ReadCoilsResponse) else m.input_status
        _check(1 <= len(data) <= (MAX_READ_BITS + 7) // 8, f"{len(data)} status bytes")
        return (1 if isinstance(m, ReadCoilsResponse) else 2), bytes((len(data),)) + data
    if isinstance(m, ReadHoldingRegistersResponse | ReadInputRegistersResponse
                  | ReadWriteMultipleRegistersResponse):
        fc = {ReadHoldingRegistersResponse: 3, ReadInputRegistersResponse: 4}.get(type(m), 23)
        body = _words(m.registers, 1, MAX_READ_REGISTERS, "registers")
        return fc, bytes((len(body),)) + body
    if isinstance(m, WriteSingleCoilRequest | WriteSingleCoilResponse):
        _check(isinstance(m.value, bool), f"coil value {m.value!r} is not a bool")
        return 5, _U16X2.pack(_u16(m.address, "address"), COIL_ON if m.value else COIL_OFF)
    if isinstance(m, WriteSingleRegisterRequest | WriteSingleRegisterResponse):
        return 6, _U16X2.pack(_u16(m.address, "address"), _u16(m.value, "value"))
    if isinstance(m, ReadExceptionStatusRequest):
        return 7, b""
    if isinstance(m, ReadExceptionStatusResponse):
        return 7, bytes((_u8(m.output_data, "output data"),))
    if isinstance(m, DiagnosticsRequest | DiagnosticsResponse):
        _u16(m.sub_function, "sub-function")
        if m.sub_function and m.sub_function in _DIAG_SUB_FUNCTIONS:
            _check(len(m.data) == 2, f"sub-function {m.sub_function} takes 2 data bytes")
        _check(len(m.data) <= MAX_PDU_SIZE - 3, "diagnostic data too long")
        return 8, _U16.pack(m.sub_function) + m.data
    if isinstance(m, GetCommEventCounterRequest):
        return 11, b""
    if isinstance(m, GetCommEventCounterResponse):
        return 11, _U16X2.pack(_u16(m.status, "status"), _u16(m.event_count, "event count"))
    if isinstance(m, GetCommEventLogRequest):
        return 12, b""
    if isinstance(m, GetCommEventLogResponse):
        _check(len(m.events) <= MAX_PDU_SIZE - 8, "event log too long")
        return 12, bytes((6 + len(m.events),)) + _U16X3.pack(
            _u16(m.status, "status"), _u16(m.event_count, "event count"),
            _u16(m.message_count, "message count")) + m.events
    if isinstance(m, WriteMultipleCoilsRequest):
        q = _quantity(m.quantity, MAX_WRITE_BITS)
        _check(len(m.outputs_value) == (q + 7) >> 3, f"{len(m.outputs_value)} bytes for {q} coils")
        return 15, _U16X2_U8.pack(_u16(m.address, "address"), q,
                                  len(m.outputs_value)) + m.outputs_value
    if isinstance(m, WriteMultipleCoilsResponse):
        return 15, _U16X2.pack(_u16(m.address, "address"), _quantity(m.quantity, MAX_WRITE_BITS))
    if isinstance(m, WriteMultipleRegistersRequest):
        body = _words(m.registers, 1, MAX_WRITE_REGISTERS, "registers")
        return 16, _U16X2_U8.pack(_u16(m.address, "address"), len(m.registers),
                                  len(body)) + body
    if isinstance(m, WriteMultipleRegistersResponse):
        return 16, _U16X2.pack(_u16(m.address, "address"),
                               _quantity(m.quantity, MAX_WRITE_REGISTERS))
    if isinstance(m, ReportServerIdRequest):
        return 17, b""
    if isinstance(m, ReportServerIdResponse):
        _check(len(m.data) <= MAX_PDU_SIZE - 2, "server id too long")
        return 17, bytes((len(m.data),)) + m.data
    if isinstance(m, ReadFileRecordRequest):
        body = b"".join(_FILE_SUB.pack(FILE_REFERENCE_TYPE, _u16(s.file_number, "file number"),
                                       _u16(s.record_number, "record number"),
                                       _u16(s.record_length, "record length"))
                        for s in m.sub_requests)
        _check(len(body) <= MAX_PDU_SIZE - 2, "too many file sub-requests")
        return 20, bytes((len(body),)) + body
    if isinstance(m, ReadFileRecordResponse):
        parts = []
        for data in m.record_data:
            _check(len(data) % 2 == 0, "record data must hold whole registers")
            _check(len(data) <= 0xFE, "record data too long")
            parts.append(bytes((len(data) + 1, FILE_REFERENCE_TYPE)) + data)
        body = b"".join(parts)
        _check(len(body) <= MAX_PDU_SIZE - 2, "file records too long")
        return 20, bytes((len(body),)) + body
    if isinstance(m, WriteFileRecordRequest | WriteFileRecordResponse):
        parts = []
        for r in m.sub_requests:
            _check(len(r.record_data) % 2 == 0, "record data must hold whole registers")
            parts.append(_FILE_SUB.pack(FILE_REFERENCE_TYPE, _u16(r.file_number, "file number"),
                                        _u16(r.record_number, "record number"),
                                        len(r.record_data) // 2) + r.record_data)
        body = b"".join(parts)
        _check(len(body) <= MAX_PDU_SIZE - 2, "file records too long")
        return 21, bytes((len(body),)) + body
    if isinstance(m, MaskWriteRegisterRequest | MaskWriteRegisterResponse):
        return 22, _U16X3.pack(_u16(m.address, "address"), _u16(m.and_mask, "AND mask"),
                               _u16(m.or_mask, "OR mask"))
    if isinstance(m, ReadWriteMultipleRegistersRequest):
        body = _words(m.write_registers, 1, MAX_RW_WRITE_REGISTERS, "write registers")
        return 23, _RW_HEAD.pack(
            _u16(m.read_address, "read address"),
            _quantity(m.read_quantity, MAX_READ_REGISTERS, "read quantity"),
            _u16(m.write_address, "write address"), len(m.write_registers), len(body)) + body
    if isinstance(m, ReadFifoQueueRequest):
        return 24, _U16.pack(_u16(m.address, "address"))
    if isinstance(m, ReadFifoQueueResponse):
        body = _words(m.registers, 0, MAX_FIFO_COUNT, "FIFO registers")
        return 24, _U16X2.pack(2 + len(body), len(m.registers)) + body
    if isinstance(m, ReadDeviceIdentificationRequest):
        _check(1 <= m.read_device_id_code <= 4, f"read device id code {m.read_device_id_code}")
        return 43, bytes((MEIType.READ_DEVICE_IDENTIFICATION, m.read_device_id_code,
                          _u8(m.object_id, "object id")))
    if isinstance(m, ReadDeviceIdentificationResponse):
        _check(1 <= m.read_device_id_code <= 4, f"read device id code {m.read_device_id_code}")
        _check(isinstance(m.more_follows, bool), "more_follows is a bool")
        parts = [bytes((MEIType.READ_DEVICE_IDENTIFICATION, m.read_device_id_code,
                        _u8(m.conformity_level, "conformity level"),
                        MORE_FOLLOWS if m.more_follows else 0,
                        _u8(m.next_object_id, "next object id"),
                        _u8(len(m.objects), "number of objects")))]
        for object_id, value in m.objects:
            parts.append(bytes((_u8(object_id, "object id"), _u8(len(value), "object length")))
                         + value)
        body = b"".join(parts)
        _check(len(body) <= MAX_PDU_SIZE - 1, "device identification too long")
        return 43, body
    if isinstance(m, EncapsulatedInterfaceTransportRequest
                  | EncapsulatedInterfaceTransportResponse):
        _check(m.mei_type != MEIType.READ_DEVICE_IDENTIFICATION,
               "MEI 14 is ReadDeviceIdentification*")
        _check(len(m.data) <= MAX_PDU_SIZE - 2, "MEI data too long")
        return 43, bytes((_u8(m.mei_type, "MEI type"),)) + m.data
    if isinstance(m, ExceptionResponse):
        _check(1 <= m.function_code <= 0x7F, f"function code {m.function_code}")
        _check(m.exception_code in _EXCEPTION_CODES, f"exception code {m.exception_code}")
        return m.function_code | EXCEPTION_BIT, bytes((m.exception_code,))
    if isinstance(m, GenericPdu):
        _check(1 <= m.function_code <= 0x7F, f"function code {m.function_code}")
        _check(m.function_code not in _REQUEST_PARSERS,
               f"function {m.function_code} has its own message classes")
        _check(len(m.data) <= MAX_PDU_SIZE - 1, "PDU too long")
        return m.function_code, m.data
    raise ValueError(f"not a Modbus PDU: {m!r}")


def build_pdu(message: ModbusPdu) -> bytes:
    """Encode one PDU; raises ``ValueError`` on a field outside its spec range.

    >>> build_pdu(ReadHoldingRegistersRequest(address=1, quantity=8)).hex()
    '0300010008'
    """
    fc, body = _build_body(message)
    pdu = bytes((fc,)) + body
    _check(len(pdu) <= MAX_PDU_SIZE, f"PDU of {len(pdu)} bytes exceeds {MAX_PDU_SIZE}")
    return pdu


def build(message: ModbusPdu) -> bytes:
    """The house-style name of :func:`build_pdu`."""
    return build_pdu(message)


def build_adu(transaction_id: int, unit_id: int, pdu: ModbusPdu | bytes) -> bytes:
    """Frame a PDU (a message, or bytes already built) with an MBAP header.

    >>> build_adu(5, 4, ReadHoldingRegistersRequest(1, 1)).hex()
    '000500000006040300010001'
    """
    body = pdu if isinstance(pdu, bytes) else build_pdu(pdu)
    _check(1 <= len(body) <= MAX_PDU_SIZE, f"PDU of {len(body)} bytes")
    return _MBAP.pack(_u16(transaction_id, "transaction id"), 0, len(body) + 1,
                      _u8(unit_id, "unit id")) + body
