"""Shared pieces of the inventory tests: the captures, decoded once per session."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from interlock.capture.decode import decode_path
from interlock.capture.records import RecordBuilder
from interlock.inventory import Inventory, RoleThresholds, build
from interlock.inventory.cli import inventory_of
from interlock.protocols.modbus import PROTOCOL as MODBUS

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "pcaps"
SAMPLE = ROOT / "src" / "interlock" / "data" / "sample.pcap"


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared capture set is needed")
    return path


def inventory(path: Path, thresholds: RoleThresholds | None = None) -> Inventory:
    batches, _ = decode_path(path)
    return build(batches, thresholds)


@pytest.fixture(scope="session")
def sample() -> Inventory:
    inv, error = inventory_of((SAMPLE,))  # the CLI's path: MAC tap and decoder in one pass
    assert error is None
    return inv


def tshark_fields(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    """Rows of tshark -T fields (one list of values per frame), or a skip without tshark."""
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    cmd = [exe, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def modbus_batch(client: str, server: str, start: float, period_s: float, polls: int,
                 reads: list[tuple[int, int]], writes_at: tuple[int, ...] = ()) -> pa.RecordBatch:
    """Records of a Modbus client polling ``reads`` (address, quantity of holding registers)
    every ``period_s``, built by the real Modbus session from real MBAP bytes, with a write of
    one register after the polls listed in ``writes_at``."""
    session = MODBUS.session()
    builder = RecordBuilder()
    up = (client, server, 40000, 502, "tcp")
    down = (server, client, 502, 40000, "tcp")
    frame, tid = 0, 0

    def exchange(ts: float, request: bytes, response: bytes) -> None:
        nonlocal frame, tid
        tid += 1
        for data, ends, from_client in ((request, up, True), (response, down, False)):
            frame += 1
            mbap = struct.pack(">HHHB", tid, 0, len(data) + 1, 1)
            for op in session.feed(mbap + data, from_client):
                builder.add(frame, ts + (0.0 if from_client else 0.002), ends, op)

    for n in range(polls):
        ts = start + n * period_s
        for i, (address, quantity) in enumerate(reads):
            regs = struct.pack(f">{quantity}H", *range(quantity))
            exchange(ts + i * 0.01, struct.pack(">BHH", 3, address, quantity),
                     bytes([3, 2 * quantity]) + regs)
        if n in writes_at:
            pdu = struct.pack(">BHH", 6, 7, 42)
            exchange(ts + 0.5, pdu, pdu)
    batch = builder.flush()
    assert batch is not None
    return batch
