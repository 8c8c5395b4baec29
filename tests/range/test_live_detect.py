"""Process detection in ``range watch``: learn normal polls, then judge each later one."""

from __future__ import annotations

from interlock.detect.process import Frame
from interlock.range.live_detect import LiveDetection
from tests.process.test_control_ensemble import pumped_tank


def polls(frame: Frame) -> list[dict[str, float]]:
    return [dict(zip(frame.tags, map(float, row), strict=True)) for row in frame.values]


def test_learns_then_finds_a_forced_pump_and_names_it() -> None:
    live = LiveDetection(learn_rows=1500, members="replay+cva(ewma=0.2,keep_raw=1)+control+frozen")
    for values in polls(pumped_tank(1500, 0)):
        assert live.update(values) is None
    assert live.monitor is not None and "learning" not in live.line()
    attacked = polls(pumped_tank(600, 1, forced=(300, 340)))
    alerts = [a for values in attacked if (a := live.update(values)) is not None]
    assert live.scored == 600 and live.alarms == len(alerts)
    # Rows count polls from the first, the 1,500 learned ones included.
    inside = [a for a in alerts if 1800 <= a.row < 1840]
    before = [a for a in alerts if a.row < 1800]
    # (After 340 the overfilled tank takes its time to come back: alarms there are the attack's.)
    assert len(inside) >= 30 and len(before) <= 3
    assert {"S_PUMP", "L_TANK"} & {t for a in inside for t in a.tags}
    assert "abnormal" in live.line() and "last at" in live.line()


def test_an_incomplete_poll_is_skipped_and_too_few_rows_say_so() -> None:
    live = LiveDetection(learn_rows=1000)
    rows = polls(pumped_tank(1001, 0))
    for values in rows[:1000]:
        live.update(values)
    partial = {k: v for k, v in rows[1000].items() if k != "L_TANK"}  # the level was not read
    assert live.update(partial) is None and live.scored == 0
    small = LiveDetection(learn_rows=3, members="cva")
    for values in rows[:5]:
        small.update(values)
    assert small.monitor is None and small.line().startswith("process: cannot learn")
    assert LiveDetection(learn_rows=50).line() == "process: learning the normal polls, 0 of 50"


def test_the_default_members_hold_a_held_reading_and_ignore_a_noisy_plant() -> None:
    """replay+frozen: one sensor held at one value is found, the normal run raises nothing."""
    live = LiveDetection(learn_rows=1000)
    for values in polls(pumped_tank(1000, 0)):
        live.update(values)
    rows = polls(pumped_tank(400, 1))
    for values in rows[:200]:
        assert live.update(values) is None
    held = rows[200]["F_DEMAND"]
    found = [a for values in rows[200:] if (a := live.update({**values, "F_DEMAND": held})) is not None]
    assert found and found[0].tags == ("F_DEMAND",) and found[0].row < 1000 + 215


def test_a_failed_first_poll_does_not_fix_the_tags() -> None:
    live = LiveDetection(learn_rows=1000)
    assert live.update({}) is None and live.tags is None  # the device did not answer
    rows = polls(pumped_tank(1000, 0))
    for values in rows:
        live.update(values)
    assert live.tags == tuple(sorted(rows[0])) and live.monitor is not None
    named = LiveDetection(learn_rows=10, tags=("L_TANK", "F_DEMAND"))
    for values in rows[:10]:
        named.update(values)  # extra tags in a poll are ignored
    assert named.monitor is not None and named.monitor.detector.tags_ == ("L_TANK", "F_DEMAND")


def test_a_changed_setpoint_or_command_is_reported_at_once_learning_or_not() -> None:
    """The range has no operator: a watched point that changes is a finding at that poll, with
    its ATT&CK ids, while the models learn and after; other tags may change as they like."""
    watched = {"SP_LEVEL": "setpoint", "CMD_PUMP": "command", "L_TANK": "sensor"}
    live = LiveDetection(learn_rows=1000, watched=watched)
    assert set(live.watched) == {"SP_LEVEL", "CMD_PUMP"}  # a sensor's changes are not findings
    rows = polls(pumped_tank(1100, 0))
    found = []
    for i, values in enumerate(rows):
        values = {**values, "SP_LEVEL": 5.0 if i < 400 else 5.5, "CMD_PUMP": 1.0 if i < 1050 else 0.0}
        if (a := live.update(values)) is not None:
            found.append(a)
    changes = [a for a in found if a.score == float("inf")]
    assert [(a.row, a.tags) for a in changes] == [(400, ("SP_LEVEL",)), (1050, ("CMD_PUMP",))]
    assert changes[0].explanation == "setpoint SP_LEVEL changed 5 -> 5.5 with no operator command (T0836)"
    assert "(T0855, T0831)" in changes[1].explanation
    line = live.line()
    assert line.startswith("process: ") and "2 point changes" in line and "CMD_PUMP changed 1 -> 0" in line


def test_without_a_model_the_watch_still_reports_changes() -> None:
    live = LiveDetection(learn_rows=0, watched={"SP_LEVEL": "setpoint"})
    rows = polls(pumped_tank(20, 0))
    assert all(live.update({**v, "SP_LEVEL": 5.0}) is None for v in rows[:10])
    assert live.monitor is None and live.line() == "process: watching 1 points for changes (10 polls)"
    alert = live.update({**rows[10], "SP_LEVEL": 6.0})
    assert alert is not None and alert.tags == ("SP_LEVEL",) and live.monitor is None
    # The watch's own state first, then the change.
    assert live.line().startswith("process: watching 1 points for changes (11 polls); ")
    assert live.changes == 1 and live.alarms == 0
