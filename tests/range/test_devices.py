"""The range's field devices (DNP3 RTU, IEC 104 RTU, S7 SIS) against the HMI's masters, on loopback.

Each test serves on its own 127.0.0.15x address and an unprivileged port, so it runs without root
and next to the other workers' tests; the masters bind 127.0.0.159 as their source address to
show the binding works (the range uses the HMI host, 127.0.0.2).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from interlock.protocols.dnp3.codec import ObjectHeader
from interlock.protocols.dnp3.fields import FunctionCode
from interlock.range.boundary import Boundary, TargetRefused
from interlock.range.devices import DeviceSpec, FieldDevice, load_device_specs, load_field_devices
from interlock.range.devices.dnp3_rtu import Dnp3Rtu
from interlock.range.devices.iec104_rtu import Iec104Rtu
from interlock.range.devices.masters import Dnp3Master, Iec104Master, S7Master
from interlock.range.devices.s7_sis import S7Sis

MASTER_HOST = "127.0.0.159"
T = TypeVar("T")


def spec_of(plant: str, protocol: str, host: str, port: int) -> DeviceSpec:
    spec = next(s for s in load_device_specs(plant) if s.protocol == protocol)
    return dataclasses.replace(spec, host=host, port=port)


def monitored_values(spec: DeviceSpec, base: float) -> dict[str, float]:
    """Plant values for every source a device mirrors: floats with fractions, booleans as 1."""
    out: dict[str, float] = {}
    for k, p in enumerate(spec.points):
        if p.type in ("C_SC_NA_1", "C_SE_NC_1"):
            continue  # commands: the master writes them
        if p.type in ("binary_input", "binary_output", "M_SP_NA_1", "BOOL"):
            out[p.source] = 1.0
        elif p.access == "r" or p.type in ("analog_input", "M_ME_NC_1"):
            out[p.source] = base + 1.25 * k + 0.03125
    return out


def expected(spec: DeviceSpec, values: dict[str, float], types: tuple[str, ...]) -> dict[str, float]:
    return {p.tag: values[p.source] for p in spec.points if p.type in types and p.source in values}


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def boundary() -> Boundary:
    return Boundary()


@pytest.fixture
def stopper() -> Iterator[Callable[[Any], Any]]:
    """Register devices to stop at teardown, whatever the test did."""
    devices: list[Any] = []

    def keep(device: Any) -> Any:
        devices.append(device)
        return device

    yield keep
    for d in reversed(devices):
        d.stop()


# --------------------------------------------------------------------------- loading and boundary


def test_points_files_give_the_field_devices(boundary: Boundary) -> None:
    gas = load_device_specs("gas-pipeline")
    assert [(s.name, s.protocol, s.unit) for s in gas] == [("rtu-1", "dnp3", 10)]
    assert {p.type for p in gas[0].points} == {"analog_input", "binary_input", "binary_output"}
    line_end = next(p for p in gas[0].points if p.tag == "line_end_bar")
    assert line_end.source == "discharge_bar"
    for plant in ("reactor", "refinery"):
        specs = {s.protocol: s for s in load_device_specs(plant)}
        assert set(specs) == {"iec104", "s7comm"}
        assert {p.type for p in specs["iec104"].points} == {"M_ME_NC_1", "M_SP_NA_1", "C_SC_NA_1",
                                                            "C_SE_NC_1"}
        assert {p.type for p in specs["s7comm"].points} == {"REAL", "BOOL", "CPU_STATE"}
    devices = load_field_devices("reactor", boundary)
    assert sorted(type(d).__name__ for d in devices) == ["Iec104Rtu", "S7Sis"]
    assert all(isinstance(d, FieldDevice) for d in devices)
    assert {(d.host, d.port) for d in devices} == {("127.0.0.32", 2404), ("127.0.0.33", 102)}
    assert boundary.endpoints() == ()  # built, not started


@pytest.mark.parametrize("cls,protocol,plant", [(Dnp3Rtu, "dnp3", "gas-pipeline"),
                                                (Iec104Rtu, "iec104", "reactor"),
                                                (S7Sis, "s7comm", "refinery")])
def test_non_loopback_host_is_refused_before_any_socket(boundary: Boundary, cls: Any, protocol: str,
                                                        plant: str) -> None:
    device = cls(spec_of(plant, protocol, "192.0.2.10", 20159), boundary)
    before = threading.active_count()
    with pytest.raises(TargetRefused, match="loopback"):
        device.start()
    assert boundary.endpoints() == ()
    assert threading.active_count() == before  # no server thread either
    device.stop()  # harmless on a device that never started


# --------------------------------------------------------------------------- DNP3


def test_dnp3_rtu_polled_and_commanded_by_the_dnp3_master(boundary: Boundary, stopper: Any) -> None:
    spec = spec_of("gas-pipeline", "dnp3", "127.0.0.150", 20150)
    rtu = stopper(Dnp3Rtu(spec, boundary))
    rtu.start()
    assert [str(e) for e in boundary.endpoints()] == ["127.0.0.150:20150"]
    values = monitored_values(spec, 50.0)
    rtu.publish(values)

    async def session() -> None:
        master = Dnp3Master(spec, bind_host=MASTER_HOST)
        await master.connect()
        try:
            assert master.stream.writer is not None
            assert master.stream.writer.get_extra_info("sockname")[0] == MASTER_HOST
            want = expected(spec, values, ("analog_input", "binary_input", "binary_output"))
            assert await master.poll() == pytest.approx(want, rel=1e-6)

            values["delivery_kg_s"] = 12.5
            values["demand_kg_s"] = 3.001  # beyond the default deadband: an event too
            rtu.publish(values)
            got = await master.poll()
            assert got["delivery_kg_s"] == 12.5
            assert got["demand_kg_s"] == pytest.approx(3.001, rel=1e-6)

            # select-before-operate, then direct operate
            assert await master.command("delivery_valve", 0.0)
            master.select_before_operate = False
            assert await master.command("delivery_valve", 1.0)
            cmds = rtu.take_commands()
            assert [(c.device, c.tag, c.value) for c in cmds] == [("rtu-1", "delivery_valve", 0.0),
                                                                  ("rtu-1", "delivery_valve", 1.0)]
            assert cmds[0].detail == "CROB LATCH_OFF index 0 operate (after select)"
            assert cmds[1].detail == "CROB LATCH_ON index 0 direct operate"
            assert rtu.take_commands() == []

            # class 2 event poll alone: the analog change published since the last poll
            values["delivery_kg_s"] = 77.75
            rtu.publish(values)
            events = await master.request(FunctionCode.READ, (ObjectHeader(60, 3, 0x06),))
            assert [(h.group, h.variation) for r in events for h in r.headers] == [(32, 5)]
            assert events[0].headers[0].values == (77.75,)

            # unsolicited: off until the master enables it, then pushed by the outstation
            assert rtu.unsolicited_enabled == (False, False, False)
            await master.request(FunctionCode.ENABLE_UNSOLICITED,
                                 tuple(ObjectHeader(60, v, 0x06) for v in (2, 3, 4)))
            assert rtu.unsolicited_enabled == (True, True, True)
            values["delivery_kg_s"] = 66.0
            rtu.publish(values)
            await asyncio.sleep(0.4)
            got = await master.poll()  # reads (and confirms) the unsolicited response on the way
            assert got["delivery_kg_s"] == 66.0
            assert any(h.values == (66.0,) for r in master.unsolicited for h in r.headers)

            # a cold restart is accepted with its time delay (g52v2, ms) and noted
            reply = await master.request(FunctionCode.COLD_RESTART)
            assert [(h.group, h.variation, h.values) for h in reply[0].headers] == [(52, 2, (5000,))]
            assert [kind for kind, _ in rtu.restarts] == ["cold"]
        finally:
            await master.close()

    run(session())


def test_dnp3_rtu_refuses_an_unknown_output_and_frees_its_port(boundary: Boundary, stopper: Any) -> None:
    spec = spec_of("gas-pipeline", "dnp3", "127.0.0.151", 20151)
    bogus = dataclasses.replace(spec, points=(*spec.points, dataclasses.replace(
        next(p for p in spec.points if p.type == "binary_output"), tag="not_served", index=7)))
    rtu = stopper(Dnp3Rtu(spec, boundary))
    rtu.start()

    async def refused() -> bool:
        master = Dnp3Master(bogus, bind_host=MASTER_HOST)
        await master.connect()
        try:
            return await master.command("not_served", 1.0)
        finally:
            await master.close()

    assert run(refused()) is False
    assert rtu.take_commands() == []
    rtu.stop()
    assert not listening("127.0.0.151", 20151)
    assert not any(t.name.startswith("dnp3-") and t.is_alive() for t in threading.enumerate())
    rtu.start()  # the same port again
    rtu.publish({"delivery_kg_s": 4.5})

    async def poll() -> dict[str, float]:
        master = Dnp3Master(spec, bind_host=MASTER_HOST)
        await master.connect()
        try:
            return await master.poll()
        finally:
            await master.close()

    assert run(poll())["delivery_kg_s"] == 4.5


# --------------------------------------------------------------------------- IEC 104


def test_iec104_rtu_interrogated_and_commanded_by_the_iec104_master(boundary: Boundary,
                                                                    stopper: Any) -> None:
    spec = spec_of("reactor", "iec104", "127.0.0.152", 20152)
    rtu = stopper(Iec104Rtu(spec, boundary))
    rtu.start()
    values = monitored_values(spec, 300.0)
    rtu.publish(values)

    async def session() -> None:
        master = Iec104Master(spec, bind_host=MASTER_HOST)
        await master.connect()
        try:
            assert master.stream.writer is not None
            assert master.stream.writer.get_extra_info("sockname")[0] == MASTER_HOST
            want = expected(spec, values, ("M_ME_NC_1", "M_SP_NA_1"))
            assert await master.poll() == pytest.approx(want, rel=1e-6)

            values["reactor_temp_k"] = 331.5
            values["feed_enable"] = 0.0
            rtu.publish(values)
            await asyncio.sleep(0.2)
            got = await master.poll()
            assert got["reactor_temp_k"] == 331.5
            assert got["feed_enable_status"] == 0.0
            assert master.spontaneous >= 2  # both changes were also reported with COT 3

            assert await master.command("feed_enable", 1.0)  # select, then execute
            assert await master.command("temp_sp_k", 333.25)
            cmds = rtu.take_commands()
            assert [(c.tag, c.value, c.detail) for c in cmds] == [
                ("feed_enable", 1.0, "C_SC_NA_1 ioa 3001 execute"),
                ("temp_sp_k", 333.25, "C_SE_NC_1 ioa 4001 execute")]

        finally:
            await master.close()
        # an execute without a selection (a new connection: c104 keeps a selection per
        # connection until its timeout, even after the execute) is refused
        direct = Iec104Master(spec, bind_host=MASTER_HOST, select_before_execute=False)
        await direct.connect()
        try:
            assert not await direct.command("feed_enable", 0.0)
            assert rtu.take_commands() == []
        finally:
            await direct.close()

    run(session())
    rtu.stop()
    assert not listening("127.0.0.152", 20152)
    rtu.start()  # the same port again
    rtu.publish({"reactor_temp_k": 299.0})

    async def poll() -> dict[str, float]:
        master = Iec104Master(spec, bind_host=MASTER_HOST)
        await master.connect()
        try:
            return await master.poll()
        finally:
            await master.close()

    assert run(poll())["reactor_temp_k"] == 299.0


# --------------------------------------------------------------------------- S7


def test_s7_sis_read_and_written_by_s7_clients(boundary: Boundary, stopper: Any) -> None:
    from snap7.client import Client

    spec = spec_of("reactor", "s7comm", "127.0.0.153", 20153)
    sis = stopper(S7Sis(spec, boundary))
    sis.start()
    assert sis.cpu_running
    sis.publish({"reactor_temp_k": 341.125, "sis_trip_active": 1.0})
    initial = {p.tag: p.initial for p in spec.points if p.access == "rw"}
    assert sis.writable() == initial

    async def session() -> None:
        master = S7Master(spec)
        await master.connect()
        try:
            got = await master.poll()
            # sis_cpu_run: the CPU's mode, read as an HMI reads it (SZL 0x0424), 1 in RUN
            assert got == {
                "sis_reactor_temp_k": 341.125, "sis_trip_active": 1.0, "sis_cpu_run": 1.0, **initial
            }
            sis.publish({"reactor_temp_k": 352.5})
            assert (await master.poll())["sis_reactor_temp_k"] == 352.5
            assert await master.command("tshh_setpoint_k", 365.5)
        finally:
            await master.close()

    run(session())
    assert sis.writable()["tshh_setpoint_k"] == 365.5

    client = Client()  # an attacker's (or engineer's) own client, raw bytes at DB1.DBX8.0
    client.connect("127.0.0.153", 0, 1, tcp_port=20153)
    try:
        client.db_write(1, 8, bytearray([1]))
        client.db_write(1, 4, bytearray(struct.pack(">f", 420.0)))
        assert sis.writable() == {"tshh_setpoint_k": 420.0, "sis_bypass": 1.0}
        assert client.plc_stop() == 0
        assert not sis.cpu_running
        # In STOP no program runs: the transmitters no longer reach the DB, and the HMI sees STOP.
        sis.publish({"reactor_temp_k": 399.0})

        async def hmi_poll() -> dict[str, float]:
            master = S7Master(spec)
            await master.connect()
            try:
                return await master.poll()
            finally:
                await master.close()

        seen = run(hmi_poll())
        assert seen["sis_cpu_run"] == 0.0 and seen["sis_reactor_temp_k"] == 352.5
        assert client.plc_hot_start() == 0
        assert sis.cpu_running
        sis.publish({"reactor_temp_k": 399.0})
        seen = run(hmi_poll())
        assert seen["sis_cpu_run"] == 1.0 and seen["sis_reactor_temp_k"] == 399.0
    finally:
        client.disconnect()
    sis.stop()
    assert not listening("127.0.0.153", 20153)
    sis.start()  # the same port again, the DB as the client left it
    assert listening("127.0.0.153", 20153)
    assert sis.writable()["sis_bypass"] == 1.0


def test_s7_rw_point_without_initial_waits_for_its_first_value(boundary: Boundary) -> None:
    spec = spec_of("refinery", "s7comm", "127.0.0.155", 20157)
    spec = dataclasses.replace(spec, points=tuple(
        dataclasses.replace(p, initial=None) if p.tag == "tshh_setpoint_c" else p for p in spec.points))
    sis = S7Sis(spec, boundary)  # not started: the DB is the same bytearray either way
    assert sis.writable() == {"sis_bypass": 0.0}  # no 0.0 trip setpoint handed to the runtime
    sis.publish({"tshh_setpoint_c": 510.0, "tube_skin_c": 420.5})
    assert sis.writable() == {"tshh_setpoint_c": 510.0, "sis_bypass": 0.0}
    sis.publish({"tshh_setpoint_c": 999.0})  # seeded once: from now on only clients write it
    assert sis.writable()["tshh_setpoint_c"] == 510.0


def test_poll_latency_is_small(boundary: Boundary, stopper: Any) -> None:
    """Each master's poll stays well under the HMI's 1 s cycle (median of 20, printed with -s)."""
    dnp3 = spec_of("gas-pipeline", "dnp3", "127.0.0.154", 20154)
    iec = spec_of("refinery", "iec104", "127.0.0.154", 20155)
    s7 = spec_of("refinery", "s7comm", "127.0.0.154", 20156)
    for cls, spec in ((Dnp3Rtu, dnp3), (Iec104Rtu, iec), (S7Sis, s7)):
        device = stopper(cls(spec, boundary))
        device.start()
        device.publish(monitored_values(spec, 10.0))

    async def median(master: Any) -> float:
        await master.connect()
        try:
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                await master.poll()
                times.append(time.perf_counter() - t0)
            return sorted(times)[len(times) // 2]
        finally:
            await master.close()

    for name, master in (("dnp3", Dnp3Master(dnp3, bind_host=MASTER_HOST)),
                         ("iec104", Iec104Master(iec, bind_host=MASTER_HOST)), ("s7", S7Master(s7))):
        m = run(median(master))
        print(f"{name} poll median {m * 1000:.2f} ms")
        assert m < 0.25
