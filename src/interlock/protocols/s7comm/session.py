"""S7comm stream state: TPKT framing, COTP reassembly, job/ack_data pairing, Operations.

One :class:`S7Session` per TCP connection. ``feed`` takes each direction's bytes in order, in
any chunking, and returns one :class:`Operation` per COTP TSDU (an S7 PDU, reassembled from DT
TPDUs until EOT, ISO 8073 13.7) or per connection-management TPDU (CR, CC, DR, DC, ER), when
its last byte arrives. Ack_data and ack are paired with the job of the same PDU reference
sent by the other side, so a read response carries the areas and addresses it answers and
its values decoded with the requested transport sizes.

Pollers repeat themselves: a job whose parameter part, or an answer whose bytes (references
aside), were decoded before is served from a small per-session memo of that decode, which is
what keeps the common PDU at two to three microseconds.

Bounded memory: a TPKT frame is at most 65535 bytes (RFC 1006), DT segments awaiting EOT are
capped at 64 KiB, open transactions at 1024 (oldest dropped, counted in ``evicted``). When
framing is lost (no TPKT header where one must be), one MALFORMED Operation is reported and
the direction skips ahead to the next plausible TPKT+COTP header.
"""

from __future__ import annotations

import struct
from typing import Any

from interlock.protocols.base import Direction, Malformed, OpClass, Operation, Probe
from interlock.protocols.s7comm import codec as c
from interlock.protocols.s7comm.cotp import (
    FIXED_PART,
    TPDU_NAME,
    ConnectionConfirm,
    ConnectionRequest,
    Data,
    DisconnectConfirm,
    DisconnectRequest,
    Tpdu,
    TpduError,
    parse_tpkt,
)
from interlock.protocols.s7comm.fields import (
    AREA_LABEL,
    GROUP_LABEL,
    NUMBERED_AREAS,
    S7_PROTOCOL_ID,
    S7PLUS_PROTOCOL_ID,
    SUBFUNCTIONS,
    BlockSubfunction,
    ConnectionType,
    CpuSubfunction,
    CyclicSubfunction,
    DataTransportSize,
    DisconnectReason,
    ErrorClass,
    ErrorCode,
    Function,
    FunctionGroup,
    PiServiceName,
    PlusFunction,
    PlusOpcode,
    ProgrammerSubfunction,
    Reason,
    ReturnCode,
    Rosctr,
    SyntaxId,
    TimeSubfunction,
    TransportSize,
    UserdataType,
)

PROTOCOL = "s7comm"
PROTOCOL_PLUS = "s7comm-plus"
MAX_SEGMENTS = 65536  # bytes of DT user data awaiting EOT
MAX_TRANSACTIONS = 1024  # open jobs per session, userdata requests and uploads alike
MAX_VALUES = 512  # numbers per Operation; the hex data in detail stays complete
SZL_RECORD_BYTES = 512  # SZL records kept (as hex) in an answer's detail
MEMO_SIZE = 256  # distinct read/write parameter parts (and read answers) per session
MEMO_MAX_PDU = 512  # read answers longer than this are not remembered

_REQ = Direction.REQUEST
_RESP = Direction.RESPONSE
_DIRECTION = (_RESP, _REQ)  # indexed by from_client

FUNCTION_NAME: dict[int, str] = {
    Function.CPU_SERVICES: "cpu_services",
    Function.READ_VAR: "read_var",
    Function.WRITE_VAR: "write_var",
    Function.REQUEST_DOWNLOAD: "request_download",
    Function.DOWNLOAD_BLOCK: "download_block",
    Function.DOWNLOAD_ENDED: "download_ended",
    Function.START_UPLOAD: "start_upload",
    Function.UPLOAD: "upload",
    Function.END_UPLOAD: "end_upload",
    Function.PI_SERVICE: "pi_service",
    Function.PLC_STOP: "plc_stop",
    Function.SETUP_COMMUNICATION: "setup_communication",
}

FUNCTION_CLASS: dict[int, OpClass] = {
    Function.CPU_SERVICES: OpClass.OTHER,
    Function.READ_VAR: OpClass.READ,
    Function.WRITE_VAR: OpClass.WRITE,
    Function.REQUEST_DOWNLOAD: OpClass.CONTROL,
    Function.DOWNLOAD_BLOCK: OpClass.CONTROL,
    Function.DOWNLOAD_ENDED: OpClass.CONTROL,
    Function.START_UPLOAD: OpClass.FILE,
    Function.UPLOAD: OpClass.FILE,
    Function.END_UPLOAD: OpClass.FILE,
    Function.PI_SERVICE: OpClass.CONTROL,
    Function.PLC_STOP: OpClass.CONTROL,
    Function.SETUP_COMMUNICATION: OpClass.SESSION,
}

_ROSCTR_NAME = {r.value: r.name.lower() for r in Rosctr}
_TS_NAME = {t.value: t.name for t in TransportSize}
_DTS_NAME = {t.value: t.name for t in DataTransportSize}
_RC_NAME = {r.value: r.name for r in ReturnCode}
_ERRCLS_NAME = {e.value: e.name for e in ErrorClass}
_ERROR_NAME = {e.value: e.name for e in ErrorCode}
_SYNTAX_NAME = {s.value: s.name for s in SyntaxId}
_UD_TYPE_NAME = {t.value: t.name.lower() for t in UserdataType}
_PLUS_OPCODE_NAME = {o.value: o.name.lower() for o in PlusOpcode}
_PLUS_FUNCTION_NAME = {f.value: f.name.lower() for f in PlusFunction}
_PLUS_SESSION = frozenset(
    {PlusFunction.CREATE_OBJECT, PlusFunction.DELETE_OBJECT, PlusFunction.INIT_SSL}
)
_SUCCESS = 0xFF
_JOB, _ACK_DATA, _READ_VAR, _WRITE_VAR = 1, 3, 4, 5  # plain ints for the hot path

