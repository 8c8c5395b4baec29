"""The programme store and trends, and the drill CLI around it (run, history, campaign) with a
stand-in runner, so these tests need no range."""

from __future__ import annotations

import json
import sqlite3
import sys
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from interlock.cli import main
from interlock.drill.cli import campaign_plan
from interlock.drill.model import AlertSeen, DrillRecord, Scenario, TruthAction
from interlock.drill.programme import (
    Programme,
    ProgrammeError,
    month_table,
    plot_history,
    record_drill,
    summary,
    technique_table,
    weakest,
)
from interlock.drill.scenario import find_scenario, list_scenarios
from interlock.drill.score import AlertFormatError, Score, score_drill


def fake_record(scenario: Scenario, seed: int, *, detect: bool = True) -> DrillRecord:
    truth = tuple(TruthAction(i.id, i.technique, i.expect, i.at_s, i.end_s, "127.0.0.66", i.target, 1, "ok")
                  for i in scenario.injects)
    alerts = tuple(AlertSeen(i.at_s + 1 + seed % 7, i.expect[:1]) for k, i in enumerate(scenario.injects)
                   if detect and (k + seed) % 3)
    return DrillRecord(scenario.id, seed, truth, alerts, (), started_wall=1.79e9,
                       duration_s=scenario.duration_s)


def fake_score(name: str = "stuxnet-reactor", seed: int = 7, detect: bool = True) -> Score:
    sc = find_scenario(name)
    return score_drill(fake_record(sc, seed, detect=detect), sc)


def test_store_and_history(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with Programme(db) as store:
        a = store.add(fake_score(seed=1), started=datetime(2026, 1, 10, tzinfo=UTC))
        b = store.add(fake_score(seed=2, detect=False), started=datetime(2026, 2, 3, tzinfo=UTC))
        c = store.add(fake_score("frostygoop-gas", seed=3), started=datetime(2026, 2, 20, tzinfo=UTC),
                      campaign="c1")
        assert (a, b, c) == (1, 2, 3)
        hist = store.history()
        assert [d.id for d in hist.drills] == [1, 2, 3]
        assert [m.month for m in hist.months] == ["2026-01", "2026-02"]
        assert hist.months[1].drills == 2
        read = next(t for t in hist.techniques if t.technique == "modbus.read_device_id")
        assert read.injects == 2
        assert 0.0 <= read.detection_rate <= 1.0
        assert store.history(campaign="c1").drills[0].scenario == "frostygoop-gas"
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM injects").fetchone()
    assert rows[0] == 5 + 5 + 4
    s = summary(hist)
    assert s["drills"] == 3 and s["false_alarms"] == 0
    assert weakest(hist, 2)[0].detection_rate <= weakest(hist, 2)[1].detection_rate
    png = plot_history(hist, tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert technique_table(hist).row_count == len(hist.techniques)
    assert month_table(hist).row_count == 2


def test_record_drill_hook(tmp_path: Path) -> None:
    sc = find_scenario("stuxnet-reactor")
    rec = fake_record(sc, 5)
    drill_id = record_drill(rec, sc, score_drill(rec, sc), tmp_path / "x.sqlite")
    with Programme(tmp_path / "x.sqlite") as store:
        [row] = store.drills()
    assert row.id == drill_id and row.started.startswith("2026-09-21")


def test_broken_store(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ProgrammeError, match="cannot open the drill database"):
        Programme(bad)


def test_default_path_is_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with Programme() as store:
        assert store.path == tmp_path / "interlock" / "drills.sqlite"


def test_campaign_plan_is_seeded() -> None:
    scenarios = list_scenarios()
    start = datetime(2026, 1, 5, tzinfo=UTC)
    a = campaign_plan(scenarios, 120, 4, start)
    b = campaign_plan(scenarios, 120, 4, start)
    assert [(w, s.id, k) for w, s, k in a] == [(w, s.id, k) for w, s, k in b]
    assert len(a) == 120 and (a[-1][0] - a[0][0]).days <= 182
    assert len({s.id for _, s, _ in a}) > 5
    assert [(w, s.id) for w, s, _ in campaign_plan(scenarios, 120, 5, start)] != [(w, s.id) for w, s, _ in a]


# --- CLI with a stand-in runner ---------------------------------------------------------------


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A runner module with the contract's signature (no db/store: the CLI stores)."""
    calls: list[dict[str, Any]] = []

    def run_drill(scenario: Scenario, out_dir: Path, *, seed: int | None = None,
                  alerts_file: Path | None = None, speed: str | None = None,
                  progress: bool = True) -> tuple[DrillRecord, Score]:
        calls.append({"scenario": scenario.id, "seed": seed, "alerts": alerts_file, "speed": speed,
                      "progress": progress})
        if alerts_file is not None:
            from interlock.drill.score import load_alerts

            load_alerts(alerts_file, lambda t: t)  # raises AlertFormatError on a bad file
        rec = fake_record(scenario, scenario.seed if seed is None else seed)
        return rec, score_drill(rec, scenario)

    module = types.ModuleType("interlock.drill.runner")
    module.run_drill = run_drill  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "interlock.drill.runner", module)
    _ = AlertFormatError
    return calls


def test_run_writes_report_and_stores(tmp_path: Path, fake_runner: list[dict[str, Any]]) -> None:
    out, db = tmp_path / "out", tmp_path / "d.sqlite"
    res = CliRunner().invoke(main, ["drill", "run", "frostygoop-gas", "--out", str(out), "--db", str(db),
                                    "--seed", "9", "--speed", "10"])
    assert res.exit_code == 0, res.output
    assert fake_runner == [{"scenario": "frostygoop-gas", "seed": 9, "alerts": None, "speed": "10",
                            "progress": True}]
    doc = json.loads((out / "score.json").read_text(encoding="utf-8"))
    assert doc["scenario"] == "frostygoop-gas" and doc["seed"] == 9
    assert (out / "report.html").is_file()
    assert "frostygoop-gas (seed 9): score" in res.output and "modbus.write_register" in res.output
    with Programme(db) as store:
        assert [d.scenario for d in store.drills()] == ["frostygoop-gas"]


def test_drill_without_subcommand_runs_default(tmp_path: Path, fake_runner: list[dict[str, Any]]) -> None:
    res = CliRunner().invoke(main, ["drill", "--out", str(tmp_path / "o"), "--no-store"])
    assert res.exit_code == 0, res.output
    assert fake_runner[0]["scenario"] == "stuxnet-reactor"
    assert (tmp_path / "o" / "report.html").is_file() and (tmp_path / "o" / "score.json").is_file()


def test_run_with_runner_that_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lead's runner takes db/store and writes the report itself: the CLI passes them on."""
    seen: dict[str, Any] = {}

    def run_drill(scenario: Scenario, out_dir: Path, *, seed: int | None = None,
                  alerts_file: Path | None = None, speed: str | None = None, progress: bool = True,
                  db: Path | None = None, store: bool = True) -> tuple[DrillRecord, Score]:
        seen.update(db=db, store=store)
        rec = fake_record(scenario, 1)
        return rec, score_drill(rec, scenario)

    module = types.ModuleType("interlock.drill.runner")
    module.run_drill = run_drill  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "interlock.drill.runner", module)
    res = CliRunner().invoke(main, ["drill", "run", "recon-gas", "--out", str(tmp_path / "o"),
                                    "--db", str(tmp_path / "d.sqlite")])
    assert res.exit_code == 0, res.output
    assert seen == {"db": tmp_path / "d.sqlite", "store": True}
    assert (tmp_path / "o" / "report.html").is_file()  # written by the CLI when the runner did not


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "no-such-scenario"], "no such scenario file or id"),
    (["run", "stuxnet-reactor", "--speed", "fast"], "--speed 'fast'"),
])
def test_run_bad_input_exit_2(args: list[str], expected: str, fake_runner: list[dict[str, Any]]) -> None:
    res = CliRunner().invoke(main, ["drill", *args])
    assert res.exit_code == 2 and expected in res.output
    assert "Traceback" not in res.output and not fake_runner


