"""Dynamic PCA, CVA and balance residuals: faults injected into held-back normal data are found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from interlock.detect.process import BalanceDetector, CVADetector, DynamicPCADetector, Frame
from interlock.detect.process.dpca import lagged, out_of_sample, running_min
from interlock.detect.process.metrics import evaluate
from tests.process.conftest import plant
from tests.process.test_detection import inject


def dynamic_plant(rows: int, seed: int) -> Frame:
    """A tank under level control: the outflow valve follows the level error of the last step.

    inflow is autocorrelated noise; level integrates inflow - outflow; a sensor reads the level
    and the valve acts on that reading one step later. Each tag alone stays in its usual range
    when the loop is broken, only the dynamics give it away.
    """
    rng = np.random.default_rng(seed)
    inflow = np.empty(rows)
    level = np.empty(rows)
    valve = np.empty(rows)
    inflow[0], level[0], valve[0] = 5.0, 10.0, 5.0
    for t in range(1, rows):
        inflow[t] = 5 + 0.9 * (inflow[t - 1] - 5) + rng.normal(0, 0.3)
        valve[t] = 5 + 0.8 * (level[t - 1] - 10) + rng.normal(0, 0.05)
        level[t] = level[t - 1] + 0.5 * (inflow[t] - valve[t]) + rng.normal(0, 0.05)
    reading = level + rng.normal(0, 0.05, rows)
    x = np.column_stack([inflow, valve, reading, 2 + 0.5 * reading + rng.normal(0, 0.05, rows)])
    return Frame(("F_IN", "F_OUT", "L_TANK", "P_OUT"), x, label=np.zeros(rows, dtype=np.int8))


def test_lagged_and_running_min_are_causal() -> None:
    z = np.arange(8.0).reshape(4, 2)
    a = lagged(z, 2)
    np.testing.assert_array_equal(a[3], [6, 7, 4, 5, 2, 3])
    np.testing.assert_array_equal(a[0], [0, 1, 0, 1, 0, 1])  # row 0 stands in for the unknown past
    np.testing.assert_array_equal(running_min(np.array([3.0, 1, 4, 1, 5, 9]), 3), [3, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(running_min(np.array([3.0, 5, 4]), 1), [3, 5, 4])


def test_out_of_sample_scores_each_block_with_a_model_that_did_not_see_it() -> None:
    seen: list[int] = []

    def fit(rows: np.ndarray) -> object:
        seen.append(len(rows))
        return float(rows.sum())

    def stats(model: object, x: np.ndarray, start: int) -> np.ndarray:
        return np.full((len(x), 1), model)

    x = np.arange(10.0).reshape(10, 1)
    out = out_of_sample(x, 5, 1, fit, stats)
    assert seen == [8] * 5
    assert out[0, 0] == 45 - 1 and out[9, 0] == 45 - 17  # rows 0-1 and 8-9 held out in turn


@pytest.mark.parametrize(
    "detector", [DynamicPCADetector(), CVADetector(), BalanceDetector()], ids=lambda d: d.name
)
def test_spoofed_level_is_found_and_quiet_elsewhere(
    detector: DynamicPCADetector | CVADetector | BalanceDetector,
) -> None:
    train, held_back = dynamic_plant(3000, 0), dynamic_plant(800, 1)
    # The level reads 1.5 units high for 80 rows: it no longer matches the valve and the flows.
    test = inject(held_back, "L_TANK", 400, 480, 1.5)
    detector.fit(train)
    alarm = detector.predict(test)
    report = evaluate(test.label if test.label is not None else np.zeros(0), alarm)
    assert report.episodes[0].detected_at is not None
    assert report.episodes[0].time_to_detect <= 2
    # Quiet on the held-back normal rows (the first 400): the limits came from held-out blocks.
    assert alarm[:400].mean() < 0.03
    first = report.episodes[0].detected_at
    assert detector.explain(test, first)[0][0] in ("L_TANK", "P_OUT", "F_OUT")


@pytest.mark.parametrize("cls", [DynamicPCADetector, CVADetector], ids=lambda c: c.name)
def test_persistence_cuts_isolated_alarms(cls: type[DynamicPCADetector] | type[CVADetector]) -> None:
    train, held_back = plant(2000, 0), plant(600, 1)
    # One-row glitches every 50 rows, and one lasting fault.
    test = inject(held_back, "L_TANK", 400, 460, 1.5)
    x = test.values.copy()
    x[50:350:50, 2] += 3.0
    test = Frame(test.tags, x, label=test.label)
    single = cls().fit(train).predict(test)
    persistent = cls(persist=3).fit(train).predict(test)
    assert single[50:350].sum() > persistent[50:350].sum()
    assert persistent[400:460].mean() > 0.5


def test_cva_states_and_limits_come_from_normal_data_only() -> None:
    det = CVADetector(lags=2, n_states=3).fit(dynamic_plant(1500, 0))
    assert det.model_.k == 3
    assert det.limits_.shape == (3,)
    # About 1% of the held-out normal rows exceed the threshold, by construction.
    assert 0.0 < float(np.mean(det.held_out_ > det.threshold_)) <= 0.02


def test_balance_keeps_only_relations_that_hold() -> None:
    rng = np.random.default_rng(7)
    x = np.column_stack([plant(2000, 0).values, rng.normal(0, 1, 2000)])  # a tag tied to nothing
    frame = Frame(("F_IN", "F_PUMP", "L_TANK", "P_OUT", "NOISE"), x)
    det = BalanceDetector().fit(frame)
    kept = {frame.tags[j] for j, _, _ in det.models_}
    assert "NOISE" not in kept and "P_OUT" in kept


def test_cli_param_sets_a_detector_parameter(tmp_path: Path) -> None:
    from interlock.detect.process.cli import eval_group

    train = dynamic_plant(1500, 0)
    test = inject(dynamic_plant(600, 1), "L_TANK", 300, 360, 1.5)
    paths = []
    for name, frame in (("train.csv", train), ("test.csv", test)):
        path = tmp_path / name
        label = frame.label if frame.label is not None else np.zeros(len(frame))
        rows = [",".join([*frame.tags, "ATT"])]
        rows += [
            ",".join([*(f"{v:.6f}" for v in r), str(int(a))])
            for r, a in zip(frame.values, label, strict=True)
        ]
        path.write_text("\n".join(rows) + "\n")
        paths.append(str(path))
    runner = CliRunner()
    args = ["process", *paths, "--label", "ATT", "--detector", "cva", "--json"]
    result = runner.invoke(eval_group, [*args, "--param", "persist=3", "--param", "lags=1"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["params"]["persist"] == 3 and out["params"]["lags"] == 1
    assert out["attacks"][0]["detected_at"] is not None
    bad = runner.invoke(eval_group, [*args, "--param", "nope=1"])
    assert bad.exit_code == 2 and "persist" in bad.output
