"""``interlock sensor`` on loopback, against a real pymodbus server and real clients.

The sensor only ever opens ``lo`` with a filter naming this test's own address and port
(127.0.0.31:5020). A second dumpcap writes the same traffic to a file, so the sensor's alerts can
be compared with what ``interlock detect`` finds in the file: same rules, same frame numbers.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.detect.network.rules import Rule, run_rules
from interlock.detect.sensor import SensorError, check_interface, named_netns
from tests.peers.capture import CAPTURE_DIR, CaptureUnavailable, Dumpcap
from tests.peers.helpers import decode
from tests.peers.modbus_peer import DEVICE_ID, ModbusPeer

HOST, PORT = "127.0.0.31", 5020
CLIENT = "127.0.0.32"  # the "attacker": its own address, so src is known exactly
BPF = f"host {HOST} and tcp port {PORT}"
SCAN_RULE = "c0b47621-04b0-4cf4-82b3-fc8caaddd1f1"  # rules/modbus/function_code_scan.yml
RESTART_RULE = "e07422cb-494e-4032-bbfd-dd83d7d3e24f"  # rules/modbus/diagnostics_restart_communications.yml
IDENT_RULE = "329ae3ab-875a-4156-9e77-1622704265bb"  # rules/modbus/device_identification.yml


class Running:
    """``interlock sensor`` as a subprocess; ``started`` once it reports capturing."""

    def __init__(self, out: Path, *extra: str) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "interlock.cli", "sensor", "-i", "lo", "-f", BPF, "-o", str(out),
             *extra], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "capturing on lo" in line:
                self.started.set()

    def wait_started(self, timeout: float = 10.0) -> None:
        if not self.started.wait(timeout):
            self.proc.kill()
            self.proc.wait()
            time.sleep(0.1)
            text = "".join(self.lines)
            if self.proc.returncode == 2 and ("permission" in text.lower() or "dumpcap" in text):
                pytest.skip(f"dumpcap cannot capture on lo here: {text.strip()[-300:]}")
            pytest.fail(f"sensor did not start: {text}")

    def wait(self, timeout: float = 15.0) -> int:
        rc = self.proc.wait(timeout)
        time.sleep(0.1)  # let the reader thread take the summary lines
        return rc

    def alerts(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def server() -> Iterator[ModbusPeer]:
    with ModbusPeer(HOST, PORT) as peer:
        yield peer


@pytest.fixture()
def file_capture(request: pytest.FixtureRequest) -> Iterator[Dumpcap]:
    dumpcap = Dumpcap(CAPTURE_DIR / f"sensor-{request.node.name}.pcapng", [(HOST, PORT)])
    try:
        dumpcap.start()
    except CaptureUnavailable as exc:
        pytest.skip(str(exc))
    yield dumpcap
    dumpcap.stop(settle=0.0)


def function_code_scan() -> float:
    """What smod's function scanner does: one request per code 1..20 on one connection (a fresh
    one if the server hangs up on a code it dislikes). Returns when the last answer came."""
    sock: socket.socket | None = None
    for tid, code in enumerate(range(1, 21), start=1):
        if sock is None:
            sock = socket.create_connection((HOST, PORT), timeout=2, source_address=(CLIENT, 0))
        body = struct.pack(">BBHH", DEVICE_ID, code, 0, 1)
        sock.sendall(struct.pack(">HHH", tid, 0, len(body)) + body)
        try:
            if not sock.recv(260):
                raise OSError("closed")
        except OSError:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    return time.monotonic()


def read_device_identification() -> None:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(HOST, port=PORT, timeout=3, retries=0, source_address=(CLIENT, 0))
    assert client.connect()
    try:
        client.read_device_information(read_code=1, object_id=0, device_id=DEVICE_ID)
    finally:
        client.close()


def test_scan_is_alerted_live_with_the_frames_detect_finds_in_a_file(
    server: ModbusPeer, file_capture: Dumpcap, tmp_path: Path, rules: tuple[Rule, ...]
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    sensor = Running(tmp_path / "alerts.jsonl", "--duration", "8", "--ledger", str(ledger))
    sensor.wait_started()
    function_code_scan()
    read_device_identification()
    time.sleep(0.5)  # the last segments reach both captures
    stopped_at = time.monotonic()
    sensor.proc.send_signal(signal.SIGINT)  # the operator's Ctrl-C, well before --duration
    assert sensor.wait() == 0, "".join(sensor.lines)
    assert time.monotonic() - stopped_at < 3, "SIGINT must stop the sensor promptly"
    alerts = sensor.alerts()

    # Live, a scan is reported twice: the moment it reaches the threshold (early), then complete.
    scans = [a for a in alerts if a["rule"] == SCAN_RULE]
    assert len(scans) == 2, alerts
    early, scan = scans
    assert "reached the threshold" in str(early["explanation"]) and early["ts"] == scan["ts"]
    assert set(early["frames"]) < set(scan["frames"])
    every = alerts  # the ledger keeps the early alert too
    alerts = [a for a in alerts if a is not early]
    assert (scan["technique"], scan["src"], scan["dst"]) == ("T0888", CLIENT, HOST)
    # codes 1..20 of the scan and 43 of the identification request, each once
    assert "with 21 distinct function_code values" in str(scan["explanation"]), scan
    idents = [a for a in alerts if a["rule"] == IDENT_RULE]
    assert idents and idents[0]["src"] == CLIENT and idents[0]["technique"] == "T0888"

    # The same traffic, captured to a file and run through detect's pipeline: same frames.
    path = file_capture.stop(settle=0.2)
    rows = decode(path)
    offline = [a.to_dict() for a in run_rules(rules, _batches(path))]
    assert [a["rule"] for a in offline] == [a["rule"] for a in alerts]
    # The file capture started first, so it may number a few stray loopback frames before the
    # sensor's first: the same frames, shifted by one constant.
    shift = min(offline[0]["frames"]) - min(alerts[0]["frames"])
    assert shift >= 0
    assert [a["frames"] for a in offline] == [[f + shift for f in a["frames"]] for a in alerts]
    requests = {r["frame"]: r for r in rows if r["direction"] == "request"}
    scan_frames = next(a["frames"] for a in offline if a["rule"] == SCAN_RULE)
    assert scan_frames, scan
    for frame in scan_frames:  # each evidence frame is a Modbus request from the scanner
        assert isinstance(frame, int) and requests[frame]["src"] == CLIENT
        assert requests[frame]["dst"] == HOST
    assert {requests[f]["function_code"] for f in scan_frames} >= set(range(1, 9))
    assert any("1 capture(s)" in line and "operations" in line for line in sensor.lines)

    # what the sensor reported is recorded in the ledger, alert by alert
    import sqlite3

    db = sqlite3.connect(ledger)
    kinds_ids = [(json.loads(bytes(c))["kind"], json.loads(bytes(c))["body"].get("id"))
                 for (c,) in db.execute("SELECT canonical FROM entries ORDER BY seq")]
    db.close()
    assert [i for k, i in kinds_ids if k == "alert"] == [a["id"] for a in every]


def _batches(path: Path) -> Iterator[object]:
    from interlock.capture.decode import decode_path

    batches, _ = decode_path(path)
    yield from batches


def test_benign_polling_gives_no_alert_and_duration_stops_the_sensor(
    server: ModbusPeer, tmp_path: Path
) -> None:
    from pymodbus.client import ModbusTcpClient

    started = time.monotonic()
    sensor = Running(tmp_path / "alerts.jsonl", "--duration", "3")
    sensor.wait_started()
    client = ModbusTcpClient(HOST, port=PORT, timeout=3, retries=0, source_address=(CLIENT, 0))
    assert client.connect()
    try:
        for i in range(20):
            assert not client.read_holding_registers(i, count=4, device_id=DEVICE_ID).isError()
    finally:
        client.close()
    assert sensor.wait() == 0, "".join(sensor.lines)
    assert time.monotonic() - started < 10
    assert sensor.alerts() == []
    summary = "".join(sensor.lines)
    assert "0 alerts" in summary and " 0 operations" not in summary  # it saw the reads


def test_single_operation_alert_is_written_while_the_sensor_runs(
    server: ModbusPeer, tmp_path: Path
) -> None:
    sensor = Running(tmp_path / "alerts.jsonl", "--duration", "8")
    sensor.wait_started()
    body = struct.pack(">BBHH", DEVICE_ID, 8, 0x0001, 0x0000)  # diagnostics: restart communications
    with socket.create_connection((HOST, PORT), timeout=2, source_address=(CLIENT, 0)) as sock:
        sent = time.monotonic()
        sock.sendall(struct.pack(">HHH", 1, 0, len(body)) + body)
        alerts: list[dict[str, object]] = []
        while not alerts and time.monotonic() - sent < 5:
            time.sleep(0.01)
            alerts = sensor.alerts()
        latency = time.monotonic() - sent
    assert sensor.proc.poll() is None, "the alert must come from a running sensor"
    sensor.proc.send_signal(signal.SIGTERM)
    assert sensor.wait() == 0, "".join(sensor.lines)
    assert [a["rule"] for a in alerts] == [RESTART_RULE], alerts
    assert alerts[0]["src"] == CLIENT and alerts[0]["dst"] == HOST
    assert latency < 2, f"alert took {latency:.2f} s"
    print(f"request-to-alert latency {latency * 1000:.0f} ms")


def test_count_stops_after_n_frames(server: ModbusPeer, tmp_path: Path) -> None:
    sensor = Running(tmp_path / "alerts.jsonl", "--count", "4", "--duration", "8")
    sensor.wait_started()
    read_device_identification()  # handshake, request, answer, FIN...: more than 4 frames
    assert sensor.wait(timeout=5) == 0, "".join(sensor.lines)
    assert any(", 4 frames," in line for line in sensor.lines), sensor.lines


def test_refuses_interfaces_it_may_not_open(tmp_path: Path) -> None:
    sys_net = tmp_path / "net"
    (sys_net / "lo").mkdir(parents=True)
    (sys_net / "lo" / "flags").write_text("0x9\n")
    (sys_net / "eth7").mkdir()
    (sys_net / "eth7" / "flags").write_text("0x1003\n")
    empty = tmp_path / "netns"
    empty.mkdir()
    check_interface("lo", False, sys_net, empty)
    check_interface("eth7", True, sys_net, empty)
    with pytest.raises(SensorError, match="neither loopback"):
        check_interface("eth7", False, sys_net, empty)
    with pytest.raises(SensorError, match="no such interface"):
        check_interface("eth9", True, sys_net, empty)
    # inside a namespace ``ip netns add`` named (its file under /var/run/netns is this process's
    # namespace), any interface of that namespace is the range's
    ns_dir = tmp_path / "named"
    ns_dir.mkdir()
    (ns_dir / "range1").write_text("")
    assert named_netns(ns_dir, own=ns_dir / "range1") == "range1"
    assert named_netns(ns_dir, own=Path("/proc/self/ns/net")) is None
    assert named_netns(empty) is None
    result = subprocess.run([sys.executable, "-m", "interlock.cli", "sensor", "-i", "no-such0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no-such0" in result.stderr
