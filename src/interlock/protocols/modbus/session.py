"""Modbus/TCP stream state: MBAP framing per direction, request/response pairing, probe.

Framing follows the Modbus Messaging on TCP/IP Implementation Guide v1.0b (3.1.3): every ADU
is a 7-byte MBAP header whose length field counts the unit id and the PDU (at most 254), so
a direction's buffer never holds more than one partial ADU. A header that cannot be trusted
(length 0 or 1, or too long to be anything but garbage) drops the rest of that direction's
buffered bytes and yields one ``INVALID_LENGTH`` operation; reading resumes with the next
bytes fed, which in practice start at a segment boundary. A header with a bad protocol id or
a slightly oversize length still frames its ADU, which is reported malformed as a whole.

Responses are paired with requests by (unit id, transaction id) as the guide (4.2) says a
client does, so a response operation carries its request's address and quantity. Open
transactions are capped at :data:`MAX_OPEN_TRANSACTIONS`: when the table is full the older
half is forgotten and the request that overflowed carries ``detail["event"] == "FLOODED"``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from struct import Struct
from typing import Any

from interlock.protocols.base import Direction, Malformed, OpClass, Operation, Probe
from interlock.protocols.modbus.codec import (
    DiagnosticsRequest,
    DiagnosticsResponse,
    EncapsulatedInterfaceTransportRequest,
    EncapsulatedInterfaceTransportResponse,
    ExceptionResponse,
    GenericPdu,
    GetCommEventCounterRequest,
    GetCommEventCounterResponse,
    GetCommEventLogRequest,
    GetCommEventLogResponse,
    MaskWriteRegisterRequest,
    MaskWriteRegisterResponse,
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDeviceIdentificationRequest,
    ReadDeviceIdentificationResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
    ReadExceptionStatusRequest,
    ReadExceptionStatusResponse,
    ReadFifoQueueRequest,
    ReadFifoQueueResponse,
    ReadFileRecordRequest,
    ReadFileRecordResponse,
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    ReadWriteMultipleRegistersRequest,
    ReadWriteMultipleRegistersResponse,
    ReportServerIdRequest,
    ReportServerIdResponse,
    WriteFileRecordRequest,
    WriteFileRecordResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
    parse_pdu,
)
from interlock.protocols.modbus.fields import (
    DEVICE_ID_OBJECT_NAMES,
    EXCEPTION_BIT,
    MAX_MBAP_LENGTH,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    RESERVED_FUNCTION_CODES,
    USER_DEFINED_FUNCTION_CODES,
    DiagnosticSubFunction,
    Event,
    ExceptionCode,
    FunctionCode,
    MEIType,
    Reason,
)

PROTOCOL_NAME = "modbus"
MAX_OPEN_TRANSACTIONS = 1024
MAX_RETRIES = 8  # requests kept per (unit, transaction id) when a client retries
# Spec limit is 254; longer ADUs with protocol id 0 are still framed (and reported) up to
# this length, since devices do send them (Schneider UMAS on FC 90 sends length 255). So a
# direction never buffers more than one partial ADU: under 520 bytes, far below 64 KiB.
MAX_FRAMED_LENGTH = 512

_REQUEST = Direction.REQUEST
_RESPONSE = Direction.RESPONSE
_MALFORMED = OpClass.MALFORMED
_HEADER = Struct(">HHH")
_BITS = tuple(bytes((byte >> i) & 1 for i in range(8)) for byte in range(256))  # LSB first
_EXCEPTION_NAMES = {int(c): c.name for c in ExceptionCode}
_SUB_FUNCTION_NAMES = {int(c): c.name for c in DiagnosticSubFunction}
_FLOODED = Event.FLOODED.value
_UNSOLICITED = Event.UNSOLICITED_RESPONSE.value
_ECHO_MISMATCH = Event.ECHO_MISMATCH.value
_VALUE_MISMATCH = Reason.VALUE_MISMATCH.value


# Operation(protocol, direction, op_class, function_code, function, unit, transaction,
#           address, count, values, object, status, malformed, detail), positionally:
# a partial is cheaper than a wrapper function on the hot path.
_op = partial(Operation, PROTOCOL_NAME)


def _with_event(op: Operation, event: str) -> Operation:
    return op._replace(detail={**(op.detail or {}), "event": event})


# --- per-function facts

_OP_CLASSES = {
    OpClass.READ: (1, 2, 3, 4, 24),
    OpClass.WRITE: (5, 6, 15, 16, 22, 23),
    OpClass.DIAGNOSTIC: (7, 8, 11, 12, 17),
    OpClass.FILE: (20, 21),
    OpClass.IDENTIFY: (43,),
}
# Spec 4.3 data model: which table an address points into.
_TABLES = {1: "coils", 5: "coils", 15: "coils", 2: "discrete_inputs", 3: "holding_registers",
           6: "holding_registers", 16: "holding_registers", 22: "holding_registers",
           23: "holding_registers", 24: "holding_registers", 4: "input_registers",
           20: "file_records", 21: "file_records"}


def _meta(fc: int) -> tuple[str | None, OpClass, str | None, str | None]:
    """(function name, op class, object, status) of a function code without exception bit."""
    op_class = next((c for c, codes in _OP_CLASSES.items() if fc in codes), OpClass.OTHER)
    if fc in FunctionCode._value2member_map_:
        return FunctionCode(fc).name.lower(), op_class, _TABLES.get(fc), None
    if fc in USER_DEFINED_FUNCTION_CODES:
        return "user_defined", op_class, None, "USER_DEFINED_FUNCTION"
    if fc in RESERVED_FUNCTION_CODES:
        return "reserved", op_class, None, "RESERVED_FUNCTION"
    if fc == 0:
        return None, op_class, None, None
    return "unknown", op_class, None, "UNKNOWN_FUNCTION"


_META = tuple(_meta(fc) for fc in range(128))

# The fast path of ModbusSession.feed: one whole FC 1-4 request (MBAP header and PDU), the
# head of a FC 1-4 response up to its byte count, and the values it needs from codec and fields.
_READ_REQUEST = Struct(">HHHBBHH")
_READ_RESPONSE = Struct(">HHHBBB")
_READ_LIMITS = (0, MAX_READ_BITS, MAX_READ_BITS, MAX_READ_REGISTERS, MAX_READ_REGISTERS)
_READ_REQUESTS: tuple[Any, ...] = (None, ReadCoilsRequest, ReadDiscreteInputsRequest,
                                   ReadHoldingRegistersRequest, ReadInputRegistersRequest)
_REGS = tuple(Struct(f">{k}H") for k in range(MAX_READ_REGISTERS + 1))
_new_op = tuple.__new__  # Operation's own __new__ costs 0.3 us per call
_MEI_OBJECTS = {int(t): t.name.lower() for t in MEIType}


def _bits(data: bytes, quantity: int | None) -> tuple[float, ...]:
    bits = b"".join(map(_BITS.__getitem__, data))  # one octet 0 or 1 per bit
    return tuple(bits if quantity is None else bits[:quantity])


def _span(req: Any) -> tuple[int | None, int | None]:
    """Start address and quantity of a request, as the operation fields take them."""
    if req is None:
        return None, None
    if isinstance(req, ReadWriteMultipleRegistersRequest):
        return req.read_address, req.read_quantity
    return getattr(req, "address", None), getattr(req, "quantity", None)


def _malformed_op(direction: Direction, bad: Malformed, fc: int | None, unit: int | None,
                  tid: int | None, req: Any) -> Operation:
    """What could be read of a bad PDU, with the paired request's address and quantity."""
    function = _META[fc][0] if fc is not None else None
    address, count = _span(req)
    return _op(direction, _MALFORMED, fc, function, unit, tid, address, count, None, None,
               None, bad.reason, {"offset": bad.offset, "detail": bad.detail})


