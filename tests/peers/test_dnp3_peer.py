"""DNP3 conformance against dnp3py (pure Python): a real master and outstation on 127.0.0.24:20024.

The master resets the link, reads class 0 (g60v1), runs an integrity poll (classes 1, 2, 3, 0),
direct-operates a CROB (g12v1, LATCH_ON) on binary output 2 and reads class 0 again. Port
20024 is not 20000, so the flow is recognised by its content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.peers.conftest import StartCapture
from tests.peers.helpers import decode, detail, norm, of, tshark_fields

pytest.importorskip("dnp3.outstation", reason="dnp3py is not installed (pip install dnp3py)")

from tests.peers.dnp3_peer import (
    ANALOG_INPUTS,
    BINARY_INPUTS,
    BINARY_OUTPUTS,
    COUNTERS,
    CROB_INDEX,
    OUTSTATION,
    Dnp3Peer,
    Session,
    run_session,
)

HOST, PORT = "127.0.0.24", 20024
READ, DIRECT_OPERATE, RESPONSE = 1, 5, 129

pytestmark = pytest.mark.peers
# class 0 as dnp3py sends it: g1v2 binary inputs, g10v2 binary outputs, g30v1 analogs, g20v1 counters
STATIC = [float(v) for v in (*BINARY_INPUTS, *BINARY_OUTPUTS, *ANALOG_INPUTS, *COUNTERS)]

Rows = list[dict[str, Any]]


@pytest.fixture(scope="module")
def session(capture: StartCapture) -> tuple[Session, list[tuple[int, int]], Rows, Path]:
    with Dnp3Peer(HOST, PORT) as peer:
        dumpcap = capture("dnp3", [(HOST, PORT)])
        try:
            result = run_session(HOST, PORT)
        finally:
            dumpcap.stop()
        operated = list(peer.operated)
    assert result.binary_inputs == dict(enumerate(BINARY_INPUTS))
    assert result.analog_inputs == {i: float(v) for i, v in enumerate(ANALOG_INPUTS)}
    assert result.binary_outputs_after.get(CROB_INDEX) is True
    return result, operated, of(decode(dumpcap.path), "dnp3"), dumpcap.path


def _app(rows: Rows, direction: str, seq: int) -> dict[str, Any]:
    found = [r for r in rows if r["direction"] == direction and r["transaction"] == seq
             and r["function_code"] is not None]
    assert len(found) == 1, [(r["frame"], r["direction"], r["function_code"], r["transaction"]) for r in rows]
    return found[0]


def _headers(row: dict[str, Any]) -> list[str]:
    """The object headers listed in a record's detail, as gXvY labels."""
    objs = detail(row).get("objects") or []
    return [o if isinstance(o, str) else f"g{o['group']}v{o['variation']}" for o in objs]


def _ranges(row: dict[str, Any]) -> list[tuple[int, int]]:
    return [(o["start"], o["stop"]) for o in detail(row).get("objects") or []]


def test_link_reset_and_ack(session) -> None:
    """The master's RESET_LINK_STATES and the outstation's ACK are link-only records.

    dnp3py does not wait for the ACK before its first READ, so the ACK may come after it.
    """
    _, _, rows, _ = session
    link = [r for r in rows if r["function_code"] is None]
    assert [r["direction"] for r in link] == ["request", "response"], link
    reset, ack = link
    assert reset is rows[0]
    assert reset["unit"] == ack["unit"] == OUTSTATION
    assert (reset["dst"], reset["dport"]) == (HOST, PORT)
    assert (ack["src"], ack["sport"]) == (HOST, PORT)
    assert "reset" in norm(reset["function"]), reset
    assert "ack" in norm(ack["function"]), ack


def test_all_records_are_well_formed(session) -> None:
    _, _, rows, _ = session
    assert len(rows) == 2 + 2 * 4, [(r["frame"], r["function_code"]) for r in rows]
    assert not [r for r in rows if r.get("malformed")]
    assert {r["unit"] for r in rows} == {OUTSTATION}


def test_read_class0(session) -> None:
    result, _, rows, _ = session
    req = _app(rows, "request", result.class0_seq)
    rsp = _app(rows, "response", result.class0_seq)
    assert (req["function_code"], req["object"], req["op_class"]) == (READ, "g60v1", "read")
    assert rsp["function_code"] == RESPONSE
    assert rsp["object"] == "g1v2"  # binary inputs with flags come first
    assert "devicerestart" in norm(rsp["status"]), rsp["status"]  # IIN1.7: outstation just started
    assert rsp["address"] == 0
    assert list(rsp["values"]) == STATIC, "values of all object headers, in order"
    assert _headers(rsp) == ["g1v2", "g10v2", "g30v1", "g20v1"], detail(rsp)
    assert _ranges(rsp) == [(0, len(BINARY_INPUTS) - 1), (0, 3), (0, len(ANALOG_INPUTS) - 1), (0, 1)]


def test_integrity_poll(session) -> None:
    result, _, rows, _ = session
    req = _app(rows, "request", result.integrity_seq)
    assert (req["function_code"], req["object"], req["op_class"]) == (READ, "g60v2", "read")
    assert _headers(req) == ["g60v2", "g60v3", "g60v4", "g60v1"], detail(req)
    rsp = _app(rows, "response", result.integrity_seq)
    assert rsp["function_code"] == RESPONSE
    # the start-up values as class 1 events (binary, analog, counter), then the static data
    assert _headers(rsp) == ["g2v1", "g32v1", "g22v5", "g1v2", "g10v2", "g30v1", "g20v1"], detail(rsp)


def test_direct_operate_crob(session) -> None:
    result, operated, rows, _ = session
    assert operated == [(CROB_INDEX, 0x03)]
    req = _app(rows, "request", result.operate_seq)
    rsp = _app(rows, "response", result.operate_seq)
    assert (req["function_code"], req["object"], req["address"], req["count"]) == (
        DIRECT_OPERATE, "g12v1", CROB_INDEX, 1)
    assert req["op_class"] == "command"
    assert (rsp["function_code"], rsp["object"], rsp["address"]) == (RESPONSE, "g12v1", CROB_INDEX)
    assert list(req["values"]) == [3.0]  # the CROB's control code: LATCH_ON
    assert rsp["frame"] > req["frame"]
    # the next class 0 read shows binary output 2 on
    reread = _app(rows, "response", result.reread_seq)
    expected = list(STATIC)
    expected[len(BINARY_INPUTS) + CROB_INDEX] = 1.0
    assert list(reread["values"]) == expected


def test_records_agree_with_tshark(session) -> None:
    _, _, rows, path = session
    ts = tshark_fields(path, "dnp3", ["dnp3.al.func", "dnp3.al.seq"], f"tcp.port=={PORT},dnp3")
    if ts is None:
        pytest.skip("tshark is not installed")
    theirs = [(frame, int(f[0]) if f else None, int(s[0]) if s else None) for frame, (f, s) in ts]
    ours = [(r["frame"], r["function_code"], r["transaction"] if r["function_code"] is not None else None)
            for r in rows]
    assert ours == theirs
