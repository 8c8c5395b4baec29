"""The protocols Interlock decodes, listed by hand so the table never depends on import order."""

from interlock.protocols.base import ProtocolSpec
from interlock.protocols.dnp3 import PROTOCOL as DNP3
from interlock.protocols.iec104 import PROTOCOL as IEC104
from interlock.protocols.modbus import PROTOCOL as MODBUS
from interlock.protocols.s7comm import PROTOCOL as S7COMM

PROTOCOLS: tuple[ProtocolSpec, ...] = (MODBUS, DNP3, S7COMM, IEC104)

__all__ = ["PROTOCOLS", "ProtocolSpec"]
