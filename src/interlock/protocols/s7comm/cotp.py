"""TPKT (RFC 1006) and COTP class 0 (ISO 8073 / ITU-T X.224) framing for S7comm.

Spec sections followed:

* RFC 1006 section 6: a TPKT is version 3, a reserved byte and a 16-bit length that counts the
  4-byte TPKT header too; one TPKT carries one TPDU.
* ISO 8073 section 13.2: a TPDU is a length indicator (LI, the header length without itself),
  the TPDU code in the high nibble of the next byte, a fixed part and a variable part of
  ``code, length, value`` parameters; user data follows the header.
* ISO 8073 sections 13.3-13.7 and 13.12: the class 0 TPDUs, CR, CC, DR, DC, DT and ER. S7comm
  and S7comm-plus use class 0 only, so ED/AK/EA/RJ (classes 1-4) are reported as unknown.

Written by hand rather than with scapy's or pymodbus-style layers: those build packets for
sockets and sniffers, raise on short input and lose the reason a frame is bad, while a passive
sensor needs a total function from bytes to a value or a named ``Malformed`` reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from interlock.protocols.base import Malformed
from interlock.protocols.s7comm.fields import TPKT_VERSION, CotpParameter, CotpType, Reason

_TPKT = struct.Struct(">BBH")
_REFS = struct.Struct(">HH")  # destination reference, source reference
_U16 = struct.Struct(">H")

Parameters = tuple[tuple[int, bytes], ...]


def parameter(parameters: Parameters, code: int) -> bytes | None:
    """Value of the first parameter with this code, or None."""
    for c, v in parameters:
        if c == code:
            return v
    return None


class _Negotiated:
    """What CR and CC carry in their parameters: the TSAPs (rack/slot on S7) and TPDU size."""

    __slots__ = ()
    parameters: Parameters

    @property
    def src_tsap(self) -> bytes | None:
        return parameter(self.parameters, CotpParameter.SRC_TSAP)

    @property
    def dst_tsap(self) -> bytes | None:
        return parameter(self.parameters, CotpParameter.DST_TSAP)

    @property
    def tpdu_size(self) -> int | None:
        """Maximum TPDU size in bytes (the parameter holds its base-2 logarithm)."""
        v = parameter(self.parameters, CotpParameter.TPDU_SIZE)
        return 1 << v[0] if v and v[0] < 32 else None


@dataclass(frozen=True, slots=True)
class ConnectionRequest(_Negotiated):
    """CR TPDU (ISO 8073 13.3): the client asks for a connection to a TSAP (rack/slot on S7)."""

    dst_ref: int
    src_ref: int
    class_option: int = 0  # class 0, no extended formats, explicit flow control
    parameters: Parameters = ()
    user_data: bytes = b""


@dataclass(frozen=True, slots=True)
class ConnectionConfirm(_Negotiated):
    """CC TPDU (ISO 8073 13.4): the server accepts, echoing or narrowing the parameters."""

    dst_ref: int
    src_ref: int
    class_option: int = 0
    parameters: Parameters = ()
    user_data: bytes = b""


@dataclass(frozen=True, slots=True)
class DisconnectRequest:
    """DR TPDU (ISO 8073 13.5): refuses a CR or closes the connection, with a reason."""

    dst_ref: int
    src_ref: int
    reason: int = 128  # normal disconnect
    parameters: Parameters = ()
    user_data: bytes = b""


@dataclass(frozen=True, slots=True)
class DisconnectConfirm:
    """DC TPDU (ISO 8073 13.6)."""

    dst_ref: int
    src_ref: int
    parameters: Parameters = ()


@dataclass(frozen=True, slots=True)
class Data:
    """DT TPDU, class 0 format (ISO 8073 13.7): TPDU number and end-of-TSDU mark, user data.

    An S7 PDU may span several DTs; only the last has ``eot`` set.
    """

    user_data: bytes
    eot: bool = True
    tpdu_number: int = 0
    parameters: Parameters = ()  # never present in class 0, kept so any LI round-trips


@dataclass(frozen=True, slots=True)
class TpduError:
    """ER TPDU (ISO 8073 13.12): the peer rejected a TPDU, with a cause."""

    dst_ref: int
    cause: int = 0
    parameters: Parameters = ()


Tpdu = ConnectionRequest | ConnectionConfirm | DisconnectRequest | DisconnectConfirm | Data | TpduError

# LI minimum per TPDU code: the fixed part, TPDU code byte included (ISO 8073 13.x.2).
FIXED_PART: dict[int, int] = {
    CotpType.CR: 6,
    CotpType.CC: 6,
    CotpType.DR: 6,
    CotpType.DC: 5,
    CotpType.DT: 2,
    CotpType.ER: 4,
}

TPDU_NAME: dict[int, str] = {
    CotpType.CR: "cotp_cr",
    CotpType.CC: "cotp_cc",
    CotpType.DR: "cotp_dr",
    CotpType.DC: "cotp_dc",
    CotpType.DT: "cotp_dt",
    CotpType.ER: "cotp_er",
}


def _parse_parameters(frame: bytes, start: int, end: int) -> Parameters | Malformed:
    params: list[tuple[int, bytes]] = []
    i = start
    while i < end:
        if i + 2 > end or i + 2 + frame[i + 1] > end:
            return Malformed(Reason.BAD_COTP_PARAMETER, i, frame, "parameter runs past header")
        n = frame[i + 1]
        params.append((frame[i], frame[i + 2 : i + 2 + n]))
        i += 2 + n
    return tuple(params)


def parse_tpkt(frame: bytes) -> Tpdu | Malformed:
    """Decode one TPKT frame (header included) holding one COTP TPDU. Never raises."""
    n = len(frame)
    if n < 4:
        return Malformed(Reason.BAD_TPKT_LENGTH, 0, frame, f"{n} bytes, TPKT header is 4")
    version, _reserved, length = _TPKT.unpack_from(frame)
    if version != TPKT_VERSION:
        return Malformed(Reason.BAD_TPKT_VERSION, 0, frame, f"version {version}")
    if length != n or length < 7:
        return Malformed(Reason.BAD_TPKT_LENGTH, 2, frame, f"length {length}, frame {n}")
    return parse_cotp(frame, 4)


def parse_cotp(frame: bytes, offset: int = 0) -> Tpdu | Malformed:
    """Decode the COTP TPDU that starts at ``offset`` and runs to the end of ``frame``."""
    n = len(frame)
    if n - offset < 2:
        return Malformed(Reason.BAD_COTP_LENGTH, offset, frame, "no TPDU code")
    li = frame[offset]
    code = frame[offset + 1] & 0xF0
    fixed = FIXED_PART.get(code)
    if fixed is None:
        return Malformed(Reason.UNKNOWN_COTP_TYPE, offset + 1, frame, f"TPDU code {code:#04x}")
    hdr_end = offset + 1 + li
    if li < fixed or li == 255 or hdr_end > n:
        return Malformed(Reason.BAD_COTP_LENGTH, offset, frame, f"LI {li}, {n - offset} bytes")
    b = offset + 2  # first byte after the TPDU code
    params = _parse_parameters(frame, offset + 1 + fixed, hdr_end)
    if isinstance(params, Malformed):
        return params
    if code == CotpType.DT:
        nr = frame[b]
        return Data(frame[hdr_end:], bool(nr & 0x80), nr & 0x7F, params)
    if code == CotpType.ER:
        return TpduError(_U16.unpack_from(frame, b)[0], frame[b + 2], params)
    dst, src = _REFS.unpack_from(frame, b)
    if code == CotpType.CR:
        return ConnectionRequest(dst, src, frame[b + 4], params, frame[hdr_end:])
    if code == CotpType.CC:
        return ConnectionConfirm(dst, src, frame[b + 4], params, frame[hdr_end:])
    if code == CotpType.DR:
        return DisconnectRequest(dst, src, frame[b + 4], params, frame[hdr_end:])
    if hdr_end != n:  # DC carries no user data (13.6)
        return Malformed(Reason.BAD_COTP_LENGTH, hdr_end, frame, "user data after DC")
    return DisconnectConfirm(dst, src, params)


def _u8(name: str, v: int) -> int:
    if not 0 <= v <= 0xFF:
        raise ValueError(f"{name}={v} out of 0..255")
    return v


def _u16(name: str, v: int) -> int:
    if not 0 <= v <= 0xFFFF:
        raise ValueError(f"{name}={v} out of 0..65535")
    return v


def _build_parameters(parameters: Parameters) -> bytes:
    out = bytearray()
    for code, value in parameters:
        if len(value) > 0xFF:
            raise ValueError(f"COTP parameter {code:#x} longer than 255 bytes")
        out += bytes((_u8("parameter code", code), len(value))) + value
    return bytes(out)


def build_cotp(tpdu: Tpdu) -> bytes:
    """Encode a TPDU without the TPKT header. Raises ValueError on out-of-range fields."""
    params = _build_parameters(tpdu.parameters)
    user = b""
    if isinstance(tpdu, Data):
        if not 0 <= tpdu.tpdu_number <= 0x7F:
            raise ValueError(f"tpdu_number={tpdu.tpdu_number} out of 0..127")
        fixed = bytes((CotpType.DT, tpdu.tpdu_number | (0x80 if tpdu.eot else 0)))
        user = tpdu.user_data
    elif isinstance(tpdu, TpduError):
        fixed = bytes((CotpType.ER,)) + _U16.pack(_u16("dst_ref", tpdu.dst_ref))
        fixed += bytes((_u8("cause", tpdu.cause),))
    elif isinstance(tpdu, DisconnectConfirm):
        fixed = bytes((CotpType.DC,))
        fixed += _REFS.pack(_u16("dst_ref", tpdu.dst_ref), _u16("src_ref", tpdu.src_ref))
    else:
        if isinstance(tpdu, ConnectionRequest):
            code, last = CotpType.CR, tpdu.class_option
        elif isinstance(tpdu, ConnectionConfirm):
            code, last = CotpType.CC, tpdu.class_option
        else:
            code, last = CotpType.DR, tpdu.reason
        fixed = bytes((code,))
        fixed += _REFS.pack(_u16("dst_ref", tpdu.dst_ref), _u16("src_ref", tpdu.src_ref))
        fixed += bytes((_u8("class_option/reason", last),))
        user = tpdu.user_data
    li = len(fixed) + len(params)
    if li > 254:
        raise ValueError(f"COTP header of {li} bytes exceeds LI 254")
    return bytes((li,)) + fixed + params + user


def build_tpkt(tpdu: Tpdu) -> bytes:
    """Encode a TPDU in a TPKT frame. Raises ValueError when it exceeds 65535 bytes."""
    body = build_cotp(tpdu)
    length = len(body) + 4
    if length > 0xFFFF:
        raise ValueError(f"TPKT length {length} exceeds 65535")
    return _TPKT.pack(TPKT_VERSION, 0, length) + body
