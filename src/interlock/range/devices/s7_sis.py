"""An S7 safety CPU of the range: python-snap7's ``Server`` serving DB1 laid out per the points file.

The DB is a plain ``bytearray`` registered with the server: a REAL is IEEE 754 big-endian at its
byte offset, a BOOL is bit 0 of its byte. ``publish`` writes the read-only points (what the SIS
transmitters read), and seeds an rw point the file gives no ``initial`` for; ``writable`` reads
back the rw points (trip setpoints, bypass), so whatever a
client wrote through S7 (legitimately or not) reaches the runtime on its next scan. Both sides
take the server's own area lock, the one its client threads take for every read and write.

The CPU state (RUN/STOP) is the server's: a client's PLC STOP / hot or cold start changes it,
and :attr:`S7Sis.cpu_running` reports it so the runtime can freeze the SIS logic while stopped.
A stopped CPU runs no program, so nothing copies the transmitters into its DB: ``publish``
leaves the DB as it stood. A point of type ``CPU_STATE`` (no DB, no offset) is that state as a
master reads it, through SZL 0x0424 (``bzu_id`` 0x08 RUN, 0x04 STOP), the list an HMI polls to
show a PLC's mode; python-snap7's server does not serve that list, so ``_SisServer`` adds it.
Written around snap7 only for the layout (snap7 has no notion of typed points).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from interlock.range.boundary import Boundary
from interlock.range.devices.base import Command, DevicePoint, DeviceSpec

SIZES = {"REAL": 4, "BOOL": 1}
CPU_STATE = "CPU_STATE"  # the point type of the CPU's operating state (1 RUN, 0 STOP)
_REAL = struct.Struct(">f")
MIN_DB_SIZE = 16
SZL_CPU_STATE = 0x0424
BZU_RUN, BZU_STOP = 0x08, 0x04


def cpu_state_record(running: bool) -> bytes:
    """SZL 0x0424 as a CPU answers it: LENTHDR 20, N_DR 1, one record whose byte 3 is ``bzu_id``
    (ereig 0x4302 "mode change", ae 0xff; the rest zero)."""
    record = b"\x43\x02\xff" + bytes([BZU_RUN if running else BZU_STOP]) + bytes(16)
    return struct.pack(">HH", len(record), 1) + record


def cpu_state_of(szl_data: bytes) -> float:
    """1.0 RUN, 0.0 STOP, NaN unknown, from SZL 0x0424's data (header included), as snap7's own
    client reads it (``opGetPlcStatus``: byte 7; 0x00 unknown, 0x08 RUN, any other code STOP:
    old CPUs code STOP as 0x03)."""
    if len(szl_data) < 8 or szl_data[7] == 0:
        return float("nan")
    return 1.0 if szl_data[7] == BZU_RUN else 0.0


def _sis_server() -> Any:
    from snap7.server import CPUState, Server

    class _SisServer(Server):
        """snap7's server, answering SZL 0x0424 with its own CPU state."""

        def _get_szl_data(self, szl_id: int, szl_index: int) -> bytes | None:
            if szl_id == SZL_CPU_STATE:
                return cpu_state_record(self.cpu_state == CPUState.RUN)
            data: bytes | None = super()._get_szl_data(szl_id, szl_index)
            return data

    return _SisServer(log=False)


def db_size(points: tuple[DevicePoint, ...]) -> int:
    """Octets of the DB: past the last point, at least ``MIN_DB_SIZE``."""
    end = max((int(p.offset or 0) + SIZES[p.type] for p in points if p.type in SIZES), default=0)
    return max(MIN_DB_SIZE, end)


def encode(db: bytearray, point: DevicePoint, value: float) -> None:
    off = int(point.offset or 0)
    if point.type == "REAL":
        _REAL.pack_into(db, off, value)
    else:  # BOOL: bit 0, the other bits of the byte kept
        db[off] = (db[off] & 0xFE) | (1 if value >= 0.5 else 0)


