"""The range at run time: PLCs on real pymodbus servers, the HMI poller, the historian, the CLI.

Everything here talks TCP on loopback to servers the range itself starts; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from interlock.cli import main
from interlock.range.boundary import Boundary, TargetRefused
from interlock.range.points import PointListError, load_point_list, parse_point_list
from interlock.range.runtime import Range

pymodbus = pytest.importorskip("pymodbus")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_point_lists_cover_every_plant_and_map_to_real_tags() -> None:
    from interlock.range.plants import PLANTS

    for plant_id, cls in PLANTS.items():
        points = load_point_list(plant_id)
        plant = cls(seed=0)
        truth = set(plant.truth())
        plc = points.device("plc-1")
        sensors = [p for p in plc.points if p.kind == "sensor"]
        assert sensors, plant_id
        for p in sensors:
            assert p.source in truth, f"{plant_id}: {p.tag} mirrors no plant tag"
        assert {d.role for d in points.devices} == {"plc", "sis", "rtu"}


def test_broken_point_list_is_refused_with_file_and_line(tmp_path: Path) -> None:
    text = (
        "plant: x\ndevices:\n  - name: plc-1\n    role: plc\n    protocol: modbus\n    host: 127.0.0.9\n"
        "    port: 502\n    points:\n      - {tag: a, table: input, address: 0, access: rw}\n"
    )
    with pytest.raises(PointListError, match=r"points.yaml:9: point a: a input cannot be written"):
        parse_point_list(text, tmp_path / "points.yaml")


async def _client_session(rng: Range) -> dict[str, object]:
    from pymodbus.client import AsyncModbusTcpClient

    host, port = rng.endpoint("plc-1")
    client = AsyncModbusTcpClient(host, port=port, source_address=("127.0.0.3", 0))
    await client.connect()
    try:
        out: dict[str, object] = {}
        out["inputs"] = (await client.read_input_registers(0, count=4, device_id=1)).registers
        out["out_of_range"] = (
            await client.write_register(0, 4000, device_id=1)
        ).exception_code  # 400 K > 345
        out["read_only"] = (await client.write_register(10, 3000, device_id=1)).exception_code
        out["unmapped"] = (await client.write_register(7, 1, device_id=1)).exception_code
        out["beyond"] = (await client.read_holding_registers(100, count=2, device_id=1)).exception_code
        ok = await client.write_register(0, 3300, device_id=1)  # temperature setpoint 330.0 K
        out["accepted"] = not ok.isError()
        out["setpoint"] = (await client.read_holding_registers(0, count=1, device_id=1)).registers[0]
        return out
    finally:
        client.close()


def test_real_client_reads_and_writes_the_point_list_and_gets_plc_exceptions() -> None:
    async def scenario() -> tuple[dict[str, object], float, float]:
        async with Range("reactor", seed=3, field_devices=False) as rng:
            await rng.advance(5)
            before = rng.plant.truth()["reactor_temp_k"]
            result = await _client_session(rng)
            await rng.advance(900)
            return result, before, rng.plant.truth()["reactor_temp_k"]

    result, before, after = run(scenario())
    temp_raw = result["inputs"][0]  # type: ignore[index]
    assert abs(temp_raw / 10 - before) < 1.0  # the register holds the transmitter, x10
    assert result["out_of_range"] == 3  # ILLEGAL DATA VALUE
    assert result["read_only"] == 2  # ILLEGAL DATA ADDRESS: a PLC output
    assert result["unmapped"] == 2
    assert result["beyond"] == 2
    assert result["accepted"] and result["setpoint"] == 3300
    # The loop follows the new setpoint: the reactor heats from 324.5 K towards 330 K.
    assert 328.5 < after < 331.5, after


def test_overriding_control_trips_the_sis_and_the_hmi_sees_it() -> None:
    async def scenario() -> Range:
        async with Range("reactor", seed=1, field_devices=False) as rng:
            plc = rng.plcs["plc-1"]
            assert plc.write_tag("temp_mode", 0) is None
            assert plc.write_tag("coolant_manual_k", 318.0) is None
            await rng.advance(1800)
            return rng

    rng = run(scenario())
    assert [e.trip for e in rng.plant.sis.events] == ["TSHH-901"]
    assert not rng.events.hazards  # the trip held the reactor below runaway
    assert rng.historian.latest()[("plc-1", "sis_tripped")] == 1.0


def _historian_digest(tmp_path: Path, name: str, seed: int) -> str:
    async def scenario() -> None:
        async with Range("gas-pipeline", seed=seed) as rng:
            await rng.advance(300)
            rng.historian.write(tmp_path / name)

    run(scenario())
    return hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()


def test_same_seed_gives_the_same_historian_byte_for_byte(tmp_path: Path) -> None:
    a = _historian_digest(tmp_path, "a.parquet", 5)
    b = _historian_digest(tmp_path, "b.parquet", 5)
    c = _historian_digest(tmp_path, "c.parquet", 6)
    assert a == b
    assert a != c


def test_every_plant_holds_its_envelope_for_ten_minutes_with_all_devices() -> None:
    from interlock.range.plants import PLANTS

    for plant_id in PLANTS:

        async def scenario(pid: str = plant_id) -> Range:
            async with Range(pid, seed=2) as rng:
                await rng.advance(600)
                return rng

        rng = run(scenario())
        assert rng.plant.in_envelope(), plant_id
        assert not rng.plant.sis.tripped, plant_id
        devices = {d for d, _tag in rng.historian.latest()}
        assert devices == {d.name for d in rng.points.devices}, plant_id  # every device was polled


def test_boundary_refuses_what_the_range_did_not_start() -> None:
    boundary = Boundary()
    with pytest.raises(TargetRefused, match="loopback"):
        boundary.register("192.0.2.10", 502)
    boundary.register("127.0.0.31", 502, "plc-1")
    assert boundary.check("127.0.0.31", 502).name == "plc-1"
    with pytest.raises(TargetRefused, match="no server of this range"):
        boundary.check("127.0.0.32", 502)
    with pytest.raises(TargetRefused, match="only attack hosts the range started"):
        boundary.check("10.0.0.1", 502)


def test_cli_list_and_up_leave_identical_historians(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["range", "list"])
    assert listed.exit_code == 0
    assert listed.output.split()[-3:] == ["gas-pipeline", "reactor", "refinery"]
    paths = [tmp_path / "one.parquet", tmp_path / "two.parquet"]
    for path in paths:
        res = runner.invoke(
            main,
            [
                "range",
                "up",
                "refinery",
                "--speed",
                "max",
                "--duration",
                "2m",
                "--seed",
                "1",
                "--historian",
                str(path),
            ],
        )
        assert res.exit_code == 0, res.output
    assert paths[0].read_bytes() == paths[1].read_bytes()
    table = pq.read_table(paths[0])
    assert table.column_names == ["plant_time_s", "wall_time", "device", "tag", "value", "source"]
    assert max(table["plant_time_s"].to_pylist()) == pytest.approx(120.0)
    bad = runner.invoke(main, ["range", "up", "refinery", "--duration", "12x"])
    assert bad.exit_code == 2 and "not a duration" in bad.output
    unknown = runner.invoke(main, ["range", "up", "nuclear"])
    assert unknown.exit_code == 2 and "unknown plant" in unknown.output


def test_watch_shows_the_running_plant(tmp_path: Path) -> None:
    from interlock.range.cli import state_file

    ready = threading.Event()
    done = threading.Event()

    def serve() -> None:
        async def scenario() -> None:
            async with Range("gas-pipeline", seed=1, speed=20.0, field_devices=False) as rng:
                state = state_file("gas-pipeline")
                state.parent.mkdir(parents=True, exist_ok=True)
                devices = {d.name: [*rng.endpoint(d.name), d.protocol, d.unit] for d in rng.points.devices}
                state.write_text(json.dumps({"plant": "gas-pipeline", "devices": devices}))
                ready.set()
                # Plant steps much finer than the watch's 0.1 s polls: with 2 s steps (0.1 s of
                # wall time at speed 20) two polls could fall inside one step and see the plant
                # stand still, a "frozen" speed_output when this thread was slow to get the GIL.
                while not done.is_set():
                    await rng.advance(0.5)
                state.unlink(missing_ok=True)

        asyncio.run(scenario())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(20)
        res = CliRunner().invoke(main, ["range", "watch", "gas-pipeline", "--once"])
        # Learn 3 s of polls (30), then judge the rest with the process detector, live.
        judged = CliRunner().invoke(
            main, ["range", "watch", "gas-pipeline", "--learn", "3", "--interval", "0.1", "--duration", "6"]
        )
    finally:
        done.set()
        thread.join(20)
    assert res.exit_code == 0, res.output
    assert "discharge_bar" in res.output and "sis_tripped" in res.output
    assert "process:" not in res.output  # --once: no learning
    assert judged.exit_code == 0, judged.output
    assert "process: normal" in judged.output, judged.output[-400:]  # replay+frozen: a benign run
    time.sleep(0.1)
    gone = CliRunner().invoke(main, ["range", "watch", "gas-pipeline", "--once"])
    assert gone.exit_code == 2 and "no range of gas-pipeline is running" in gone.output
