"""Byte streams for DNP3 session tests: fragments cut into segments and link frames."""

from __future__ import annotations

from interlock.protocols.dnp3 import ApplicationRequest, ApplicationResponse, ObjectHeader
from interlock.protocols.dnp3.codec import build_fragment
from interlock.protocols.dnp3.fields import FunctionCode
from interlock.protocols.dnp3.link import LinkFrame, build_frame

MASTER = 1
OUTSTATION = 10


def frames(fragment: bytes, *, master: bool, tseq: int = 0, outstation: int = OUTSTATION,
           size: int = 249) -> list[bytes]:
    """Link frames carrying ``fragment`` in transport segments of ``size`` octets."""
    parts = [fragment[i : i + size] for i in range(0, len(fragment), size)] or [b""]
    out = []
    for k, part in enumerate(parts):
        th = (0x40 if k == 0 else 0) | (0x80 if k == len(parts) - 1 else 0) | ((tseq + k) & 63)
        dst, src = (outstation, MASTER) if master else (MASTER, outstation)
        out.append(build_frame(LinkFrame(master, True, False, False, 4, dst, src,
                                         bytes((th,)) + part)))
    return out


def request(function: FunctionCode, seq: int, *headers: ObjectHeader, **kw: int) -> bytes:
    return b"".join(frames(build_fragment(ApplicationRequest(function, seq, headers)),
                           master=True, **kw))


def response(seq: int, *headers: ObjectHeader, iin: int = 0,
             function: FunctionCode = FunctionCode.RESPONSE, fin: bool = True,
             fir: bool = True, **kw: int) -> bytes:
    frag = build_fragment(ApplicationResponse(function, seq, iin, headers, fir=fir, fin=fin))
    return b"".join(frames(frag, master=False, **kw))


def class0_response(seq: int = 0, n: int = 10, tseq: int = 0) -> bytes:
    """A RESPONSE with ``n`` g30v1 analog inputs valued 0, 100, 200..."""
    return response(seq, ObjectHeader(30, 1, 0, 0, n - 1,
                                      objects=tuple((1, 100 * i) for i in range(n))), tseq=tseq)
