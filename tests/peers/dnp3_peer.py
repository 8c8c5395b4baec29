"""A real DNP3 outstation and master (dnp3py, pure Python) over TCP on a loopback address.

``Dnp3Peer`` runs an outstation (address ``OUTSTATION``) with known binary inputs, analog inputs,
counters and binary outputs; ``run_session`` connects a master (address ``MASTER``), reads
class 0 (g60v1), runs an integrity poll, direct-operates a CROB (g12v1) and reads class 0 again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tests.peers.capture import wait_port
from tests.peers.loop import LoopThread

OUTSTATION, MASTER = 10, 1
BINARY_INPUTS = [True, False, True, True]
ANALOG_INPUTS = [1234, -56, 789]
COUNTERS = [100, 2000]
BINARY_OUTPUTS = [False, False, False, False]
CROB_INDEX = 2


class Dnp3Peer:
    """An ``OutstationTcpRunner`` on ``host:port`` in its own event-loop thread."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.runner: Any = None
        self.thread: LoopThread | None = None
        self.operated: list[tuple[int, int]] = []  # (index, control code) of CROBs carried out
        self.database: Any = None
        self.task: asyncio.Task[None] | None = None

    def _build(self) -> Any:
        from dnp3.database import (
            AnalogInputConfig,
            BinaryInputConfig,
            BinaryOutputConfig,
            CounterConfig,
            Database,
        )
        from dnp3.outstation import CommandResult, DefaultCommandHandler, Outstation, OutstationConfig

        db = Database()
        for i, v in enumerate(BINARY_INPUTS):
            db.add_binary_input(i, BinaryInputConfig())
            db.update_binary_input(i, value=v)
        for i, v in enumerate(ANALOG_INPUTS):
            db.add_analog_input(i, AnalogInputConfig())
            db.update_analog_input(i, value=v)
        for i, v in enumerate(COUNTERS):
            db.add_counter(i, CounterConfig())
            db.update_counter(i, value=v)
        for i, v in enumerate(BINARY_OUTPUTS):
            db.add_binary_output(i, BinaryOutputConfig())
            db.update_binary_output(i, value=v)
        self.database = db
        peer = self

        class Handler(DefaultCommandHandler):
            def direct_operate_binary_output(self, index: int, code: Any, count: int, on_time: int,
                                             off_time: int) -> Any:
                peer.operated.append((index, int(code)))
                db.update_binary_output(index, value=(int(code) & 0x0F) == 0x03)  # LATCH_ON
                return CommandResult.success()

        config = OutstationConfig(address=OUTSTATION, master_address=MASTER)
        return Outstation(database=db, config=config, handler=Handler())

    def start(self) -> Dnp3Peer:
        from dnp3.outstation import OutstationTcpRunner

        self.thread = LoopThread(f"dnp3-{self.port}")

        async def serve() -> None:
            self.runner = OutstationTcpRunner(outstation=self._build(), host=self.host, port=self.port)
            self.task = asyncio.get_running_loop().create_task(self.runner.run())

        self.thread.call(serve())
        wait_port(self.host, self.port)
        return self

    def stop(self) -> None:
        if self.thread is not None:
            runner = self.runner
            self.thread.close(runner.stop if runner is not None else None)
            self.thread = None

    def __enter__(self) -> Dnp3Peer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Session:
    """What the master asked and got (application sequence numbers and values)."""

    class0_seq: int = -1
    integrity_seq: int = -1
    operate_seq: int = -1
    reread_seq: int = -1
    binary_inputs: dict[int, bool] = field(default_factory=dict)
    analog_inputs: dict[int, float] = field(default_factory=dict)
    counters: dict[int, int] = field(default_factory=dict)
    binary_outputs_after: dict[int, bool] = field(default_factory=dict)


async def _session(host: str, port: int, operate: bool, extra_polls: int, pause: float) -> Session:
    from dnp3.application.builder import build_read_request
    from dnp3.application.fragment import ObjectBlock
    from dnp3.application.qualifiers import ObjectHeader, PrefixCode, RangeCode
    from dnp3.master import DefaultSOEHandler, Master, MasterConfig, MasterTcpRunner

    out = Session()
    handler = DefaultSOEHandler()
    master = Master(handler=handler, config=MasterConfig(address=MASTER, outstation_address=OUTSTATION))

    def read_class0() -> Any:
        header = ObjectHeader.build(group=60, variation=1, prefix=PrefixCode.NONE,
                                    range_code=RangeCode.ALL_OBJECTS)
        return build_read_request(objects=(ObjectBlock(header=header),), seq=master.next_request_sequence())

    async with MasterTcpRunner(master=master, host=host, port=port, response_timeout=5.0) as runner:
        req = read_class0()
        out.class0_seq = req.header.control.seq
        await runner.request(req)
        out.binary_inputs = {i: v.value for i, v in handler.binary_inputs.items()}
        out.analog_inputs = {i: v.value for i, v in handler.analog_inputs.items()}
        out.counters = {i: v.value for i, v in handler.counters.items()}
        await asyncio.sleep(pause)
        req = master.build_integrity_poll()
        out.integrity_seq = req.header.control.seq
        await runner.request(req)
        for _ in range(extra_polls):
            await asyncio.sleep(pause)
            await runner.request(master.build_integrity_poll())
        if operate:
            task = master.command_builder().latch_on(CROB_INDEX).build_direct_operate()
            req = master.build_direct_operate(task)
            out.operate_seq = req.header.control.seq
            await runner.request(req)
            req = read_class0()
            out.reread_seq = req.header.control.seq
            await runner.request(req)
            out.binary_outputs_after = {i: v.value for i, v in handler.binary_outputs.items()}
    return out


def run_session(host: str, port: int, operate: bool = True, extra_polls: int = 0,
                pause: float = 0.0) -> Session:
    return asyncio.run(_session(host, port, operate, extra_polls, pause))
