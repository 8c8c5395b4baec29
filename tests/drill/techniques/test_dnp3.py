"""DNP3 techniques against a real dnp3py outstation on 127.0.0.62:25020.

The peer of tests/peers is extended here (not edited) with a command handler that supports
restarts, select-before-operate and analog outputs, so each technique meets a real answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("dnp3", reason="dnp3py is not installed (pip install dnp3py)")

from interlock.capture.decode import decode_records
from interlock.drill.techniques import Action, Target, execute
from interlock.protocols.dnp3 import parse_fragment, parse_frame, parse_segment
from interlock.range.boundary import Boundary
from tests.drill.techniques.conftest import ATTACKER, sent_payloads
from tests.peers.conftest import StartCapture
from tests.peers.dnp3_peer import ANALOG_INPUTS, BINARY_INPUTS, COUNTERS, OUTSTATION, Dnp3Peer

HOST, PORT = "127.0.0.62", 25020
COLD_DELAY_MS, WARM_DELAY_MS = 1500, 250
pytestmark = pytest.mark.peers


class RichPeer(Dnp3Peer):
    """The peer outstation with restarts, SBO and analog outputs enabled; records every command."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.selected: list[int] = []
        self.analog: list[tuple[int, float]] = []

    def _build(self) -> Any:
        from dnp3.outstation import CommandResult

        outstation = super()._build()
        handler = outstation.handler
        peer = self

        def select_binary_output(index: int, code: Any, count: int, on_time: int, off_time: int) -> Any:
            peer.selected.append(index)
            return CommandResult.success()

        def operate_binary_output(index: int, code: Any, count: int, on_time: int, off_time: int,
                                  select_sequence: int) -> Any:
            peer.operated.append((index, int(code)))
            return CommandResult.success()

        def direct_operate_analog_output(index: int, value: float) -> Any:
            peer.analog.append((index, value))
            return CommandResult.success()

        handler.cold_restart = lambda: COLD_DELAY_MS
        handler.warm_restart = lambda: WARM_DELAY_MS
        handler.select_binary_output = select_binary_output
        handler.operate_binary_output = operate_binary_output
        handler.direct_operate_analog_output = direct_operate_analog_output
        return outstation


@pytest.fixture(scope="module")
def peer() -> Iterator[RichPeer]:
    with RichPeer(HOST, PORT) as p:
        yield p


@pytest.fixture()
def boundary(peer: RichPeer) -> Boundary:
    b = Boundary()
    b.register(HOST, PORT, "rtu")
    return b


TARGET = Target(HOST, PORT, "dnp3", OUTSTATION, "rtu")


def run(tid: str, boundary: Boundary, **params: Any) -> Action:
    [action] = asyncio.run(execute(tid, TARGET, params, boundary=boundary))
    assert action.technique == tid and action.target == f"{HOST}:{PORT}"
    assert action.source.startswith(f"{ATTACKER}:")
    assert action.bytes_sent == sum(map(len, action.frames))
    return action


def fragments(action: Action) -> list[Any]:
    """The application fragments of the Action's link frames (one frame per fragment here)."""
    out = []
    for f in action.frames:
        frame = parse_frame(f)
        segment = parse_segment(frame.user_data)  # type: ignore[union-attr]
        out.append(parse_fragment(segment.data))  # type: ignore[union-attr]
    return out


def test_integrity_poll_reads_every_point(boundary: Boundary) -> None:
    a = run("dnp3.integrity_poll", boundary)
    assert a.outcome == "ok" and a.requests == 1 and a.responses >= 1
    pts = a.detail["points"]
    assert isinstance(pts, dict)
    assert pts["g30v1"] == dict(enumerate(ANALOG_INPUTS))
    assert pts["g20v1"] == dict(enumerate(COUNTERS))
    assert pts["g1v2"] == {i: int(v) for i, v in enumerate(BINARY_INPUTS)}
    [req] = fragments(a)
    assert [(h.group, h.variation) for h in req.headers] == [(60, 2), (60, 3), (60, 4), (60, 1)]


