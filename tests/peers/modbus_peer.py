"""A real Modbus/TCP server and client (pymodbus) that talk on a loopback address.

``ModbusPeer`` serves a datastore whose contents are known (``COILS``, ``DISCRETE``, ``HOLDING``,
``INPUT``, ``IDENTITY``); ``run_operations`` drives a pymodbus client through the function codes
and returns, per operation, what was asked and what the client received, for the test to
compare with Interlock's records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.peers.capture import wait_port
from tests.peers.loop import LoopThread

DEVICE_ID = 17
SIZE = 100  # each table holds addresses 0..SIZE-1; beyond is ILLEGAL_DATA_ADDRESS
COILS = [(i * 7) % 3 == 0 for i in range(SIZE)]
DISCRETE = [(i % 5) in (1, 2) for i in range(SIZE)]
HOLDING = [1000 + 3 * i for i in range(SIZE)]
INPUT = [(40000 + 11 * i) & 0xFFFF for i in range(SIZE)]
IDENTITY = {
    "VendorName": "Interlock Peer Works",
    "ProductCode": "ILK-PLC-5020",
    "MajorMinorRevision": "3.1.4",
}


def _datastore() -> Any:
    from pymodbus.simulator import DataType, SimData, SimDevice

    def bits(values: list[bool]) -> list[SimData]:
        return [SimData(0, values=list(values), datatype=DataType.BITS)]

    def regs(values: list[int]) -> list[SimData]:
        return [SimData(0, values=list(values), datatype=DataType.REGISTERS)]

    return SimDevice(
        DEVICE_ID,
        simdata=(bits(COILS), bits(DISCRETE), regs(HOLDING), regs(INPUT)),
    )


class ModbusPeer:
    """A pymodbus ``ModbusTcpServer`` on ``host:port`` in its own event-loop thread."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server: Any = None
        self.thread: LoopThread | None = None

    def start(self) -> ModbusPeer:
        from pymodbus.pdu.device import ModbusDeviceIdentification
        from pymodbus.server import ModbusTcpServer

        self.thread = LoopThread(f"modbus-{self.port}")

        async def serve() -> None:
            self.server = ModbusTcpServer(
                _datastore(),
                address=(self.host, self.port),
                identity=ModbusDeviceIdentification(info_name=IDENTITY),
            )
            await self.server.serve_forever(background=True)

        self.thread.call(serve())
        wait_port(self.host, self.port)
        return self

    def stop(self) -> None:
        if self.thread is not None:
            server = self.server
            self.thread.close(server.shutdown if server is not None else None)
            self.thread = None

    def __enter__(self) -> ModbusPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Op:
    """One request the client sent and what came back."""

    name: str
    function_code: int
    address: int | None = None
    count: int | None = None
    written: list[float] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    exception: str | None = None
    transaction: int | None = None
    response: Any = None


EXCEPTION_NAMES = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SERVER_DEVICE_FAILURE",
    6: "SERVER_DEVICE_BUSY",
}


def _do(op: Op, call: Callable[[], Any], values: Callable[[Any], list[float]] | None = None) -> Op:
    rr = call()
    op.response = rr
    op.transaction = rr.transaction_id
    if rr.isError():
        op.exception = EXCEPTION_NAMES.get(rr.exception_code, str(rr.exception_code))
    elif values is not None:
        op.received = [float(v) for v in values(rr)]
    return op


