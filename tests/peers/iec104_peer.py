"""A real IEC 60870-5-104 controlled station and controlling station (c104, lib60870) on loopback.

``Iec104Peer`` serves one station (common address ``CA``) with the points of ``POINTS``;
``run_session`` connects a c104 client (STARTDT), runs a general interrogation, sends a single
command and a short-float set-point, and returns what it did and saw.
"""

import time
from dataclasses import dataclass, field
from typing import Any

CA = 47
SP_IOA, ME_IOA, ME_TF_IOA, SC_IOA, SE_IOA = 1001, 2001, 2002, 5001, 6001
SP_VALUE, ME_VALUE, ME_TF_VALUE = True, 23.5, 230.25
SETPOINT = 42.75


class Iec104Peer:
    """A ``c104.Server`` on ``host:port`` (its own threads, started and stopped by c104)."""

    def __init__(self, host: str, port: int, ca: int = CA) -> None:
        self.host, self.port, self.ca = host, port, ca
        self.server: Any = None
        self.received: list[tuple[int, float]] = []  # (IOA, value) of commands the server got
        self.points: dict[int, Any] = {}

    def start(self) -> "Iec104Peer":
        import c104

        self.server = c104.Server(ip=self.host, port=self.port, tick_rate_ms=50, max_connections=4)
        station = self.server.add_station(common_address=self.ca)
        sp = station.add_point(io_address=SP_IOA, type=c104.Type.M_SP_NA_1)
        sp.value = SP_VALUE
        me = station.add_point(io_address=ME_IOA, type=c104.Type.M_ME_NC_1)
        me.value = ME_VALUE
        tf = station.add_point(io_address=ME_TF_IOA, type=c104.Type.M_ME_TF_1)
        tf.value = ME_TF_VALUE
        sc = station.add_point(io_address=SC_IOA, type=c104.Type.C_SC_NA_1,
                               related_io_address=SP_IOA, related_io_autoreturn=True)
        se = station.add_point(io_address=SE_IOA, type=c104.Type.C_SE_NC_1,
                               related_io_address=ME_IOA, related_io_autoreturn=True)
        self.points = {SP_IOA: sp, ME_IOA: me, ME_TF_IOA: tf, SC_IOA: sc, SE_IOA: se}

        # c104 checks the callback's parameter names and annotations, which must be the real
        # classes: this module does not use ``from __future__ import annotations`` for that reason
        def on_command(point: c104.Point, previous_info: c104.Information,
                       message: c104.IncomingMessage) -> c104.ResponseState:
            self.received.append((point.io_address, float(point.value)))
            related = self.points.get(point.related_io_address)
            if related is not None:  # the plant follows the command; autoreturn reports it
                related.value = point.value
            return c104.ResponseState.SUCCESS

        sc.on_receive(callable=on_command)
        se.on_receive(callable=on_command)
        self.server.start()
        deadline = time.monotonic() + 5
        while not self.server.is_running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"c104 server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> "Iec104Peer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Session:
    """What the controlling station did and saw."""

    interrogation_ok: bool = False
    command_ok: bool = False  # c104's transmit() result: see the note in test_iec104_peer
    setpoint_ok: bool = False
    seen: dict[int, float] = field(default_factory=dict)  # IOA -> value, as the client's points hold


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def run_session(host: str, port: int, ca: int = CA, command: bool = True, setpoint: float = SETPOINT,
                extra_setpoints: tuple[float, ...] = ()) -> Session:
    """Connect (STARTDT), interrogate, then operate the command and set-point points."""
    import c104

    out = Session()
    client = c104.Client(tick_rate_ms=50, command_timeout_ms=1000)
    # Init.MUTED: connect without STARTDT, then unmute() sends STARTDT_ACT. With Init.NONE c104
    # 2.2 sometimes leaves the connection muted (no STARTDT at all) and the test would hang.
    conn = client.add_connection(ip=host, port=port, init=c104.Init.MUTED)
    station = conn.add_station(common_address=ca)
    client.start()  # connects every connection added: a second connect() races with it
    try:
        _wait(lambda: conn.state == c104.ConnectionState.OPEN_MUTED, 5, f"cannot connect to {host}:{port}")
        conn.unmute()
        # OPEN only once STARTDT is confirmed (is_connected is already true before that)
        _wait(lambda: conn.state == c104.ConnectionState.OPEN, 5, f"no STARTDT_CON from {host}:{port}")
        # wait_for_response=True sometimes misses a confirmation that arrives very early and
        # returns False although ACT_CON came: wait for the interrogated points instead
        conn.interrogation(common_address=ca, cause=c104.Cot.ACTIVATION, qualifier=c104.Qoi.STATION,
                           wait_for_response=False)
        monitored = (SP_IOA, ME_IOA, ME_TF_IOA)
        _wait(lambda: all(station.get_point(io_address=ioa) is not None for ioa in monitored), 5,
              "the interrogated points did not arrive")
        out.interrogation_ok = True
        time.sleep(0.2)  # ACT_TERM follows the values
        if command:
            sc = station.add_point(io_address=SC_IOA, type=c104.Type.C_SC_NA_1)
            sc.value = True
            out.command_ok = sc.transmit(cause=c104.Cot.ACTIVATION)
        se = station.add_point(io_address=SE_IOA, type=c104.Type.C_SE_NC_1)
        for value in (setpoint, *extra_setpoints):
            se.value = value
            out.setpoint_ok = se.transmit(cause=c104.Cot.ACTIVATION)
            time.sleep(0.1)
        time.sleep(0.2)
        for ioa in (SP_IOA, ME_IOA, ME_TF_IOA):
            p = station.get_point(io_address=ioa)
            if p is not None:
                out.seen[ioa] = float(p.value)
    finally:
        conn.disconnect()
        client.stop()
    return out
