"""`interlock detect` as a user runs it: JSON lines, eve, CEF, syslog, exit codes, summary."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.detect.alerts import Alert, FlowRef, SyslogSender, parse_host_port, to_cef
from interlock.detect.incidents import group_incidents

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "interlock" / "data" / "sample.pcap"
CONTRACT = {"ts", "technique", "severity", "src", "dst", "rule", "frames"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interlock.cli", "detect", *args],
                          capture_output=True, text=True, timeout=120)


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """Split a CEF line into its 7 header fields and its extension (unescaping as CEF says)."""
    fields: list[str] = []
    cur, i = "", 0
    while len(fields) < 7:
        ch = line[i]
        if ch == "\\":
            cur += line[i + 1]
            i += 2
            continue
        if ch == "|":
            fields.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    ext_text = line[i:]
    ext: dict[str, str] = {}
    for m in re.finditer(r"(\w+)=((?:\\.|[^\\])*?)(?= \w+=|$)", ext_text):
        value = m.group(2).replace("\\n", "\n").replace("\\=", "=").replace("\\\\", "\\")
        ext[m.group(1)] = value
    return fields, ext


@pytest.fixture(scope="module")
def jsonl_alerts(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, object]], str]:
    out = tmp_path_factory.mktemp("detect") / "alerts.jsonl"
    res = run(str(SAMPLE), "-o", str(out))
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in out.read_text().splitlines()], res.stderr


def test_jsonl_carries_the_contract(jsonl_alerts: tuple[list[dict[str, object]], str]) -> None:
    alerts, _ = jsonl_alerts
    assert len(alerts) == 7
    for a in alerts:
        assert a.keys() >= CONTRACT
        assert isinstance(a["ts"], float) and a["ts"] > 1.5e9
        assert re.fullmatch(r"T0\d{3}", str(a["technique"])) and a["severity"] in ("low", "medium", "high",
                                                                                   "critical")
        assert isinstance(a["frames"], list) and all(isinstance(f, int) for f in a["frames"])
        assert a["capture"] == str(SAMPLE)
    stop = next(a for a in alerts if a["title"] == "S7 PLC stop")
    assert (stop["src"], stop["asset"], stop["severity"]) == ("127.0.0.1", "127.0.0.13:102", "critical")


def test_summary_tables_and_incident_count(jsonl_alerts: tuple[list[dict[str, object]], str]) -> None:
    _, stderr = jsonl_alerts
    assert "alerts per rule" in stderr and "T0858 Change Operating Mode" in stderr
    # the sample's three stories: the HMI commanding the RTU, the engineering station on the
    # S7 CPU, the unknown host identifying the Modbus PLC
    assert "7 alerts in 3 incidents" in stderr


def test_eve_is_suricata_shaped(tmp_path: Path) -> None:
    out = tmp_path / "eve.json"
    assert run(str(SAMPLE), "--format", "eve", "-q", "-o", str(out)).returncode == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 7
    for e in events:
        assert e["event_type"] == "alert" and e["proto"] == "TCP"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000", e["timestamp"])
        assert {"src_ip", "src_port", "dest_ip", "dest_port"} <= e.keys()
        assert {"signature", "signature_id", "category", "severity"} <= e["alert"].keys()
        assert isinstance(e["alert"]["signature_id"], int) and 1 <= e["alert"]["severity"] <= 3
    stop = next(e for e in events if e["alert"]["signature"] == "S7 PLC stop")
    assert stop["dest_port"] == 102 and stop["alert"]["metadata"]["mitre_technique_id"] == ["T0858"]


def test_cef_lines_parse(tmp_path: Path) -> None:
    out = tmp_path / "alerts.cef"
    assert run(str(SAMPLE), "--format", "cef", "-q", "-o", str(out)).returncode == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 7
    for line in lines:
        header, ext = parse_cef(line)
        assert header[:3] == ["CEF:0", "Interlock", "Interlock"] and 0 <= int(header[6]) <= 10
        assert {"rt", "src", "dst", "spt", "dpt", "msg", "cs1", "cs4"} <= ext.keys()
        assert ext["cs1"].startswith("T0")
    stop = next(parse_cef(line) for line in lines if "|S7 PLC stop|" in line)
    assert stop[0][6] == "10" and stop[1]["dpt"] == "102" and stop[1]["cs3"] == "127.0.0.13:102"


def test_cef_escapes_what_it_must() -> None:
    flow = FlowRef("10.0.0.1", 40000, "10.0.0.2", 502, "modbus")
    alert = Alert(1.0, "T0855", "Unauthorized Command Message", ("Impair Process Control",), "high",
                  "10.0.0.1", "10.0.0.2", "10.0.0.2:502/1", "r|1", "a|b\\c", "x=1\ny", (1,), flow)
    header, ext = parse_cef(to_cef(alert))
    assert header[4:6] == ["r|1", "a|b\\c"]
    assert ext["msg"] == "x=1\ny"


def test_syslog_sends_rfc5424_cef_to_a_local_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(10)
        port = sink.getsockname()[1]
        res = run(str(SAMPLE), "-q", "--syslog", f"127.0.0.1:{port}")
        assert res.returncode == 0, res.stderr
        assert res.stdout == ""  # with --syslog and no -o, nothing on stdout
        messages = [sink.recv(65535).decode() for _ in range(7)]
    pattern = re.compile(r"<(\d+)>1 (\S+) (\S+) interlock (\d+) alert - (CEF:0\|Interlock\|.*)")
    for msg in messages:
        m = pattern.fullmatch(msg)
        assert m, msg
        pri = int(m.group(1))
        assert pri // 8 == 4 and pri % 8 in (2, 3, 4, 5)
        parse_cef(m.group(5))
    assert any(int(pattern.fullmatch(m).group(1)) == 34 for m in messages)  # type: ignore[union-attr]


def test_syslog_header_time_comes_from_the_injected_clock() -> None:
    flow = FlowRef("10.0.0.1", 40000, "10.0.0.2", 502, "modbus")
    alert = Alert(1.0, "T0855", "Unauthorized Command Message", ("Impair Process Control",), "low",
                  "10.0.0.1", "10.0.0.2", "10.0.0.2:502/1", "r", "t", "e", (1,), flow)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        sender = SyslogSender("127.0.0.1", sink.getsockname()[1], clock=lambda: 86400.5, hostname="sensor1")
        sender.write(alert)
        sender.close()
        msg = sink.recv(65535).decode()
    assert msg.startswith("<37>1 1970-01-02T00:00:00.500000Z sensor1 interlock ")


@pytest.mark.parametrize("text", ["localhost", "host:0", "host:70000", "::1:514", ":514"])
def test_bad_syslog_targets(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)
    assert parse_host_port("[::1]:514") == ("::1", 514)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, words in [
        ((str(tmp_path / "missing.pcap"),), "no such file"),
        ((str(SAMPLE), "--syslog", "nohost"), "expected HOST:PORT"),
        ((str(SAMPLE), "--set", "allowed_master=10.0.0.1"), "no rule declares option allowed_master"),
        ((str(SAMPLE), "--set", "allowed_masters=10.0.0.300"), "is not an IP network"),
        ((str(SAMPLE), "--rules", str(tmp_path)), "no rule files"),
        ((), "no capture given"),
    ]:
        res = run(*args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, res.stderr)


def test_a_truncated_capture_keeps_the_alerts_found_before_the_damage(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 9 // 10])
    out = tmp_path / "alerts.jsonl"
    res = run(str(cut), "-q", "-o", str(out))
    assert res.returncode == 2 and "cut.pcap" in res.stderr and "Traceback" not in res.stderr
    titles = [json.loads(line)["title"] for line in out.read_text().splitlines()]
    assert "S7 module identification read (SZL 0x0011 / 0x001C)" in titles


def test_incidents_split_on_attacker_target_and_gap() -> None:
    def alert(ts: float, src: str, dst: str = "10.0.0.2", severity: str = "low") -> Alert:
        flow = FlowRef(src, 40000, dst, 502, "modbus")
        return Alert(ts, "T0888", "x", ("Discovery",), severity, src, dst, f"{dst}:502/1",  # type: ignore[arg-type]
                     "r", "t", "e", (1,), flow)

    alerts = [alert(0, "a"), alert(100, "a", severity="high"), alert(100 + 1801, "a"),
              alert(50, "b"), alert(60, "a", "10.0.0.3")]
    incidents = group_incidents(alerts, gap_s=1800)
    assert [(i.src, i.dst, len(i.alerts)) for i in incidents] == [
        ("a", "10.0.0.2", 2), ("b", "10.0.0.2", 1), ("a", "10.0.0.3", 1), ("a", "10.0.0.2", 1)]
    assert incidents[0].severity == "high" and incidents[0].number == 1
    assert len(group_incidents(alerts, gap_s=3600)) == 3
