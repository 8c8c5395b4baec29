"""IEC 60870-5-104 stream session: TCP bytes per direction in, one Operation per APDU out.

Framing follows 104 §5: an APDU is the start octet 0x68, a length octet (4..253) and that many
octets. A frame whose start or length octet is wrong means framing is lost; the session then
skips octets until an APCI that looks right (start, length and a valid I, S or U control
field) and reports the skipped run as one malformed Operation. Only the undecided tail of a
stream (at most one APDU, 255 octets) is buffered, so memory stays bounded whatever arrives.

Operation fields: ``function_code`` the type id of an I format APDU (None for S and U),
``function`` its name, "S", or the U function ("STARTDT_ACT"...); ``unit`` the common address;
``transaction`` N(S); ``address`` the first IOA; ``count`` the number of objects; ``values`` one
number per object (states, measured values, counters, commanded states and set-points);
``status`` the cause ("spontaneous", "activation_con"..., with ",negative" and ",test"). Monitor
data sent because of an interrogation, counter interrogation or read is ``READ``, other monitor
data ``MONITOR``. ``detail`` holds cot, originator, sq, recv_seq, plus "ioas" (count > 1),
"quality" (flag names per object, when any is set), "time" (first object; ISO 8601 for
CP56Time2a, "MM:SS.mmm" for CP24Time2a), "qualifier" and "select" (S/E) where the type has them.
Valid APDUs of the common types are read by a struct-based fast path that gives the same
Operation as the full parser (tested), at a few microseconds each.

Besides decoding, the session keeps two small pieces of state, both bounded:

* the next expected send sequence number N(S) per direction (104 §5.1): an I format APDU that
  does not carry it gets ``detail["expected_tx"]`` (lost frames, or an injected APDU);
* the open activations (commands, interrogations, parameters) keyed by type id, common address
  and IOA, capped at :data:`MAX_OPEN`; a confirmation or termination from the outstation gets
  ``detail["request_tx"]``, the N(S) of the activation it answers.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol, cast

from interlock.protocols.base import Direction, Malformed, OpClass, Operation
from interlock.protocols.iec104.codec import (
    CP24Time2a,
    CP56Time2a,
    IFormat,
    SFormat,
    UFormat,
    parse,
)
from interlock.protocols.iec104.fields import (
    APCI_START,
    APDU_MAX_LENGTH,
    APDU_MIN_LENGTH,
    Cause,
    Quality,
    Reason,
    TypeID,
    UFunction,
)

PROTOCOL = "iec104"
MAX_OPEN = 1024  # open activations remembered per session
SKIP_REPORT = 65536  # a run of garbage is reported at least once per this many octets

_REQ, _RESP = Direction.REQUEST, Direction.RESPONSE


class _Valued(Protocol):
    @property
    def value(self) -> float: ...


def _status_text(octet: int) -> str:
    cause = octet & 0x3F
    text = Cause(cause).name.lower() if cause in Cause._value2member_map_ else f"cause_{cause}"
    if octet & 0x40:
        text += ",negative"
    if octet & 0x80:
        text += ",test"
    return text


_STATUS = tuple(_status_text(i) for i in range(256))
_TYPE_NAME = {int(t): t.name for t in TypeID}
_U_NAME = {int(u): u.name for u in UFunction}
_QUALITY_NAME = tuple(Quality(i).name or "" for i in range(256))

_VALUED = frozenset({1, 2, 30, 3, 4, 31, 5, 6, 32, 7, 8, 33, 9, 10, 34, 21, 11, 12, 35,
                     13, 14, 36, 15, 16, 37, 45, 46, 47, 48, 49, 50, 51,
                     58, 59, 60, 61, 62, 63, 64, 110, 111, 112})
_TIMED = frozenset({2, 4, 6, 8, 10, 12, 14, 16, 30, 31, 32, 33, 34, 35, 36, 37,
                    58, 59, 60, 61, 62, 63, 64, 103, 107})
_QUALIFIED = frozenset({1, 2, 30, 3, 4, 31, 5, 6, 32, 7, 8, 33, 9, 10, 34, 11, 12, 35,
                        13, 14, 36})
_COMMANDS = frozenset({45, 46, 47, 58, 59, 60})  # SCO/DCO/RCO: qualifier QU and S/E
_SETPOINTS = frozenset({48, 49, 50, 61, 62, 63})  # QOS: qualifier QL and S/E
_QUALIFIER_ATTR = {70: "coi", 100: "qoi", 101: "rqt", 105: "qrp", 110: "qpm", 111: "qpm",
                   112: "qpm", 113: "qpa"}
# activations the session pairs with their confirmation
_ACTIVATED = frozenset({*range(45, 52), *range(58, 65), *range(100, 108), *range(110, 114)})
_ANSWER_CAUSES = frozenset({7, 9, 10, 44, 45, 46, 47})
_CLOSING_CAUSES = frozenset({10, 44, 45, 46, 47})


# Fast path (see Iec104Session._fast_information): per type id the struct format of one
# element (value field first, then quality/qualifier, time tag skipped as padding), how many
# fields it unpacks to, its length, how the value reads (_VK_*), which field holds the quality
# (-1 none) and its mask, the qualifier kind (_CK_*), the time tag kind and its offset.
_VK_NUMBER, _VK_NVA, _VK_BIT, _VK_DPI, _VK_VTI = range(5)
_CK_NONE, _CK_QU, _CK_QOS, _CK_QPM = range(4)
_FastSpec = tuple[str, int, int, int, int, int, int, int, int]
_FAMILIES: dict[str, tuple[str, int, int, int, int]] = {
    # name: (fields, value kind, quality field, quality mask, qualifier kind)
    "siq": ("B", _VK_BIT, 0, 0xF0, _CK_NONE),
    "diq": ("B", _VK_DPI, 0, 0xF0, _CK_NONE),
    "vti": ("BB", _VK_VTI, 1, 0xF1, _CK_NONE),
    "bsi": ("IB", _VK_NUMBER, 1, 0xF1, _CK_NONE),
    "nva": ("hB", _VK_NVA, 1, 0xF1, _CK_NONE),
    "nva_nq": ("h", _VK_NVA, -1, 0, _CK_NONE),
    "sva": ("hB", _VK_NUMBER, 1, 0xF1, _CK_NONE),
    "r32": ("fB", _VK_NUMBER, 1, 0xF1, _CK_NONE),
    "bcr": ("iB", _VK_NUMBER, -1, 0, _CK_NONE),
    "sco": ("B", _VK_BIT, -1, 0, _CK_QU),
    "dco": ("B", _VK_DPI, -1, 0, _CK_QU),
    "se_nva": ("hB", _VK_NVA, -1, 0, _CK_QOS),
    "se_sva": ("hB", _VK_NUMBER, -1, 0, _CK_QOS),
    "se_r32": ("fB", _VK_NUMBER, -1, 0, _CK_QOS),
    "bsi_cmd": ("I", _VK_NUMBER, -1, 0, _CK_NONE),
    "p_nva": ("hB", _VK_NVA, -1, 0, _CK_QPM),
    "p_sva": ("hB", _VK_NUMBER, -1, 0, _CK_QPM),
    "p_r32": ("fB", _VK_NUMBER, -1, 0, _CK_QPM),
}
_FAST_TYPES: dict[int, tuple[str, int]] = {  # type id: (family, time tag kind)
    1: ("siq", 0), 2: ("siq", 1), 30: ("siq", 2),
    3: ("diq", 0), 4: ("diq", 1), 31: ("diq", 2),
    5: ("vti", 0), 6: ("vti", 1), 32: ("vti", 2),
    7: ("bsi", 0), 8: ("bsi", 1), 33: ("bsi", 2),
    9: ("nva", 0), 10: ("nva", 1), 34: ("nva", 2), 21: ("nva_nq", 0),
    11: ("sva", 0), 12: ("sva", 1), 35: ("sva", 2),
    13: ("r32", 0), 14: ("r32", 1), 36: ("r32", 2),
    15: ("bcr", 0), 16: ("bcr", 1), 37: ("bcr", 2),
    45: ("sco", 0), 58: ("sco", 2), 46: ("dco", 0), 59: ("dco", 2), 47: ("dco", 0),
    60: ("dco", 2), 48: ("se_nva", 0), 61: ("se_nva", 2), 49: ("se_sva", 0),
    62: ("se_sva", 2), 50: ("se_r32", 0), 63: ("se_r32", 2), 51: ("bsi_cmd", 0),
    64: ("bsi_cmd", 2), 110: ("p_nva", 0), 111: ("p_sva", 0), 112: ("p_r32", 0),
}


def _fast_spec(family: str, tk: int) -> _FastSpec:
    fields, vk, qf, qmask, ck = _FAMILIES[family]
    toff = struct.calcsize("<" + fields)
    fmt = fields + "x" * (0, 3, 7)[tk]
    return (fmt, len(fields), struct.calcsize("<" + fmt), vk, qf, qmask, ck, tk, toff)


_FAST: dict[int, _FastSpec] = {t: _fast_spec(fam, tk) for t, (fam, tk) in _FAST_TYPES.items()}
_STRUCTS: dict[tuple[int, int], struct.Struct] = {}
_CP56 = struct.Struct("<HBBBBB")
MAX_STRUCTS = 4096  # (type id, VSQ) layouts cached; a flood of odd layouts is not cached


def _element_struct(t: int, vsq: int, fmt: str, n: int, sq: bool) -> struct.Struct:
    st = struct.Struct("<HB" + fmt * n if sq else "<" + ("HB" + fmt) * n)
    if len(_STRUCTS) < MAX_STRUCTS:
        _STRUCTS[(t, vsq)] = st
    return st


def _cp24_text(b: bytes, p: int) -> str:
    s, ms = divmod(b[p] | b[p + 1] << 8, 1000)
    return "%02d:%02d.%03d" % (b[p + 2] & 0x3F, s, ms)  # noqa: UP031 (twice as fast)


def _cp56_text(b: bytes, p: int) -> str:
    ms, mi, h, d, mo, y = _CP56.unpack_from(b, p)
    s, ms = divmod(ms, 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d" % (  # noqa: UP031 (twice as fast)
        2000 + (y & 0x7F), mo & 0x0F, d & 0x1F, h & 0x1F, mi & 0x3F, s, ms)


_U_OPERATION = {(fc, int(u)): Operation(PROTOCOL, _REQ if fc else _RESP, OpClass.SESSION,
                                         None, u.name)
                for fc in (True, False) for u in UFunction}


def _op_class(t: int) -> OpClass:
    if t < 45:
        return OpClass.MONITOR
    if t < 70:
        return OpClass.COMMAND
    if t == 70:
        return OpClass.MONITOR
    if t in (100, 101, 102):
        return OpClass.READ
    if t in (103, 105):
        return OpClass.CONTROL  # clock sync sets the RTU clock, reset process restarts it
    if t in (104, 106, 107):
        return OpClass.DIAGNOSTIC
    if 110 <= t <= 113:
        return OpClass.WRITE
    if t >= 120:
        return OpClass.FILE
    return OpClass.OTHER  # secure authentication 81..95


_OP_CLASS = {int(t): _op_class(int(t)) for t in TypeID}
# monitor data sent because it was interrogated (20..36), counter-interrogated (37..41) or
# read (5) is the answer to a read, not spontaneous monitoring
_READ_CAUSES = frozenset({5, *range(20, 42)})


def _time_text(t: object) -> str | None:
    if type(t) is CP56Time2a:
        return t.isoformat()
    if type(t) is CP24Time2a:
        ms = t.milliseconds
        return f"{t.minute:02d}:{ms // 1000:02d}.{ms % 1000:03d}"
    return None


def _plausible(data: bytes, q: int) -> bool | None:
    """Is the APCI at ``q`` worth resynchronising on? None: too few octets to say yet.

    Stricter than framing in sync: S and U formats must be exact, an I format must announce a
    known type id and a cause other than 0, so a run of 0x68 octets does not pass."""
    avail = len(data) - q
    if avail < 6:
        return None
    length = data[q + 1]
    if length < APDU_MIN_LENGTH or length > APDU_MAX_LENGTH:
        return False
    c1 = data[q + 2]
    if not c1 & 1:
        if length < 10 or data[q + 4] & 1:
            return False
        if avail < 9:
            return None
        return data[q + 6] in _TYPE_NAME and data[q + 8] & 0x3F != 0
    if length != APDU_MIN_LENGTH or data[q + 3] or data[q + 4] & 1:
        return False
    return c1 == 0x01 or (c1 in _U_NAME and not data[q + 4] and not data[q + 5])


class Iec104Session:
    """One 104 connection. ``feed`` never raises and buffers at most one partial APDU."""

    __slots__ = ("_open", "_pending", "_skip_reason", "_skipped", "_tx")

    def __init__(self) -> None:
        self._pending: dict[bool, bytes] = {True: b"", False: b""}
        self._skipped: dict[bool, int] = {True: 0, False: 0}
        self._skip_reason: dict[bool, str | None] = {True: None, False: None}
        self._tx: dict[bool, int | None] = {True: None, False: None}
        self._open: dict[tuple[int, int, int], int] = {}

    def lost(self, from_client: bool) -> None:
        """Octets of one direction were lost: drop its partial APDU, keep the rest."""
        self._pending[from_client] = b""
        self._skip_reason[from_client] = None
        self._skipped[from_client] = 0

    def feed(self, data: bytes, from_client: bool) -> list[Operation]:
        """Operations completed by ``data``, the next octets sent by one side."""
        pending = self._pending[from_client]
        if pending:
            data = pending + data
        ops: list[Operation] = []
        n = len(data)
        pos = 0
        while pos < n:
            if self._skip_reason[from_client] is not None:
                pos = self._resync(data, pos, from_client, ops)
                if self._skip_reason[from_client] is not None:
                    break  # too few octets to judge the next candidate
                continue
            if data[pos] != APCI_START:
                self._skip_reason[from_client] = Reason.BAD_START
                continue
            if n - pos < 2:
                break
            length = data[pos + 1]
            if length < APDU_MIN_LENGTH or length > APDU_MAX_LENGTH:
                self._skip_reason[from_client] = Reason.BAD_LENGTH
                self._add_skipped(1, from_client, ops)  # the broken start octet
                pos += 1
                continue
            end = pos + 2 + length
            if end > n:
                break
            ops.append(self._operation(data[pos:end], from_client))
            pos = end
        self._pending[from_client] = data[pos:] if pos < n else b""
        return ops

    def _resync(self, data: bytes, pos: int, from_client: bool, ops: list[Operation]) -> int:
        """Skip octets up to the next plausible APCI; report the run once it ends."""
        n = len(data)
        q = pos
        while True:
            q = data.find(b"\x68", q)
            if q < 0:
                q = n
                break
            plausible = _plausible(data, q)
            if plausible is None:
                break  # wait for the octets that decide
            if plausible:
                self._add_skipped(q - pos, from_client, ops)
                self._report_skipped(from_client, ops)
                self._skip_reason[from_client] = None
                return q
            q += 1
        self._add_skipped(q - pos, from_client, ops)
        return q

    def _add_skipped(self, count: int, from_client: bool, ops: list[Operation]) -> None:
        skipped = self._skipped[from_client] + count
        while skipped >= SKIP_REPORT:
            self._skipped[from_client] = SKIP_REPORT
            self._report_skipped(from_client, ops)
            skipped -= SKIP_REPORT
        self._skipped[from_client] = skipped

    def _report_skipped(self, from_client: bool, ops: list[Operation]) -> None:
        skipped = self._skipped[from_client]
        if skipped:
            ops.append(Operation(PROTOCOL, _REQ if from_client else _RESP, OpClass.MALFORMED,
                                 malformed=self._skip_reason[from_client],
                                 detail={"skipped": skipped}))
        self._skipped[from_client] = 0

    def _operation(self, apdu: bytes, from_client: bool) -> Operation:
        direction = _REQ if from_client else _RESP
        c1 = apdu[2]
        if len(apdu) == 6 and c1 & 1 and not apdu[3] and not apdu[4] & 1:
            if c1 == 0x01:  # S format
                return Operation(PROTOCOL, direction, OpClass.SESSION, None, "S",
                                 detail={"recv_seq": (apdu[4] | apdu[5] << 8) >> 1})
            if not apdu[4] and not apdu[5]:
                op = _U_OPERATION.get((from_client, c1))  # U format: immutable, shared
                if op is not None:
                    return op
        elif not c1 & 1 and len(apdu) > 12:  # I format with at least one object octet
            spec = _FAST.get(apdu[6])
            if spec is not None and not apdu[4] & 1:
                op = self._fast_information(apdu, from_client, direction, spec)
                if op is not None:
                    return op
        return self._slow_operation(apdu, from_client, direction)

    def _slow_operation(self, apdu: bytes, from_client: bool, direction: Direction) -> Operation:
        m = parse(apdu)
        cls = type(m)
        if cls is IFormat:
            return self._information(cast(IFormat, m), apdu, from_client, direction)
        if cls is SFormat:
            return Operation(PROTOCOL, direction, OpClass.SESSION, None, "S",
                             detail={"recv_seq": cast(SFormat, m).recv_seq})
        if cls is UFormat:
            return Operation(PROTOCOL, direction, OpClass.SESSION, None,
                             cast(UFormat, m).function.name)
        return _malformed(apdu, cast(Malformed, m), direction)

    def _fast_information(self, apdu: bytes, from_client: bool, direction: Direction,
                          spec: _FastSpec) -> Operation | None:
        """The Operation of a valid I format APDU of a common type, read with one struct call
        instead of building information objects; None sends the APDU to the full parser.
        Tests check that both paths give the same Operation."""
        t = apdu[6]
        fmt, k, size, vk, qf, qmask, ck, tk, toff = spec
        vsq = apdu[7]
        n = vsq & 0x7F
        sq = vsq >= 0x80
        if not n or len(apdu) - 12 != ((3 + n * size) if sq else n * (3 + size)):
            return None
        st = _STRUCTS.get((t, vsq))
        if st is None:
            st = _element_struct(t, vsq, fmt, n, sq)
        f = st.unpack_from(apdu, 12)
        stride = k if sq else k + 2
        address = f[0] | f[1] << 16
        ioas: list[int] | None = None
        if n > 1:
            if sq:
                ioas = list(range(address, address + n))
            else:
                ioas = [lo | hi << 16 for lo, hi in zip(f[0::stride], f[1::stride], strict=True)]
        raw = f[2::stride]
        if vk == _VK_NUMBER:
            values = tuple(map(float, raw))
        elif vk == _VK_NVA:
            values = tuple([v / 32768.0 for v in raw])
        elif vk == _VK_BIT:
            values = tuple([float(v & 1) for v in raw])
        elif vk == _VK_DPI:
            values = tuple([float(v & 3) for v in raw])
        else:  # VTI: I7 in the low bits
            values = tuple([float(((v & 0x7F) ^ 0x40) - 0x40) for v in raw])
        extra: dict[str, Any] = {}
        if qf >= 0:
            names = [_QUALITY_NAME[q & qmask] for q in f[2 + qf::stride]]
            if any(names):
                extra["quality"] = names
        if tk == 1:
            extra["time"] = _cp24_text(apdu, 15 + toff)
        elif tk == 2:
            extra["time"] = _cp56_text(apdu, 15 + toff)
        if ck == _CK_QU:
            extra["select"] = raw[0] >= 0x80
            extra["qualifier"] = (raw[0] >> 2) & 0x1F
        elif ck == _CK_QOS:
            extra["select"] = f[3] >= 0x80
            extra["qualifier"] = f[3] & 0x7F
        elif ck == _CK_QPM:
            extra["qualifier"] = f[3]
        cot_octet = apdu[8]
        return self._finish(t, apdu, from_client, direction, sq, n, address, ioas, values,
                            extra, cot_octet & 0x3F, cot_octet & 0x40 != 0,
                            apdu[10] | apdu[11] << 8)

    def _information(self, m: IFormat, apdu: bytes, from_client: bool,
                     direction: Direction) -> Operation:
        a = m.asdu
        t = int(a.type_id)
        objs = a.objects
        n = len(objs)
        values: tuple[float, ...] | None = None
        address: int | None = None
        ioas: list[int] | None = None
        extra: dict[str, Any] = {}
        if n:
            first = objs[0]
            address = first.ioa
            if n > 1:
                ioas = [o.ioa for o in objs]
            if t in _VALUED:
                values = tuple([float(o.value) for o in cast("tuple[_Valued, ...]", objs)])
            if t in _QUALIFIED:
                names = [_QUALITY_NAME[o.quality] for o in cast("tuple[_Quality, ...]", objs)]
                if any(names):
                    extra["quality"] = names
            if t in _TIMED:
                extra["time"] = _time_text(getattr(first, "time", None))
            if t in _COMMANDS:
                extra["select"] = getattr(first, "select", False)
                extra["qualifier"] = getattr(first, "qu", 0)
            elif t in _SETPOINTS:
                extra["select"] = getattr(first, "select", False)
                extra["qualifier"] = getattr(first, "ql", 0)
            else:
                attr = _QUALIFIER_ATTR.get(t)
                if attr is not None:
                    extra["qualifier"] = getattr(first, attr)
        return self._finish(t, apdu, from_client, direction, a.sq, n, address, ioas, values,
                            extra, int(a.cot), a.negative, a.common_address)

    def _finish(self, t: int, apdu: bytes, from_client: bool, direction: Direction, sq: bool,
                n: int, address: int | None, ioas: list[int] | None,
                values: tuple[float, ...] | None, extra: dict[str, Any], cot: int,
                negative: bool, ca: int) -> Operation:
        """Sequence and activation bookkeeping, then the Operation of an I format APDU."""
        ns = (apdu[2] | apdu[3] << 8) >> 1
        detail: dict[str, Any] = {"cot": cot, "originator": apdu[9], "sq": sq,
                                  "recv_seq": (apdu[4] | apdu[5] << 8) >> 1}
        if ioas is not None:
            detail["ioas"] = ioas
        if extra:
            detail.update(extra)
        expected = self._tx[from_client]
        if expected is not None and expected != ns:
            detail["expected_tx"] = expected
        self._tx[from_client] = (ns + 1) & 0x7FFF
        if t in _ACTIVATED and address is not None:
            self._pair((t, ca, address), ns, cot, negative, from_client, detail)
        op_class = _OP_CLASS[t]
        if t < 45 and cot in _READ_CAUSES:
            op_class = OpClass.READ
        name = _TYPE_NAME[t]
        return Operation(PROTOCOL, direction, op_class, t, name, ca, ns, address, n, values,
                         name, _STATUS[apdu[8]], None, detail)

    def _pair(self, key: tuple[int, int, int], ns: int, cot: int, negative: bool,
              from_client: bool, detail: dict[str, Any]) -> None:
        opened = self._open
        if from_client:
            if cot in (6, 8):  # activation, deactivation
                opened.pop(key, None)
                if len(opened) >= MAX_OPEN:
                    del opened[next(iter(opened))]  # oldest first
                opened[key] = ns
        elif cot in _ANSWER_CAUSES:
            request = opened.get(key)
            if request is not None:
                detail["request_tx"] = request
                if cot in _CLOSING_CAUSES or negative:
                    del opened[key]


class _Quality(Protocol):
    @property
    def quality(self) -> int: ...


def _malformed(apdu: bytes, m: Malformed, direction: Direction) -> Operation:
    """A malformed APDU with whatever its APCI and data unit identifier still tell."""
    n = len(apdu)
    fc = unit = tx = None
    function = status = None
    if n >= 6 and not apdu[2] & 1:
        tx = (apdu[2] | apdu[3] << 8) >> 1
        if n >= 7:
            fc = apdu[6]
            function = _TYPE_NAME.get(fc)
        if n >= 9:
            status = _STATUS[apdu[8]]
        if n >= 12:
            unit = apdu[10] | apdu[11] << 8
    elif n >= 3:
        function = _U_NAME.get(apdu[2]) or ("S" if apdu[2] == 1 else None)
    return Operation(PROTOCOL, direction, OpClass.MALFORMED, fc, function, unit, tx,
                     object=function if fc is not None else None, status=status,
                     malformed=m.reason,
                     detail={"offset": m.offset, "error": m.detail, "raw": apdu.hex()})
