"""Every shipped scenario loads, keeps to the plant's devices and tags, and the set covers the issue."""

from __future__ import annotations

import pytest

from interlock.drill.scenario import list_scenarios, load_scenario, plant_devices, scenario_paths

PATHS = scenario_paths()


def test_enough_scenarios_across_the_plants() -> None:
    scenarios = list_scenarios()
    assert len(scenarios) >= 12
    assert {s.plant for s in scenarios} == {"gas-pipeline", "refinery", "reactor"}
    assert len({s.id for s in scenarios}) == len(scenarios)
    assert any(s.id == "stuxnet-reactor" for s in scenarios)  # the default of `interlock drill`


def test_the_issue_s_techniques_are_covered() -> None:
    expected = {i for s in list_scenarios() for inj in s.injects for i in inj.expect}
    for tid in ("T0856", "T0832", "T0831", "T0880", "T0855", "T0836", "T0846", "T0888", "T0814", "T0816",
                "T0858", "T0843", "T0878", "T0806", "T0830"):
        assert tid in expected, tid


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_scenario_is_valid(path: object) -> None:
    sc = load_scenario(path)  # type: ignore[arg-type]
    assert sc.id == sc.path.stem if sc.path else True  # file named after its id
    assert sc.duration_s <= 30 * 60
    if sc.id == "stuxnet-reactor":
        assert sc.duration_s <= 20 * 60
    assert sc.based_on and sc.objectives and sc.description
    devices = plant_devices(sc.plant)
    for inj in sc.injects:
        assert inj.target in devices
        assert sc.warmup_s <= inj.at_s < sc.duration_s
        if "tag" in inj.params:
            assert inj.params["tag"] in devices[inj.target][1]
