"""Controller tampering on a real range run: unlogged writes are named, logged ones are not, and a
modified control program (gain five times the registered one) breaks the loop law."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from interlock.detect.process.tampering import (
    ControllerTamperingDetector,
    Finding,
    historian_frame,
    read_operator_log,
)
from interlock.range.pid import Pid

pytest.importorskip("pymodbus")


class ModifiedPid(Pid):
    """A PI block whose program multiplies the registered gain by five (registers untouched)."""

    def update(self, sp: float, pv: float, dt_s: float, *, auto: bool = True, manual: float = 0.0) -> float:
        self.kp *= 5
        try:
            return super().update(sp, pv, dt_s, auto=auto, manual=manual)
        finally:
            self.kp /= 5


async def _run() -> Any:
    from interlock.range.runtime import Range

    async with Range("reactor", seed=1, field_devices=False) as rng:
        plc = rng.plcs["plc-1"]
        await rng.advance(900)  # normal operation: the training window
        plc.write_tag("temp_kp", 4.0)  # an operator re-tune, in the log
        await rng.advance(300)
        plc.write_tag("temp_sp_k", 326.0)  # a setpoint write no operator made
        await rng.advance(300)
        logic: Any = plc.logic
        honest = logic.temp
        logic.temp = ModifiedPid(**{f.name: getattr(honest, f.name) for f in dataclasses.fields(honest)})
        await rng.advance(300)  # t = 1500-1800: modified program
        logic.temp = honest
        await rng.advance(120)
        plc.write_tag("temp_mode", 0)  # to manual, unlogged
        await rng.advance(60)
        return rng.historian.table()


@pytest.fixture(scope="module")
def table() -> Any:
    return asyncio.run(_run())


@pytest.fixture(scope="module")
def findings(table: Any, tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    frame = historian_frame(table)
    det = ControllerTamperingDetector("reactor").fit(frame.rows(0, 900))
    log_path = Path(tmp_path_factory.mktemp("ops")) / "operator.csv"
    log_path.write_text("time,tag,value\n899.0,temp_kp,4.0\n", encoding="utf-8")
    return det.check(frame, read_operator_log(log_path))


def test_unlogged_setpoint_and_mode_writes_are_named_and_the_logged_retune_is_not(
    findings: list[Finding],
) -> None:
    changes = [(f.time_s, f.tags[0]) for f in findings if f.kind == "unexplained-change"]
    assert [tag for _, tag in changes] == ["temp_sp_k", "temp_mode"]
    assert 1200 <= changes[0][0] <= 1202 and 1920 <= changes[1][0] <= 1922


def test_modified_program_breaks_the_loop_law_within_seconds(findings: list[Finding]) -> None:
    law = [f for f in findings if f.kind == "loop-law"]
    assert law, "modified PID program not detected"
    assert all(1500 <= f.time_s <= 1830 for f in law)  # no loop-law alarm outside the attack
    assert law[0].time_s <= 1510 and "coolant_output_k" in law[0].tags


def test_without_a_log_every_change_is_unexplained(table: Any) -> None:
    frame = historian_frame(table)
    det = ControllerTamperingDetector("reactor", watched=("temp_kp",)).fit(frame.rows(0, 900))
    changes = [f for f in det.check(frame) if f.kind == "unexplained-change"]
    assert [f.tags for f in changes] == [("temp_kp",)]


def test_bad_operator_log_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ops.csv"
    path.write_text("time,tag,value\n1,temp_kp,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ops\.csv:2"):
        read_operator_log(path)


def test_cli_reports_the_findings_and_refuses_a_bad_file(table: Any, tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from interlock.cli import main

    path = tmp_path / "reactor.parquet"
    pq.write_table(table, path)
    ops = tmp_path / "ops.csv"
    ops.write_text("time,tag,value\n899,temp_kp,4\n", encoding="utf-8")
    args = ["eval", "tampering", str(path), "--plant", "reactor", "--normal-until", "900"]
    out = CliRunner().invoke(main, [*args, "--operator-log", str(ops), "--json"])
    assert out.exit_code == 0, out.output
    kinds = [f["kind"] for f in json.loads(out.output)["findings"]]
    assert kinds == ["unexplained-change", "loop-law", "unexplained-change"]
    missing = str(tmp_path / "none.parquet")
    bad = CliRunner().invoke(
        main, ["eval", "tampering", missing, "--plant", "reactor", "--normal-until", "900"]
    )
    assert bad.exit_code == 2 and "none.parquet" in bad.output


def _modified(mult: float) -> type[Pid]:
    class Modified(Pid):
        def update(
            self, sp: float, pv: float, dt_s: float, *, auto: bool = True, manual: float = 0.0
        ) -> float:
            self.kp *= mult
            try:
                return super().update(sp, pv, dt_s, auto=auto, manual=manual)
            finally:
                self.kp /= mult

    return Modified


async def _refinery(seed: int, feed_stop: bool, gain: float) -> Any:
    """The refinery: 6 minutes of normal operation (the drill's warm-up), then an operator stops
    the feed for 4 minutes and starts it again (the heater's outlet runs 40 K away and back), or
    the heater's PI program is altered to ``gain`` times its registered gain for 5 minutes."""
    from interlock.range.runtime import Range

    async with Range("refinery", seed=seed, field_devices=False) as rng:
        plc = rng.plcs["plc-1"]
        await rng.advance(360)
        if feed_stop:
            plc.write_tag("feed_enable", 0)
            await rng.advance(240)
            plc.write_tag("feed_enable", 1)
            await rng.advance(300)
        else:
            logic: Any = plc.logic
            honest = logic.cot
            fields = {f.name: getattr(honest, f.name) for f in dataclasses.fields(honest)}
            logic.cot = _modified(gain)(**fields)
            await rng.advance(300)
            logic.cot = honest
            await rng.advance(120)
        return rng.historian.table()


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_a_feed_stop_is_a_transient_not_a_broken_law(seed: int) -> None:
    """Near its setpoint the heater's I term moves the output by far less than one register step,
    so the warm-up cannot tell its scale; fitted freely it came out anywhere from -1.7 to 1.6 and
    every one of seeds 1-6 "broke the law" during an operator's feed stop. Drawn to the
    programmed 1, the law holds through it; the gain, which the warm-up does pin down, keeps
    its fitted value."""
    frame = historian_frame(asyncio.run(_refinery(seed, feed_stop=True, gain=1.0)))
    det = ControllerTamperingDetector("refinery").fit(frame.rows(0, 360))
    (model,) = det.models_
    assert abs(model.beta - 1) < 0.05 and abs(model.alpha - 1) < 0.1
    assert [f for f in det.check(frame) if f.kind == "loop-law"] == []


def test_a_doubled_gain_on_the_heater_still_breaks_the_law() -> None:
    frame = historian_frame(asyncio.run(_refinery(1, feed_stop=False, gain=2.0)))
    det = ControllerTamperingDetector("refinery").fit(frame.rows(0, 360))
    law = [f for f in det.check(frame) if f.kind == "loop-law"]
    assert law and 360 <= law[0].time_s <= 380
    assert all(360 <= f.time_s <= 690 for f in law)
