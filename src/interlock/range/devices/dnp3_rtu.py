"""A DNP3 outstation (RTU) of the range, on dnp3py's ``Outstation`` and ``OutstationTcpRunner``.

The stack is dnp3py 0.6.0 (pure Python, asyncio), run in its own event-loop thread. What it
serves: analog inputs, binary inputs and binary output status from the points file; integrity
(class 0) and class 1/2/3 event polls; CROB select-before-operate and direct operate on the
binary output indexes (recorded as :class:`Command`); enable/disable unsolicited; cold and warm
restart accepted with a g52v2 time delay (dnp3py's default handler refuses them with IIN2.0) and
listed in ``restarts``, the outstation itself does not go away.

Written around the library where it falls short, each bit small and pinned to dnp3py 0.6.0:

* dnp3py encodes analog inputs only as g30v1/g32v1 (32-bit integers, the fraction truncated);
  ``_FloatOutstation`` overrides its two block builders to serve g30v5/g32v5 (flags + float32)
  so a master reads plant values with float precision.
* ``OutstationTcpRunner`` answers requests but never transmits unsolicited responses although
  ``Outstation.generate_unsolicited`` builds them; ``_PushingRunner`` keeps the connection's
  channel and sends them from a small task once the master has enabled a class (disabled at
  start, as the state manager starts every class disabled). An unsolicited response that is not
  confirmed within the confirm timeout is dropped, not retried (its events are lost).

Thread model: every touch of the database happens in the loop thread (``publish`` hands its
values over with ``run_coroutine_threadsafe``), the command handler also runs there, and the
commands reach the runtime through a locked queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Mapping
from typing import Any

from interlock.range.boundary import Boundary
from interlock.range.devices._loop import LoopThread
from interlock.range.devices.base import Command, CommandQueue, DeviceSpec

ANALOG, BINARY_IN, BINARY_OUT = "analog_input", "binary_input", "binary_output"
_OP_NAMES = {1: "PULSE_ON", 2: "PULSE_OFF", 3: "LATCH_ON", 4: "LATCH_OFF"}
_FLOAT32_MAX = 3.4028234663852886e38
_UNSOLICITED_PERIOD_S = 0.1
COLD_RESTART_MS, WARM_RESTART_MS = 5000, 1000  # the g52v2 delay a restart request is answered with


def crob_value(code: int) -> float | None:
    """The output state a CROB control code asks for: 1 on/close, 0 off/trip, None if unknown."""
    tcc, op = code >> 6, code & 0x0F
    if tcc == 1:  # CLOSE
        return 1.0
    if tcc == 2:  # TRIP
        return 0.0
    if op in (1, 3):  # PULSE_ON, LATCH_ON
        return 1.0
    if op in (2, 4):  # PULSE_OFF, LATCH_OFF
        return 0.0
    return None


def crob_name(code: int) -> str:
    tcc = {1: "CLOSE ", 2: "TRIP "}.get(code >> 6, "")
    return tcc + _OP_NAMES.get(code & 0x0F, f"op {code & 0x0F}")


def _float_outstation_class() -> Any:
    """dnp3py's Outstation serving analog inputs as g30v5 / g32v5 floats (see module docstring)."""
    from dnp3.application.qualifiers import ObjectHeader
    from dnp3.outstation import Outstation
    from dnp3.outstation.outstation import _build_static_blocks, _static_block_capacity

    def _f32(value: float) -> float:
        return max(-_FLOAT32_MAX, min(_FLOAT32_MAX, value))

    class _FloatOutstation(Outstation):
        def _build_analog_input_blocks(self, points: list[Any]) -> list[Any]:
            return _build_static_blocks(
                group=30, variation=5, points=points,
                serialize=lambda p: struct.pack("<Bf", int(p.quality) & 0xFF, _f32(p.value)),
                max_points_per_block=_static_block_capacity(self.config.max_fragment_size, 5),
            )

        def _build_analog_event_blocks(self, events: list[Any]) -> list[Any]:
            from dnp3.application.fragment import ObjectBlock

            if not events:
                return []
            index_size, count_data, qualifier = self._event_framing(events)
            data = bytearray()
            for e in events:
                data += e.index.to_bytes(index_size, "little")
                data += struct.pack("<Bf", int(e.quality) & 0xFF, _f32(e.value))
            header = ObjectHeader(group=32, variation=5, qualifier=qualifier)
            return [ObjectBlock(header=header, data=count_data + bytes(data))]

    return _FloatOutstation


