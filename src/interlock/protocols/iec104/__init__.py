"""IEC 60870-5-104: telecontrol over TCP (port 2404), APCI framing around 101 ASDUs.

``PROTOCOL`` is the descriptor the capture layer uses; the codec names are re-exported.
"""

from __future__ import annotations

from interlock.protocols.base import Malformed, Probe, ProtocolSpec
from interlock.protocols.iec104.codec import (
    Apdu,
    Asdu,
    Bitstring32,
    Bitstring32Command,
    ClockSynchronisationCommand,
    CounterInterrogationCommand,
    CP24Time2a,
    CP56Time2a,
    DelayAcquisitionCommand,
    DoubleCommand,
    DoublePointInformation,
    EndOfInitialisation,
    IFormat,
    InformationObject,
    IntegratedTotals,
    InterrogationCommand,
    MeasuredValueNormalized,
    MeasuredValueScaled,
    MeasuredValueShortFloat,
    ParameterActivation,
    ParameterNormalized,
    ParameterScaled,
    ParameterShortFloat,
    RawInformation,
    ReadCommand,
    RegulatingStepCommand,
    ResetProcessCommand,
    SetpointNormalized,
    SetpointScaled,
    SetpointShortFloat,
    SFormat,
    SingleCommand,
    SinglePointInformation,
    StepPositionInformation,
    TestCommand,
    TestCommandWithTime,
    UFormat,
    build,
    build_asdu,
    parse,
    parse_asdu,
)
from interlock.protocols.iec104.fields import (
    APCI_START,
    APDU_MAX_LENGTH,
    APDU_MIN_LENGTH,
    Cause,
    Reason,
    TypeID,
    UFunction,
)
from interlock.protocols.iec104.session import Iec104Session

_KEEPALIVE = 0x00  # one stray octet a Windows TCP keep-alive leaves when capture starts late


def probe(data: bytes, from_client: bool) -> Probe:
    """Recognise 104 by content: the first APDU of a direction must decode cleanly.

    HTTP, TLS, Modbus/TCP (its MBAP length would have to match an ASDU layout), DNP3 (0x05 0x64)
    and TPKT (0x03 0x00) fail on the start octet, the length, the control field or the ASDU.
    One leading 0x00 octet is tolerated: a capture that begins mid-connection often shows a
    Windows keep-alive octet before the first APDU. A first I format APDU with cause 0 ("not
    used") is refused. What can still pass is a Modbus frame whose transaction id starts with
    0x68 and whose MBAP header and data happen to form a whole valid APDU; no real Modbus request
    of the common function codes does.
    """
    if data[:1] == bytes([_KEEPALIVE]):
        data = data[1:]
    if not data:
        return Probe.NEED_MORE
    if data[0] != APCI_START:
        return Probe.NO
    if len(data) < 2:
        return Probe.NEED_MORE
    length = data[1]
    if length < APDU_MIN_LENGTH or length > APDU_MAX_LENGTH:
        return Probe.NO
    if len(data) < 2 + length:
        # judge the control field early so that a long foreign stream is refused at once
        if len(data) >= 6 and not _control_plausible(data, length):
            return Probe.NO
        return Probe.NEED_MORE
    apdu = parse(data[:2 + length])
    if isinstance(apdu, IFormat):
        return Probe.YES if apdu.asdu.cot > 0 else Probe.NO  # cause 0 is "not used"
    return Probe.NO if isinstance(apdu, Malformed) else Probe.YES


def _control_plausible(data: bytes, length: int) -> bool:
    c1 = data[2]
    if not c1 & 1:
        return length >= 10 and not data[4] & 1
    return length == APDU_MIN_LENGTH  # S and U formats carry no ASDU

PROTOCOL = ProtocolSpec(
    name="iec104",
    tcp_ports=frozenset({2404}),
    udp_ports=frozenset(),
    probe=probe,
    session=Iec104Session,
)

__all__ = [
    "PROTOCOL",
    "Apdu",
    "Asdu",
    "Bitstring32",
    "Bitstring32Command",
    "CP24Time2a",
    "CP56Time2a",
    "Cause",
    "ClockSynchronisationCommand",
    "CounterInterrogationCommand",
    "DelayAcquisitionCommand",
    "DoubleCommand",
    "DoublePointInformation",
    "EndOfInitialisation",
    "IFormat",
    "Iec104Session",
    "InformationObject",
    "IntegratedTotals",
    "InterrogationCommand",
    "MeasuredValueNormalized",
    "MeasuredValueScaled",
    "MeasuredValueShortFloat",
    "ParameterActivation",
    "ParameterNormalized",
    "ParameterScaled",
    "ParameterShortFloat",
    "RawInformation",
    "ReadCommand",
    "Reason",
    "RegulatingStepCommand",
    "ResetProcessCommand",
    "SFormat",
    "SetpointNormalized",
    "SetpointScaled",
    "SetpointShortFloat",
    "SingleCommand",
    "SinglePointInformation",
    "StepPositionInformation",
    "TestCommand",
    "TestCommandWithTime",
    "TypeID",
    "UFormat",
    "UFunction",
    "build",
    "build_asdu",
    "parse",
    "parse_asdu",
    "probe",
]