def run_operations(host: str, port: int, source: str | None = None) -> list[Op]:
    """Every function code the brief names, with known addresses and values, in order."""
    from pymodbus.client import ModbusTcpClient

    dev = {"device_id": DEVICE_ID}
    client = ModbusTcpClient(host, port=port, timeout=3, retries=0,
                             source_address=(source, 0) if source else None)
    if not client.connect():
        raise ConnectionError(f"pymodbus client cannot reach {host}:{port}")
    ops: list[Op] = []
    try:
        ops.append(_do(Op("read_coils", 1, 10, 12),
                       lambda: client.read_coils(10, count=12, **dev), lambda r: r.bits[:12]))
        ops.append(_do(Op("read_discrete_inputs", 2, 5, 10),
                       lambda: client.read_discrete_inputs(5, count=10, **dev), lambda r: r.bits[:10]))
        ops.append(_do(Op("read_holding_registers", 3, 20, 6),
                       lambda: client.read_holding_registers(20, count=6, **dev), lambda r: r.registers))
        ops.append(_do(Op("read_input_registers", 4, 30, 4),
                       lambda: client.read_input_registers(30, count=4, **dev), lambda r: r.registers))
        ops.append(_do(Op("write_coil", 5, 40, 1, written=[1.0]),
                       lambda: client.write_coil(40, True, **dev), lambda r: r.bits[:1]))
        ops.append(_do(Op("write_register", 6, 50, 1, written=[4321.0]),
                       lambda: client.write_register(50, 4321, **dev), lambda r: r.registers))
        coils = [True, False, True, True, False, False, True, False, True]
        ops.append(_do(Op("write_coils", 15, 16, len(coils), written=[float(c) for c in coils]),
                       lambda: client.write_coils(16, coils, **dev)))
        regs = [11, 22, 33]
        ops.append(_do(Op("write_registers", 16, 60, len(regs), written=[float(v) for v in regs]),
                       lambda: client.write_registers(60, regs, **dev)))
        ops.append(_do(Op("mask_write_register", 22, 70, 1),
                       lambda: client.mask_write_register(address=70, and_mask=0xF0F0, or_mask=0x0A05,
                                                          **dev)))
        ops.append(_do(Op("readwrite_registers", 23, 60, 4, written=[7.0, 8.0]),
                       lambda: client.readwrite_registers(read_address=60, read_count=4, write_address=80,
                                                          values=[7, 8], **dev),
                       lambda r: r.registers))
        ops.append(_do(Op("read_holding_registers", 3, 70, 1),
                       lambda: client.read_holding_registers(70, count=1, **dev), lambda r: r.registers))
        ops.append(_do(Op("read_device_information", 43),
                       lambda: client.read_device_information(read_code=1, object_id=0, **dev)))
        ops.append(_do(Op("diag_query_data", 8),
                       lambda: client.diag_query_data(b"\x12\x34", **dev)))
        ops.append(_do(Op("read_holding_registers", 3, SIZE - 2, 8),
                       lambda: client.read_holding_registers(SIZE - 2, count=8, **dev),
                       lambda r: r.registers))
    finally:
        client.close()
    return ops


def run_poll(host: str, port: int, cycles: int, pause: float = 0.5,
             writes: dict[int, list[tuple[int, int]]] | None = None, source: str | None = None) -> int:
    """An HMI's scan loop: holding and input registers and coils every ``pause`` seconds, with
    the operator's register writes at the cycles named in ``writes``. Returns the cycles run."""
    import time

    from pymodbus.client import ModbusTcpClient

    dev = {"device_id": DEVICE_ID}
    client = ModbusTcpClient(host, port=port, timeout=3, retries=0,
                             source_address=(source, 0) if source else None)
    if not client.connect():
        raise ConnectionError(f"pymodbus client cannot reach {host}:{port}")
    try:
        for cycle in range(cycles):
            client.read_holding_registers(0, count=10, **dev)
            client.read_input_registers(0, count=8, **dev)
            client.read_coils(0, count=16, **dev)
            for address, value in (writes or {}).get(cycle, []):
                client.write_register(address, value, **dev)
            time.sleep(pause)
    finally:
        client.close()
    return cycles


def run_scan(host: str, port: int, source: str | None = None, setpoint: int = 65000) -> None:
    """What an intruder's tool does: identify the device, loop back a diagnostic, then write a
    holding register far outside its normal band and force a coil."""
    from pymodbus.client import ModbusTcpClient

    dev = {"device_id": DEVICE_ID}
    client = ModbusTcpClient(host, port=port, timeout=3, retries=0,
                             source_address=(source, 0) if source else None)
    if not client.connect():
        raise ConnectionError(f"pymodbus client cannot reach {host}:{port}")
    try:
        for read_code, object_id in ((1, 0), (2, 0), (3, 0), (4, 0x05)):
            client.read_device_information(read_code=read_code, object_id=object_id, **dev)
        client.diag_query_data(b"\xa5\x5a", **dev)
        client.read_holding_registers(0, count=10, **dev)
        client.write_register(3, setpoint, **dev)
        client.write_coil(7, True, **dev)
    finally:
        client.close()