# What a response needs from its job: function, items, object, address, count and the
# items' detail dicts (templates, copied into each Operation, never handed out).
_Info = tuple[int, tuple[c.Item, ...], str | None, int | None, int | None, tuple[dict[str, Any], ...]]
# object, address, count, values, status of a cyclic-services PDU
_CyclicResult = tuple[str | None, int | None, int | None, tuple[float, ...] | None, str | None]
_CYCLIC_DATA = frozenset({CyclicSubfunction.CYCLIC_TRANSFER, CyclicSubfunction.CHANGE_DRIVEN_TRANSFER,
                          CyclicSubfunction.CHANGE_DRIVEN_TRANSFER_MODIFY})  # fmt: skip
_TIMEBASE_MS = {0: 100, 1: 1000, 2: 10000}


def _copy(templates: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [dict(t) for t in templates]

# element type -> (struct code, size) for values; byte-wide types stay in detail as hex
_WORD_FORMAT: dict[int, tuple[str, int]] = {
    TransportSize.WORD: ("H", 2),
    TransportSize.INT: ("h", 2),
    TransportSize.DWORD: ("I", 4),
    TransportSize.DINT: ("i", 4),
    TransportSize.REAL: ("f", 4),
    TransportSize.TIME: ("i", 4),
}
_STRUCTS: dict[tuple[str, int], struct.Struct] = {}


def error_name(code: int) -> str:
    """Name of an error class+code (header) or userdata error code."""
    name = _ERROR_NAME.get(code)
    return name if name is not None else f"ERROR_0x{code:04x}"


def _values(transport_size: int, data: bytes) -> tuple[float, ...] | None:
    """Numbers of one item when its element type is a bit or wider than a byte."""
    if transport_size == TransportSize.BIT:
        return (float(data[0] & 1),) if data else None
    fmt = _WORD_FORMAT.get(transport_size)
    if fmt is None:
        return None
    k = min(len(data) // fmt[1], MAX_VALUES)
    if k == 0:
        return None
    s = _STRUCTS.get((fmt[0], k))
    if s is None:
        s = _STRUCTS[(fmt[0], k)] = struct.Struct(f">{k}{fmt[0]}")
    return tuple(map(float, s.unpack_from(data)))


def _data_values(transport_size: int, data: bytes) -> tuple[float, ...] | None:
    """Numbers of an unpaired data item: only REAL and BIT are unambiguous."""
    if transport_size == DataTransportSize.REAL:
        return _values(TransportSize.REAL, data)
    if transport_size == DataTransportSize.BIT:
        return _values(TransportSize.BIT, data)
    return None


def item_detail(item: c.Item) -> dict[str, Any]:
    """A variable specification as a small JSON-ready dict."""
    if isinstance(item, c.S7AnyItem):
        area = item.area
        out: dict[str, Any] = {"area": AREA_LABEL.get(area, f"0x{area:02x}"), "db": item.db_number}
        if area in NUMBERED_AREAS:
            out["number"] = item.address & 0xFFFF
        else:
            out["byte"] = item.address >> 3
            out["bit"] = item.address & 7
        out["size"] = _TS_NAME.get(item.transport_size, item.transport_size)
        out["length"] = item.length
        return out
    syntax = _SYNTAX_NAME.get(item.syntax_id, f"0x{item.syntax_id:02x}")
    return {"syntax": syntax, "spec": item.body.hex()}


def _ud_function_names() -> dict[tuple[int, int], str]:
    names: dict[tuple[int, int], str] = {}
    for group, table in SUBFUNCTIONS.items():
        for sub in table:
            names[(group, sub.value)] = f"userdata.{GROUP_LABEL[group]}.{sub.name.lower()}"
    return names


_UD_NAME = _ud_function_names()


def userdata_class(type_: int, group: int, subfunction: int) -> OpClass:
    """Operation class of a userdata PDU (pushes are MONITOR: data the PLC sends unasked)."""
    if type_ in (UserdataType.PUSH, UserdataType.NC_PUSH) or group == FunctionGroup.MODE_TRANSITION:
        return OpClass.MONITOR
    if group == FunctionGroup.CPU:
        return OpClass.IDENTIFY if subfunction == CpuSubfunction.READ_SZL else OpClass.DIAGNOSTIC
    if group == FunctionGroup.BLOCK or group == FunctionGroup.CYCLIC:
        return OpClass.READ
    if group == FunctionGroup.PROGRAMMER:
        if subfunction in (ProgrammerSubfunction.MODIFY_VARIABLE, ProgrammerSubfunction.FORCE):
            return OpClass.WRITE
        if subfunction == ProgrammerSubfunction.MEMORY_RESET:
            return OpClass.CONTROL
        return OpClass.DIAGNOSTIC
    if group == FunctionGroup.TIME:
        if subfunction in (TimeSubfunction.SET_CLOCK, TimeSubfunction.SET_CLOCK_2):
            return OpClass.CONTROL
        return OpClass.DIAGNOSTIC
    if group == FunctionGroup.SECURITY:
        return OpClass.SESSION
    if group == FunctionGroup.NC:
        return OpClass.FILE
    return OpClass.OTHER


def _tsap_text(tsap: bytes | None) -> str | None:
    if tsap is None:
        return None
    if len(tsap) > 2 and all(0x20 <= b < 0x7F for b in tsap):
        return tsap.decode("ascii")  # S7-1200/1500: "SIMATIC-ROOT-ES"
    return tsap.hex()


def _data_items_detail(
    info: _Info | None, items: tuple[c.DataItem, ...]
) -> tuple[list[dict[str, Any]], tuple[float, ...] | None, str | None]:
    """Per-item detail (request item, return code, data as hex), values typed by the
    request's transport sizes, and the first failing return code."""
    req_items = info[1] if info is not None else ()
    templates = info[5] if info is not None else ()
    n_req = len(req_items)
    details = []
    values: list[float] = []
    status = None
    for k, item in enumerate(items):
        rc = item.return_code
        if k < n_req:
            it = req_items[k]
            det = dict(templates[k])
            v = _values(it.transport_size, item.data) if isinstance(it, c.S7AnyItem) else None
        else:
            det = {}
            v = _data_values(item.transport_size, item.data)
        det["return_code"] = _RC_NAME.get(rc, rc)
        det["data"] = item.data.hex()
        details.append(det)
        if rc != _SUCCESS:
            if status is None:
                status = _RC_NAME.get(rc, f"RETURN_CODE_0x{rc:02x}")
        elif v:
            values.extend(v)
    return details, (tuple(values[:MAX_VALUES]) if values else None), status


def _bounded_put(table: dict[Any, Any], key: Any, value: Any) -> None:
    table[key] = value
    if len(table) > MAX_TRANSACTIONS:
        del table[next(iter(table))]


def _resync(src: bytes, start: int) -> int:
    """Offset of the next plausible TPKT + COTP header at or after ``start``, or -1."""
    n = len(src)
    i = src.find(b"\x03\x00", start)
    while i >= 0 and i + 6 <= n:
        length = (src[i + 2] << 8) | src[i + 3]
        li = src[i + 4]
        fixed = FIXED_PART.get(src[i + 5] & 0xF0)
        if length >= 7 and fixed is not None and fixed <= li and 5 + li <= length:
            return i
        i = src.find(b"\x03\x00", i + 1)
    return -1




def _info(function: int, obj: str | None = None) -> _Info:
    return (function, (), obj, None, None, ())


def _items_info(function: int, items: tuple[c.Item, ...]) -> _Info:
    if not items:
        return (function, items, None, None, 0, ())
    first = items[0]
    if isinstance(first, c.S7AnyItem):
        area = first.area
        obj: str | None = AREA_LABEL.get(area, f"0x{area:02x}")
        address: int | None = (
            first.address & 0xFFFF if area in NUMBERED_AREAS else first.address >> 3
        )
    else:
        obj = _SYNTAX_NAME.get(first.syntax_id, f"0x{first.syntax_id:02x}")
        address = None
    return (function, items, obj, address, len(items), tuple(item_detail(it) for it in items))


class S7Session:
    """Stream state of one ISO-on-TCP connection carrying S7comm or S7comm-plus."""

    def __init__(self) -> None:
        self._buf = (bytearray(), bytearray())  # indexed by from_client
        self._seg = (bytearray(), bytearray())  # DT user data awaiting EOT
        self._lost = [False, False]
        self._plus: list[tuple[c.S7CommPlusPdu, int] | None] = [None, None]
        self._pending: dict[tuple[int, int], _Info] = {}  # (job sender, PDU ref)
        self._memo: dict[bytes, _Info] = {}  # read/write parameter part -> decoded items
        # read/write answer bytes after the references -> data items / return codes
        self._resp_memo: dict[bytes, tuple[Any, ...]] = {}
        self._ud_pending: dict[tuple[int, int], str | None] = {}  # userdata request objects
        self._uploads: dict[int, str | None] = {}  # upload id -> block
        # per responder: SZL (object, id, index) of a fragmented answer, continuation due
        self._szl: list[tuple[str, int, int, bool] | None] = [None, None]
        self._cyc_req: dict[tuple[int, int], _Info] = {}  # cyclic requests by PDU ref
        self._subs: dict[tuple[int, int], _Info] = {}  # (PLC side, job id) -> subscription
        self.connection: dict[str, Any] = {}  # TSAPs, rack and slot from the CR
        self.evicted = 0  # transactions dropped by the cap (a flood indicator)

    # --- framing -----------------------------------------------------------------------


    def lost(self, from_client: bool) -> None:
        """Bytes of one direction were lost: drop its partial TPKT and DT data, keep the rest."""
        self._buf[from_client].clear()
        self._seg[from_client].clear()
    def feed(self, data: bytes, from_client: bool) -> list[Operation]:
        """Operations completed by the next bytes of one direction. Never raises."""
        d = 1 if from_client else 0
        out: list[Operation] = []
        buf = self._buf[d]
        lost = self._lost[d]
        if buf:
            buf += data
            if not lost:
                if len(buf) < 4:
                    return out
                if buf[0] == 3 and buf[1] == 0 and len(buf) < ((buf[2] << 8) | buf[3]):
                    return out
            src = bytes(buf)
            buf.clear()
        else:
            src = data if type(data) is bytes else bytes(data)
        n = len(src)
        pos = 0
        if lost:
            pos = _resync(src, 0)
            if pos < 0:
                buf += src[max(0, n - 5) :]
                return out
            self._lost[d] = False
        while n - pos >= 4:
            if src[pos] == 3 and src[pos + 1] == 0:
                length = (src[pos + 2] << 8) | src[pos + 3]
                if length >= 7:
                    if n - pos < length:
                        break
                    self._tpdu(src, pos, pos + length, d, out)
                    pos += length
                    continue
                reason = Reason.BAD_TPKT_LENGTH
            else:
                reason = Reason.BAD_TPKT_VERSION
            out.append(self._malformed(reason, d, pos, src[pos : pos + 8], "framing lost"))
            nxt = _resync(src, pos + 1)
            if nxt < 0:
                self._lost[d] = True
                pos = max(pos + 1, n - 5)
                break
            pos = nxt
        if pos < n:
            buf += src[pos:]
        return out

    def _tpdu(self, src: bytes, a: int, b: int, d: int, out: list[Operation]) -> None:
        if src[a + 4] == 2 and src[a + 5] == 0xF0:  # class 0 DT, the hot path
            self._dt(src[a + 7 : b], bool(src[a + 6] & 0x80), d, out)
            return
        tpdu = parse_tpkt(src[a:b])
        if isinstance(tpdu, Malformed):
            out.append(self._malformed(tpdu.reason, d, tpdu.offset, b"", tpdu.detail))
        elif isinstance(tpdu, Data):
            self._dt(tpdu.user_data, tpdu.eot, d, out)
        else:
            out.append(self._cotp(tpdu, d))

    def _dt(self, user_data: bytes, eot: bool, d: int, out: list[Operation]) -> None:
        seg = self._seg[d]
        if not eot:
            if len(seg) + len(user_data) > MAX_SEGMENTS:
                seg.clear()
                out.append(
                    self._malformed(Reason.REASSEMBLY_OVERFLOW, d, 0, b"", "DT without EOT")
                )
            else:
                seg += user_data
            return
        if seg:
            seg += user_data
            user_data = bytes(seg)
            seg.clear()
        if user_data:  # an empty TSDU carries nothing (some stacks send them as keep-alives)
            self._s7(user_data, d, out)

    # --- COTP connection management ----------------------------------------------------

    def _cotp(self, tpdu: Tpdu, d: int) -> Operation:
        detail: dict[str, Any] = {}
        if isinstance(tpdu, ConnectionRequest | ConnectionConfirm):
            detail = {"src_ref": tpdu.src_ref, "dst_ref": tpdu.dst_ref,
                      "src_tsap": _tsap_text(tpdu.src_tsap),
                      "dst_tsap": _tsap_text(tpdu.dst_tsap), "tpdu_size": tpdu.tpdu_size}  # fmt: skip
            dst = tpdu.dst_tsap
            if isinstance(tpdu, ConnectionRequest) and dst is not None and len(dst) == 2:
                kind = dst[0]
                try:
                    detail["connection_type"] = ConnectionType(kind).name
                except ValueError:
                    detail["connection_type"] = kind
                detail["rack"] = dst[1] >> 5
                detail["slot"] = dst[1] & 0x1F
            if isinstance(tpdu, ConnectionRequest):
                self.connection = dict(detail)
        elif isinstance(tpdu, DisconnectRequest):
            try:
                reason: str | int = DisconnectReason(tpdu.reason).name
            except ValueError:
                reason = tpdu.reason
            detail = {"src_ref": tpdu.src_ref, "dst_ref": tpdu.dst_ref, "reason": reason}
        elif isinstance(tpdu, DisconnectConfirm):
            detail = {"src_ref": tpdu.src_ref, "dst_ref": tpdu.dst_ref}
        elif isinstance(tpdu, TpduError):
            detail = {"dst_ref": tpdu.dst_ref, "cause": tpdu.cause}
        code = {ConnectionRequest: 0xE0, ConnectionConfirm: 0xD0, DisconnectRequest: 0x80,
                DisconnectConfirm: 0xC0, TpduError: 0x70}.get(type(tpdu), 0xF0)  # fmt: skip
        status = None
        if isinstance(tpdu, DisconnectRequest | TpduError):
            status = str(detail.get("reason", detail.get("cause")))
        return Operation(
            PROTOCOL, _DIRECTION[d], OpClass.SESSION, None, TPDU_NAME[code],
            status=status, detail=detail,
        )  # fmt: skip

    # --- S7 PDUs ---------------------------------------------------------------------

    def _s7(self, pdu: bytes, d: int, out: list[Operation]) -> None:
        # Pollers repeat the same read/write items: a job whose parameter part was decoded
        # before is answered from the memo (same bytes, same items), skipping parse().
        if len(pdu) > 11 and pdu[0] == S7_PROTOCOL_ID and pdu[1] == _JOB:
            func = pdu[10]
            if func in (_READ_VAR, _WRITE_VAR):
                info = self._memo.get(pdu[10 : 10 + ((pdu[6] << 8) | pdu[7])])
                if info is not None:
                    op = self._memo_job(info, pdu, d)
                    if op is not None:
                        out.append(op)
                        return
        elif len(pdu) > 13 and pdu[1] == _ACK_DATA and pdu[0] == S7_PROTOCOL_ID:
            # unchanged values: the same answer bytes (but the references) as an earlier one
            answer = self._resp_memo.get(pdu[6:])
            if answer is not None:
                ref = (pdu[4] << 8) | pdu[5]
                if pdu[12] == _READ_VAR:
                    op = self._read_answer(ref, pdu[10], pdu[11], answer, d)
                else:
                    op = self._write_answer(ref, pdu[10], pdu[11], answer, d)
                out.append(op)
                return
        msg = c.parse(pdu)
        if isinstance(msg, Malformed):
            out.append(self._s7_malformed(msg, pdu, d))
            return
        op = _HANDLERS[type(msg)](self, msg, d, pdu)
        if op is not None:
            out.append(op)

    def _remember(self, key: tuple[int, int], info: _Info) -> None:
        p = self._pending
        p[key] = info
        if len(p) > MAX_TRANSACTIONS:
            del p[next(iter(p))]
            self.evicted += 1

    def _job_op(
        self,
        ref: int,
        d: int,
        info: _Info,
        detail: dict[str, Any],
        values: tuple[float, ...] | None = None,
    ) -> Operation:
        fn = info[0]
        self._remember((d, ref), info)
        return Operation(
            PROTOCOL, _DIRECTION[d], FUNCTION_CLASS.get(fn, OpClass.OTHER), fn,
            FUNCTION_NAME.get(fn), None, ref, info[3], info[4], values, info[2], None, None,
            detail,
        )  # fmt: skip

    def _ack_op(
        self,
        msg: Any,
        d: int,
        function: int | None,
        detail: dict[str, Any],
        status: str | None = None,
        values: tuple[float, ...] | None = None,
        info: _Info | None = None,
        count: int | None = None,
    ) -> Operation:
        return self._ack(
            msg.pdu_ref, msg.error_class, msg.error_code, d, function, detail, status, values,
            info, count,
        )  # fmt: skip

    def _ack(
        self,
        ref: int,
        ecls: int,
        ecod: int,
        d: int,
        function: int | None,
        detail: dict[str, Any],
        status: str | None = None,
        values: tuple[float, ...] | None = None,
        info: _Info | None = None,
        count: int | None = None,
    ) -> Operation:
        if info is None:
            info = self._pending.pop((1 - d, ref), None)
        if function is None and info is not None:
            function = info[0]
        if ecls | ecod:
            status = error_name((ecls << 8) | ecod)
            detail["error_class"] = _ERRCLS_NAME.get(ecls, f"0x{ecls:02x}")
        if function is None:
            op_class, name = OpClass.SESSION, "ack"
        else:
            op_class = FUNCTION_CLASS.get(function, OpClass.OTHER)
            name = FUNCTION_NAME.get(function, f"function_0x{function:02x}")
        if info is None:
            return Operation(
                PROTOCOL, _DIRECTION[d], op_class, function, name, None, ref,
                None, count, values, None, status, None, detail,
            )  # fmt: skip
        return Operation(
            PROTOCOL, _DIRECTION[d], op_class, function, name, None, ref,
            info[3], info[4], values, info[2], status, None, detail,
        )  # fmt: skip

    def _memoize(self, pdu: bytes, info: _Info) -> None:
        memo = self._memo
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[pdu[10 : 10 + ((pdu[6] << 8) | pdu[7])]] = info

    def _memo_job(self, info: _Info, pdu: bytes, d: int) -> Operation | None:
        """A read/write job whose parameter part is in the memo; None: let parse() judge."""
        n = len(pdu)
        dstart = 10 + ((pdu[6] << 8) | pdu[7])
        if dstart + ((pdu[8] << 8) | pdu[9]) != n:
            return None
        ref = (pdu[4] << 8) | pdu[5]
        if info[0] == _READ_VAR:
            if dstart != n:
                return None
            return self._job_op(ref, d, info, {"rosctr": "job", "items": _copy(info[5])})
        data = c.parse_data_items(pdu, dstart, n, len(info[1]))
        if isinstance(data, Malformed):
            return None
        return self._write_op(ref, d, info, data)

    def _read_request(self, msg: c.ReadVarRequest, d: int, pdu: bytes) -> Operation:
        info = _items_info(_READ_VAR, msg.items)
        self._memoize(pdu, info)
        return self._job_op(msg.pdu_ref, d, info, {"rosctr": "job", "items": _copy(info[5])})

    def _write_request(self, msg: c.WriteVarRequest, d: int, pdu: bytes) -> Operation:
        info = _items_info(_WRITE_VAR, msg.items)
        self._memoize(pdu, info)
        return self._write_op(msg.pdu_ref, d, info, msg.data)

    def _write_op(
        self, ref: int, d: int, info: _Info, data: tuple[c.DataItem, ...]
    ) -> Operation:
        details = []
        values: list[float] = []
        for it, tmpl, item in zip(info[1], info[5], data, strict=False):
            det = dict(tmpl)
            det["data"] = item.data.hex()
            details.append(det)
            if isinstance(it, c.S7AnyItem):
                v = _values(it.transport_size, item.data)
                if v:
                    values.extend(v)
        vals = tuple(values[:MAX_VALUES]) if values else None
        return self._job_op(ref, d, info, {"rosctr": "job", "items": details}, vals)

    def _remember_answer(self, pdu: bytes, answer: tuple[Any, ...]) -> None:
        if len(pdu) <= MEMO_MAX_PDU:
            memo = self._resp_memo
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[pdu[6:]] = answer

    def _read_response(self, msg: c.ReadVarResponse, d: int, pdu: bytes) -> Operation:
        self._remember_answer(pdu, msg.items)
        return self._read_answer(msg.pdu_ref, msg.error_class, msg.error_code, msg.items, d)

    def _read_answer(
        self, ref: int, ecls: int, ecod: int, items: tuple[c.DataItem, ...], d: int
    ) -> Operation:
        info = self._pending.pop((1 - d, ref), None)
        details, vals, status = _data_items_detail(info, items)
        detail = {"rosctr": "ack_data", "items": details}
        return self._ack(ref, ecls, ecod, d, _READ_VAR, detail, status, vals, info, len(items))

    def _write_response(self, msg: c.WriteVarResponse, d: int, pdu: bytes) -> Operation:
        self._remember_answer(pdu, msg.return_codes)
        return self._write_answer(msg.pdu_ref, msg.error_class, msg.error_code,
                                  msg.return_codes, d)  # fmt: skip

    def _write_answer(
        self, ref: int, ecls: int, ecod: int, codes: tuple[int, ...], d: int
    ) -> Operation:
        info = self._pending.pop((1 - d, ref), None)
        templates = info[5] if info is not None else ()
        n_req = len(templates)
        details = []
        status = None
        for k, rc in enumerate(codes):
            det = dict(templates[k]) if k < n_req else {}
            det["return_code"] = _RC_NAME.get(rc, rc)
            details.append(det)
            if rc != _SUCCESS and status is None:
                status = _RC_NAME.get(rc, f"RETURN_CODE_0x{rc:02x}")
        detail = {"rosctr": "ack_data", "items": details}
        return self._ack(ref, ecls, ecod, d, _WRITE_VAR, detail, status, None, info, len(codes))

    def _setup(self, msg: c.SetupCommunication, d: int, pdu: bytes) -> Operation:
        detail: dict[str, Any] = {"rosctr": _ROSCTR_NAME.get(msg.rosctr, msg.rosctr),
                                  "pdu_length": msg.pdu_length,
                                  "max_amq_calling": msg.max_amq_calling,
                                  "max_amq_called": msg.max_amq_called}  # fmt: skip
        if msg.rosctr == Rosctr.JOB:
            return self._job_op(msg.pdu_ref, d, _info(Function.SETUP_COMMUNICATION), detail)
        return self._ack_op(msg, d, Function.SETUP_COMMUNICATION, detail)

    def _block_job(self, msg: c.BlockControlJob, d: int, pdu: bytes) -> Operation:
        detail: dict[str, Any] = {"rosctr": "job", "function_status": msg.function_status}
        block = None
        if msg.filename is not None:
            detail["filename"] = msg.filename
            block = c.filename_block(msg.filename)
        if msg.function in (Function.UPLOAD, Function.END_UPLOAD):
            detail["upload_id"] = msg.upload_id
            block = self._uploads.get(msg.upload_id)
            if msg.function == Function.END_UPLOAD:
                self._uploads.pop(msg.upload_id, None)
        if msg.function in (Function.DOWNLOAD_ENDED, Function.END_UPLOAD) and msg.code:
            detail["error"] = error_name(msg.code)
        if msg.part2 is not None and len(msg.part2) == 13:
            detail["load_memory_length"] = msg.part2[1:7]
            detail["mc7_length"] = msg.part2[7:13]
        return self._job_op(msg.pdu_ref, d, _info(msg.function, block), detail)

    def _block_ack(self, msg: c.BlockControlAckData, d: int, pdu: bytes) -> Operation:
        info = self._pending.pop((1 - d, msg.pdu_ref), None)
        detail: dict[str, Any] = {"rosctr": "ack_data"}
        if msg.function_status is not None:
            detail["function_status"] = msg.function_status
        if msg.upload_id is not None and msg.function == Function.START_UPLOAD:
            detail["upload_id"] = msg.upload_id
            uploads = self._uploads
            uploads[msg.upload_id] = info[2] if info is not None else None
            if len(uploads) > MAX_TRANSACTIONS:
                del uploads[next(iter(uploads))]
        if msg.length_string is not None:
            detail["block_length"] = msg.length_string
        if msg.data is not None:
            detail["data_length"] = len(msg.data)
        return self._ack_op(msg, d, msg.function, detail, None, None, info)

    def _pi(self, msg: c.PiService, d: int, pdu: bytes) -> Operation:
        detail: dict[str, Any] = {"rosctr": "job", "service": msg.service}
        block = msg.parameter_block
        if msg.service in (PiServiceName.INSE, PiServiceName.DELE) and len(block) >= 2:
            # block count, a reserved byte, then 8-character names "0A00001P"
            names = []
            for k in range(block[0]):
                raw = block[2 + 8 * k : 10 + 8 * k]
                if len(raw) < 7:
                    break
                names.append(c.block_info_block(raw) or raw.hex())
            detail["blocks"] = names
        elif block:
            detail["argument"] = block.decode("latin-1")
        return self._job_op(msg.pdu_ref, d, _info(Function.PI_SERVICE, msg.service), detail)

    def _plc_stop(self, msg: c.PlcStop, d: int, pdu: bytes) -> Operation:
        detail = {"rosctr": "job", "service": msg.service}
        return self._job_op(msg.pdu_ref, d, _info(Function.PLC_STOP, msg.service), detail)

    def _cpu_services(self, msg: c.CpuServices, d: int, pdu: bytes) -> Operation:
        detail = {"rosctr": "job", "parameter": msg.parameter.hex()}
        return self._job_op(msg.pdu_ref, d, _info(Function.CPU_SERVICES), detail)

    def _function_ack(self, msg: c.FunctionAckData, d: int, pdu: bytes) -> Operation:
        return self._ack_op(msg, d, msg.function, {"rosctr": "ack_data"})

    def _plain_ack(self, msg: c.Ack, d: int, pdu: bytes) -> Operation:
        return self._ack_op(msg, d, None, {"rosctr": _ROSCTR_NAME.get(msg.rosctr, msg.rosctr)})

    def _userdata(self, m: c.Userdata, d: int, pdu: bytes) -> Operation:
        g, sf, t = m.function_group, m.subfunction, m.type
        name = _UD_NAME.get((g, sf))
        if name is None:
            name = f"userdata.{GROUP_LABEL.get(g, str(g))}.0x{sf:02x}"
        detail: dict[str, Any] = {"rosctr": "userdata", "type": _UD_TYPE_NAME.get(t, t),
                                  "group": g, "subfunction": sf,
                                  "sequence": m.sequence_number}  # fmt: skip
        dur = m.data_unit_ref
        if dur is not None:
            detail["data_unit_ref"] = dur
            detail["last_data_unit"] = m.last_data_unit == 0
        status = error_name(m.error_code) if m.error_code else None
        response = t in (UserdataType.RESPONSE, UserdataType.NC_RESPONSE)
        if response and m.return_code is not None and m.return_code != _SUCCESS:
            detail["return_code"] = _RC_NAME.get(m.return_code, m.return_code)
        request = t in (UserdataType.REQUEST, UserdataType.NC_REQUEST)
        push = not request and not response
        obj: str | None = None
        count: int | None = None
        address: int | None = None
        values: tuple[float, ...] | None = None
        data = m.data
        ok = m.return_code == _SUCCESS
        if g == FunctionGroup.CPU and sf == CpuSubfunction.READ_SZL:
            # A long SZL answer comes in fragments: the first has the SZL header and
            # "more follows", the client asks for the next one with a follow-up request
            # (12-byte parameter, no data), continuations carry only records.
            szl = self._szl
            state = szl[1 - d] if request else szl[d]
            if request and dur is not None:
                if state is not None:
                    obj = state[0]
                    szl[1 - d] = (*state[:3], True)
            elif response and state is not None and state[3]:
                obj = state[0]
                detail["szl_id"], detail["szl_index"] = state[1], state[2]
                detail["continuation"] = True
                detail["records"] = data[:SZL_RECORD_BYTES].hex()
                szl[d] = (*state[:3], False) if m.last_data_unit else None
            elif len(data) >= 4 and ok:
                szl_id, index = (data[0] << 8) | data[1], (data[2] << 8) | data[3]
                obj = f"SZL 0x{szl_id:04x}"
                detail["szl_id"] = szl_id
                detail["szl_index"] = index
                if response and len(data) >= 8:
                    detail["record_length"] = (data[4] << 8) | data[5]
                    count = (data[6] << 8) | data[7]
                    detail["records"] = data[8 : 8 + SZL_RECORD_BYTES].hex()  # raw, for inventory
                    szl[d] = (obj, szl_id, index, False) if m.last_data_unit else None
        elif g == FunctionGroup.CYCLIC:
            cyc = self._cyclic(m, d, request, response, detail)
            if isinstance(cyc, Malformed):
                return self._ud_malformed(cyc, m, d, name, detail)
            if cyc is not None:
                obj, address, count, values, item_status = cyc
                status = status or item_status
        elif g == FunctionGroup.BLOCK:
            if request and sf == BlockSubfunction.LIST_BLOCKS_OF_TYPE:
                obj = c.block_type_label(data)
            elif request and sf == BlockSubfunction.GET_BLOCK_INFO:
                obj = c.block_info_block(data)
            elif response and sf != BlockSubfunction.GET_BLOCK_INFO and ok:
                count = len(data) // 4
        elif g == FunctionGroup.TIME and len(data) >= 10:
            detail["timestamp"] = c.s7_timestamp(data)
        elif push and g == FunctionGroup.CPU and sf == CpuSubfunction.DIAGNOSTIC_MESSAGE:
            detail["event_id"] = f"0x{(data[0] << 8) | data[1]:04x}" if len(data) >= 2 else None
        if request:
            udp = self._ud_pending
            udp[(d, m.pdu_ref)] = obj
            if len(udp) > MAX_TRANSACTIONS:
                del udp[next(iter(udp))]
                self.evicted += 1
        elif response:
            req_obj = self._ud_pending.pop((1 - d, m.pdu_ref), None)
            if obj is None:
                obj = req_obj
        return Operation(
            PROTOCOL, _DIRECTION[d], userdata_class(t, g, sf), None, name, None, m.pdu_ref,
            address, count, values, obj, status, None, detail,
        )  # fmt: skip

    def _cyclic(
        self, m: c.Userdata, d: int, request: bool, response: bool, detail: dict[str, Any]
    ) -> _CyclicResult | Malformed | None:
        """Subscriptions (requests) keep their items; answers and pushes quote the job id
        (sequence number of the answer) and get the items' areas and typed values.
        """
        sf, data = m.subfunction, m.data
        if sf == CyclicSubfunction.UNSUBSCRIBE:
            if request and len(data) >= 2:
                detail["job"] = data[1]
                self._subs.pop((1 - d, data[1]), None)
            return None
        if sf not in _CYCLIC_DATA or m.return_code != _SUCCESS or not data:
            return None
        if request:
            sub = c.parse_cyclic_request(data)
            if isinstance(sub, Malformed):
                return sub
            info = _items_info(0, sub.items)
            _bounded_put(self._cyc_req, (d, m.pdu_ref), info)
            detail["interval_ms"] = _TIMEBASE_MS.get(sub.timebase, 0) * sub.factor
            detail["items"] = _copy(info[5])
            return info[2], info[3], info[4], None, None
        items = c.parse_cyclic_data(data)
        if isinstance(items, Malformed):
            return items
        if response:
            found = self._cyc_req.pop((1 - d, m.pdu_ref), None)
            if found is not None:
                _bounded_put(self._subs, (d, m.sequence_number), found)
        else:
            found = self._subs.get((d, m.sequence_number))
        details, values, status = _data_items_detail(found, items)
        detail["items"] = details
        if found is None:
            return None, None, len(items), values, status
        return found[2], found[3], len(items), values, status

    def _plus_op(self, m: c.S7CommPlusPdu, d: int, pdu: bytes) -> Operation | None:
        stash = self._plus[d]
        if not m.trailer:  # a fragment: report the message once, on its last fragment
            self._plus[d] = (stash[0], stash[1] + 1) if stash else (m, 1)
            return None
        fragments = 1
        if stash is not None:
            m, fragments = stash[0], stash[1] + 1
            self._plus[d] = None
        opcode = m.opcode
        fc = m.function_code
        detail: dict[str, Any] = {"version": m.version,
                                  "opcode": _PLUS_OPCODE_NAME.get(opcode, opcode)
                                  if opcode is not None else None}  # fmt: skip
        if fc is not None:
            detail["function_code"] = fc
        sid = m.session_id
        if sid is not None:
            detail["session_id"] = sid
        if fragments > 1:
            detail["fragments"] = fragments
        if fc is not None:
            name = _PLUS_FUNCTION_NAME.get(fc, f"function_0x{fc:04x}")
        elif opcode == PlusOpcode.NOTIFICATION:
            name = "notification"
        else:
            name = "frame"
        op_class = OpClass.SESSION if fc in _PLUS_SESSION else OpClass.OTHER
        return Operation(
            PROTOCOL_PLUS, _DIRECTION[d], op_class, fc, name, None, m.sequence_number,
            None, None, None, None, None, None, detail,
        )  # fmt: skip

    # --- malformed -------------------------------------------------------------------

    def _malformed(self, reason: str, d: int, offset: int, raw: bytes, text: str) -> Operation:
        detail: dict[str, Any] = {"offset": offset, "error": text}
        if raw:
            detail["raw"] = raw[:16].hex()
        return Operation(
            PROTOCOL, _DIRECTION[d], OpClass.MALFORMED, malformed=str(reason), detail=detail
        )

    def _ud_malformed(
        self, bad: Malformed, m: c.Userdata, d: int, name: str, detail: dict[str, Any]
    ) -> Operation:
        """Userdata whose parameter is fine but whose data part breaks its layout."""
        detail["offset"] = bad.offset
        detail["error"] = bad.detail
        return Operation(
            PROTOCOL, _DIRECTION[d], OpClass.MALFORMED, None, name, None, m.pdu_ref,
            malformed=str(bad.reason), detail=detail,
        )  # fmt: skip

    def _s7_malformed(self, m: Malformed, pdu: bytes, d: int) -> Operation:
        detail: dict[str, Any] = {"offset": m.offset, "error": m.detail, "raw": pdu[:16].hex()}
        protocol = PROTOCOL_PLUS if pdu[:1] == bytes((S7PLUS_PROTOCOL_ID,)) else PROTOCOL
        fc = name = ref = None
        if len(pdu) >= 10 and pdu[0] == S7_PROTOCOL_ID:
            rosctr = pdu[1]
            ref = (pdu[4] << 8) | pdu[5]
            detail["rosctr"] = _ROSCTR_NAME.get(rosctr, rosctr)
            p = 12 if rosctr in (Rosctr.ACK, Rosctr.ACK_DATA) else 10
            parlg = (pdu[6] << 8) | pdu[7]
            if rosctr in (Rosctr.JOB, Rosctr.ACK_DATA) and parlg and len(pdu) > p:
                fc = pdu[p]
                name = FUNCTION_NAME.get(fc, f"function_0x{fc:02x}")
            elif rosctr == Rosctr.USERDATA and parlg >= 8 and len(pdu) >= 18:
                g, sf = pdu[15] & 0x0F, pdu[16]
                name = _UD_NAME.get((g, sf), f"userdata.{GROUP_LABEL.get(g, str(g))}.0x{sf:02x}")
        return Operation(
            protocol, _DIRECTION[d], OpClass.MALFORMED, fc, name, None, ref,
            malformed=str(m.reason), detail=detail,
        )  # fmt: skip


_Handler = Any
_HANDLERS: dict[type, _Handler] = {
    c.ReadVarRequest: S7Session._read_request,
    c.ReadVarResponse: S7Session._read_response,
    c.WriteVarRequest: S7Session._write_request,
    c.WriteVarResponse: S7Session._write_response,
    c.SetupCommunication: S7Session._setup,
    c.BlockControlJob: S7Session._block_job,
    c.BlockControlAckData: S7Session._block_ack,
    c.PiService: S7Session._pi,
    c.PlcStop: S7Session._plc_stop,
    c.CpuServices: S7Session._cpu_services,
    c.FunctionAckData: S7Session._function_ack,
    c.Ack: S7Session._plain_ack,
    c.Userdata: S7Session._userdata,
    c.S7CommPlusPdu: S7Session._plus_op,
}


# --- content probe -----------------------------------------------------------------------


def probe(data: bytes, from_client: bool) -> Probe:
    """Recognise S7comm / S7comm-plus from the first bytes of a stream direction.

    Walks the first TPKT frames: each must be a well-formed TPKT with a class 0 COTP TPDU.
    A DT whose user data starts with 0x32 and a known ROSCTR, or 0x72 and a known version,
    is a YES; a CR/CC whose TSAPs look like S7 (two bytes, connection type 1-3, or
    "SIMATIC-...") is a YES; anything else on TPKT (RDP, MMS) is decided by the following
    DT. Modbus (length 0 where TPKT has its length), TLS, HTTP, DNP3 and IEC-104 fail the
    first check.
    """
    n = len(data)
    pos = 0
    for _ in range(8):
        if n - pos < 4:
            return Probe.NEED_MORE if _prefix_ok(data, pos) else Probe.NO
        if data[pos] != 3 or data[pos + 1] != 0:
            return Probe.NO
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 7:
            return Probe.NO
        if n - pos < 6:
            return Probe.NEED_MORE
        li, code = data[pos + 4], data[pos + 5] & 0xF0
        fixed = FIXED_PART.get(code)
        if fixed is None or li < fixed or 5 + li > length:
            return Probe.NO
        if code == 0xF0:
            start = pos + 5 + li
            if length > 5 + li:  # DT with user data: look at the protocol id
                if n <= start + 1:
                    return Probe.NEED_MORE
                pid, second = data[start], data[start + 1]
                if pid == S7_PROTOCOL_ID:
                    return Probe.YES if second in _ROSCTR_NAME else Probe.NO
                if pid == S7PLUS_PROTOCOL_ID:
                    return Probe.YES if second in (1, 2, 3, 0xFE) else Probe.NO
                return Probe.NO
        elif code in (0xE0, 0xD0):
            if n - pos < length:
                return Probe.NEED_MORE
            tpdu = parse_tpkt(data[pos : pos + length])
            if not isinstance(tpdu, ConnectionRequest | ConnectionConfirm):
                return Probe.NO
            if _s7_tsap(tpdu.dst_tsap) or _s7_tsap(tpdu.src_tsap):
                return Probe.YES
        if n - pos < length:
            return Probe.NEED_MORE
        pos += length
    return Probe.NO


def _prefix_ok(data: bytes, pos: int) -> bool:
    rest = data[pos:]
    return not rest or (rest[0] == 3 and (len(rest) < 2 or rest[1] == 0))


def _s7_tsap(tsap: bytes | None) -> bool:
    if tsap is None:
        return False
    if len(tsap) == 2:
        return tsap[0] in (ConnectionType.PG, ConnectionType.OP, ConnectionType.S7_BASIC)
    return tsap.startswith(b"SIMATIC-")
