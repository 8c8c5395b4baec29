"""Modbus/TCP conformance against pymodbus: a real server and client on 127.0.0.21:5020.

Port 5020 is not Modbus's registered port, so the flow must be recognised by its content. Every
request and its paired response must decode to what the client asked and what it received.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.conftest import StartCapture
from tests.peers.helpers import decode, detail, of, tshark_fields

pytest.importorskip("pymodbus", reason="pymodbus is not installed (pip install pymodbus)")

from tests.peers.modbus_peer import DEVICE_ID, IDENTITY, ModbusPeer, Op, run_operations

HOST, PORT = "127.0.0.21", 5020
OP_CLASS = {1: "read", 2: "read", 3: "read", 4: "read", 5: "write", 6: "write", 15: "write",
            16: "write", 22: "write", 23: "write", 43: "identify", 8: "diagnostic"}

pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def session(capture: StartCapture) -> tuple[list[Op], list[dict], Path]:
    """Run the client's operations once under capture; decode the capture."""
    with ModbusPeer(HOST, PORT):
        dumpcap = capture("modbus", [(HOST, PORT)])
        try:
            ops = run_operations(HOST, PORT)
        finally:
            dumpcap.stop()
    return ops, decode(dumpcap.path), dumpcap.path


def _pair(rows: list[dict], op: Op) -> tuple[dict, dict]:
    req = [r for r in of(rows, "modbus", "request") if r["transaction"] == op.transaction]
    rsp = [r for r in of(rows, "modbus", "response") if r["transaction"] == op.transaction]
    assert len(req) == 1, f"{op.name}: {len(req)} request records for transaction {op.transaction}"
    assert len(rsp) == 1, f"{op.name}: {len(rsp)} response records for transaction {op.transaction}"
    return req[0], rsp[0]


def test_every_operation_is_one_request_and_one_response(session) -> None:
    ops, rows, _ = session
    modbus = of(rows, "modbus")
    assert len(modbus) == 2 * len(ops), [(r["frame"], r["direction"], r["function_code"]) for r in modbus]
    assert not [r for r in modbus if r.get("malformed")]
    assert {r["transport"] for r in modbus} == {"tcp"}
    assert {r["unit"] for r in modbus} == {DEVICE_ID}
    frames = [r["frame"] for r in modbus]
    assert frames == sorted(frames)
    for r in of(rows, "modbus", "request"):
        assert (r["dst"], r["dport"], r["src"]) == (HOST, PORT, "127.0.0.1"), r
    for r in of(rows, "modbus", "response"):
        assert (r["src"], r["sport"], r["dst"]) == (HOST, PORT, "127.0.0.1"), r


def test_frames_agree_with_tshark(session) -> None:
    _, rows, path = session
    ts = tshark_fields(path, "mbtcp", ["mbtcp.trans_id", "modbus.func_code"], f"tcp.port=={PORT},mbtcp")
    if ts is None:
        pytest.skip("tshark is not installed")
    theirs = [(frame, int(t), int(fc) & 0x7F)
              for frame, (tids, fcs) in ts for t, fc in zip(tids, fcs, strict=True)]
    ours = [(r["frame"], r["transaction"], r["function_code"]) for r in of(rows, "modbus")]
    assert ours == theirs


@pytest.mark.parametrize("index", range(14))
def test_operation(session, index: int) -> None:
    ops, rows, _ = session
    op = ops[index]
    req, rsp = _pair(rows, op)
    where = f"{op.name} (request frame {req['frame']}, response frame {rsp['frame']})"
    assert req["function_code"] == op.function_code, where
    assert rsp["function_code"] == op.function_code, where  # without the exception bit
    assert rsp["frame"] > req["frame"], where
    if op.address is not None:
        assert req["address"] == op.address, where
    if op.count is not None:
        assert req["count"] == op.count, where
    if op.written and op.function_code != 23:  # FC23's write goes elsewhere: see below
        assert list(req["values"]) == op.written, where
    if op.exception:
        assert rsp["status"] == op.exception, where
        assert rsp["address"] == op.address, f"{where}: address is carried over from the request"
        assert not rsp.get("values"), where
        return
    assert rsp.get("status") in (None, "", "ok", "OK"), where
    assert req["op_class"] == OP_CLASS[op.function_code], where
    assert rsp["op_class"] == OP_CLASS[op.function_code], where
    if op.function_code in (5, 6, 15, 16, 22):  # write responses echo address (and quantity)
        assert rsp["address"] == op.address, where
        assert rsp["count"] == op.count, where
    if op.received:
        assert list(rsp["values"]) == op.received, where
        assert rsp["address"] == op.address, f"{where}: address is carried over from the request"
        assert rsp["count"] == len(op.received), where


def test_read_write_multiple(session) -> None:
    """FC23 writes [7, 8] at 80 and reads 4 registers from 60 (the earlier FC16 wrote 11, 22, 33)."""
    ops, rows, _ = session
    op = next(o for o in ops if o.function_code == 23)
    req, rsp = _pair(rows, op)
    assert (req["address"], req["count"]) == (60, 4)  # the read; values belong to the read range
    write = detail(req)
    assert (write.get("write_address"), write.get("write_values")) == (80, [7, 8]), write
    assert (rsp["address"], rsp["count"]) == (60, 4)
    assert list(rsp["values"]) == [11.0, 22.0, 33.0, op.received[3]]


def test_mask_write_changes_the_register(session) -> None:
    """FC22 on register 70, then FC3 reads it back: the read response shows the masked value."""
    ops, rows, _ = session
    mask = next(o for o in ops if o.function_code == 22)
    req, rsp = _pair(rows, mask)
    assert (req["address"], rsp["address"]) == (70, 70)
    readback = ops[ops.index(mask) + 2]
    assert readback.address == 70
    _, back = _pair(rows, readback)
    assert list(back["values"]) == [float(((1000 + 3 * 70) & 0xF0F0) | (0x0A05 & 0x0F0F))]


def test_device_identification(session) -> None:
    ops, rows, _ = session
    op = next(o for o in ops if o.function_code == 43)
    req, rsp = _pair(rows, op)
    assert req["op_class"] == rsp["op_class"] == "identify"
    text = json.dumps(detail(rsp))
    for value in IDENTITY.values():
        assert value in text, f"{value!r} missing from the FC43 response detail (frame {rsp['frame']})"


def test_exception_response(session) -> None:
    ops, rows, _ = session
    op = ops[-1]
    assert op.exception == "ILLEGAL_DATA_ADDRESS", "the server should refuse a read past its table"
    _req, rsp = _pair(rows, op)
    assert (rsp["function_code"], rsp["status"], rsp["address"]) == (3, "ILLEGAL_DATA_ADDRESS", op.address)


def test_cli_jsonl_matches_the_records(session, tmp_path: Path) -> None:
    """``interlock decode CAPTURE --format jsonl -o OUT`` writes the same rows, ts as epoch seconds."""
    _, rows, path = session
    out = tmp_path / "modbus.jsonl"
    cmd = [sys.executable, "-c", "from interlock.cli import main; main()",
           "decode", str(path), "--format", "jsonl", "-o", str(out), "-q"]
    subprocess.run(cmd, check=True, timeout=60, capture_output=True)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows, strict=True):
        assert line["ts"] == pytest.approx(row["ts"].timestamp(), abs=1e-6)
        for key in ("frame", "protocol", "direction", "transaction", "function_code", "address", "count",
                    "status"):
            assert line.get(key) == row.get(key), (key, line, row)
        assert line.get("values") == (list(row["values"]) if row.get("values") is not None else None)
