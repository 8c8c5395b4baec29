"""ReplayProxy between a pymodbus HMI client and a pymodbus server, all on 127.0.0.5x.

The device is 127.0.0.55:25520, the attacker's proxy 127.0.0.56:25521; a second client talks to
the device directly to change values behind the HMI's back and to check what really happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pymodbus", reason="pymodbus is not installed (pip install pymodbus)")

from interlock.drill.techniques.mitm import ReplayProxy
from interlock.protocols.base import Direction
from interlock.protocols.modbus import parse_adu
from interlock.range.boundary import Boundary, TargetRefused
from tests.peers.modbus_peer import DEVICE_ID, HOLDING, ModbusPeer

DEVICE = ("127.0.0.55", 25520)
PROXY = ("127.0.0.56", 25521)
pytestmark = pytest.mark.peers


@pytest.fixture()
def device() -> Iterator[ModbusPeer]:
    with ModbusPeer(*DEVICE) as p:
        yield p


def boundary() -> Boundary:
    b = Boundary()
    b.register(*DEVICE, "plc")
    b.register(*PROXY, "attacker proxy")
    return b


async def client(host: str, port: int) -> Any:
    from pymodbus.client import AsyncModbusTcpClient

    c = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
    assert await c.connect()
    return c


async def scenario(hold: bool = False) -> tuple[ReplayProxy, dict[str, Any]]:
    seen: dict[str, Any] = {}
    proxy = ReplayProxy(PROXY, DEVICE, boundary=boundary(), inject_writes=[(3, 65000)], hold=hold)
    await proxy.start()
    hmi = await client(*PROXY)
    direct = await client(*DEVICE)
    try:
        # record: two polls, the plant changes register 0 between them
        seen["rec1"] = (await hmi.read_holding_registers(0, count=4, device_id=DEVICE_ID)).registers
        await direct.write_register(0, 111, device_id=DEVICE_ID)
        seen["rec2"] = (await hmi.read_holding_registers(0, count=4, device_id=DEVICE_ID)).registers
        assert not proxy.replaying
        proxy.replay()
        await proxy.injected()
        await direct.write_register(0, 222, device_id=DEVICE_ID)  # the plant moves on
        seen["replayed"] = [(await hmi.read_holding_registers(0, count=4, device_id=DEVICE_ID)).registers
                            for _ in range(3)]
        seen["unrecorded"] = (await hmi.read_holding_registers(10, count=2, device_id=DEVICE_ID)).registers
        write = await hmi.write_register(5, 1234, device_id=DEVICE_ID)
        seen["write_error"] = write.isError()
        seen["truth"] = (await direct.read_holding_registers(0, count=6, device_id=DEVICE_ID)).registers
    finally:
        hmi.close()
        direct.close()
        await proxy.close()
    return proxy, seen


def test_record_then_replay(device: ModbusPeer) -> None:
    proxy, seen = asyncio.run(scenario())
    first = HOLDING[0:4]
    second = [111, *HOLDING[1:4]]
    assert (seen["rec1"], seen["rec2"]) == (first, second)
    # the HMI sees the recording, looped in order, while the device holds 222 and the injected 65000
    assert seen["replayed"] == [first, second, first]
    assert seen["unrecorded"] == HOLDING[10:12]  # not recorded: forwarded, live
    assert seen["write_error"] is False
    assert seen["truth"] == [222, HOLDING[1], HOLDING[2], 65000, HOLDING[4], 1234]

    record, replay, inject = proxy.actions()
    assert [a.technique for a in (record, replay, inject)] == ["mitm.record", "mitm.replay", "mitm.inject"]
    assert replay.attack_ids == ("T0830", "T0856", "T0832")
    for a in (record, replay, inject):
        assert a.target == f"{DEVICE[0]}:{DEVICE[1]}" and a.source.startswith(PROXY[0])
        assert a.started <= a.ended and a.bytes_sent == sum(map(len, a.frames))
    assert record.ended <= replay.started
    # record: the two polls forwarded; replay: three spoofed answers, one read and one write forwarded
    assert record.requests == record.responses == 2
    assert replay.detail["spoofed"] == 3 and replay.requests == 2
    assert len(replay.frames) == 5  # in wire order: spoofed answers and forwarded requests
    spoofed = [parse_adu(f, Direction.RESPONSE) for f in replay.frames[:3]]
    assert [list(s.pdu.registers) for s in spoofed] == [first, second, first]  # type: ignore[union-attr]
    forwarded = [parse_adu(f, Direction.REQUEST) for f in replay.frames[3:]]
    assert [(f.pdu.__class__.__name__, f.pdu.address) for f in forwarded] == [  # type: ignore[union-attr]
        ("ReadHoldingRegistersRequest", 10), ("WriteSingleRegisterRequest", 5)]
    [write] = [parse_adu(f, Direction.REQUEST) for f in inject.frames]
    assert (write.pdu.address, write.pdu.value) == (3, 65000)  # type: ignore[union-attr]
    assert inject.outcome == "ok" and inject.requests == inject.responses == 1
    assert record.detail["recorded"] == [[DEVICE_ID, 3, 0, 4]]


def test_hold_freezes_the_view_at_the_last_recorded_read(device: ModbusPeer) -> None:
    proxy, seen = asyncio.run(scenario(hold=True))
    second = [111, *HOLDING[1:4]]
    assert seen["replayed"] == [second, second, second]  # the plant holds 222; the HMI sees 111
    assert seen["truth"][0] == 222
    replay = proxy.actions()[1]
    assert replay.technique == "mitm.replay" and replay.detail["hold"] is True
    assert replay.detail["spoofed"] == 3


def test_proxy_refuses_unregistered_endpoints() -> None:
    async def start(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        await ReplayProxy(listen, upstream, boundary=boundary()).start()

    with pytest.raises(TargetRefused, match=r"192\.0\.2\.1:502"):
        asyncio.run(start(PROXY, ("192.0.2.1", 502)))
    with pytest.raises(TargetRefused, match=r"127\.0\.0\.57:25522"):
        asyncio.run(start(("127.0.0.57", 25522), DEVICE))
