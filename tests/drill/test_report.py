"""The after-action report: HSEEP sections, inline figures, no external resources, Chromium renders it."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from interlock.drill.model import AlertSeen, DrillRecord, HazardEvent, Neutralization, Scenario, TruthAction
from interlock.drill.report import findings, objective_ratings, render_html, write_report
from interlock.drill.scenario import find_scenario
from interlock.drill.score import score_drill


def stuxnet_record(scenario: Scenario, *, alerts: bool = True) -> DrillRecord:
    """A hand-made run of stuxnet-reactor: the HMI replays a steady 324.5 K while the truth
    climbs to the 350 K trip after the writes at 10-11 min."""
    cols: dict[str, list[object]] = {c: [] for c in
                                     ("plant_time_s", "wall_time", "device", "tag", "value", "source")}

    def add(t: float, tag: str, value: float, source: str) -> None:
        for c, v in zip(cols, (t, 1.79e9 + t, "plc-1", tag, value, source), strict=True):
            cols[c].append(v)

    for t in range(0, int(scenario.duration_s), 5):
        temp = 324.5 + 0.2 * math.sin(t / 50)
        if t >= 630:
            temp = min(351.0, 324.5 + (t - 630) * 0.1)
        if t >= 900:
            temp = 330.0
        add(t, "reactor_temp_k", temp, "truth")
        add(t, "reactor_temp_k", 324.5 + (0.2 * math.sin(t / 50) if t < 480 else 0.0), "hmi")
        add(t, "coolant_temp_k", 300.0 if t < 630 else 318.0, "truth")
        add(t, "coolant_temp_k", 300.0, "hmi")
        add(t, "feed_flow_lpm", 100.0 if t < 896 else 0.0, "truth")
    truth = tuple(
        TruthAction(i.id, i.technique, i.expect, i.at_s, i.until_s or i.at_s + 0.2, "127.0.0.66", i.target, 1,
                    "ok") for i in scenario.injects)
    seen = (
        AlertSeen(421.0, ("T0888",), "127.0.0.66", "127.0.0.31", "r1", "medium", "FC43 read device id"),
        AlertSeen(601.0, ("T0836",), "127.0.0.66", "127.0.0.31", "r2", "high", "setpoint write <script>"),
        AlertSeen(100.0, ("T0801",), "127.0.0.2", "127.0.0.31", "r3", "low", "noise"),
    ) if alerts else ()
    return DrillRecord(
        scenario.id, scenario.seed, truth, seen,
        (Neutralization(605.0, "blocked", "manual-mode", "firewall"),),
        trends=pa.table(cols),
        hazards=(HazardEvent(890.0, "sis_trip", "TSHH-901", "reactor_temp_k", 350.1, 350.0),),
        started_wall=1.79e9, ended_wall=1.79e9 + 60, duration_s=scenario.duration_s,
    )


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return find_scenario("stuxnet-reactor")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario) -> Path:
    record = stuxnet_record(scenario)
    out = tmp_path_factory.mktemp("report")
    write_report(record, scenario, score_drill(record, scenario), out)
    return out


def test_files_and_score_json(report_dir: Path) -> None:
    doc = json.loads((report_dir / "score.json").read_text(encoding="utf-8"))
    assert doc["scenario"] == "stuxnet-reactor" and doc["seed"] == 7
    assert isinstance(doc["score"], float) and doc["false_alarms"] == 1
    assert {i["technique"] for i in doc["injects"]} >= {"modbus.read_device_id", "mitm.replay"}
    assert doc["impact"]["sis_trips"] == ["TSHH-901"]
    assert doc["after_action"]["improvements"]


def test_html_is_self_contained_hseep(report_dir: Path) -> None:
    text = (report_dir / "report.html").read_text(encoding="utf-8")
    for section in ("Exercise Overview", "Analysis of Core Capabilities", "Strengths",
                    "Areas for Improvement", "Improvement Plan"):
        assert section in text
    assert "<script" not in text.replace("&lt;script", "")  # the alert's text is escaped
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", text)
    assert "@import" not in text
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 2  # timeline and trends
    assert "Stuxnet (2010)" in text and "TSHH-901" in text


def test_findings_and_ratings(scenario: Scenario) -> None:
    record = stuxnet_record(scenario)
    s = score_drill(record, scenario)
    strengths, improve = findings(s)
    titles = [f.title for f in improve]
    assert "Missed: replay-hmi" in titles and "SIS had to act" in titles and "False alarms" in titles
    assert any(f.title == "Fast detection" for f in strengths)
    assert all(f.recommendation for f in improve)
    ratings = {o: r for o, r, _ in objective_ratings(scenario, s)}
    assert ratings[scenario.objectives[0]] == "P"  # T0888 detected in 1 s
    assert ratings[scenario.objectives[1]] == "U"  # the replay was missed
    assert ratings[scenario.objectives[3]] == "S"  # the SIS tripped


def test_renders_without_trends_or_alerts(scenario: Scenario) -> None:
    record = stuxnet_record(scenario, alerts=False)
    bare = DrillRecord(record.scenario, record.seed, record.truth, (), ())
    text = render_html(bare, scenario, score_drill(bare, scenario))
    assert "No process trends" in text and text.count("data:image/png") == 1


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (CI: apt-get install chromium)")
def test_chromium_renders_without_errors(report_dir: Path, tmp_path: Path) -> None:
    browser = _chromium()
    assert browser is not None
    url = (report_dir / "report.html").resolve().as_uri()
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000"]
    done = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "class=\"score-table\"" in dom and "id=\"overall-score\"" in dom
    assert dom.count("data:image/png;base64,") == 2
    # Console errors and failed loads show in Chromium's log on stderr.
    bad = [line for line in done.stderr.splitlines()
           if ("CONSOLE" in line and ("Uncaught" in line or "error" in line.lower()))
           or "Failed to load resource" in line or "net::ERR_" in line]
    assert not bad, bad
    # The images decode: Chromium reports their natural size only if they loaded.
    probe = tmp_path / "probe.html"
    probe.write_text(
        (report_dir / "report.html").read_text(encoding="utf-8").replace(
            "</body>",
            "<script>window.onload=()=>{const ok=[...document.images].every(i=>i.naturalWidth>0);"
            "document.title=ok?'IMAGES-OK':'IMAGES-BROKEN';"
            "document.body.setAttribute('data-images',ok?'ok':'broken');}</script></body>"),
        encoding="utf-8")
    done = subprocess.run([browser, *flags, "--dump-dom", probe.resolve().as_uri()], capture_output=True,
                          text=True, timeout=120, check=False)
    assert 'data-images="ok"' in done.stdout, done.stderr[-2000:]
