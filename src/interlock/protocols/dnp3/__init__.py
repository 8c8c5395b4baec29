"""DNP3 (IEEE 1815-2012) over TCP or UDP port 20000: codec, session and content probe."""

from __future__ import annotations

from interlock.protocols.base import Probe, ProtocolSpec

from .codec import (
    ApplicationRequest,
    ApplicationResponse,
    LinkFrame,
    ObjectHeader,
    TransportSegment,
    build,
    parse,
    parse_fragment,
    parse_frame,
    parse_segment,
    scan_fragment,
)
from .fields import HEADER_SIZE, START, FunctionCode, Reason
from .link import crc16, header_crc_ok
from .session import DNP3Session

__all__ = [
    "PROTOCOL",
    "ApplicationRequest",
    "ApplicationResponse",
    "DNP3Session",
    "FunctionCode",
    "LinkFrame",
    "ObjectHeader",
    "Reason",
    "TransportSegment",
    "build",
    "crc16",
    "parse",
    "parse_fragment",
    "parse_frame",
    "parse_segment",
    "probe",
    "scan_fragment",
]


def probe(data: bytes, from_client: bool) -> Probe:
    """Is this stream direction DNP3? By content: the 0x05 0x64 start and the header CRC.

    The 16-bit header CRC makes a false match on another protocol's first 10 octets a 1 in
    65,536 event on top of the start octets. A header with a good CRC but a length below 5 is
    still DNP3 (a malformed one, which the session reports). A stream that starts mid-frame is
    not recognised here (the session resynchronises once it is fed).
    """
    if len(data) < HEADER_SIZE:
        return Probe.NEED_MORE if START.startswith(data[:2]) else Probe.NO
    if data[:2] != START or not header_crc_ok(data, 0):
        return Probe.NO
    return Probe.YES


PROTOCOL = ProtocolSpec(
    name="dnp3",
    tcp_ports=frozenset({20000}),
    udp_ports=frozenset({20000}),
    probe=probe,
    session=DNP3Session,
)
