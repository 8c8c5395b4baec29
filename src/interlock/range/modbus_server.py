"""Serve a range PLC over Modbus/TCP with a real pymodbus server on its own loopback address.

pymodbus keeps its own register store; the ``action`` hook it calls on every access is where the
PLC's image is copied in before a read and where a write is checked and applied, so the answers
(values and exception codes) are the PLC's, while framing, transactions, FC43 identity and FC8
diagnostics are pymodbus' own, as on a real device.

Listen-only mode (FC 8 sub-function 4) is the PLC's too: pymodbus 3.16 only sets a flag no part
of its server reads, and answers. Here the PLC falls silent, as the Modbus specification has it
(no answer to anything, itself included) until a Restart Communications Option (sub-function 1,
unanswered too) brings it back; its program runs on, unseen.
"""

from __future__ import annotations

from typing import Any

from interlock.range.boundary import Boundary
from interlock.range.plc import Plc

# Function code -> the table it touches, and whether it writes.
_TABLE = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete",
    3: "holding",
    6: "holding",
    16: "holding",
    22: "holding",
    23: "holding",
    4: "input",
}
_BIT_TABLES = ("coil", "discrete")


def _pack_bits(bits: list[int], registers: list[int]) -> None:
    """pymodbus keeps separate-block bits 16 to a register, least significant bit first."""
    for i in range(len(registers)):
        word = 0
        for j in range(16):
            k = 16 * i + j
            if k < len(bits) and bits[k]:
                word |= 1 << j
        registers[i] = word


DIAGNOSTICS = 8
LISTEN_ONLY, RESTART_COMMS = 4, 1  # FC 8 sub-functions


def _server_class() -> Any:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.server.requesthandler import ServerRequestHandler

    class Handler(ServerRequestHandler):
        async def handle_request(self) -> None:
            pdu = self.last_pdu
            owner: PlcModbusServer = self.server.owner
            sub = getattr(pdu, "sub_function_code", None) if pdu is not None else None
            diag = pdu is not None and pdu.function_code == DIAGNOSTICS
            if diag and sub == LISTEN_ONLY:
                owner.listen_only = True
                return
            if owner.listen_only:
                if diag and sub == RESTART_COMMS:
                    owner.listen_only = False
                return
            await super().handle_request()  # type: ignore[no-untyped-call]

    class Server(ModbusTcpServer):
        owner: PlcModbusServer

        def callback_new_connection(self) -> Any:
            return Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]

    return Server


class PlcModbusServer:
    """A ``ModbusTcpServer`` answering for one PLC; start and stop inside the range's event loop."""

    def __init__(
        self, plc: Plc, boundary: Boundary, *, port: int | None = None, host: str | None = None
    ) -> None:
        self.plc = plc
        self.host = plc.device.host if host is None else host
        self.port = plc.device.port if port is None else port
        self.boundary = boundary
        self.server: Any = None
        self.listen_only = False  # FC 8/4 received: silent until FC 8/1

    def _device(self) -> Any:
        from pymodbus.pdu.device import ModbusDeviceIdentification
        from pymodbus.simulator import DataType, SimData, SimDevice

        def block(table: str) -> list[Any]:
            size = max(1, self.plc.size(table))
            kind = DataType.BITS if table in _BIT_TABLES else DataType.REGISTERS
            count = (size + 15) // 16 if table in _BIT_TABLES else size
            return [SimData(0, count=count, datatype=kind)]

        identity = self.plc.device.identity
        info = {
            "VendorName": identity.get("vendor", "Interlock Range"),
            "ProductCode": identity.get("product", self.plc.name),
            "MajorMinorRevision": identity.get("revision", "1.0"),
            "ModelName": identity.get("product", self.plc.name),
        }
        return SimDevice(
            self.plc.device.unit,
            simdata=(block("coil"), block("discrete"), block("holding"), block("input")),
            identity=ModbusDeviceIdentification(info_name=info),  # type: ignore[no-untyped-call]
            action=self._action,
        )

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> Any:
        from pymodbus.constants import ExcCodes

        table = _TABLE.get(function_code)
        if table is None:
            return None
        if set_values is not None:
            raw = [int(v) for v in set_values]
            code = self.plc.write_raw(table, address, raw)
            if code is not None:
                return ExcCodes.ILLEGAL_ADDRESS if code == 2 else ExcCodes.ILLEGAL_VALUE
            return None
        size = self.plc.size(table)
        if table in _BIT_TABLES:
            bits = self.plc.read_raw(table, 0, size) if size else []
            _pack_bits(bits if isinstance(bits, list) else [], current_registers)
            return None
        values = self.plc.read_raw(table, 0, size) if size else []
        if isinstance(values, list):
            for i, v in enumerate(values[: len(current_registers)]):
                current_registers[i] = v
        return None

    async def start(self) -> None:
        self.boundary.register(self.host, self.port, self.plc.name)
        self.server = _server_class()(self._device(), address=(self.host, self.port))
        self.server.owner = self
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
        self.boundary.unregister(self.host, self.port)
