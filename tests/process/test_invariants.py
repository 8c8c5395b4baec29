"""Invariant mining: the relations of a known plant are found, and a break names the relation."""

from __future__ import annotations

import numpy as np

from interlock.detect.process import Frame
from interlock.detect.process.invariants import InvariantDetector
from tests.process.conftest import plant


def pumped(rows: int, seed: int) -> Frame:
    """A pump switching on and off, its flow, a pressure following the flow, a fixed setpoint."""
    rng = np.random.default_rng(seed)
    status = (np.sin(2 * np.pi * np.arange(rows) / 40) > 0).astype(float)
    flow = status * (30 + rng.normal(0, 1, rows)) + (1 - status) * rng.uniform(0, 0.5, rows)
    pressure = 50 + 0.8 * flow + rng.normal(0, 0.3, rows)
    other = 10 + 3 * np.sin(2 * np.pi * np.arange(rows) / 57) + rng.normal(0, 0.5, rows)
    total = flow + other + rng.normal(0, 0.05, rows)  # a header flow: the sum of its branches
    sp = np.full(rows, 4.2)
    x = np.column_stack([status, flow, pressure, other, total, sp])
    tags = ("S_PU1", "F_PU1", "P_J1", "F_B", "F_TOTAL", "SP")
    return Frame(tags, x, label=np.zeros(rows, dtype=np.int8))


def test_mines_readable_relations_and_holds_on_new_normal_data() -> None:
    det = InvariantDetector().fit(pumped(800, 0))
    text = "\n".join(det.describe())
    assert "S_PU1 = 1 => F_PU1 >" in text  # actuator/sensor direction consistency
    assert "P_J1 ~" in text or "F_PU1 ~" in text  # the linear pair
    assert "SP == 4.2" in text
    assert "[balance] F_TOTAL ~" in text  # conservation: the header is the sum of its branches
    assert det.predict(pumped(400, 1)).mean() < 0.03


def test_a_flow_without_its_pump_breaks_the_implication_and_is_named() -> None:
    det = InvariantDetector().fit(pumped(800, 0))
    test = pumped(200, 1)
    x = test.values.copy()
    off = np.flatnonzero(x[:, 0] == 0)[:10]
    x[off, 1] = 30.0  # flow reported while the pump is off (a spoofed flow or a forced pump)
    x[off, 2] = 50 + 0.8 * 30.0
    x[off, 4] = 30.0 + x[off, 3]
    attacked = Frame(test.tags, x)
    alerts = {a.row: a for a in det.alerts(attacked)}
    assert set(off) <= set(alerts)
    first = alerts[int(off[0])]
    assert {"S_PU1", "F_PU1"} <= set(first.tags)
    kinds = {inv.kind for inv, _ in det.broken(attacked, int(off[0]), limit=10)}
    assert "implies" in kinds


def test_a_tag_moved_alone_breaks_its_pair() -> None:
    det = InvariantDetector().fit(plant(800, 0))
    test = plant(100, 1)
    x = test.values.copy()
    x[50:, 3] += 1.0  # P_OUT (0.5 per unit of level) off by two units of level, still in range
    alerts = det.alerts(Frame(test.tags, x))
    assert alerts and min(a.row for a in alerts) == 50
    assert "L_TANK ~" in alerts[0].explanation and "P_OUT" in alerts[0].tags
    setpoint = det.broken(Frame(test.tags, x), 60)
    assert setpoint and setpoint[0][0].kind == "linear"
