"""S7comm techniques against python-snap7's pure-Python server on 127.0.0.63:25102.

Writes and downloads are read back with snap7's own client (an independent implementation);
stop and start are seen in the server's CPU state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("snap7.server", reason="python-snap7 >= 3 (pure Python, with a server) is not installed")

from interlock.drill.techniques import Action, Target, execute
from interlock.protocols.s7comm import parse, parse_tpkt
from interlock.range.boundary import Boundary
from tests.drill.techniques.conftest import ATTACKER
from tests.peers.s7_peer import DB1, DB1_SIZE, DB_NUMBER, S7Peer

HOST, PORT, DOWNLOAD_PORT = "127.0.0.63", 25102, 25103
RACK_SLOT = 0 * 32 + 2  # rack 0, slot 2
pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def peer() -> Iterator[S7Peer]:
    with S7Peer(HOST, PORT) as p:
        yield p


@pytest.fixture()
def boundary(peer: S7Peer) -> Boundary:
    b = Boundary()
    b.register(HOST, PORT, "plc")
    return b


def run(tid: str, boundary: Boundary, port: int = PORT, **params: Any) -> Action:
    target = Target(HOST, port, "s7", RACK_SLOT, "plc")
    [action] = asyncio.run(execute(tid, target, params, boundary=boundary))
    assert action.technique == tid and action.target == f"{HOST}:{port}"
    assert action.source.startswith(f"{ATTACKER}:")
    assert action.bytes_sent == sum(map(len, action.frames))
    return action


def jobs(action: Action) -> list[Any]:
    """The S7 PDUs of the Action's TPKT frames (the first frame is the COTP CR)."""
    cr = parse_tpkt(action.frames[0])
    assert type(cr).__name__ == "ConnectionRequest" and cr.dst_tsap == bytes((1, RACK_SLOT))  # type: ignore[union-attr]
    return [parse(parse_tpkt(f).user_data) for f in action.frames[1:]]  # type: ignore[union-attr]


def snap7_read(port: int, start: int, size: int) -> bytes:
    from snap7.client import Client

    c = Client()
    c.connect(HOST, 0, 2, tcp_port=port)
    try:
        return bytes(c.db_read(DB_NUMBER, start, size))
    finally:
        c.disconnect()


def test_szl_read_identifies_the_cpu(boundary: Boundary) -> None:
    a = run("s7.szl_read", boundary)
    assert a.outcome == "ok" and a.detail["pdu_length"] == 480
    data = bytes.fromhex(a.detail["data"])  # type: ignore[arg-type]
    assert data[:2] == b"\x00\x1c"
    assert any("CPU" in s for s in a.detail["strings"])  # type: ignore[attr-defined]
    setup, szl = jobs(a)
    assert (type(setup).__name__, type(szl).__name__) == ("SetupCommunication", "Userdata")
    assert (szl.function_group, szl.subfunction, szl.data) == (4, 1, b"\x00\x1c\x00\x00")
    order = run("s7.szl_read", boundary, szl_id=0x0011)
    assert any(s.startswith("6ES7") for s in order.detail["strings"])  # type: ignore[attr-defined]


def test_read_and_write_db(boundary: Boundary) -> None:
    a = run("s7.read_db", boundary, offset=4, size=8)
    assert a.outcome == "ok" and bytes.fromhex(a.detail["data"]) == DB1[4:12]  # type: ignore[arg-type]
    w = run("s7.write_db", boundary, offset=40, data="cafe0102")
    assert w.outcome == "ok"
    assert jobs(w)[-1].items[0].address == 40 << 3
    assert snap7_read(PORT, 40, 4) == bytes.fromhex("cafe0102")
    w = run("s7.write_db", boundary, offset=44, data=[1, 2, 255])
    assert snap7_read(PORT, 44, 3) == bytes([1, 2, 255])


def test_missing_db_is_a_return_code(boundary: Boundary) -> None:
    assert run("s7.read_db", boundary, db=9).outcome == "return code 0x0a"


def test_cpu_stop_and_start(boundary: Boundary, peer: S7Peer) -> None:
    a = run("s7.cpu_stop", boundary)
    assert a.outcome == "ok" and set(a.attack_ids) == {"T0858", "T0816"}
    assert "STOP" in peer.server.cpu_state.name
    assert jobs(a)[-1].service == "P_PROGRAM"
    b = run("s7.cpu_start", boundary)
    assert b.outcome == "ok" and "RUN" in peer.server.cpu_state.name
    c = run("s7.cpu_start", boundary, cold=True)
    assert jobs(c)[-1].parameter_block == b"C "


def test_download_block_replaces_the_db() -> None:
    block = bytes(range(100, 100 + DB1_SIZE))
    with S7Peer(HOST, DOWNLOAD_PORT):
        b = Boundary()
        b.register(HOST, DOWNLOAD_PORT, "plc")
        a = run("s7.download_block", b, port=DOWNLOAD_PORT, data=block.hex())
        assert a.outcome == "ok" and a.detail["fragments"] == 1
        assert snap7_read(DOWNLOAD_PORT, 0, DB1_SIZE) == block
    request, answer, ended = jobs(a)[1:]
    assert (request.function, request.filename) == (0x1A, "_0A00001P")
    assert (answer.function, answer.data) == (0x1B, block)  # the ack_data the PLC pulled
    assert ended.function == 0x1C
    assert a.requests == 3 and len(a.frames) == 5  # CR, setup, request; two acknowledgements