def _pushing_runner_class() -> Any:
    """OutstationTcpRunner that also sends unsolicited responses (see module docstring)."""
    from dnp3.datalink.builder import build_unconfirmed_user_data
    from dnp3.outstation import OutstationTcpRunner
    from dnp3.transport.segmenter import Segmenter

    class _PushingRunner(OutstationTcpRunner):
        channel: Any = None

        async def _handle_connection(self, channel: Any) -> None:
            self.channel = channel
            try:
                await super()._handle_connection(channel)
            finally:
                if self.channel is channel:
                    self.channel = None

        async def push_unsolicited(self) -> None:
            segmenter = Segmenter(start_seq=32)  # its own transport sequence, apart from responses
            outstation = self.outstation
            sent_at = 0.0
            while True:
                await asyncio.sleep(_UNSOLICITED_PERIOD_S)
                channel = self.channel
                if channel is None:
                    continue
                uns = outstation._state.unsolicited
                if uns.pending_confirm and time.monotonic() - sent_at > outstation.config.confirm_timeout:
                    uns.pending_confirm = False  # unconfirmed: give up on it, send the next one
                fragment = outstation.generate_unsolicited()
                if fragment is None:
                    continue
                sent_at = time.monotonic()
                master = outstation.config.master_address
                with contextlib.suppress(Exception):  # the master may have gone: next connection
                    for seg in segmenter.segment(fragment.to_bytes()):
                        frame = build_unconfirmed_user_data(
                            destination=master, source=outstation.config.address,
                            dir_from_master=False, user_data=seg.to_bytes())
                        await channel.write_all(frame.to_bytes())

    return _PushingRunner