def test_read_class_and_range(boundary: Boundary) -> None:
    a = run("dnp3.read_class", boundary, classes=[0])
    assert a.outcome == "ok" and "g30v1" in a.detail["points"]  # type: ignore[operator]
    a = run("dnp3.read", boundary, group=30, variation=0, start=1, stop=2)
    [req] = fragments(a)
    assert (req.headers[0].qualifier, req.headers[0].start, req.headers[0].stop) == (0x01, 1, 2)
    got = a.detail["points"]["g30v1"]  # type: ignore[index]
    assert (got[1], got[2]) == (ANALOG_INPUTS[1], ANALOG_INPUTS[2])


def test_cold_restart_answers_with_the_time_delay(boundary: Boundary) -> None:
    a = run("dnp3.cold_restart", boundary)
    assert a.outcome == "ok"
    assert (a.detail["delay_ms"], a.detail["delay_object"]) == (COLD_DELAY_MS, "g52v2")
    assert fragments(a)[0].function == 13
    w = run("dnp3.warm_restart", boundary)
    assert w.detail["delay_ms"] == WARM_DELAY_MS and fragments(w)[0].function == 14


def test_unsolicited_switches(boundary: Boundary) -> None:
    a = run("dnp3.disable_unsolicited", boundary)
    assert a.outcome == "ok" and a.attack_ids[:2] == ("T0815", "T0878")
    [req] = fragments(a)
    assert req.function == 21 and [h.variation for h in req.headers] == [2, 3, 4]
    assert run("dnp3.enable_unsolicited", boundary, classes=[1]).outcome == "ok"


def test_direct_operate_latches_the_output(boundary: Boundary, peer: RichPeer) -> None:
    before = len(peer.operated)
    a = run("dnp3.direct_operate", boundary, index=2, op="latch_on")
    assert a.outcome == "ok"
    assert peer.operated[before:] == [(2, 0x03)]
    b = run("dnp3.read", boundary, group=10, variation=0)
    assert b.detail["points"]["g10v2"][2] == 1  # type: ignore[index]  # the output's state bit


def test_direct_operate_a_range_repeatedly(boundary: Boundary, peer: RichPeer) -> None:
    before = len(peer.operated)
    a = run("dnp3.direct_operate", boundary, index=0, stop_index=3, step=3, op="trip", repeat=2)
    assert a.outcome == "ok" and a.requests == 2
    assert peer.operated[before:] == [(0, 0x81), (3, 0x81)] * 2


def test_select_before_operate(boundary: Boundary, peer: RichPeer) -> None:
    before = len(peer.operated)
    a = run("dnp3.select_operate", boundary, index=1, op="pulse_on", on_ms=100)
    assert a.outcome == "ok" and a.requests == 2
    assert [f.function for f in fragments(a)] == [3, 4]
    assert peer.selected[-1] == 1 and peer.operated[before:] == [(1, 0x01)]


def test_direct_operate_analog(boundary: Boundary, peer: RichPeer) -> None:
    a = run("dnp3.direct_operate_analog", boundary, index=0, value=4242)
    assert a.outcome == "ok"
    assert peer.analog[-1] == (0, 4242)


def test_write_time_and_unsupported_functions(boundary: Boundary) -> None:
    a = run("dnp3.write_time", boundary, time_ms=1_700_000_000_000)
    assert a.outcome == "ok"
    [req] = fragments(a)
    assert req.headers[0].objects[0][0] == 1_700_000_000_000
    # dnp3py implements neither: the refusal is the outcome, in the IIN
    assert run("dnp3.stop_application", boundary).outcome == "iin NO_FUNC_CODE_SUPPORT"
    assert run("dnp3.initialize_data", boundary).outcome == "iin NO_FUNC_CODE_SUPPORT"


def test_capture_shows_exactly_the_action_frames(boundary: Boundary, capture: StartCapture) -> None:
    dumpcap = capture("drill-dnp3", [(HOST, PORT)])
    try:
        a = run("dnp3.cold_restart", boundary, repeat=2, interval_s=0.05)
    finally:
        path = dumpcap.stop()
    assert sent_payloads(path, ATTACKER, HOST, PORT) == list(a.frames)
    rows = [r for r in decode_records(path) if r["protocol"] == "dnp3"]
    requests = [r for r in rows if r["direction"] == "request"]
    assert [(r["src"], r["function_code"], r["transaction"]) for r in requests] == [
        (ATTACKER, 13, f.seq) for f in fragments(a)]
    assert len([r for r in rows if r["direction"] == "response"]) == a.responses == 2