def test_run_bad_alert_file_exit_2(tmp_path: Path, fake_runner: list[dict[str, Any]]) -> None:
    alerts = tmp_path / "a.jsonl"
    alerts.write_text('{"ts": 1, "technique": "T0836"}\nnot json\n', encoding="utf-8")
    res = CliRunner().invoke(main, ["drill", "run", "stuxnet-reactor", "--alerts", str(alerts), "--no-store",
                                    "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert f"{alerts}:2: not JSON" in res.output and "Traceback" not in res.output
    assert not fake_runner  # refused before the drill ran


def test_history_cli(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    res = CliRunner().invoke(main, ["drill", "history", "--db", str(db)])
    assert res.exit_code == 0 and "no drills recorded" in res.output
    with Programme(db) as store:
        for k in range(6):
            store.add(fake_score(seed=k, detect=bool(k % 2)), started=datetime(2026, 1 + k, 3, tzinfo=UTC))
    plot = tmp_path / "trend.png"
    res = CliRunner().invoke(main, ["drill", "history", "--db", str(db), "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    assert "6 drills" in res.output and "Detection per technique" in res.output and "2026-06" in res.output
    assert plot.read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(main, ["drill", "history", "--db", str(db), "--json"])
    doc = json.loads(res.output)
    assert doc["summary"]["drills"] == 6 and len(doc["months"]) == 6


def test_history_broken_db_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 500)
    res = CliRunner().invoke(main, ["drill", "history", "--db", str(bad)])
    assert res.exit_code == 2 and "cannot open the drill database" in res.output


def test_campaign_cli(tmp_path: Path, fake_runner: list[dict[str, Any]]) -> None:
    db, out = tmp_path / "c.sqlite", tmp_path / "camp"
    res = CliRunner().invoke(main, ["drill", "campaign", "--count", "8", "--seed", "3", "--db", str(db),
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(fake_runner) == 8 and all(c["speed"] == "max" and not c["progress"] for c in fake_runner)
    assert "8 drills from 2026-01-05" in res.output
    assert (out / "history.png").is_file()
    with Programme(db) as store:
        drills = store.drills()
    assert len(drills) == 8 and drills[0].started.startswith("2026-01-05")
    assert drills[-1].started[:7] in ("2026-05", "2026-06") and drills[0].campaign.startswith("campaign-3-")
    assert len(list(out.glob("*/score.json"))) == 8
