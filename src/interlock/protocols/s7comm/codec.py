"""S7comm and S7comm-plus PDUs: the user data of COTP DT TPDUs on ISO-on-TCP (port 102).

Siemens never published S7comm; the layouts followed are those of the Wireshark ``s7comm``
dissector (packet-s7comm.c, T. Wiens), checked field by field against tshark 4.0 on the shared
captures:

* Header: protocol id 0x32, ROSCTR, redundancy id, PDU reference, parameter and data lengths;
  ack (2) and ack_data (3) add error class and error code (12 bytes instead of 10).
* Job and ack_data parameters begin with a function code: setup communication (0xF0); read and
  write var (0x04, 0x05) with S7ANY items (variable specification 0x12, syntax id 0x10) and data
  items (return code, transport size, length counted in bits for transport sizes 3-5, a fill
  byte after each odd-length item but the last); block control (0x1A-0x1F) with block file
  names such as ``_0800001P``; PI service (0x28) and PLC stop (0x29) with a service name.
* Userdata (7): parameter head ``00 01 12``, length, method, type and function group nibbles,
  subfunction, sequence number and, in 12-byte parameters, data unit reference, last data unit
  and error code; data part return code, transport size, length, data.
* S7comm-plus (protocol id 0x72, S7-1200/1500): version, data length, a 33-byte integrity part
  in version 3, opcode and function code; only the last fragment ends with ``72 vv 00 00``.

Why hand-written: python-snap7 is a client around a C library with sockets, scapy's contrib
layer raises on truncated input and stops at the header, and neither says what is wrong with a
PDU. A passive sensor needs a total function from bytes to a typed value or a named
``Malformed`` reason, cheap enough for several hundred thousand PDUs a second, so the hot
path is precompiled ``struct`` calls and tuple building, with no exceptions.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from interlock.protocols.base import Malformed
from interlock.protocols.s7comm.fields import (
    BLOCK_CONTROL_FUNCTIONS,
    DATA_SIZES_IN_BITS,
    S7_PROTOCOL_ID,
    S7PLUS_PROTOCOL_ID,
    BlockType,
    Function,
    Reason,
    Rosctr,
    SyntaxId,
)

_HDR = struct.Struct(">BBHHHH")  # protocol id, rosctr, redundancy id, pdu ref, par len, dat len
_ERR = struct.Struct(">BB")
_ITEM = struct.Struct(">BBBBHHBBH")  # var spec, spec len, syntax, tsize, length, db, area, address
_DATA_ITEM = struct.Struct(">BBH")
_SETUP = struct.Struct(">BBHHH")  # function, reserved, max AmQ calling, called, PDU length
_BLOCK = struct.Struct(">BBHI")  # function, function status, code, upload id
_UD_PARAM = struct.Struct(">BHBBBBB")  # head (3 bytes), length, method, type|group, subf, seq
_UD_EXT = struct.Struct(">BBH")  # data unit reference, last data unit, error code
_U16 = struct.Struct(">H")
_U16X2 = struct.Struct(">HH")

VAR_SPEC = 0x12  # variable specification marker that opens every item
S7ANY_SPEC_LEN = 10
PI_UNKNOWN = b"\x00\x00\x00\x00\x00\x00\xfd"  # 7 bytes before the PI parameter block
PLC_STOP_UNKNOWN = b"\x00\x00\x00\x00\x00"
USERDATA_HEAD = 0x000112
# plain ints: comparing with enum members costs an attribute lookup per PDU
_JOB_ROSCTR, _ACK_ROSCTR, _ACK_DATA_ROSCTR, _USERDATA_ROSCTR = 1, 2, 3, 7


# --- items ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S7AnyItem:
    """Variable specification with syntax id S7ANY (0x10): area, DB, byte.bit, size, count."""

    transport_size: int  # TransportSize of one element
    length: int  # number of elements
    db_number: int
    area: int  # Area
    address: int  # 24 bits: byte << 3 | bit, or the element number for timers and counters

    @property
    def byte_address(self) -> int:
        return self.address >> 3

    @property
    def bit_address(self) -> int:
        return self.address & 7


@dataclass(frozen=True, slots=True)
class RawItem:
    """Variable specification of another syntax id (DBREAD, NCK, 1200SYM...), kept as bytes."""

    syntax_id: int
    body: bytes  # the specification after the syntax id


Item = S7AnyItem | RawItem


@dataclass(frozen=True, slots=True)
class DataItem:
    """Data item of a read response or a write request."""

    return_code: int  # ReturnCode; 0x00 (reserved) in write requests
    transport_size: int  # DataTransportSize
    length: int  # as on the wire: bits for transport sizes 3, 4, 5, bytes otherwise
    data: bytes  # empty unless the return code is success or reserved


def data_byte_length(return_code: int, transport_size: int, length: int) -> int:
    """Bytes of data behind a data item header (bit lengths round up to whole bytes).

    Only success (0xFF) and reserved (0x00, write requests) items carry data; an error
    item is its 4-byte header whatever its length field says (PLCs answer a missing DB
    with ``0a 00 00 04``), as in Wireshark.
    """
    if return_code != 0xFF and return_code != 0x00:
        return 0
    if transport_size in DATA_SIZES_IN_BITS:
        return (length + 7) >> 3
    return length


# --- job / ack / ack_data ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetupCommunication:
    """Function 0xF0: the client proposes, the ack_data returns the negotiated limits."""

    rosctr: int  # Rosctr.JOB or Rosctr.ACK_DATA
    pdu_ref: int
    max_amq_calling: int  # parallel jobs with acknowledgement
    max_amq_called: int
    pdu_length: int
    error_class: int = 0
    error_code: int = 0
    reserved: int = 0
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class ReadVarRequest:
    """Function 0x04 job: read the listed items."""

    pdu_ref: int
    items: tuple[Item, ...]
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class ReadVarResponse:
    """Function 0x04 ack_data: one data item per requested item, in order."""

    pdu_ref: int
    items: tuple[DataItem, ...]
    error_class: int = 0
    error_code: int = 0
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class WriteVarRequest:
    """Function 0x05 job: items in the parameter part, their values in the data part."""

    pdu_ref: int
    items: tuple[Item, ...]
    data: tuple[DataItem, ...]
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class WriteVarResponse:
    """Function 0x05 ack_data: one return code per written item."""

    pdu_ref: int
    return_codes: tuple[int, ...]
    error_class: int = 0
    error_code: int = 0
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class BlockControlJob:
    """Functions 0x1A-0x1F, job: request download, download block, download ended, start
    upload, upload, end upload. Download block jobs come from the PLC, which pulls the block.
    """

    function: int
    pdu_ref: int
    function_status: int = 0  # bit 0: more data following, bit 1: error
    code: int = 0  # error code in download ended / end upload, 0x0100 in request download
    upload_id: int = 0
    filename: str | None = None  # "_0A00001P": file id, block type, number, file system
    part2: str | None = None  # request download: "1", load memory and MC7 code lengths
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class BlockControlAckData:
    """Functions 0x1A-0x1F, ack_data. The parameter is 1, 2 or at least 8 bytes long."""

    function: int
    pdu_ref: int
    function_status: int | None = None
    code: int | None = None
    upload_id: int | None = None  # start upload: the id the following uploads quote
    length_string: str | None = None  # start upload: block length in decimal digits
    data: bytes | None = None  # download block / upload: the block bytes
    data_unknown: int = 0x00FB
    error_class: int = 0
    error_code: int = 0
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class PiService:
    """Function 0x28 job: program invocation (_INSE, _DELE, P_PROGRAM, _MODU, _GARB...)."""

    pdu_ref: int
    service: str
    parameter_block: bytes = b""  # arguments ("C " cold restart) or block list (_INSE/_DELE)
    unknown: bytes = PI_UNKNOWN
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class PlcStop:
    """Function 0x29 job: stop the CPU; the service name is "P_PROGRAM"."""

    pdu_ref: int
    service: str = "P_PROGRAM"
    unknown: bytes = PLC_STOP_UNKNOWN
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class CpuServices:
    """Function 0x00 job (CPU services): no public layout, parameter and data kept as bytes."""

    pdu_ref: int
    parameter: bytes = b""  # after the function code
    data: bytes = b""
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class FunctionAckData:
    """Ack_data of PI service, PLC stop or CPU services; also any ack_data whose header
    reports an error and whose parameter does not fit the function's layout.
    """

    function: int
    pdu_ref: int
    parameter: bytes = b""  # after the function code
    data: bytes = b""
    error_class: int = 0
    error_code: int = 0
    redundancy_id: int = 0


@dataclass(frozen=True, slots=True)
class Ack:
    """ROSCTR 2 (ack without data), or an ack_data without parameter: usually an error."""

    pdu_ref: int
    error_class: int = 0
    error_code: int = 0
    rosctr: int = Rosctr.ACK
    parameter: bytes = b""
    data: bytes = b""
    redundancy_id: int = 0


# --- userdata ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Userdata:
    """ROSCTR 7: CPU functions (SZL), block functions, time, security, cyclic data, alarms."""

    pdu_ref: int
    type: int  # UserdataType: push, request, response
    function_group: int  # FunctionGroup
    subfunction: int
    sequence_number: int = 0
    method: int = 0x11  # UserdataMethod
    data_unit_ref: int | None = None  # these three only in 12-byte parameters
    last_data_unit: int | None = None  # 0: last, 1: more fragments follow
    error_code: int | None = None
    return_code: int | None = None  # None when the data part is empty
    transport_size: int | None = None
    data: bytes = b""
    head: int = USERDATA_HEAD
    param_length: int | None = None  # the parameter's own length byte, None: the usual 4 / 8
    parameter_rest: bytes = b""
    redundancy_id: int = 0


# --- S7comm-plus ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S7CommPlusPdu:
    """An S7comm-plus frame (protocol id 0x72), recognised and labelled, payload not decoded."""

    version: int  # 1, 2, 3 (with integrity part) or 0xFE (system event)
    data: bytes  # between header and trailer
    trailer: bool = True  # False on every fragment but the last of a long message

    def _body(self) -> int:
        """Offset of the opcode in ``data``: V3 puts a digest length and digest first."""
        d = self.data
        if self.version == 3 and d and d[0] == 0x20:
            return 33
        return 0

    @property
    def opcode(self) -> int | None:
        i = self._body()
        return self.data[i] if len(self.data) > i else None

    @property
    def function_code(self) -> int | None:
        """Function of requests (0x31) and responses (0x32)."""
        i = self._body()
        d = self.data
        if len(d) >= i + 5 and d[i] in (0x31, 0x32):
            return (d[i + 3] << 8) | d[i + 4]
        return None

    @property
    def sequence_number(self) -> int | None:
        i = self._body()
        d = self.data
        if len(d) >= i + 9 and d[i] in (0x31, 0x32):
            return (d[i + 7] << 8) | d[i + 8]
        return None

    @property
    def session_id(self) -> int | None:
        """Session id of requests."""
        i = self._body()
        d = self.data
        if len(d) >= i + 13 and d[i] == 0x31:
            return int.from_bytes(d[i + 9 : i + 13], "big")
        return None


S7Message = (
    SetupCommunication
    | ReadVarRequest
    | ReadVarResponse
    | WriteVarRequest
    | WriteVarResponse
    | BlockControlJob
    | BlockControlAckData
    | PiService
    | PlcStop
    | CpuServices
    | FunctionAckData
    | Ack
    | Userdata
)
S7Pdu = S7Message | S7CommPlusPdu


# --- parse ------------------------------------------------------------------------------


def parse_items(pdu: bytes, start: int, end: int, count: int) -> tuple[Item, ...] | Malformed:
    """``count`` variable specifications filling ``pdu[start:end]`` exactly."""
    items: list[Item] = []
    i = start
    unpack = _ITEM.unpack_from
    for _ in range(count):
        if i + 2 > end:
            return Malformed(Reason.BAD_ITEM_COUNT, i, pdu, f"{count} items, {len(items)} fit")
        if pdu[i] != VAR_SPEC:
            return Malformed(Reason.BAD_ITEM, i, pdu, f"variable specification {pdu[i]:#04x}")
        spec_end = i + 2 + pdu[i + 1]
        if spec_end > end or pdu[i + 1] == 0:
            return Malformed(Reason.BAD_ITEM, i, pdu, "item runs past the parameter")
        if pdu[i + 2] == SyntaxId.S7ANY:
            if pdu[i + 1] != S7ANY_SPEC_LEN:
                return Malformed(Reason.BAD_ITEM, i, pdu, f"S7ANY spec of {pdu[i + 1]} bytes")
            _, _, _, ts, length, db, area, hi, lo = unpack(pdu, i)
            items.append(S7AnyItem(ts, length, db, area, (hi << 16) | lo))
        else:
            items.append(RawItem(pdu[i + 2], pdu[i + 3 : spec_end]))
        i = spec_end
    if i != end:
        return Malformed(Reason.BAD_ITEM_COUNT, i, pdu, f"{end - i} bytes after {count} items")
    return tuple(items)


def parse_data_items(
    pdu: bytes, start: int, end: int, count: int
) -> tuple[DataItem, ...] | Malformed:
    """``count`` data items in ``pdu[start:end]`` (read response or write request data part)."""
    items: list[DataItem] = []
    i = start
    last = count - 1
    for k in range(count):
        if i + 4 > end:
            reason = Reason.BAD_ITEM_COUNT if i == end else Reason.BAD_DATA_ITEM
            return Malformed(reason, i, pdu, f"{count} data items, {k} fit")
        rc, ts, length = _DATA_ITEM.unpack_from(pdu, i)
        n = 0  # error items carry no data, whatever the length says
        if rc in (0xFF, 0x00):
            n = (length + 7) >> 3 if ts in DATA_SIZES_IN_BITS else length
        j = i + 4 + n
        if j > end:
            return Malformed(Reason.BAD_DATA_ITEM, i, pdu, f"data item of {n} bytes past end")
        items.append(DataItem(rc, ts, length, pdu[i + 4 : j]))
        if n & 1 and k != last:
            j += 1  # fill byte
        i = j
    if i != end:
        return Malformed(Reason.BAD_ITEM_COUNT, i, pdu, f"{end - i} bytes after {count} items")
    return tuple(items)


def _string(raw: bytes) -> str:
    return raw.decode("latin-1")  # bijective: every byte string round-trips


def parse(pdu: bytes) -> S7Pdu | Malformed:
    """Decode the user data of one COTP DT TSDU: an S7comm or S7comm-plus PDU. Never raises."""
    n = len(pdu)
    if n < 10:
        if n and pdu[0] == S7PLUS_PROTOCOL_ID:
            return _parse_plus(pdu)
        if n and pdu[0] != S7_PROTOCOL_ID:
            return Malformed(Reason.BAD_PROTOCOL_ID, 0, pdu, f"protocol id {pdu[0]:#04x}")
        return Malformed(Reason.TRUNCATED, n, pdu, f"{n} bytes, S7 header is 10")
    pid, rosctr, red, ref, parlg, datlg = _HDR.unpack_from(pdu)
    if pid != S7_PROTOCOL_ID:
        if pid == S7PLUS_PROTOCOL_ID:
            return _parse_plus(pdu)
        return Malformed(Reason.BAD_PROTOCOL_ID, 0, pdu, f"protocol id {pid:#04x}")
    if rosctr in (_JOB_ROSCTR, _USERDATA_ROSCTR):
        p = 10
        ecls = ecod = 0
    elif rosctr in (_ACK_DATA_ROSCTR, _ACK_ROSCTR):
        if n < 12:
            return Malformed(Reason.TRUNCATED, n, pdu, "ack header is 12 bytes")
        p = 12
        ecls, ecod = _ERR.unpack_from(pdu, 10)
    else:
        return Malformed(Reason.UNKNOWN_ROSCTR, 1, pdu, f"ROSCTR {rosctr}")
    d = p + parlg
    end = d + datlg
    if end != n:
        reason = Reason.TRUNCATED if end > n else Reason.BAD_LENGTH
        return Malformed(reason, min(end, n), pdu, f"header says {end} bytes, PDU has {n}")
    if rosctr == _USERDATA_ROSCTR:
        return _parse_userdata(pdu, ref, red, p, d, end)
    if rosctr == _ACK_ROSCTR or parlg == 0:
        if rosctr == _JOB_ROSCTR:
            return Malformed(Reason.BAD_LENGTH, 6, pdu, "job without parameter")
        return Ack(ref, ecls, ecod, rosctr, pdu[p:d], pdu[d:end], red)
    func = pdu[p]
    if rosctr == _JOB_ROSCTR:
        job = _JOB.get(func)
        if job is None:
            return Malformed(Reason.UNKNOWN_FUNCTION, p, pdu, f"function {func:#04x}")
        return job(pdu, ref, red, p, d, end)
    ack = _ACK_DATA.get(func)
    if ack is None:
        return Malformed(Reason.UNKNOWN_FUNCTION, p, pdu, f"function {func:#04x}")
    value = ack(pdu, ref, red, p, d, end, ecls, ecod)
    if ecls | ecod and isinstance(value, Malformed):
        # an error reply need not carry the function's layout: keep what there is
        return FunctionAckData(func, ref, pdu[p + 1 : d], pdu[d:end], ecls, ecod, red)
    return value


def _job_setup(pdu: bytes, ref: int, red: int, p: int, d: int, end: int) -> S7Message | Malformed:
    if d - p != 8 or end != d:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "setup communication parameter is 8 bytes")
    _, res, calling, called, length = _SETUP.unpack_from(pdu, p)
    return SetupCommunication(Rosctr.JOB, ref, calling, called, length, 0, 0, res, red)


def _job_read(pdu: bytes, ref: int, red: int, p: int, d: int, end: int) -> S7Message | Malformed:
    if d - p < 2:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "no item count")
    if end != d:
        return Malformed(Reason.BAD_LENGTH, d, pdu, "read var job with a data part")
    items = parse_items(pdu, p + 2, d, pdu[p + 1])
    if isinstance(items, Malformed):
        return items
    return ReadVarRequest(ref, items, red)


def _job_write(pdu: bytes, ref: int, red: int, p: int, d: int, end: int) -> S7Message | Malformed:
    if d - p < 2:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "no item count")
    count = pdu[p + 1]
    items = parse_items(pdu, p + 2, d, count)
    if isinstance(items, Malformed):
        return items
    data = parse_data_items(pdu, d, end, count)
    if isinstance(data, Malformed):
        return data
    return WriteVarRequest(ref, items, data, red)


def _job_block(pdu: bytes, ref: int, red: int, p: int, d: int, end: int) -> S7Message | Malformed:
    if d - p < 8 or end != d:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "block control job parameter")
    func, status, code, uid = _BLOCK.unpack_from(pdu, p)
    filename = part2 = None
    i = p + 8
    if i < d:
        j = i + 1 + pdu[i]
        if j > d:
            return Malformed(Reason.BAD_LENGTH, i, pdu, "file name runs past the parameter")
        filename = _string(pdu[i + 1 : j])
        i = j
        if i < d:
            j = i + 1 + pdu[i]
            if j != d:
                return Malformed(Reason.BAD_LENGTH, i, pdu, "part 2 does not end the parameter")
            part2 = _string(pdu[i + 1 : j])
    return BlockControlJob(func, ref, status, code, uid, filename, part2, red)


def _job_pi(pdu: bytes, ref: int, red: int, p: int, d: int, end: int) -> S7Message | Malformed:
    if d - p < 11 or end != d:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "PI service parameter")
    blen = _U16.unpack_from(pdu, p + 8)[0]
    i = p + 10 + blen
    if i >= d or i + 1 + pdu[i] != d:
        return Malformed(Reason.BAD_LENGTH, p + 8, pdu, "PI parameter block or service name")
    return PiService(ref, _string(pdu[i + 1 : d]), pdu[p + 10 : i], pdu[p + 1 : p + 8], red)


def _job_stop(pdu: bytes, ref: int, red: int, p: int, d: int, end: int) -> S7Message | Malformed:
    if d - p < 7 or end != d or p + 7 + pdu[p + 6] != d:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "PLC stop parameter")
    return PlcStop(ref, _string(pdu[p + 7 : d]), pdu[p + 1 : p + 6], red)


def _job_cpu(pdu: bytes, ref: int, red: int, p: int, d: int, end: int) -> S7Message | Malformed:
    return CpuServices(ref, pdu[p + 1 : d], pdu[d:end], red)


def _ack_setup(
    pdu: bytes, ref: int, red: int, p: int, d: int, end: int, ecls: int, ecod: int
) -> S7Message | Malformed:
    if d - p != 8 or end != d:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "setup communication parameter is 8 bytes")
    _, res, calling, called, length = _SETUP.unpack_from(pdu, p)
    return SetupCommunication(Rosctr.ACK_DATA, ref, calling, called, length, ecls, ecod, res, red)


def _ack_read(
    pdu: bytes, ref: int, red: int, p: int, d: int, end: int, ecls: int, ecod: int
) -> S7Message | Malformed:
    if d - p != 2:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "read var ack parameter is 2 bytes")
    items = parse_data_items(pdu, d, end, pdu[p + 1])
    if isinstance(items, Malformed):
        return items
    return ReadVarResponse(ref, items, ecls, ecod, red)


def _ack_write(
    pdu: bytes, ref: int, red: int, p: int, d: int, end: int, ecls: int, ecod: int
) -> S7Message | Malformed:
    if d - p != 2:
        return Malformed(Reason.BAD_LENGTH, p, pdu, "write var ack parameter is 2 bytes")
    if end - d != pdu[p + 1]:
        return Malformed(Reason.BAD_ITEM_COUNT, d, pdu, f"{pdu[p + 1]} items, {end - d} codes")
    return WriteVarResponse(ref, tuple(pdu[d:end]), ecls, ecod, red)


def _ack_block(
    pdu: bytes, ref: int, red: int, p: int, d: int, end: int, ecls: int, ecod: int
) -> S7Message | Malformed:
    plen = d - p
    func = pdu[p]
    status = code = uid = None
    length_string = None
    if plen >= 2:
        status = pdu[p + 1]
        if plen >= 8:
            _, _, code, uid = _BLOCK.unpack_from(pdu, p)
            if plen > 8:
                i = p + 8
                if i + 1 + pdu[i] != d:
                    return Malformed(Reason.BAD_LENGTH, i, pdu, "length string of start upload")
                length_string = _string(pdu[i + 1 : d])
        elif plen != 2:
            return Malformed(Reason.BAD_LENGTH, p, pdu, f"block control ack parameter {plen}")
    data = None
    unknown = 0x00FB
    if end > d:
        if end - d < 4:
            return Malformed(Reason.BAD_LENGTH, d, pdu, "block data header is 4 bytes")
        blen, unknown = _U16X2.unpack_from(pdu, d)
        if d + 4 + blen != end:
            return Malformed(Reason.BAD_LENGTH, d, pdu, f"block data length {blen}")
        data = pdu[d + 4 : end]
    return BlockControlAckData(
        func, ref, status, code, uid, length_string, data, unknown, ecls, ecod, red
    )


def _ack_plain(
    pdu: bytes, ref: int, red: int, p: int, d: int, end: int, ecls: int, ecod: int
) -> S7Message | Malformed:
    return FunctionAckData(pdu[p], ref, pdu[p + 1 : d], pdu[d:end], ecls, ecod, red)


def _parse_userdata(
    pdu: bytes, ref: int, red: int, p: int, d: int, end: int
) -> S7Message | Malformed:
    plen = d - p
    if plen < 8 or 8 < plen < 12:
        return Malformed(Reason.BAD_USERDATA, p, pdu, f"userdata parameter of {plen} bytes")
    hh, hl, length, method, tg, subf, seq = _UD_PARAM.unpack_from(pdu, p)
    dur = ldu = err = None
    rest = b""
    if plen >= 12:
        dur, ldu, err = _UD_EXT.unpack_from(pdu, p + 8)
        rest = pdu[p + 12 : d]
    param_length = None if length == plen - 4 else length
    rc = ts = None
    data = b""
    if end > d:
        if end - d < 4:
            return Malformed(Reason.BAD_LENGTH, d, pdu, "userdata data header is 4 bytes")
        rc, ts, dlen = _DATA_ITEM.unpack_from(pdu, d)
        if d + 4 + dlen != end:
            return Malformed(Reason.BAD_LENGTH, d + 2, pdu, f"data length {dlen}, {end - d - 4}")
        data = pdu[d + 4 : end]
    return Userdata(
        ref, tg >> 4, tg & 0x0F, subf, seq, method, dur, ldu, err, rc, ts, data,
        (hh << 16) | hl, param_length, rest, red,
    )  # fmt: skip


def _parse_plus(pdu: bytes) -> S7CommPlusPdu | Malformed:
    n = len(pdu)
    if n < 4:
        return Malformed(Reason.BAD_PLUS_HEADER, n, pdu, "S7comm-plus header is 4 bytes")
    version = pdu[1]
    dlen = (pdu[2] << 8) | pdu[3]
    if n == dlen + 8 and pdu[n - 4 :] == bytes((S7PLUS_PROTOCOL_ID, version, 0, 0)):
        return S7CommPlusPdu(version, pdu[4 : 4 + dlen], True)
    if n == dlen + 4:
        return S7CommPlusPdu(version, pdu[4:], False)
    return Malformed(Reason.BAD_PLUS_HEADER, 2, pdu, f"data length {dlen}, PDU {n} bytes")


_JobParser = Callable[[bytes, int, int, int, int, int], S7Message | Malformed]
_AckParser = Callable[[bytes, int, int, int, int, int, int, int], S7Message | Malformed]
_JOB: dict[int, _JobParser] = {
    Function.SETUP_COMMUNICATION: _job_setup,
    Function.READ_VAR: _job_read,
    Function.WRITE_VAR: _job_write,
    Function.PI_SERVICE: _job_pi,
    Function.PLC_STOP: _job_stop,
    Function.CPU_SERVICES: _job_cpu,
    **{f: _job_block for f in BLOCK_CONTROL_FUNCTIONS},
}
_ACK_DATA: dict[int, _AckParser] = {
    Function.SETUP_COMMUNICATION: _ack_setup,
    Function.READ_VAR: _ack_read,
    Function.WRITE_VAR: _ack_write,
    Function.PI_SERVICE: _ack_plain,
    Function.PLC_STOP: _ack_plain,
    Function.CPU_SERVICES: _ack_plain,
    **{f: _ack_block for f in BLOCK_CONTROL_FUNCTIONS},
}


# --- build ------------------------------------------------------------------------------


def _check(name: str, v: int, hi: int) -> int:
    if not 0 <= v <= hi:
        raise ValueError(f"{name}={v} out of 0..{hi}")
    return v


def _lstring(name: str, s: str) -> bytes:
    try:
        raw = s.encode("latin-1")
    except UnicodeEncodeError as e:
        raise ValueError(f"{name} is not latin-1: {s!r}") from e
    if len(raw) > 0xFF:
        raise ValueError(f"{name} longer than 255 bytes")
    return bytes((len(raw),)) + raw


def _build_items(items: tuple[Item, ...], wide_count: bool = False) -> bytes:
    if len(items) > (0xFFFF if wide_count else 0xFF):
        raise ValueError(f"{len(items)} items, too many")
    out = bytearray(_U16.pack(len(items)) if wide_count else (len(items),))
    for it in items:
        if isinstance(it, S7AnyItem):
            out += _ITEM.pack(
                VAR_SPEC, S7ANY_SPEC_LEN, SyntaxId.S7ANY,
                _check("transport_size", it.transport_size, 0xFF),
                _check("length", it.length, 0xFFFF),
                _check("db_number", it.db_number, 0xFFFF),
                _check("area", it.area, 0xFF),
                _check("address", it.address, 0xFFFFFF) >> 16,
                it.address & 0xFFFF,
            )  # fmt: skip
        else:
            if it.syntax_id == SyntaxId.S7ANY:
                raise ValueError("RawItem cannot carry syntax id S7ANY: use S7AnyItem")
            if len(it.body) > 0xFE:
                raise ValueError("item specification longer than 255 bytes")
            out += bytes((VAR_SPEC, len(it.body) + 1, _check("syntax_id", it.syntax_id, 0xFF)))
            out += it.body
    return bytes(out)


def _build_data_items(items: tuple[DataItem, ...]) -> bytes:
    out = bytearray()
    last = len(items) - 1
    for k, it in enumerate(items):
        n = data_byte_length(it.return_code, it.transport_size, it.length)
        if n != len(it.data):
            raise ValueError(f"data item length {it.length} needs {n} bytes, has {len(it.data)}")
        out += _DATA_ITEM.pack(
            _check("return_code", it.return_code, 0xFF),
            _check("transport_size", it.transport_size, 0xFF),
            _check("length", it.length, 0xFFFF),
        )
        out += it.data
        if n & 1 and k != last:
            out.append(0)
    return bytes(out)


def _frame(
    rosctr: int, ref: int, red: int, param: bytes, data: bytes, ecls: int = 0, ecod: int = 0
) -> bytes:
    if len(param) > 0xFFFF or len(data) > 0xFFFF:
        raise ValueError("parameter or data part longer than 65535 bytes")
    head = _HDR.pack(
        S7_PROTOCOL_ID, rosctr, _check("redundancy_id", red, 0xFFFF),
        _check("pdu_ref", ref, 0xFFFF), len(param), len(data),
    )  # fmt: skip
    if rosctr == Rosctr.ACK or rosctr == Rosctr.ACK_DATA:
        head += bytes((_check("error_class", ecls, 0xFF), _check("error_code", ecod, 0xFF)))
    elif ecls or ecod:
        raise ValueError("error class/code exist only in ack and ack_data")
    return head + param + data


def build(msg: S7Pdu) -> bytes:
    """Encode an S7comm or S7comm-plus PDU. Raises ValueError on out-of-range fields."""
    if isinstance(msg, ReadVarRequest):
        param = bytes((Function.READ_VAR,)) + _build_items(msg.items)
        return _frame(Rosctr.JOB, msg.pdu_ref, msg.redundancy_id, param, b"")
    if isinstance(msg, ReadVarResponse):
        if len(msg.items) > 0xFF:
            raise ValueError("at most 255 data items")
        param = bytes((Function.READ_VAR, len(msg.items)))
        return _frame(
            Rosctr.ACK_DATA, msg.pdu_ref, msg.redundancy_id, param,
            _build_data_items(msg.items), msg.error_class, msg.error_code,
        )  # fmt: skip
    if isinstance(msg, WriteVarRequest):
        if len(msg.items) != len(msg.data):
            raise ValueError(f"{len(msg.items)} items but {len(msg.data)} data items")
        param = bytes((Function.WRITE_VAR,)) + _build_items(msg.items)
        data = _build_data_items(msg.data)
        return _frame(Rosctr.JOB, msg.pdu_ref, msg.redundancy_id, param, data)
    if isinstance(msg, WriteVarResponse):
        if len(msg.return_codes) > 0xFF:
            raise ValueError("at most 255 return codes")
        param = bytes((Function.WRITE_VAR, len(msg.return_codes)))
        data = bytes(_check("return_code", c, 0xFF) for c in msg.return_codes)
        return _frame(
            Rosctr.ACK_DATA, msg.pdu_ref, msg.redundancy_id, param, data,
            msg.error_class, msg.error_code,
        )  # fmt: skip
    if isinstance(msg, SetupCommunication):
        if msg.rosctr not in (Rosctr.JOB, Rosctr.ACK_DATA):
            raise ValueError(f"setup communication with ROSCTR {msg.rosctr}")
        param = _SETUP.pack(
            Function.SETUP_COMMUNICATION, _check("reserved", msg.reserved, 0xFF),
            _check("max_amq_calling", msg.max_amq_calling, 0xFFFF),
            _check("max_amq_called", msg.max_amq_called, 0xFFFF),
            _check("pdu_length", msg.pdu_length, 0xFFFF),
        )  # fmt: skip
        return _frame(
            msg.rosctr, msg.pdu_ref, msg.redundancy_id, param, b"", msg.error_class,
            msg.error_code,
        )  # fmt: skip
    if isinstance(msg, BlockControlJob):
        return _build_block_job(msg)
    if isinstance(msg, BlockControlAckData):
        return _build_block_ack(msg)
    if isinstance(msg, PiService):
        if len(msg.unknown) != 7:
            raise ValueError("PI service needs 7 bytes before the parameter block")
        if len(msg.parameter_block) > 0xFFFF:
            raise ValueError("PI parameter block longer than 65535 bytes")
        param = bytes((Function.PI_SERVICE,)) + msg.unknown
        param += _U16.pack(len(msg.parameter_block)) + msg.parameter_block
        param += _lstring("service", msg.service)
        return _frame(Rosctr.JOB, msg.pdu_ref, msg.redundancy_id, param, b"")
    if isinstance(msg, PlcStop):
        if len(msg.unknown) != 5:
            raise ValueError("PLC stop needs 5 bytes before the service name")
        param = bytes((Function.PLC_STOP,)) + msg.unknown + _lstring("service", msg.service)
        return _frame(Rosctr.JOB, msg.pdu_ref, msg.redundancy_id, param, b"")
    if isinstance(msg, CpuServices):
        param = bytes((Function.CPU_SERVICES,)) + msg.parameter
        return _frame(Rosctr.JOB, msg.pdu_ref, msg.redundancy_id, param, msg.data)
    if isinstance(msg, FunctionAckData):
        param = bytes((_check("function", msg.function, 0xFF),)) + msg.parameter
        raw = _frame(
            Rosctr.ACK_DATA, msg.pdu_ref, msg.redundancy_id, param, msg.data,
            msg.error_class, msg.error_code,
        )  # fmt: skip
        ack = _ACK_DATA.get(msg.function)
        # parse() only falls back to FunctionAckData when the function's layout fails
        if (
            ack is not None
            and ack is not _ack_plain
            and (
                not (msg.error_class or msg.error_code)
                or not isinstance(
                    ack(raw, msg.pdu_ref, msg.redundancy_id, 12, 12 + len(param), len(raw), 0, 0),
                    Malformed,
                )
            )
        ):
            raise ValueError(f"function {msg.function:#x} has its own ack_data class")
        return raw
    if isinstance(msg, Ack):
        if msg.rosctr not in (Rosctr.ACK, Rosctr.ACK_DATA):
            raise ValueError(f"Ack with ROSCTR {msg.rosctr}")
        if msg.rosctr == Rosctr.ACK_DATA and msg.parameter:
            raise ValueError("an ack_data with a parameter is not an Ack")
        return _frame(
            msg.rosctr, msg.pdu_ref, msg.redundancy_id, msg.parameter, msg.data,
            msg.error_class, msg.error_code,
        )  # fmt: skip
    if isinstance(msg, Userdata):
        return _build_userdata(msg)
    return _build_plus(msg)


def _build_block_job(msg: BlockControlJob) -> bytes:
    if msg.function not in BLOCK_CONTROL_FUNCTIONS:
        raise ValueError(f"function {msg.function:#x} is not a block control function")
    param = _BLOCK.pack(
        msg.function, _check("function_status", msg.function_status, 0xFF),
        _check("code", msg.code, 0xFFFF), _check("upload_id", msg.upload_id, 0xFFFFFFFF),
    )  # fmt: skip
    if msg.filename is not None:
        param += _lstring("filename", msg.filename)
        if msg.part2 is not None:
            param += _lstring("part2", msg.part2)
    elif msg.part2 is not None:
        raise ValueError("part2 needs a filename")
    return _frame(Rosctr.JOB, msg.pdu_ref, msg.redundancy_id, param, b"")


def _build_block_ack(msg: BlockControlAckData) -> bytes:
    if msg.function not in BLOCK_CONTROL_FUNCTIONS:
        raise ValueError(f"function {msg.function:#x} is not a block control function")
    param = bytes((msg.function,))
    if msg.function_status is not None:
        param += bytes((_check("function_status", msg.function_status, 0xFF),))
        if msg.code is not None or msg.upload_id is not None:
            if msg.code is None or msg.upload_id is None:
                raise ValueError("code and upload_id come together")
            param = _BLOCK.pack(
                msg.function, msg.function_status, _check("code", msg.code, 0xFFFF),
                _check("upload_id", msg.upload_id, 0xFFFFFFFF),
            )  # fmt: skip
            if msg.length_string is not None:
                param += _lstring("length_string", msg.length_string)
        elif msg.length_string is not None:
            raise ValueError("length_string needs code and upload_id")
    elif msg.code is not None or msg.upload_id is not None or msg.length_string is not None:
        raise ValueError("fields after the function status need a function status")
    data = b""
    if msg.data is None and msg.data_unknown != 0x00FB:
        raise ValueError("data_unknown belongs to a data part")
    if msg.data is not None:
        if len(msg.data) > 0xFFFF - 4:
            raise ValueError("block data too long")
        data = _U16X2.pack(len(msg.data), _check("data_unknown", msg.data_unknown, 0xFFFF))
        data += msg.data
    return _frame(
        Rosctr.ACK_DATA, msg.pdu_ref, msg.redundancy_id, param, data, msg.error_class,
        msg.error_code,
    )  # fmt: skip


def _build_userdata(msg: Userdata) -> bytes:
    param = _UD_PARAM.pack(
        _check("head", msg.head, 0xFFFFFF) >> 16, msg.head & 0xFFFF, 0,
        _check("method", msg.method, 0xFF),
        (_check("type", msg.type, 0xF) << 4) | _check("function_group", msg.function_group, 0xF),
        _check("subfunction", msg.subfunction, 0xFF),
        _check("sequence_number", msg.sequence_number, 0xFF),
    )  # fmt: skip
    ext = (msg.data_unit_ref, msg.last_data_unit, msg.error_code)
    if all(v is not None for v in ext):
        param += _UD_EXT.pack(
            _check("data_unit_ref", msg.data_unit_ref or 0, 0xFF),
            _check("last_data_unit", msg.last_data_unit or 0, 0xFF),
            _check("error_code", msg.error_code or 0, 0xFFFF),
        ) + msg.parameter_rest
    elif any(v is not None for v in ext) or msg.parameter_rest:
        raise ValueError("data_unit_ref, last_data_unit and error_code come together")
    length = len(param) - 4 if msg.param_length is None else msg.param_length
    if msg.param_length == len(param) - 4:
        raise ValueError("param_length equal to the usual value must be None")
    param = param[:3] + bytes((_check("param_length", length, 0xFF),)) + param[4:]
    data = b""
    if msg.return_code is not None or msg.transport_size is not None:
        if msg.return_code is None or msg.transport_size is None:
            raise ValueError("return_code and transport_size come together")
        if len(msg.data) > 0xFFFF - 4:
            raise ValueError("userdata data too long")
        data = _DATA_ITEM.pack(
            _check("return_code", msg.return_code, 0xFF),
            _check("transport_size", msg.transport_size, 0xFF), len(msg.data),
        ) + msg.data  # fmt: skip
    elif msg.data:
        raise ValueError("userdata data needs a return code and transport size")
    return _frame(Rosctr.USERDATA, msg.pdu_ref, msg.redundancy_id, param, data)


def _build_plus(msg: S7CommPlusPdu) -> bytes:
    _check("version", msg.version, 0xFF)
    if len(msg.data) > 0xFFFF:
        raise ValueError("S7comm-plus data longer than 65535 bytes")
    head = bytes((S7PLUS_PROTOCOL_ID, msg.version)) + _U16.pack(len(msg.data))
    tail = bytes((S7PLUS_PROTOCOL_ID, msg.version, 0, 0)) if msg.trailer else b""
    return head + msg.data + tail


# --- userdata content: cyclic services ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CyclicSubscription:
    """Data of a cyclic-services request (userdata group 2, subfunctions 1, 5 and 7): the
    items the PLC shall send every ``factor`` x ``timebase`` (0: 100 ms, 1: 1 s, 2: 10 s),
    or on change. The answers and the later pushes are :func:`parse_cyclic_data`.
    """

    timebase: int
    factor: int
    items: tuple[Item, ...]


def parse_cyclic_request(data: bytes) -> CyclicSubscription | Malformed:
    """Item count (2 bytes), timebase, factor, then variable specifications."""
    if len(data) < 4:
        return Malformed(Reason.BAD_LENGTH, len(data), data, "cyclic request header is 4 bytes")
    items = parse_items(data, 4, len(data), (data[0] << 8) | data[1])
    if isinstance(items, Malformed):
        return items
    return CyclicSubscription(data[2], data[3], items)


def parse_cyclic_data(data: bytes) -> tuple[DataItem, ...] | Malformed:
    """Item count (2 bytes) then data items, as in a read var response."""
    if len(data) < 2:
        return Malformed(Reason.BAD_LENGTH, len(data), data, "no item count")
    return parse_data_items(data, 2, len(data), (data[0] << 8) | data[1])


def build_cyclic_request(sub: CyclicSubscription) -> bytes:
    """Userdata data part of a cyclic-services request. Raises ValueError when out of range."""
    items = _build_items(sub.items, wide_count=True)
    return items[:2] + bytes((_check("timebase", sub.timebase, 0xFF),
                              _check("factor", sub.factor, 0xFF))) + items[2:]  # fmt: skip


def build_cyclic_data(items: tuple[DataItem, ...]) -> bytes:
    """Userdata data part of a cyclic answer or push."""
    if len(items) > 0xFFFF:
        raise ValueError("at most 65535 data items")
    return _U16.pack(len(items)) + _build_data_items(items)


# --- content helpers: what the session reads out of userdata and block names ------------

_BLOCK_LABEL = {t.value: t.name for t in BlockType}


def block_label(type_hex: str, number: str) -> str | None:
    """``("0A", "00001")`` -> ``"DB1"``; None when the characters are not hex and digits."""
    if len(type_hex) != 2 or not number.isdigit() or not number.isascii():
        return None
    try:
        t = int(type_hex, 16)
    except ValueError:
        return None
    return f"{_BLOCK_LABEL.get(t, f'BLOCK_0x{t:02X}')}{int(number)}"


def filename_block(filename: str) -> str | None:
    """Block of a block-control file name: ``"_0800001P"`` -> ``"OB1"``."""
    if len(filename) != 9:
        return None
    return block_label(filename[1:3], filename[3:8])


def block_info_block(data: bytes) -> str | None:
    """Block of a get-block-info request: type (2), number (5), file system (1), in ASCII."""
    if len(data) < 7:
        return None
    return block_label(data[0:2].decode("latin-1"), data[2:7].decode("latin-1"))


def block_type_label(data: bytes) -> str | None:
    """Block type of a list-blocks-of-type request: two hex characters, ``b"0A"`` -> ``"DB"``."""
    if len(data) < 2:
        return None
    try:
        t = int(data[0:2].decode("latin-1"), 16)
    except ValueError:
        return None
    return _BLOCK_LABEL.get(t, f"BLOCK_0x{t:02X}")


def _bcd(b: int) -> int:
    hi, lo = b >> 4, b & 0x0F
    return hi * 10 + lo if hi < 10 and lo < 10 else -1


def s7_timestamp(data: bytes) -> str | None:
    """10-byte clock value (reserved, century, year, month, day, h, min, s, ms and weekday
    in BCD) as ISO 8601; None when a digit is not BCD or the date is impossible.
    """
    if len(data) < 10:
        return None
    year, month, day, hour, minute, second = (_bcd(b) for b in data[2:8])
    ms_hi, ms_lo = _bcd(data[8]), (data[9] >> 4)
    if min(year, month, day, hour, minute, second, ms_hi) < 0 or ms_lo > 9:
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        return None
    year += 2000 if year < 90 else 1900
    ms = ms_hi * 10 + ms_lo
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}"