# --- request converters

_Convert = Callable[..., Operation]


def _rq_read(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, m.address, m.quantity, None, obj,
               None, None, None)


def _rq_coil(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, m.address, 1, (1 if m.value else 0,),
               obj, None, None, None)


def _rq_register(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, m.address, 1, (m.value,), obj,
               None, None, None)


def _rq_coils(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, m.address, m.quantity,
               _bits(m.outputs_value, m.quantity), obj, None, None, None)


def _rq_registers(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, m.address, len(m.registers),
               m.registers, obj, None, None, None)


def _rq_mask(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, m.address, 1,
               (m.and_mask, m.or_mask), obj, None, None, None)


def _rw_detail(m: ReadWriteMultipleRegistersRequest) -> dict[str, Any]:
    return {"write_address": m.write_address, "write_quantity": len(m.write_registers),
            "write_values": list(m.write_registers)}


def _rq_read_write(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, m.read_address, m.read_quantity,
               None, obj, None, None, _rw_detail(m))


def _rq_fifo(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, m.address, None, None, obj, None,
               None, None)


def _diag(direction: Direction, m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    values = (int.from_bytes(m.data, "big"),) if len(m.data) == 2 else None
    detail = {"sub_function": m.sub_function,
              "sub_function_name": _SUB_FUNCTION_NAMES.get(m.sub_function), "data": m.data.hex()}
    return _op(direction, op_class, fc, function, unit, tid, None, None, values, obj, None, None,
               detail)


def _rq_diag(m: Any, fc: int, tid: int, unit: int) -> Operation:
    return _diag(_REQUEST, m, fc, tid, unit)


def _rq_plain(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, None, None, None, obj, None, None,
               None)


def _read_file_detail(m: ReadFileRecordRequest) -> dict[str, Any]:
    return {"sub_requests": [
        {"file_number": s.file_number, "record_number": s.record_number,
         "record_length": s.record_length} for s in m.sub_requests]}


def _write_file_detail(m: WriteFileRecordRequest | WriteFileRecordResponse) -> dict[str, Any]:
    return {"sub_requests": [
        {"file_number": r.file_number, "record_number": r.record_number,
         "record_length": len(r.record_data) // 2} for r in m.sub_requests]}


def _words(chunks: Any) -> tuple[float, ...]:
    data = b"".join(chunks)
    return tuple(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data) - 1, 2))


def _rq_read_file(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_REQUEST, op_class, fc, function, unit, tid, None, None, None, obj, None, None,
               _read_file_detail(m))


def _rq_write_file(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    values = _words(r.record_data for r in m.sub_requests)
    return _op(_REQUEST, op_class, fc, function, unit, tid, None, None, values or None, obj,
               None, None, _write_file_detail(m))


def _rq_device_id(m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, _, _ = _META[fc]
    detail = {"mei_type": int(MEIType.READ_DEVICE_IDENTIFICATION),
              "read_device_id_code": m.read_device_id_code, "object_id": m.object_id}
    return _op(_REQUEST, op_class, fc, function, unit, tid, None, None, None,
               "read_device_identification", None, None, detail)


def _mei(direction: Direction, m: Any, fc: int, tid: int, unit: int) -> Operation:
    function = _META[fc][0]
    return _op(direction, OpClass.OTHER, fc, function, unit, tid, None, None, None,
               _MEI_OBJECTS.get(m.mei_type), None, None,
               {"mei_type": m.mei_type, "data": m.data.hex()})


def _rq_mei(m: Any, fc: int, tid: int, unit: int) -> Operation:
    return _mei(_REQUEST, m, fc, tid, unit)


def _generic(direction: Direction, m: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, status = _META[fc]
    return _op(direction, op_class, fc, function, unit, tid, None, None, None, obj, status, None,
               {"data": m.data.hex()})


def _rq_generic(m: Any, fc: int, tid: int, unit: int) -> Operation:
    return _generic(_REQUEST, m, fc, tid, unit)


_REQUEST_CONVERTERS: dict[type, _Convert] = {
    ReadCoilsRequest: _rq_read,
    ReadDiscreteInputsRequest: _rq_read,
    ReadHoldingRegistersRequest: _rq_read,
    ReadInputRegistersRequest: _rq_read,
    WriteSingleCoilRequest: _rq_coil,
    WriteSingleRegisterRequest: _rq_register,
    ReadExceptionStatusRequest: _rq_plain,
    DiagnosticsRequest: _rq_diag,
    GetCommEventCounterRequest: _rq_plain,
    GetCommEventLogRequest: _rq_plain,
    WriteMultipleCoilsRequest: _rq_coils,
    WriteMultipleRegistersRequest: _rq_registers,
    ReportServerIdRequest: _rq_plain,
    ReadFileRecordRequest: _rq_read_file,
    WriteFileRecordRequest: _rq_write_file,
    MaskWriteRegisterRequest: _rq_mask,
    ReadWriteMultipleRegistersRequest: _rq_read_write,
    ReadFifoQueueRequest: _rq_fifo,
    ReadDeviceIdentificationRequest: _rq_device_id,
    EncapsulatedInterfaceTransportRequest: _rq_mei,
    GenericPdu: _rq_generic,
}

# --- response converters
# Each takes (response, request or None, fc, tid, unit); ``request`` has the same function code.


def _mismatch(m: Any, req: Any, fc: int, tid: int, unit: int, detail: str) -> Operation:
    return _malformed_op(_RESPONSE, Malformed(_VALUE_MISMATCH, 1, b"", detail), fc, unit, tid,
                         req)


def _rs_bits(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    data = m.coil_status if fc == 1 else m.input_status
    if req is None:
        return _op(_RESPONSE, op_class, fc, function, unit, tid, None, None, _bits(data, None),
                   obj, None, None, None)
    quantity = req.quantity
    if len(data) != (quantity + 7) >> 3:
        return _mismatch(m, req, fc, tid, unit, f"{len(data)} bytes for {quantity} bits")
    return _op(_RESPONSE, op_class, fc, function, unit, tid, req.address, quantity,
               _bits(data, quantity), obj, None, None, None)


def _rs_registers(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    registers = m.registers
    if req is None:
        return _op(_RESPONSE, op_class, fc, function, unit, tid, None, len(registers),
                   registers, obj, None, None, None)
    quantity = req.quantity
    if len(registers) != quantity:
        return _mismatch(m, req, fc, tid, unit, f"{len(registers)} registers for {quantity}")
    return _op(_RESPONSE, op_class, fc, function, unit, tid, req.address, quantity, registers,
               obj, None, None, None)


def _rs_read_write(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    registers = m.registers
    if req is None:
        return _op(_RESPONSE, op_class, fc, function, unit, tid, None, len(registers),
                   registers, obj, None, None, None)
    if len(registers) != req.read_quantity:
        return _mismatch(m, req, fc, tid, unit,
                         f"{len(registers)} registers for {req.read_quantity}")
    return _op(_RESPONSE, op_class, fc, function, unit, tid, req.read_address,
               req.read_quantity, registers, obj, None, None, _rw_detail(req))


def _rs_fifo(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    address = req.address if req is not None else None
    return _op(_RESPONSE, op_class, fc, function, unit, tid, address, len(m.registers),
               m.registers, obj, None, None, None)


def _echo(op: Operation, m: Any, req: Any, same: bool) -> Operation:
    return op if req is None or same else _with_event(op, _ECHO_MISMATCH)


def _rs_coil(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    op = _op(_RESPONSE, op_class, fc, function, unit, tid, m.address, 1, (1 if m.value else 0,),
             obj, None, None, None)
    return _echo(op, m, req, req is None or (req.address, req.value) == (m.address, m.value))


def _rs_register(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    op = _op(_RESPONSE, op_class, fc, function, unit, tid, m.address, 1, (m.value,), obj, None,
             None, None)
    return _echo(op, m, req, req is None or (req.address, req.value) == (m.address, m.value))


def _rs_write_multiple(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    op = _op(_RESPONSE, op_class, fc, function, unit, tid, m.address, m.quantity, None, obj,
             None, None, None)
    if req is None:
        return op
    quantity = req.quantity if fc == 15 else len(req.registers)
    return _echo(op, m, req, (req.address, quantity) == (m.address, m.quantity))


def _rs_mask(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    op = _op(_RESPONSE, op_class, fc, function, unit, tid, m.address, 1, (m.and_mask, m.or_mask),
             obj, None, None, None)
    same = req is None or (req.address, req.and_mask, req.or_mask) == (
        m.address, m.and_mask, m.or_mask)
    return _echo(op, m, req, same)


def _rs_exception_status(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_RESPONSE, op_class, fc, function, unit, tid, None, None, (m.output_data,), obj,
               None, None, None)


def _rs_diag(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    return _diag(_RESPONSE, m, fc, tid, unit)


def _rs_event_counter(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_RESPONSE, op_class, fc, function, unit, tid, None, None, None, obj, None, None,
               {"status": m.status, "event_count": m.event_count})


def _rs_event_log(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_RESPONSE, op_class, fc, function, unit, tid, None, None, None, obj, None, None,
               {"status": m.status, "event_count": m.event_count,
                "message_count": m.message_count, "events": m.events.hex()})


def _rs_server_id(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    return _op(_RESPONSE, op_class, fc, function, unit, tid, None, None, None, obj, None, None,
               {"data": m.data.hex()})


def _rs_read_file(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    detail = _read_file_detail(req) if req is not None else {}
    detail["record_words"] = [len(r) // 2 for r in m.record_data]
    return _op(_RESPONSE, op_class, fc, function, unit, tid, None, None,
               _words(m.record_data) or None, obj, None, None, detail)


def _rs_write_file(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    op = _op(_RESPONSE, op_class, fc, function, unit, tid, None, None,
             _words(r.record_data for r in m.sub_requests) or None, obj, None, None,
             _write_file_detail(m))
    return _echo(op, m, req, req is None or req.sub_requests == m.sub_requests)


def _rs_device_id(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, _, _ = _META[fc]
    objects = {DEVICE_ID_OBJECT_NAMES.get(i, f"0x{i:02X}"): v.decode("latin-1")
               for i, v in m.objects}
    detail = {"mei_type": int(MEIType.READ_DEVICE_IDENTIFICATION),
              "read_device_id_code": m.read_device_id_code,
              "conformity_level": m.conformity_level, "more_follows": m.more_follows,
              "next_object_id": m.next_object_id, "objects": objects}
    return _op(_RESPONSE, op_class, fc, function, unit, tid, None, None, None,
               "read_device_identification", None, None, detail)


def _rs_mei(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    return _mei(_RESPONSE, m, fc, tid, unit)


def _rs_exception(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    function, op_class, obj, _ = _META[fc]
    address, count = _span(req)
    if fc == FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT and req is not None:
        obj = _MEI_OBJECTS.get(getattr(req, "mei_type", MEIType.READ_DEVICE_IDENTIFICATION))
    return _op(_RESPONSE, op_class, fc, function, unit, tid, address, count, None, obj,
               _EXCEPTION_NAMES[m.exception_code], None, None)


def _rs_generic(m: Any, req: Any, fc: int, tid: int, unit: int) -> Operation:
    return _generic(_RESPONSE, m, fc, tid, unit)


_RESPONSE_CONVERTERS: dict[type, _Convert] = {
    ReadCoilsResponse: _rs_bits,
    ReadDiscreteInputsResponse: _rs_bits,
    ReadHoldingRegistersResponse: _rs_registers,
    ReadInputRegistersResponse: _rs_registers,
    WriteSingleCoilResponse: _rs_coil,
    WriteSingleRegisterResponse: _rs_register,
    ReadExceptionStatusResponse: _rs_exception_status,
    DiagnosticsResponse: _rs_diag,
    GetCommEventCounterResponse: _rs_event_counter,
    GetCommEventLogResponse: _rs_event_log,
    WriteMultipleCoilsResponse: _rs_write_multiple,
    WriteMultipleRegistersResponse: _rs_write_multiple,
    ReportServerIdResponse: _rs_server_id,
    ReadFileRecordResponse: _rs_read_file,
    WriteFileRecordResponse: _rs_write_file,
    MaskWriteRegisterResponse: _rs_mask,
    ReadWriteMultipleRegistersResponse: _rs_read_write,
    ReadFifoQueueResponse: _rs_fifo,
    ReadDeviceIdentificationResponse: _rs_device_id,
    EncapsulatedInterfaceTransportResponse: _rs_mei,
    ExceptionResponse: _rs_exception,
    GenericPdu: _rs_generic,
}


# --- the session


class ModbusSession:
    """One Modbus/TCP connection: ``feed`` bytes per direction, get operations back.

    >>> s = ModbusSession()
    >>> [op.function for op in s.feed(bytes.fromhex("000500000006040300010001"), True)]
    ['read_holding_registers']
    >>> op, = s.feed(bytes.fromhex("00050000000504030200aa"), False)
    >>> op.address, op.count, op.values
    (1, 1, (170,))
    """

    __slots__ = ("_client", "_pending", "_server")

    def __init__(self) -> None:
        self._client = b""
        self._server = b""
        # (unit << 16 | transaction id) -> (function code, request), or a list of them when
        # the client retried with the same id; insertion order is age, for eviction.
        self._pending: dict[int, Any] = {}

    def lost(self, from_client: bool) -> None:
        """Bytes of one direction were lost: drop its partial ADU, keep open transactions."""
        if from_client:
            self._client = b""
        else:
            self._server = b""

    def feed(self, data: bytes, from_client: bool) -> list[Operation]:
        """Operations completed by ``data``, the next bytes of one direction.

        The common case of a polling SCADA (one whole read request or response of FC 1-4 in
        ``data``, nothing buffered, a response whose request is pending alone under its id)
        is decoded here from the same fields as ``parse_pdu`` and the converters; anything
        else, or anything these checks doubt, takes :meth:`_feed`, which gives the same
        operations (tests/perf_paths checks it).
        """
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        if from_client:
            if n == 12 and not self._client:
                tid, pid, length, unit, fc, address, quantity = _READ_REQUEST.unpack(data)
                if not pid and length == 6 and fc < 5 and 0 < quantity <= _READ_LIMITS[fc]:
                    pending = self._pending
                    key = unit << 16 | tid
                    if key not in pending and len(pending) < MAX_OPEN_TRANSACTIONS:
                        pending[key] = (fc, _READ_REQUESTS[fc](address, quantity))
                        function, op_class, obj, _ = _META[fc]
                        return [_new_op(Operation, (
                            PROTOCOL_NAME, _REQUEST, op_class, fc, function, unit, tid, address,
                            quantity, None, obj, None, None, None))]
        elif 9 < n <= 260 and not self._server:
            tid, pid, length, unit, fc, count = _READ_RESPONSE.unpack_from(data)
            if not pid and length == n - 6 and count == n - 9 and fc < 5:
                pending = self._pending
                key = unit << 16 | tid
                entry = pending.get(key)
                if type(entry) is tuple and entry[0] == fc:
                    req = entry[1]
                    quantity = req.quantity
                    if fc > 2:
                        if count == quantity << 1:
                            del pending[key]
                            function, op_class, obj, _ = _META[fc]
                            return [_new_op(Operation, (
                                PROTOCOL_NAME, _RESPONSE, op_class, fc, function, unit, tid,
                                req.address, quantity, _REGS[quantity].unpack_from(data, 9), obj,
                                None, None, None))]
                    elif count == (quantity + 7) >> 3 and fc:
                        del pending[key]
                        function, op_class, obj, _ = _META[fc]
                        return [_new_op(Operation, (
                            PROTOCOL_NAME, _RESPONSE, op_class, fc, function, unit, tid,
                            req.address, quantity, _bits(data[9:], quantity), obj, None, None,
                            None))]
        return self._feed(data, from_client)

    def _feed(self, data: bytes, from_client: bool) -> list[Operation]:
        """The general path of :meth:`feed`: any framing, any function, any pairing."""
        if from_client:
            buf = self._client + data if self._client else data
        else:
            buf = self._server + data if self._server else data
        ops: list[Operation] = []
        n = len(buf)
        pos = 0
        decode = self._request if from_client else self._response
        while n - pos >= 6:
            tid, pid, length = _HEADER.unpack_from(buf, pos)
            end = pos + 6 + length
            if pid or length < 2 or length > MAX_MBAP_LENGTH:
                if length < 2 or length > (MAX_MBAP_LENGTH if pid else MAX_FRAMED_LENGTH):
                    ops.append(self._lost(buf, pos, tid, length, from_client))
                    pos = n
                    break
                if end > n:
                    break
                ops.append(self._misframed(buf, pos, end, tid, pid, from_client))
                pos = end
                continue
            if end > n:
                break
            ops.append(decode(buf[pos + 7:end], tid, buf[pos + 6]))
            pos = end
        rest = buf[pos:] if pos else buf
        if from_client:
            self._client = rest
        else:
            self._server = rest
        return ops

    # ----------------------------------------------------------------------- one PDU each way

    def _request(self, pdu: bytes, tid: int, unit: int) -> Operation:
        msg = parse_pdu(pdu, _REQUEST)
        fc = pdu[0]
        convert = _REQUEST_CONVERTERS.get(type(msg))
        if convert is None:
            assert isinstance(msg, Malformed)
            return _malformed_op(_REQUEST, msg, fc & 0x7F, unit, tid, None)
        op = convert(msg, fc, tid, unit)
        pending = self._pending
        key = unit << 16 | tid
        entry = (fc, msg)
        if key in pending:
            # A retry with the same transaction id: keep both, answers pair oldest first.
            older = pending.pop(key)
            queue = older if type(older) is list else [older]
            queue.append(entry)
            pending[key] = queue[-MAX_RETRIES:]
            return op
        if len(pending) >= MAX_OPEN_TRANSACTIONS:
            for old in list(pending)[:MAX_OPEN_TRANSACTIONS // 2]:
                del pending[old]
            op = _with_event(op, _FLOODED)
        pending[key] = entry
        return op

    def _response(self, pdu: bytes, tid: int, unit: int) -> Operation:
        msg = parse_pdu(pdu, _RESPONSE)
        fc = pdu[0] & 0x7F
        key = unit << 16 | tid
        pending = self._pending
        entry = pending.get(key)
        req = None
        if entry is not None:
            if type(entry) is tuple:
                if entry[0] == fc:
                    del pending[key]
                    req = entry[1]
            else:
                req = self._take(entry, key, fc)
        convert = _RESPONSE_CONVERTERS.get(type(msg))
        if convert is None:
            assert isinstance(msg, Malformed)
            return _malformed_op(_RESPONSE, msg, fc, unit, tid, req)
        op = convert(msg, req, fc, tid, unit)
        if req is None and op.malformed is None:
            op = _with_event(op, _UNSOLICITED)
        return op

    def _take(self, queue: list[tuple[int, Any]], key: int, fc: int) -> Any:
        """The oldest retried request with this function code, removed from the queue."""
        for i, (request_fc, request) in enumerate(queue):
            if request_fc == fc:
                del queue[i]
                if not queue:
                    del self._pending[key]
                return request
        return None

    # ----------------------------------------------------------------------- broken framing

    @staticmethod
    def _lost(buf: bytes, pos: int, tid: int, length: int, from_client: bool) -> Operation:
        """MBAP length outside 2..254: nothing after it can be framed; drop it all."""
        unit = buf[pos + 6] if len(buf) > pos + 6 else None
        detail = {"offset": 4, "detail": f"MBAP length {length}", "dropped": len(buf) - pos}
        return _op(_REQUEST if from_client else _RESPONSE, _MALFORMED, None, None, unit, tid,
                   None, None, None, None, None, Reason.INVALID_LENGTH.value, detail)

    @staticmethod
    def _misframed(buf: bytes, pos: int, end: int, tid: int, pid: int,
                   from_client: bool) -> Operation:
        """Protocol id not 0, or an oversize ADU: report it whole, keep the framing."""
        fc = buf[pos + 7] & 0x7F
        if pid:
            reason, offset, text = Reason.INVALID_PROTOCOL_ID.value, 2, f"protocol id {pid}"
        else:
            reason, offset, text = Reason.INVALID_LENGTH.value, 4, f"MBAP length {end - pos - 6}"
        detail = {"offset": offset, "detail": text, "protocol_id": pid,
                  "data": buf[pos + 7:end].hex()}
        return _op(_REQUEST if from_client else _RESPONSE, _MALFORMED, fc, _META[fc][0],
                   buf[pos + 6], tid, None, None, None, None, None, reason, detail)


# --- probe


def probe(data: bytes, from_client: bool) -> Probe:
    """Is this the start of a Modbus/TCP direction? Judged on the whole first ADU.

    The MBAP protocol id must be 0, the length 2..254 and the function code possible for the
    direction. Then either the first PDU decodes as a function this codec lays out, or, when
    its content proves nothing (malformed, user-defined, reserved or opaque MEI), the data
    must end exactly where the ADU does or be followed by another MBAP header (protocol id
    0). A malformed first PDU is thus still recognised: an attacker cannot hide a stream
    from the decoder by opening it with a bad PDU.

    >>> probe(bytes.fromhex("000100000006010300000001"), True)
    <Probe.YES: 'yes'>
    >>> probe(b"GET / HTTP/1.1\\r\\n", True)
    <Probe.NO: 'no'>
    """
    n = len(data)
    if n >= 4 and (data[2] or data[3]):
        return Probe.NO
    if n < 6:
        return Probe.NEED_MORE
    length = data[4] << 8 | data[5]
    if length < 2 or length > MAX_MBAP_LENGTH:
        return Probe.NO
    if n < 8:
        return Probe.NEED_MORE
    fc = data[7]
    if fc == 0 or fc == EXCEPTION_BIT or (from_client and fc & EXCEPTION_BIT):
        return Probe.NO
    end = 6 + length
    if n < end:
        return Probe.NEED_MORE
    msg = parse_pdu(bytes(data[7:end]), _REQUEST if from_client else _RESPONSE)
    if not isinstance(msg, _OPAQUE) or n == end:
        return Probe.YES
    if n < end + 6:
        return Probe.NEED_MORE
    if data[end + 2] or data[end + 3]:
        return Probe.NO
    following = data[end + 4] << 8 | data[end + 5]
    return Probe.YES if 2 <= following <= MAX_MBAP_LENGTH else Probe.NO


_OPAQUE = (Malformed, GenericPdu, EncapsulatedInterfaceTransportRequest,
           EncapsulatedInterfaceTransportResponse)
