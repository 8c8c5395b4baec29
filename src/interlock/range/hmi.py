"""The SCADA/HMI poller: polls every PLC and RTU of the plant as a real master would.

Modbus devices are read with a pymodbus client whose source address is the HMI's own loopback
address (so captures show the SCADA master there), one read per table covering its points, the
way a SCADA driver groups a device's tags into blocks. DNP3, IEC-104 and S7 devices are polled by
the masters in ``interlock.range.devices.masters``. A device the HMI cannot reach shows as
communication-failed (its tags are not updated) rather than stopping the poller, as on a real HMI.
"""

from __future__ import annotations

from typing import Any

from interlock.range.points import Device, Point

_READ = {
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}


class ModbusMaster:
    """Polls one Modbus device; ``host``/``port`` can be re-pointed (the MITM drill does so)."""

    def __init__(
        self, device: Device, host: str, port: int, source_host: str, *, timeout_s: float = 2.0
    ) -> None:
        self.device = device
        self.host, self.port = host, port
        self.source_host = source_host
        self.timeout_s = timeout_s
        self.client: Any = None
        self.failed = False
        self._blocks: list[tuple[str, int, int, list[Point]]] = []
        for table in _READ:
            points = [p for p in device.points if p.table == table]
            if points:
                first = min(p.address for p in points)
                last = max(p.address for p in points)
                self._blocks.append((table, first, last - first + 1, points))

    async def connect(self) -> None:
        from pymodbus.client import AsyncModbusTcpClient

        self.client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            source_address=(self.source_host, 0),
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
        )
        await self.client.connect()

    async def repoint(self, host: str, port: int) -> None:
        """Talk to another endpoint from now on (the HMI follows a poisoned ARP cache)."""
        await self.close()
        self.host, self.port = host, port
        await self.connect()

    async def poll(self) -> dict[str, float]:
        if self.client is None or not self.client.connected:
            try:
                await self.connect()
            except Exception:
                self.failed = True
                return {}
        values: dict[str, float] = {}
        try:
            for table, first, count, points in self._blocks:
                reply = await getattr(self.client, _READ[table])(
                    first, count=count, device_id=self.device.unit
                )
                if reply.isError():
                    continue
                raw = reply.bits if table in ("coil", "discrete") else reply.registers
                for p in points:
                    values[p.tag] = p.from_raw(int(raw[p.address - first]))
            self.failed = False
        except Exception:
            self.failed = True
        return values

    async def command(self, tag: str, value: float) -> bool:
        point = self.device.point(tag)
        if point.table == "coil":
            reply = await self.client.write_coil(point.address, bool(value), device_id=self.device.unit)
        else:
            reply = await self.client.write_register(
                point.address, point.to_raw(value), device_id=self.device.unit
            )
        return not reply.isError()

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
