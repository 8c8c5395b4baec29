"""``interlock eval network``: label formats, matching of alerts to attack episodes, the command.

Matching is checked on hand-made alert and episode sets (perfect, late, missing, noisy,
overlapping); the command on a capture built here with Interlock's own Modbus codec (benign
polling, then a labelled write burst from a new host) and on the CSET'16 labelled captures of
``../shared`` (skipped when absent).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from interlock.capture.pcap import PcapWriter
from interlock.cli import main
from interlock.detect.network.evaluate import (
    UNMAPPED,
    Episode,
    LabelError,
    Seen,
    episodes_for,
    frame_episodes,
    load_label_map,
    match_capture,
    parse_offset,
    read_labels,
    summarize,
)
from interlock.protocols.modbus import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
    build_adu,
)

from .captures import TcpFlow, write_capture
from .conftest import shared

MAP = load_label_map()


def seen(ts: float, technique: str = "T0855", src: str = "10.0.0.66", dst: str = "10.0.0.2",
         times: tuple[float, ...] = ()) -> Seen:
    return Seen(ts, technique, src, dst, times or (ts,))


def ep(start: float, end: float, label: str = "fake command", techniques: tuple[str, ...] = ("T0855",),
       hosts: tuple[str, ...] = ()) -> Episode:
    return Episode(start, end, label, techniques, hosts)


# --- matching on hand-made sets --------------------------------------------------------------


def test_perfect_detection() -> None:
    r = match_capture("c", (0.0, 3600.0), [ep(100, 110)], [seen(101)], window_s=60, slack_s=0)
    (e,) = r.episodes
    assert e.detected and e.by_technique and e.ttd_s == 1.0 and e.ttd_technique_s == 1.0
    assert r.false_alarms == 0
    assert r.benign_s == pytest.approx(3600 - (170 - 100))  # the window runs to end + window_s


def test_late_alert_inside_the_window_counts_later_one_is_a_false_alarm() -> None:
    r = match_capture("c", (0.0, 3600.0), [ep(100, 110)], [seen(150), seen(400)], window_s=60, slack_s=0)
    (e,) = r.episodes
    assert e.detected and e.ttd_s == 50.0 and e.alerts == 1
    assert r.false_alarms == 1


def test_missed_episode() -> None:
    r = match_capture("c", (0.0, 1000.0), [ep(100, 110)], [], window_s=10, slack_s=0)
    (e,) = r.episodes
    assert not e.detected and not e.by_technique and e.ttd_s is None
    assert r.benign_s == pytest.approx(1000 - 20)


def test_noisy_alerts_are_false_alarms_per_benign_hour() -> None:
    alerts = [seen(t, "T0814") for t in (10, 20, 30, 3000)] + [seen(105)]
    r = match_capture("c", (0.0, 7200.0), [ep(100, 110)], alerts, window_s=50, slack_s=0)
    assert r.false_alarms == 4 and r.episodes[0].detected
    report = summarize([r])
    assert report.benign_hours == pytest.approx((7200 - 60) / 3600)
    assert report.false_alarms_per_hour == pytest.approx(4 / ((7200 - 60) / 3600))


def test_false_alarms_are_counted_by_severity() -> None:
    alerts = [Seen(t, "T0855", "a", "b", (t,), severity=s) for t, s in ((1, "low"), (2, "low"), (3, "high"))]
    r = match_capture("c", (0.0, 3600.0), [], alerts)
    assert r.false_alarm_severities == {"low": 2, "high": 1}
    assert summarize([r]).false_alarm_severities == {"low": 2, "high": 1}


def test_unrelated_technique_is_detected_by_any_not_by_technique() -> None:
    r = match_capture("c", (0.0, 1000.0), [ep(100, 110)], [seen(105, "T0814")], window_s=0, slack_s=0)
    (e,) = r.episodes
    assert e.detected and not e.by_technique and e.ttd_technique_s is None
    assert e.techniques_seen == ("T0814",)
    row = summarize([r]).techniques[0]
    assert (row.key, row.detected, row.by_technique) == ("T0855", 1, 0)
    assert (row.rate, row.technique_rate) == (1.0, 0.0)


def test_overlapping_windows_one_alert_detects_both_and_time_is_not_counted_twice() -> None:
    eps = [ep(100, 200), ep(150, 250, "dos", ("T0814",))]
    r = match_capture("c", (0.0, 1000.0), eps, [seen(160, "T0814")], window_s=0, slack_s=0)
    assert [e.detected for e in r.episodes] == [True, True]
    assert [e.by_technique for e in r.episodes] == [False, True]
    assert [e.ttd_s for e in r.episodes] == [60.0, 10.0]
    assert r.benign_s == pytest.approx(1000 - 150)


def test_alert_before_the_start_uses_slack_and_never_a_negative_time() -> None:
    r = match_capture("c", (0.0, 1000.0), [ep(100, 110)], [seen(99)], window_s=0, slack_s=2)
    assert r.episodes[0].detected and r.episodes[0].ttd_s == 0.0
    r = match_capture("c", (0.0, 1000.0), [ep(100, 110)], [seen(97)], window_s=0, slack_s=2)
    assert not r.episodes[0].detected and r.false_alarms == 1


def test_alert_raised_earlier_whose_evidence_reaches_the_attack_is_no_detection() -> None:
    # a baseline finding made at 50 (benign time) that gathered later like operations
    a = Seen(50.0, "T0855", "10.0.0.66", "10.0.0.2", (50.0, 104.0, 105.0))
    r = match_capture("c", (0.0, 1000.0), [ep(100, 110)], [a], window_s=0, slack_s=0)
    assert not r.episodes[0].detected and r.episodes[0].evidence_only == 1
    assert r.false_alarms == 1  # raised at benign time


def test_aggregating_rule_is_raised_at_its_threshold_not_its_first_operation() -> None:
    from interlock.detect.alerts import Alert, FlowRef

    alert = Alert(ts=101.0, technique="T0814", technique_name="Denial of Service", tactics=(),
                  severity="high", src="a", dst="b", asset="b:502/1", rule="flood", title="flood",
                  explanation=".", frames=(2, 3, 4, 5), flow=FlowRef("a", 1, "b", 502, "modbus"))
    frame_ts = [100.0, 101.0, 102.0, 103.0, 104.0]
    fired = Seen.of(alert, frame_ts, threshold=3)
    assert (fired.ts, fired.raised, fired.times) == (101.0, 103.0, (101.0, 102.0, 103.0, 104.0))
    r = match_capture("c", (0.0, 1000.0), [ep(100, 110, "dos", ("T0814",))], [fired], window_s=0, slack_s=0)
    assert r.episodes[0].ttd_s == 3.0 and r.episodes[0].by_technique


def test_hosts_restrict_the_match_but_an_alert_in_the_window_is_no_false_alarm() -> None:
    e = ep(100, 110, hosts=("10.0.0.9",))
    r = match_capture("c", (0.0, 1000.0), [e], [seen(105)], window_s=0, slack_s=0)
    assert not r.episodes[0].detected and r.false_alarms == 0
    r = match_capture("c", (0.0, 1000.0), [e], [seen(105, dst="10.0.0.9")], window_s=0, slack_s=0)
    assert r.episodes[0].detected


def test_unmapped_episode_and_frames_without_traffic() -> None:
    e = Episode(100, 110, "mystery", ())
    r = match_capture("c", (0.0, 1000.0), [e], [], frame_ts=[1.0, 2.0, 500.0])
    assert r.episodes[0].frames == 0
    row = summarize([r]).techniques[0]
    assert row.key == UNMAPPED and row.silent == 1


def test_episodes_outside_a_capture_span_do_not_apply() -> None:
    eps = [ep(10, 20), ep(100, 110), ep(2000, 2100)]
    assert episodes_for((50.0, 1000.0), eps) == [eps[1]]


# --- label formats ------------------------------------------------------------------------------


def test_cset_per_frame_labels_group_into_episodes(tmp_path: Path) -> None:
    f = tmp_path / "send_a_fake_command_x_labeled.csv"
    f.write_text("1;0\n2;1\n3;1\n4;0\n5;1\n6;0\n")
    labels = read_labels(f, MAP)
    assert labels.kind == "frames" and dict(labels.attack_frames) == {2: "", 3: "", 5: ""}
    frame_ts = [0.0, 1.0, 2.0, 3.0, 200.0, 201.0]
    eps = frame_episodes(labels, frame_ts, MAP, gap_s=60)
    # the dataset names the attack in the file name only: the mapping's files section says which
    assert [(e.start, e.end, e.label, e.technique) for e in eps] == [
        (1.0, 2.0, "fake command", "T0855"), (200.0, 200.0, "fake command", "T0855")]
    with pytest.raises(LabelError, match="the capture has 3 frames"):
        frame_episodes(labels, frame_ts[:3], MAP, gap_s=60)


def test_qut_s7_attack_frame_list_with_names(tmp_path: Path) -> None:
    f = tmp_path / "x.master.csv"
    f.write_text("1,Ether / IP / TCP a > b A / Padding,ChangeUpperThreshold\n"
                 "42,Ether / IP / TCP a > b PA / Raw,ChangeUpperThreshold\n")
    labels = read_labels(f, MAP)
    eps = frame_episodes(labels, [float(i) for i in range(50)], MAP, gap_s=60)
    assert [(e.start, e.end, e.label, e.techniques[0]) for e in eps] == [
        (0.0, 41.0, "ChangeUpperThreshold", "T0836")]


def test_qut_attack_log_with_utc_offset(tmp_path: Path) -> None:
    f = tmp_path / "attack_log.txt"
    f.write_text(
        "2016-10-04 18:00:34.321650 nmap START\n"
        "2016-10-04 18:00:36.718534 nmap END\n"
        "2016-10-05 02:17:29.5 injection_WarmRestart 192.168.10.221 192.168.10.222 START\n"
        "2016-10-05 02:17:55.5 injection_WarmRestart 192.168.10.221 192.168.10.222 END\n"
        "2016-10-05 03:00:00 killed_script START\n"
    )
    labels = read_labels(f, MAP, parse_offset("+10:00"))
    nmap, restart, killed = labels.episodes
    assert nmap.start == datetime(2016, 10, 4, 8, 0, 34, 321650, UTC).timestamp()
    assert nmap.technique == "T0846" and nmap.hosts == ()
    assert restart.technique == "T0816" and "T0855" in restart.techniques
    assert restart.hosts == ("192.168.10.221", "192.168.10.222") and restart.end - restart.start == 26.0
    assert killed.start == killed.end and killed.technique == UNMAPPED


def test_generic_window_csv(tmp_path: Path) -> None:
    f = tmp_path / "windows.csv"
    f.write_text("start,end,technique,source,destination\n"
                 "100,110.5,T0855,10.0.0.66,10.0.0.2\n"
                 "2016-12-15T08:06:42Z,2016-12-15T08:06:46Z,T0836|T0855\n"
                 "300,310,replay\n")
    eps = sorted(read_labels(f, MAP).episodes, key=lambda e: e.start)
    assert [(e.start, e.end, e.techniques, e.hosts) for e in eps[:2]] == [
        (100.0, 110.5, ("T0855",), ("10.0.0.66", "10.0.0.2")), (300.0, 310.0, ("T0855", "T0856"), ())]
    assert eps[2].techniques == ("T0836", "T0855") and eps[2].start == 1481789202.0
    assert [e.label for e in eps] == ["T0855", "replay", "T0836|T0855"]


@pytest.mark.parametrize(("text", "message"), [
    ("2016-10-04 18:00:36 nmap END\n", "END of nmap without a START"),
    ("start,end,technique\n5,4,T0855\n", "before start"),
    ("start,end,technique\n1,2,T9999\n", "not an ATT&CK for ICS technique"),
    ("start,end,technique\nsoon,2,T0855\n", "neither epoch seconds nor an ISO 8601 time"),
    ("1;0\nx;1\n", "expected a frame number"),
    ("7\n", "expected 'frame;label'"),
    ("", "empty label file"),
])
def test_bad_label_files_name_file_line_and_problem(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "labels.txt"
    f.write_text(text)
    with pytest.raises(LabelError, match=message):
        read_labels(f, MAP)


def test_shipped_mapping_names_real_techniques_for_the_dataset_names() -> None:
    for name, technique in [("master_replay_flooding", "T0814"), ("ReactorOff_Flooding", "T0814"),
                            ("slave_masquerading_ObjectSpoofBinary", "T0856"), ("ConveyorBeltOff", "T0855"),
                            ("MITM_modification_ImmedFreezeNR", "T0830"), ("t0843", "T0843")]:
        assert MAP.techniques(name)[0] == technique, name
    assert MAP.techniques("something new") == ()
    assert MAP.for_file("/x/characterization_modbus_6RTU_with_operate_labeled.csv") == (
        "network characterization", ("T0846", "T0888", "T0861"))


def test_bad_mapping_file(tmp_path: Path) -> None:
    f = tmp_path / "map.yaml"
    f.write_text("labels:\n  - match: x\n    techniques: [T0000]\n")
    with pytest.raises(LabelError, match="not an ATT&CK for ICS technique"):
        load_label_map(f)
    with pytest.raises(ValueError, match="offset"):
        parse_offset("ten")


# --- the command on a built capture ---------------------------------------------------------------

MASTER, PLC, INTRUDER = "10.0.0.1", "10.0.0.2", "10.0.0.66"
T0 = 1_700_000_000.0
BURST = (T0 + 300.0, T0 + 305.0)  # the write burst of the attack capture


def _polling(w: PcapWriter, start: float, seconds: int) -> None:
    flow = TcpFlow(w, f"{MASTER}:40000", f"{PLC}:502", start)
    for i in range(seconds):
        t = start + 1 + i
        flow.client(t, build_adu(i % 65536, 1, ReadHoldingRegistersRequest(0, 4)))
        flow.server(t + 0.01, build_adu(i % 65536, 1, ReadHoldingRegistersResponse((1, 2, 3, 4))))


def _attack(w: PcapWriter) -> None:
    _polling(w, T0, 290)
    burst = TcpFlow(w, f"{INTRUDER}:41000", f"{PLC}:502", BURST[0])
    for i in range(10):  # ten writes of the same set-point in five seconds
        t = BURST[0] + 0.5 * i
        burst.client(t, build_adu(i, 1, WriteSingleRegisterRequest(2, 9999)))
        burst.server(t + 0.01, build_adu(i, 1, WriteSingleRegisterResponse(2, 9999)))
    _polling(w, BURST[1] + 5, 290)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("evalnet")
    benign = write_capture(d / "benign.pcap", lambda w: _polling(w, T0 - 1000, 300))
    attack = write_capture(d / "attack.pcap", _attack)
    windows = d / "windows.csv"
    windows.write_text(f"start,end,technique,source,destination\n{BURST[0]},{BURST[1]},T0855,{INTRUDER},{PLC}\n")
    frames = d / "unnamed.csv"  # per-frame labels named after neither capture
    frames.write_text("1;0\n2;1\n")
    return {"benign": benign, "attack": attack, "windows": windows, "frames": frames, "dir": d}


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["eval", "network", *args])
    return result.exit_code, result.output


def test_command_rules_only_miss_the_write_burst_and_stay_quiet(built: dict[str, Path]) -> None:
    out = built["dir"] / "rules.json"
    code, text = _run([str(built["attack"]), "--labels", str(built["windows"]), "--benign",
                       str(built["benign"]), "--json", str(out)])
    assert code == 0, text
    doc = json.loads(out.read_text())
    assert doc["total"]["episodes"] == 1 and doc["total"]["detected"] == 0
    assert doc["false_alarms"] == 0 and doc["false_alarms_per_hour"] == 0.0
    # benign time: the benign capture (300 s) and the attack capture (600 s) minus the burst's
    # window (2 s slack before, 5 s of burst, 60 s after)
    assert doc["benign_hours"] == pytest.approx((300.01 + 600.01 - 67) / 3600, abs=1e-4)
    assert "detection per technique" in text and "T0855" in text


def test_command_with_a_baseline_detects_the_burst_by_technique(built: dict[str, Path]) -> None:
    out = built["dir"] / "baseline.json"
    code, text = _run([str(built["attack"]), "--labels", str(built["windows"]), "--baseline-from",
                       str(built["benign"]), "--json", str(out), "-q"])
    assert code == 0, text
    assert text == ""  # -q: no tables
    doc = json.loads(out.read_text())
    (row,) = doc["techniques"]
    assert (row["key"], row["episodes"], row["detected"], row["detected_by_technique"]) == ("T0855", 1, 1, 1)
    assert row["median_ttd_s"] == 0.0
    (episode,) = doc["captures"][0]["episodes"]
    assert "T0855" in episode["alert_techniques"] and episode["frames"] > 20
    assert doc["false_alarms"] == 0
    # the new-master alert is high: counting only critical alerts, the burst is missed
    code, text = _run([str(built["attack"]), "--labels", str(built["windows"]), "--baseline-from",
                       str(built["benign"]), "--min-severity", "critical", "--json", str(out), "-q"])
    assert code == 0, text
    assert json.loads(out.read_text())["total"]["detected"] == 0


def test_command_with_per_frame_labels(built: dict[str, Path]) -> None:
    from interlock.capture.decode import open_capture
    from interlock.capture.pcap import read_frames

    with open_capture(built["attack"]) as fh:
        ts = [t for _, t, _, _ in read_frames(fh)]
    labels = built["dir"] / "attack_labeled.csv"
    labels.write_text("".join(f"{n};{int(BURST[0] - 0.01 <= t <= BURST[1] + 0.02)}\n"
                              for n, t in enumerate(ts, 1)))
    out = built["dir"] / "frames.json"
    code, text = _run([str(built["attack"]), "--labels", str(labels), "--baseline-from", str(built["benign"]),
                       "--json", str(out)])
    assert code == 0, text
    doc = json.loads(out.read_text())
    (episode,) = doc["captures"][0]["episodes"]
    assert episode["label"] == "attack" and episode["techniques"] == []  # unnamed: unmapped
    assert episode["detected"] and not episode["detected_by_technique"]
    assert doc["techniques"][0]["key"] == UNMAPPED


@pytest.mark.parametrize(("args", "message"), [
    ([], "no capture given"),
    (["{attack}"], "no label file for it"),
    (["{attack}", "--labels", "{dir}/nope.csv"], "nope.csv: cannot be read"),
    (["{attack}", "--labels", "{windows}", "--baseline-from", "{attack}"], "learn only from benign"),
    (["{attack}", "--labels", "{windows}", "--labels-utc-offset", "noon"], "--labels-utc-offset"),
    (["{dir}/missing.pcap", "--labels", "{windows}"], "missing.pcap: no such capture file"),
    (["{windows}", "--labels", "{windows}"], "not a pcap or pcapng file"),
    (["{attack}", "{benign}", "--labels", "{frames}"], "no capture is named like it"),
])
def test_command_bad_input_is_one_line_and_exit_2(
    built: dict[str, Path], args: list[str], message: str
) -> None:
    code, text = _run([a.format(**{k: str(v) for k, v in built.items()}) for a in args])
    assert code == 2
    assert text.startswith("interlock: error: ") and message in text and text.count("\n") == 1, text


# --- the command on the shared CSET'16 labelled captures -------------------------------------------


def test_cset_fake_command_found_by_the_baseline_characterization_by_the_rules(tmp_path: Path) -> None:
    names = ("characterization_modbus_6RTU_with_operate", "send_a_fake_command_modbus_6RTU_with_operate")
    captures = [shared(f"modbus/{n}.pcap") for n in names]
    labels = [shared(f"modbus/{n}_labeled.csv") for n in names]
    learn = shared("modbus/moving_two_files_modbus_6RTU.pcap")  # its Modbus traffic is benign
    out = tmp_path / "cset.json"
    code, text = _run([*map(str, captures), *(a for f in labels for a in ("--labels", str(f))),
                       "--baseline-from", str(learn), "--json", str(out), "-q"])
    assert code == 0, text
    doc = json.loads(out.read_text())
    rows = {r["key"]: r for r in doc["labels"]}
    assert rows["network characterization"]["detected_by_technique"] == 1
    assert rows["fake command"]["detected_by_technique"] == 1
    fake = next(c for c in doc["captures"] if "fake" in c["capture"])
    # the HMI's routine commands are new to a baseline learned without operator commands
    assert fake["false_alarms"] > 0 and fake["benign_s"] > 600
