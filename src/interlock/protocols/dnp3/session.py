"""DNP3 stream state: link framing, transport reassembly, request/response pairing.

Bytes of each direction are cut into link frames (IEEE 1815-2012 9.2), frames of the user data
functions are reassembled into application fragments per (source, destination, DIR) following the
transport rules of 8.2.1.2, and each fragment becomes one :class:`Operation` when its last
segment arrives. Link-only frames (RESET_LINK_STATES, LINK_STATUS, ACK...) give a SESSION
operation each. The DIR bit of each frame, not the TCP role, sets ``Operation.direction``.

Resynchronisation: garbage where a header should be is skipped up to the next 0x05 0x64 and
reported once (BAD_START) until a good frame is seen again. Before the first good frame of a
direction (a capture that starts mid-stream) up to one maximal frame of garbage is skipped
silently. The carry-over buffer never holds more than one frame (292 octets); reassembly is
capped at 64 KiB per fragment and 64 fragments in progress, pairing at 1024 open requests.
"""

from __future__ import annotations

import struct
from typing import Any

from interlock.protocols.base import Direction, OpClass, Operation

from .codec import Summary, scan_fragment
from .fields import (
    HEADER_SIZE,
    IIN,
    MAX_FRAME_SIZE,
    TRANSPORT_FIN,
    TRANSPORT_FIR,
    TRANSPORT_SEQ,
    FunctionCode,
    Reason,
)
from .link import (
    CRC_WORD_TABLE,
    HEADER_WORDS,
    check_link_function,
    link_function_name,
    strip_crcs,
)
from .link import unblock as _unblock

PROTOCOL = "dnp3"
MAX_FRAGMENT = 65536
MAX_REASSEMBLIES = 64
MAX_OPEN_REQUESTS = 1024

_ADDRS = struct.Struct("<HH")
_new_op = tuple.__new__  # Operation's own __new__ costs 0.3 us per call
_REQUEST = Direction.REQUEST
_RESPONSE = Direction.RESPONSE
_MALFORMED = OpClass.MALFORMED
_FC = FunctionCode


def _op_classes() -> dict[int, OpClass]:
    """OpClass of each application function code (responses are paired, see feed)."""
    table: dict[int, OpClass] = {_FC.CONFIRM: OpClass.SESSION, _FC.READ: OpClass.READ,
                                 _FC.WRITE: OpClass.WRITE}
    for fc in range(_FC.SELECT, _FC.FREEZE_AT_TIME_NR + 1):
        table[fc] = OpClass.COMMAND
    for fc in range(_FC.COLD_RESTART, _FC.ASSIGN_CLASS + 1):
        table[fc] = OpClass.CONTROL
    table[_FC.ACTIVATE_CONFIG] = OpClass.CONTROL
    table[_FC.DELAY_MEASURE] = OpClass.DIAGNOSTIC
    table[_FC.RECORD_CURRENT_TIME] = OpClass.DIAGNOSTIC
    for fc in range(_FC.OPEN_FILE, _FC.ABORT_FILE + 1):
        table[fc] = OpClass.FILE
    for fc in (_FC.AUTHENTICATE_REQ, _FC.AUTH_REQ_NO_ACK, _FC.AUTHENTICATE_RESP):
        table[fc] = OpClass.SESSION
    table[_FC.UNSOLICITED_RESPONSE] = OpClass.MONITOR
    table[_FC.RESPONSE] = OpClass.READ
    return table


OP_CLASS = _op_classes()
FUNCTION_NAMES = {f.value: f.name for f in FunctionCode}
# requests that expect a response to pair with (not CONFIRM, not the "no ack" variants)
_ANSWERED = frozenset(OP_CLASS) - {
    _FC.CONFIRM, _FC.DIRECT_OPERATE_NR, _FC.IMMED_FREEZE_NR, _FC.FREEZE_CLEAR_NR,
    _FC.FREEZE_AT_TIME_NR, _FC.AUTH_REQ_NO_ACK, _FC.RESPONSE, _FC.UNSOLICITED_RESPONSE,
    _FC.AUTHENTICATE_RESP}


