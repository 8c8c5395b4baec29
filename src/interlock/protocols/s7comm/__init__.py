"""S7comm (S7-300/400, S7-1200 in PUT/GET mode) and S7comm-plus recognition on ISO-on-TCP.

Layers: TPKT (RFC 1006) and COTP class 0 (ISO 8073) in :mod:`.cotp`, S7comm PDUs in
:mod:`.codec`, the stream state and content probe in :mod:`.session`, spec tables in
:mod:`.fields`. S7comm-plus is recognised and labelled (protocol "s7comm-plus"), not decoded.
"""

from __future__ import annotations

from interlock.protocols.base import ProtocolSpec
from interlock.protocols.s7comm.codec import (
    Ack,
    BlockControlAckData,
    BlockControlJob,
    CpuServices,
    CyclicSubscription,
    DataItem,
    FunctionAckData,
    Item,
    PiService,
    PlcStop,
    RawItem,
    ReadVarRequest,
    ReadVarResponse,
    S7AnyItem,
    S7CommPlusPdu,
    S7Message,
    S7Pdu,
    SetupCommunication,
    Userdata,
    WriteVarRequest,
    WriteVarResponse,
    build,
    build_cyclic_data,
    build_cyclic_request,
    parse,
    parse_cyclic_data,
    parse_cyclic_request,
)
from interlock.protocols.s7comm.cotp import (
    ConnectionConfirm,
    ConnectionRequest,
    Data,
    DisconnectConfirm,
    DisconnectRequest,
    Tpdu,
    TpduError,
    build_tpkt,
    parse_tpkt,
)
from interlock.protocols.s7comm.fields import ISO_TSAP_PORT, Reason
from interlock.protocols.s7comm.session import S7Session, probe

PROTOCOL = ProtocolSpec(
    name="s7comm",
    tcp_ports=frozenset({ISO_TSAP_PORT}),
    udp_ports=frozenset(),
    probe=probe,
    session=S7Session,
)

__all__ = [
    "PROTOCOL",
    "Ack",
    "BlockControlAckData",
    "BlockControlJob",
    "ConnectionConfirm",
    "ConnectionRequest",
    "CpuServices",
    "CyclicSubscription",
    "Data",
    "DataItem",
    "DisconnectConfirm",
    "DisconnectRequest",
    "FunctionAckData",
    "Item",
    "PiService",
    "PlcStop",
    "RawItem",
    "ReadVarRequest",
    "ReadVarResponse",
    "Reason",
    "S7AnyItem",
    "S7CommPlusPdu",
    "S7Message",
    "S7Pdu",
    "S7Session",
    "SetupCommunication",
    "Tpdu",
    "TpduError",
    "Userdata",
    "WriteVarRequest",
    "WriteVarResponse",
    "build",
    "build_cyclic_data",
    "build_cyclic_request",
    "build_tpkt",
    "parse",
    "parse_cyclic_data",
    "parse_cyclic_request",
    "parse_tpkt",
    "probe",
]
