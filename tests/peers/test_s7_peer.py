"""S7comm conformance against python-snap7's pure-Python server and client on 127.0.0.23:10102.

The client opens COTP (CR/CC), sets up communication, reads DB1, writes DB1, reads it back,
reads SZL 0x001C, stops the CPU and hot-starts it, and disconnects (DR/DC). Port 10102 is not
102, so the flow is recognised by its content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.peers.conftest import StartCapture
from tests.peers.helpers import decode, detail, norm, of, tshark_fields

pytest.importorskip("snap7.server", reason="python-snap7 >= 3 (pure Python, with a server) is not installed")

from tests.peers.s7_peer import (
    DB1,
    DB_NUMBER,
    READ_SIZE,
    READ_START,
    WRITE_DATA,
    WRITE_START,
    S7Peer,
    Session,
    run_session,
)

HOST, PORT = "127.0.0.23", 10102
SETUP, READ_VAR, WRITE_VAR, PI_SERVICE, PLC_STOP = 0xF0, 0x04, 0x05, 0x28, 0x29

pytestmark = pytest.mark.peers

Rows = list[dict[str, Any]]


@pytest.fixture(scope="module")
def session(capture: StartCapture) -> tuple[Session, Rows, Path]:
    with S7Peer(HOST, PORT):
        dumpcap = capture("s7", [(HOST, PORT)])
        try:
            result = run_session(HOST, PORT)
        finally:
            dumpcap.stop()
    assert result.read == DB1[READ_START:READ_START + READ_SIZE]
    assert result.read_after_write == WRITE_DATA
    return result, of(decode(dumpcap.path), "s7comm"), dumpcap.path


def _pairs(rows: Rows, fc: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Requests with function code ``fc`` and the response of the same PDU reference."""
    out = []
    for req in [r for r in rows if r["direction"] == "request" and r["function_code"] == fc]:
        rsp = [r for r in rows if r["direction"] == "response" and r["transaction"] == req["transaction"]
               and r["frame"] > req["frame"]]
        assert rsp, f"no response to the request of frame {req['frame']} (PDU ref {req['transaction']})"
        out.append((req, rsp[0]))
    return out


def _values(obj: Any, key_part: str) -> list[Any]:
    """All values under keys containing ``key_part`` anywhere in a nested detail."""
    found: list[Any] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if key_part in norm(k):
                found.append(v)
            found += _values(v, key_part)
    elif isinstance(obj, list):
        for v in obj:
            found += _values(v, key_part)
    return found


def _ok(row: dict[str, Any]) -> bool:
    return row.get("status") in (None, "", "ok", "OK", "success", "SUCCESS") and not row.get("malformed")


def test_cotp_connect_and_disconnect(session) -> None:
    _, rows, _ = session
    cr, cc = rows[0], rows[1]
    assert (cr["direction"], cc["direction"]) == ("request", "response")
    assert cr["op_class"] == cc["op_class"] == "session"
    assert "cr" in norm(cr["function"]) or "connectionrequest" in norm(cr["function"]), cr
    assert (cr["dst"], cr["dport"]) == (HOST, PORT)
    assert rows[-1]["op_class"] == "session" and rows[-1]["direction"] == "response"  # DC
    assert not [r for r in rows if r.get("malformed")]
    assert {r["unit"] for r in rows} == {None}


def test_setup_communication(session) -> None:
    result, rows, _ = session
    [(req, rsp)] = _pairs(rows, SETUP)
    assert rsp["function_code"] == SETUP
    assert req["op_class"] == rsp["op_class"] == "session"
    assert _ok(rsp), rsp
    assert result.pdu_length in _values(detail(rsp), "pdu"), detail(rsp)


def test_read_var(session) -> None:
    _, rows, _ = session
    pairs = _pairs(rows, READ_VAR)
    assert len(pairs) == 2  # the read, and the read-back after the write
    req, rsp = pairs[0]
    assert (req["object"], req["address"], req["count"]) == ("DB", READ_START, 1)
    assert req["op_class"] == "read"
    assert DB_NUMBER in _values(detail(req), "db"), detail(req)
    assert READ_SIZE in _values(detail(req), "length") + _values(detail(req), "count"), \
        detail(req)
    assert rsp["function_code"] == READ_VAR and _ok(rsp), rsp
    back_req, _ = pairs[1]
    assert (back_req["object"], back_req["address"]) == ("DB", WRITE_START)


def test_write_var(session) -> None:
    _, rows, _ = session
    [(req, rsp)] = _pairs(rows, WRITE_VAR)
    assert (req["object"], req["address"], req["count"]) == ("DB", WRITE_START, 1)
    assert req["op_class"] == "write"
    assert DB_NUMBER in _values(detail(req), "db"), detail(req)
    if req.get("values"):
        assert list(req["values"]) == [float(b) for b in WRITE_DATA]
    assert rsp["function_code"] == WRITE_VAR and _ok(rsp), rsp


def test_read_szl(session) -> None:
    _, rows, _ = session
    szl = [r for r in rows if r["direction"] == "request" and r["op_class"] == "identify"]
    assert len(szl) == 1, [(r["frame"], r["function"], r["object"]) for r in rows]
    label = norm(szl[0]["object"]).removeprefix("szl").removeprefix("0x").lstrip("0")
    assert label == "1c", szl[0]["object"]
    replies = [r for r in rows if r["direction"] == "response" and r["frame"] > szl[0]["frame"]]
    assert replies and replies[0]["op_class"] == "identify"


def test_plc_stop_and_hot_start(session) -> None:
    result, rows, _ = session
    assert result.stopped and result.started
    [(stop, stop_ack)] = _pairs(rows, PLC_STOP)
    assert stop["op_class"] == "control" and _ok(stop_ack)
    [(start, start_ack)] = _pairs(rows, PI_SERVICE)
    assert start["op_class"] == "control" and _ok(start_ack)
    assert "PROGRAM" in str(detail(start)), detail(start)
    assert stop["frame"] < start["frame"]


def test_pdu_references_agree_with_tshark(session) -> None:
    _, rows, path = session
    ts = tshark_fields(path, "s7comm", ["s7comm.header.pduref", "s7comm.header.rosctr"],
                       f"tcp.port=={PORT},tpkt")
    if ts is None:
        pytest.skip("tshark is not installed")
    theirs = [(frame, int(ref)) for frame, (refs, _) in ts for ref in refs]
    ours = [(r["frame"], r["transaction"]) for r in rows if r["transaction"] is not None]
    assert ours == theirs