def _iin_names(shift: int) -> tuple[str, ...]:
    return tuple(",".join(f.name for f in IIN if (f >> shift) & 0xFF & b and f.name)
                 for b in range(256))


_IIN1 = _iin_names(8)
_IIN2 = _iin_names(0)


def iin_status(iin: int) -> str | None:
    """Comma-joined IIN flag names (IIN1 first), None if no flag is set."""
    hi = _IIN1[iin >> 8]
    lo = _IIN2[iin & 0xFF]
    if hi and lo:
        return hi + "," + lo
    return hi or lo or None


class _Stream:
    """Framing state of one direction."""

    __slots__ = ("buf", "lost", "skipped", "synced")

    def __init__(self) -> None:
        self.buf = b""
        self.synced = False  # a good frame has been seen
        self.lost = False  # framing lost and already reported
        self.skipped = 0  # garbage skipped before the first good frame


class DNP3Session:
    """Operations of one DNP3 conversation (a TCP connection or a UDP flow).

    >>> s = DNP3Session()
    >>> frame = bytes.fromhex("056405c001000200" "74e3")  # RESET_LINK_STATES, master 2 -> 1
    >>> [(o.function, o.direction.value, o.unit) for o in s.feed(frame, True)]
    [('RESET_LINK_STATES', 'request', 1)]
    """

    def __init__(self) -> None:
        self._streams = {True: _Stream(), False: _Stream()}
        # (source, destination, DIR) -> [next transport seq, parts, size]
        self._reassembly: dict[tuple[int, int, int], list[Any]] = {}
        # (outstation, application seq) -> OpClass of the request awaiting its response
        self._requests: dict[tuple[int, int], OpClass] = {}

    def lost(self, from_client: bool) -> None:
        """Bytes of one direction were lost: resynchronise its link framing, keep the rest."""
        self._streams[from_client] = _Stream()

    def feed(self, data: bytes, from_client: bool) -> list[Operation]:
        """Operations completed by the next ``data`` of one direction; never raises.

        The common case (``data`` is exactly one link frame of user data holding a whole
        application fragment, nothing buffered and no fragment in reassembly) goes straight
        from the checked header to :meth:`_fragment`; anything else, or anything these checks
        doubt, takes :meth:`_feed`, which gives the same operations (tests/perf_paths checks it).
        """
        st = self._streams[from_client]
        if not st.buf and type(data) is bytes and len(data) > 12 and data[0] == 0x05:
            w0, w1, dst, src, crc = HEADER_WORDS.unpack_from(data)
            dlen = (w1 & 0xFF) - 5
            ctl = w1 >> 8
            t = CRC_WORD_TABLE
            if (ctl & 0x40 and 3 <= ctl & 0x0F <= 4 and dlen > 0  # PRM, user data
                    and len(data) == HEADER_SIZE + dlen + 2 * ((dlen + 15) >> 4)
                    and w0 == 0x6405 and t[t[t[t[w0] ^ w1] ^ dst] ^ src] ^ 0xFFFF == crc
                    and not self._reassembly):
                user = _unblock(data, HEADER_SIZE, dlen)
                if type(user) is bytes and user[0] & 0xC0 == 0xC0:
                    st.synced = True
                    st.lost = False
                    ops: list[Operation] = []
                    self._fragment(user[1:], src, dst, ctl & 0x80, ops)
                    return ops
        return self._feed(data, from_client)

    def _feed(self, data: bytes, from_client: bool) -> list[Operation]:
        """The general path of :meth:`feed`: any framing, resynchronisation, reassembly."""
        st = self._streams[from_client]
        buf = st.buf + data if st.buf else bytes(data)
        n = len(buf)
        off = 0
        ops: list[Operation] = []
        t = CRC_WORD_TABLE
        while off < n:
            if buf[off] != 0x05 or (off + 1 < n and buf[off + 1] != 0x64):
                i = buf.find(b"\x05\x64", off + 1)
                if i < 0:
                    i = n - 1 if buf[n - 1] == 0x05 else n
                self._junk(st, i - off, from_client, ops)
                off = i
                continue
            if n - off < HEADER_SIZE:
                break
            # the header as words: start, length|control<<8, destination, source, CRC
            w0, w1, dst, src, crc = HEADER_WORDS.unpack_from(buf, off)
            if t[t[t[t[w0] ^ w1] ^ dst] ^ src] ^ 0xFFFF != crc:
                if not st.lost and (st.synced or st.skipped == 0):
                    ops.append(self._link_error(Reason.BAD_HEADER_CRC, from_client,
                                                "link header CRC mismatch"))
                st.lost = True
                off += 1
                continue
            dlen = (w1 & 0xFF) - 5
            if dlen < 0:
                ops.append(self._frame_error(buf, off, Reason.BAD_LENGTH,
                                             f"length {dlen + 5} < 5"))
                st.synced, st.lost = True, False
                off += HEADER_SIZE
                continue
            size = HEADER_SIZE + dlen + 2 * ((dlen + 15) >> 4)
            if n - off < size:
                break
            self._frame(buf, off, dlen, w1 >> 8, dst, src, ops)
            st.synced, st.lost = True, False
            off += size
        st.buf = buf[off:] if off < n else b""
        return ops

    # ------------------------------------------------------------------ framing errors

    def _junk(self, st: _Stream, skipped: int, from_client: bool, ops: list[Operation]) -> None:
        if st.lost or skipped <= 0:
            return
        if not st.synced:
            st.skipped += skipped  # mid-stream pickup: tolerate up to one maximal frame
            if st.skipped <= MAX_FRAME_SIZE:
                return
        st.lost = True
        ops.append(self._link_error(Reason.BAD_START, from_client,
                                    "no 0x05 0x64 start octets where a frame should begin"))

    @staticmethod
    def _link_error(reason: str, from_client: bool, text: str) -> Operation:
        return Operation(PROTOCOL, _REQUEST if from_client else _RESPONSE, _MALFORMED,
                         malformed=reason, detail={"error": text})

    @staticmethod
    def _frame_error(buf: bytes, off: int, reason: str, text: str,
                     summary: Summary | None = None) -> Operation:
        ctl = buf[off + 3]
        dst, src = _ADDRS.unpack_from(buf, off + 4)
        master = bool(ctl & 0x80)
        detail: dict[str, Any] = {"link_src": src, "link_dst": dst, "error": text}
        fc = summary.function if summary is not None else None
        if summary is None or fc is None:  # nothing readable past the link header
            return Operation(PROTOCOL, _REQUEST if master else _RESPONSE, _MALFORMED, None,
                             link_function_name(bool(ctl & 0x40), ctl & 0x0F),
                             dst if master else src, malformed=reason, detail=detail)
        s = summary
        detail["objects"] = s.objects
        return Operation(PROTOCOL, _REQUEST if master else _RESPONSE, _MALFORMED, fc,
                         FUNCTION_NAMES.get(fc), dst if master else src, s.seq,
                         s.address, s.points, s.values, s.label,
                         iin_status(s.iin) if s.iin is not None else None, reason, detail)

    # ------------------------------------------------------------------ frames

    def _frame(self, buf: bytes, off: int, dlen: int, ctl: int, dst: int, src: int,
               ops: list[Operation]) -> None:
        function = ctl & 0x0F
        user = _unblock(buf, off + HEADER_SIZE, dlen) if dlen else b""
        if isinstance(user, int):
            data = strip_crcs(buf, off + HEADER_SIZE, dlen)
            th = data[0]
            summary = None
            if ctl & 0x40 and function in (3, 4) and th & TRANSPORT_FIR and th & TRANSPORT_FIN:
                summary = scan_fragment(data[1:])
            ops.append(self._frame_error(buf, off, Reason.BAD_DATA_CRC,
                                         f"user data CRC mismatch at octet {user - off}",
                                         summary))
            return
        master = ctl & 0x80
        if not (ctl & 0x40 and (function == 4 or function == 3)) or not dlen:
            prm = bool(ctl & 0x40)
            bad = check_link_function(prm, function, dlen)
            if bad is not None:
                ops.append(self._frame_error(buf, off, bad[0], bad[1]))
                return
            ops.append(Operation(PROTOCOL, _REQUEST if master else _RESPONSE, OpClass.SESSION,
                                 None, link_function_name(prm, function),
                                 dst if master else src,
                                 detail={"link_src": src, "link_dst": dst}))
            return
        th = user[0]
        if th & 0xC0 == 0xC0:  # FIR and FIN: the whole fragment in one frame
            if self._reassembly:
                self._abandon((src, dst, master), buf, off, ops)
            self._fragment(user[1:], src, dst, master, ops)
            return
        self._segment(th, user, src, dst, master, buf, off, ops)

    def _abandon(self, key: tuple[int, int, int], buf: bytes, off: int,
                 ops: list[Operation]) -> None:
        """A FIR segment discards a fragment in progress (8.2.1.2): report what was lost."""
        r = self._reassembly.pop(key, None)
        if r is not None:
            ops.append(self._frame_error(buf, off, Reason.INCOMPLETE_FRAGMENT,
                                         f"new first segment abandons {r[2]} octets"))

    def _segment(self, th: int, user: bytes, src: int, dst: int, master: int, buf: bytes,
                 off: int, ops: list[Operation]) -> None:
        key = (src, dst, master)
        seq = th & TRANSPORT_SEQ
        if th & TRANSPORT_FIR:
            self._abandon(key, buf, off, ops)
            if len(self._reassembly) >= MAX_REASSEMBLIES:
                del self._reassembly[next(iter(self._reassembly))]
            self._reassembly[key] = [(seq + 1) & TRANSPORT_SEQ, [user[1:]], len(user) - 1]
            return
        r = self._reassembly.get(key)
        if r is None or r[0] != seq:
            if r is not None:
                del self._reassembly[key]
            why = ("no first segment" if r is None else f"sequence {seq}, expected {r[0]}")
            ops.append(self._frame_error(buf, off, Reason.BAD_TRANSPORT_SEQUENCE, why))
            return
        r[1].append(user[1:])
        r[2] += len(user) - 1
        if r[2] > MAX_FRAGMENT:
            del self._reassembly[key]
            ops.append(self._frame_error(buf, off, Reason.FRAGMENT_TOO_LONG,
                                         f"fragment beyond {MAX_FRAGMENT} octets"))
            return
        if th & TRANSPORT_FIN:
            del self._reassembly[key]
            self._fragment(b"".join(r[1]), src, dst, master, ops)
        else:
            r[0] = (seq + 1) & TRANSPORT_SEQ

    # ------------------------------------------------------------------ application

    def _fragment(self, frag: bytes, src: int, dst: int, master: int,
                  ops: list[Operation]) -> None:
        (fc, seq, control, iin, address, points, values, label, objects, reason, offset,
         text) = scan_fragment(frag)
        unit = dst if master else src
        detail: dict[str, Any] = {"link_src": src, "link_dst": dst, "objects": objects}
        if reason is not None or fc is None:
            op_class = _MALFORMED
            detail["error"] = text
            detail["offset"] = offset
        elif fc == 129:
            op_class = self._requests.pop((unit, seq), OpClass.READ)
            if not control & 0x40:
                # more fragments follow, each with the next sequence number (4.2.2.3)
                self._remember((unit, (seq + 1) & 0x0F), op_class)
        else:
            op_class = OP_CLASS[fc]
            if fc in _ANSWERED:
                requests = self._requests
                key = (unit, seq)
                if key in requests or len(requests) < MAX_OPEN_REQUESTS:
                    requests[key] = op_class
                else:
                    self._remember(key, op_class)
        if text and reason is None:
            detail["note"] = text  # objects of unknown size were left undecoded
        ops.append(_new_op(Operation, (
            PROTOCOL, _REQUEST if master else _RESPONSE, op_class, fc,
            FUNCTION_NAMES.get(fc) if fc is not None else None, unit, seq, address, points,
            values, label, iin_status(iin) if iin else None, reason, detail)))

    def _remember(self, key: tuple[int, int], op_class: OpClass) -> None:
        requests = self._requests
        if key not in requests and len(requests) >= MAX_OPEN_REQUESTS:
            del requests[next(iter(requests))]  # flood: forget the oldest request
        requests[key] = op_class