def decode(db: bytes | bytearray, point: DevicePoint) -> float:
    off = int(point.offset or 0)
    if point.type == "REAL":
        return float(_REAL.unpack_from(db, off)[0])
    return float(db[off] & 1)


class S7Sis:
    """A snap7 server on ``spec.host:spec.port`` with DB1 (rack 0, slot ``spec.unit``)."""

    protocol = "s7comm"

    def __init__(self, spec: DeviceSpec, boundary: Boundary) -> None:
        self.spec = spec
        self.name, self.host, self.port = spec.name, spec.host, spec.port
        self.boundary = boundary
        self.points = tuple(p for p in spec.points if p.type != CPU_STATE)  # the DB's points
        self.dbs: dict[int, bytearray] = {}
        self._server: Any = None
        for p in spec.points:
            if p.type == CPU_STATE and p.access != "r":
                raise ValueError(f"{spec.name}: {p.tag}: a CPU_STATE point is read-only (access: r)")
        for p in self.points:
            if p.type not in SIZES or p.offset is None:
                raise ValueError(f"{spec.name}: {p.tag} needs type REAL, BOOL or CPU_STATE, and an "
                                 f"offset unless CPU_STATE, got {p.type} / {p.offset}")
        for number in sorted({p.db or 1 for p in self.points}):
            db = bytearray(db_size(tuple(p for p in self.points if (p.db or 1) == number)))
            for p in self.points:
                if (p.db or 1) == number:
                    encode(db, p, p.start_value)
            self.dbs[number] = db
        # rw points the file gives no initial for (refinery tshh_setpoint_c): a 0.0 trip setpoint
        # would trip the SIS at once, so they take the first published value of their source
        # and writable() leaves them out until then
        self._unseeded = {p.tag for p in self.points if p.access == "rw" and p.initial is None}

    def start(self) -> None:
        if self._server is not None:
            return
        self.boundary.register(self.host, self.port, self.name)  # refuses non-loopback first
        from snap7.type import SrvArea

        server = _sis_server()
        for number, db in self.dbs.items():
            server.register_area(SrvArea.DB, number, db)
        try:
            server.start_to(self.host, self.port)
        except BaseException:
            self.boundary.unregister(self.host, self.port)  # nothing listens there after all
            raise
        self._server = server

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self.boundary.unregister(self.host, self.port)

    def _locked(self, number: int) -> Any:
        server = self._server
        if server is None:
            return None
        from snap7.type import SrvArea

        class _Lock:
            def __enter__(self) -> None:
                server.lock_area(SrvArea.DB, number)

            def __exit__(self, *exc: object) -> None:
                server.unlock_area(SrvArea.DB, number)

        return _Lock()

    def publish(self, values: Mapping[str, float]) -> None:
        if self._server is not None and not self.cpu_running:
            return  # no program runs: the DB keeps what the last scan wrote
        for number, db in self.dbs.items():
            updates = [(p, float(values[p.source])) for p in self.points
                       if (p.access == "r" or p.tag in self._unseeded) and (p.db or 1) == number
                       and p.source in values]
            self._unseeded -= {p.tag for p, _ in updates}
            if not updates:
                continue
            lock = self._locked(number)
            if lock is None:
                for p, v in updates:
                    encode(db, p, v)
                continue
            with lock:
                for p, v in updates:
                    encode(db, p, v)

    def take_commands(self) -> list[Command]:
        return []  # an S7 client writes the DB: see writable()

    def writable(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for number, db in self.dbs.items():
            lock = self._locked(number)
            if lock is None:
                snapshot = bytes(db)
            else:
                with lock:
                    snapshot = bytes(db)
            for p in self.points:
                if p.access == "rw" and (p.db or 1) == number and p.tag not in self._unseeded:
                    out[p.tag] = decode(snapshot, p)
        return out

    @property
    def cpu_running(self) -> bool:
        """False after a client's PLC STOP, True again after its hot/cold start (snap7's state)."""
        server = self._server
        if server is None:
            return False
        from snap7.server import CPUState

        return bool(server.cpu_state == CPUState.RUN)
