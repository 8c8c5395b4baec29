"""A real S7comm server and client (python-snap7 3.x, pure Python) on a loopback address.

``S7Peer`` serves DB1 (``DB1_SIZE`` bytes of a known pattern) and a marker area; ``run_session``
connects (COTP CR, setup communication), reads and writes DB1, reads SZLs, and optionally stops
and restarts the CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

DB_NUMBER = 1
DB1_SIZE = 64
DB1 = bytes((i * 13 + 5) & 0xFF for i in range(DB1_SIZE))
MK_SIZE = 16
READ_START, READ_SIZE = 4, 8
WRITE_START, WRITE_DATA = 20, bytes([0xDE, 0xAD, 0xBE, 0xEF])
# component identification: snap7's server answers 0x0011 with a short record (tshark calls it
# malformed), and its client's get_cpu_state sends a Read Var without items: both are left out
SZL_IDS = (0x001C,)


class S7Peer:
    """A snap7 ``Server`` bound to ``host:port`` (its own threads)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server: Any = None
        self.db1 = bytearray(DB1)
        self.mk = bytearray(MK_SIZE)

    def start(self) -> S7Peer:
        from snap7.server import Server
        from snap7.type import SrvArea

        from tests.peers.capture import wait_port

        self.server = Server(log=False)
        self.server.register_area(SrvArea.DB, DB_NUMBER, self.db1)
        self.server.register_area(SrvArea.MK, 0, self.mk)
        self.server.start_to(self.host, self.port)
        wait_port(self.host, self.port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> S7Peer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Session:
    """What the client did and got."""

    pdu_length: int = 0
    read: bytes = b""
    read_after_write: bytes = b""
    szl: dict[int, bytes] = field(default_factory=dict)
    stopped: bool = False
    started: bool = False


def run_session(host: str, port: int, stop_start: bool = True, pause: float = 0.0) -> Session:
    from snap7.client import Client

    out = Session()
    client = Client()
    client.connect(host, 0, 2, tcp_port=port)
    try:
        out.pdu_length = int(client.get_pdu_length())
        out.read = bytes(client.db_read(DB_NUMBER, READ_START, READ_SIZE))
        time.sleep(pause)
        client.db_write(DB_NUMBER, WRITE_START, bytearray(WRITE_DATA))
        out.read_after_write = bytes(client.db_read(DB_NUMBER, WRITE_START, len(WRITE_DATA)))
        for szl_id in SZL_IDS:
            szl = client.read_szl(szl_id, 0)
            out.szl[szl_id] = bytes(szl.Data[: szl.Header.LengthDR * szl.Header.NDR])
        if stop_start:
            time.sleep(pause)
            out.stopped = client.plc_stop() == 0
            time.sleep(pause)
            out.started = client.plc_hot_start() == 0
    finally:
        client.disconnect()
    return out
