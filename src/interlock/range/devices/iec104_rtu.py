"""An IEC 60870-5-104 controlled station (RTU) of the range, on c104 (lib60870) ``Server``.

Served: measured short floats (M_ME_NC_1) and single points (M_SP_NA_1) of the points file,
answered to a general interrogation (COT 20) and reported spontaneously (COT 3) when ``publish``
moves them beyond their deadband; single commands (C_SC_NA_1) in select-and-execute mode (c104
keeps the selection and refuses an execute without it, or after ``select_timeout_ms``); float
setpoints (C_SE_NC_1) direct. Executed commands are recorded as :class:`Command`; a select is
confirmed but not recorded, as it changes nothing in the plant.

c104 runs its own threads and calls ``on_receive`` from them: the callback only appends to the
locked :class:`CommandQueue`. c104 checks the callback's parameter annotations at registration,
so they must be the real classes at run time: this module does not use
``from __future__ import annotations``.
"""

import time
from collections.abc import Mapping
from typing import Any

from interlock.range.boundary import Boundary
from interlock.range.devices.base import ChangeFilter, Command, CommandQueue, DeviceSpec

MONITORED = ("M_ME_NC_1", "M_SP_NA_1")
COMMANDS = ("C_SC_NA_1", "C_SE_NC_1")


class Iec104Rtu:
    """A c104 server with one station (common address ``spec.unit``) for one points-file device."""

    protocol = "iec104"

    def __init__(self, spec: DeviceSpec, boundary: Boundary, *, default_deadband: float = 0.01,
                 select_timeout_ms: int = 10000, tick_rate_ms: int = 50) -> None:
        self.spec = spec
        self.name, self.host, self.port = spec.name, spec.host, spec.port
        self.boundary = boundary
        self.select_timeout_ms = select_timeout_ms
        self.tick_rate_ms = tick_rate_ms
        self.points = spec.points
        self._changes = ChangeFilter(default_deadband)
        self._commands = CommandQueue(spec.name)
        self._server: Any = None
        self._by_ioa: dict[int, Any] = {}
        for p in spec.points:
            if p.type not in (*MONITORED, *COMMANDS) or p.ioa is None:
                raise ValueError(f"{spec.name}: {p.tag} needs a type of {MONITORED + COMMANDS} and an "
                                 f"ioa, got {p.type} / {p.ioa}")

    def start(self) -> None:
        if self._server is not None:
            return
        self.boundary.register(self.host, self.port, self.name)  # refuses non-loopback first
        import c104

        server = c104.Server(ip=self.host, port=self.port, tick_rate_ms=self.tick_rate_ms,
                             select_timeout_ms=self.select_timeout_ms, max_connections=4)
        station = server.add_station(common_address=self.spec.unit)
        if station is None:
            raise ValueError(f"{self.name}: c104 refused common address {self.spec.unit}")
        queue = self._commands
        tags = {p.ioa: p for p in self.points}

        def on_command(point: c104.Point, previous_info: c104.Information,
                       message: c104.IncomingMessage) -> c104.ResponseState:
            # runs in a c104 thread: record only, under the queue's lock
            p = tags.get(point.io_address)
            if p is None:
                return c104.ResponseState.FAILURE
            if message.is_select_command:
                return c104.ResponseState.SUCCESS  # c104 keeps the selection for the execute
            raw: Any = point.value
            value = float(raw)
            if p.type == "C_SC_NA_1":
                value = 1.0 if value else 0.0
            queue.record(p.tag, value, f"{p.type} ioa {p.ioa} execute")
            return c104.ResponseState.SUCCESS

        for p in self.points:
            kind = getattr(c104.Type, p.type)
            ioa = int(p.ioa or 0)  # checked in __init__
            if p.type in COMMANDS:
                mode = (c104.CommandMode.SELECT_AND_EXECUTE if p.type == "C_SC_NA_1"
                        else c104.CommandMode.DIRECT)
                point = station.add_point(io_address=ioa, type=kind, command_mode=mode)
                if point is None:
                    raise ValueError(f"{self.name}: c104 refused {p.tag} ({p.type} ioa {p.ioa})")
                point.value = bool(p.start_value) if p.type == "C_SC_NA_1" else float(p.start_value)
                point.on_receive(callable=on_command)
            else:
                point = station.add_point(io_address=ioa, type=kind)
                if point is None:
                    raise ValueError(f"{self.name}: c104 refused {p.tag} ({p.type} ioa {p.ioa})")
                point.value = bool(p.start_value) if p.type == "M_SP_NA_1" else float(p.start_value)
                self._changes.changed(p.tag, float(p.start_value), p.deadband)
            self._by_ioa[ioa] = point
        server.start()
        self._server = server
        deadline = time.monotonic() + 5.0
        while not server.is_running:
            if time.monotonic() > deadline:
                self.stop()
                raise OSError(f"{self.name}: c104 server did not start on {self.host}:{self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._by_ioa = {}
        self.boundary.unregister(self.host, self.port)

    def publish(self, values: Mapping[str, float]) -> None:
        if self._server is None:
            return
        import c104

        for p in self.points:
            if p.type not in MONITORED or p.source not in values:
                continue
            v = float(values[p.source])
            point = self._by_ioa[int(p.ioa or 0)]
            if p.type == "M_SP_NA_1":
                v = 1.0 if v >= 0.5 else 0.0
                point.value = bool(v)
            else:
                point.value = v
            if self._changes.changed(p.tag, v, p.deadband if p.type == "M_ME_NC_1" else 0.0):
                point.transmit(cause=c104.Cot.SPONTANEOUS)  # False without a client: nothing to do

    def take_commands(self) -> list[Command]:
        return self._commands.take()

    def writable(self) -> dict[str, float]:
        return {}  # an IEC 104 RTU takes its writes as commands (take_commands)