class Dnp3Rtu:
    """A DNP3 outstation serving one ``protocol: dnp3`` device of a points file.

    ``spec.unit`` is the outstation link address and ``spec.master_address`` the master's.
    Analog inputs report events in class 2, binary inputs and output status in class 1, on a
    change beyond the point's ``deadband`` (``default_deadband`` when the file gives none).
    """

    protocol = "dnp3"

    def __init__(self, spec: DeviceSpec, boundary: Boundary, *, default_deadband: float = 0.01,
                 select_timeout_s: float = 10.0) -> None:
        self.spec = spec
        self.name, self.host, self.port = spec.name, spec.host, spec.port
        self.boundary = boundary
        self.default_deadband = default_deadband
        self.select_timeout_s = select_timeout_s
        self.points = spec.points
        self._commands = CommandQueue(spec.name)
        self._thread: LoopThread | None = None
        self._runner: Any = None
        self._outstation: Any = None
        self._database: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self.restarts: list[tuple[str, float]] = []  # ("cold" | "warm", wall time) requested
        self._outputs = {p.index: p for p in spec.points if p.type == BINARY_OUT and p.index is not None}
        for p in spec.points:
            if p.type not in (ANALOG, BINARY_IN, BINARY_OUT) or p.index is None:
                raise ValueError(f"{spec.name}: {p.tag} needs a DNP3 type ({ANALOG}, {BINARY_IN}, "
                                 f"{BINARY_OUT}) and an index, got {p.type} / {p.index}")

    # ----------------------------------------------------------------- building

    def _build(self) -> Any:
        from dnp3.database import (
            AnalogInputConfig,
            BinaryInputConfig,
            BinaryOutputConfig,
            Database,
            EventClass,
        )
        from dnp3.outstation import CommandResult, DefaultCommandHandler, OutstationConfig
        from dnp3.outstation.config import UnsolicitedConfig

        db = Database()
        for p in self.points:
            band = self.default_deadband if p.deadband is None else p.deadband
            i = int(p.index or 0)  # checked in __init__
            if p.type == ANALOG:
                db.add_analog_input(i, AnalogInputConfig(event_class=EventClass.CLASS_2, deadband=band))
                db.update_analog_input(i, value=float(p.start_value))
            elif p.type == BINARY_IN:
                db.add_binary_input(i, BinaryInputConfig(event_class=EventClass.CLASS_1))
                db.update_binary_input(i, value=bool(p.start_value))
            else:
                db.add_binary_output(i, BinaryOutputConfig(event_class=EventClass.CLASS_1))
                db.update_binary_output(i, value=bool(p.start_value))
        db.clear_events()  # the initial values are no change a master should see as events
        rtu = self

        class Handler(DefaultCommandHandler):
            """Accepts CROBs on the binary outputs of the points file, refuses anything else."""

            def _check(self, index: int, code: Any) -> Any:
                if index not in rtu._outputs:
                    return CommandResult.not_supported(f"no binary output {index}")
                if crob_value(int(code)) is None or int(code) & 0x20:  # NUL op or CLEAR bit
                    return CommandResult.not_supported(f"control code 0x{int(code):02X}")
                return None

            def select_binary_output(self, index: int, code: Any, count: int, on_time: int,
                                     off_time: int) -> Any:
                refused = self._check(index, code)
                return refused if refused is not None else CommandResult.success()

            def _operate(self, index: int, code: Any, how: str) -> Any:
                refused = self._check(index, code)
                if refused is not None:
                    return refused
                value = crob_value(int(code))
                assert value is not None
                point = rtu._outputs[index]
                rtu._commands.record(point.tag, value, f"CROB {crob_name(int(code))} index {index} {how}")
                db.update_binary_output(index, value=bool(value))  # the output follows the command
                return CommandResult.success()

            def operate_binary_output(self, index: int, code: Any, count: int, on_time: int,
                                      off_time: int, select_sequence: int = 0) -> Any:
                return self._operate(index, code, "operate (after select)")

            def direct_operate_binary_output(self, index: int, code: Any, count: int, on_time: int,
                                             off_time: int) -> Any:
                return self._operate(index, code, "direct operate")

            # dnp3py's default refuses restarts (IIN2.0); a real RTU accepts them and says how
            # long it will be away, which is what a restart attack relies on. Nothing restarts.
            def cold_restart(self) -> int | None:
                rtu.restarts.append(("cold", time.time()))
                return COLD_RESTART_MS

            def warm_restart(self) -> int | None:
                rtu.restarts.append(("warm", time.time()))
                return WARM_RESTART_MS

        config = OutstationConfig(
            address=self.spec.unit, master_address=self.spec.master_address,
            select_timeout=self.select_timeout_s, unsolicited=UnsolicitedConfig(enabled=False),
            time_sync_required=False,  # the range has no time master; NEED_TIME would never clear
        )
        self._database = db
        return _float_outstation_class()(database=db, config=config, handler=Handler())

    # ----------------------------------------------------------------- FieldDevice

    def start(self) -> None:
        if self._thread is not None:
            return
        self.boundary.register(self.host, self.port, self.name)  # refuses non-loopback first
        self._outstation = self._build()
        self._thread = LoopThread(f"dnp3-{self.name}-{self.port}")

        async def serve() -> None:
            runner = _pushing_runner_class()(outstation=self._outstation, host=self.host, port=self.port)
            self._runner = runner
            loop = asyncio.get_running_loop()
            # kept: the loop holds tasks weakly; LoopThread.close cancels them
            self._tasks = [loop.create_task(runner.run()), loop.create_task(runner.push_unsolicited())]
            deadline = loop.time() + 5.0
            while not runner.is_running:  # run() binds in its first step
                if loop.time() > deadline:
                    raise OSError(f"{self.name}: DNP3 outstation did not bind {self.host}:{self.port}")
                await asyncio.sleep(0.01)

        try:
            self._thread.call(serve())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        thread, runner = self._thread, self._runner
        self._thread = self._runner = None
        if thread is not None:
            thread.close(runner.stop if runner is not None else None)
        self._tasks = []
        self.boundary.unregister(self.host, self.port)

    def publish(self, values: Mapping[str, float]) -> None:
        thread = self._thread
        if thread is None:
            return
        db = self._database
        updates = [(p, float(values[p.source])) for p in self.points if p.source in values]

        async def apply() -> None:  # in the loop thread: dnp3py's database is not locked
            for p, v in updates:
                if p.type == ANALOG:
                    db.update_analog_input(p.index, value=v)
                elif p.type == BINARY_IN:
                    db.update_binary_input(p.index, value=v >= 0.5)
                else:
                    db.update_binary_output(p.index, value=v >= 0.5)

        thread.call(apply())

    def take_commands(self) -> list[Command]:
        return self._commands.take()

    def writable(self) -> dict[str, float]:
        return {}  # a DNP3 RTU takes its writes as commands (take_commands)

    @property
    def unsolicited_enabled(self) -> tuple[bool, bool, bool]:
        """Whether the master enabled unsolicited reporting of class 1, 2, 3."""
        if self._outstation is None:
            return (False, False, False)
        u = self._outstation._state.unsolicited
        return (bool(u.class_1_enabled), bool(u.class_2_enabled), bool(u.class_3_enabled))


__all__ = ["Dnp3Rtu", "crob_name", "crob_value"]
