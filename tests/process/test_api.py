"""The detector API contract, checked the same way on every detector (as sklearn's check suite)."""

from __future__ import annotations

import numpy as np
import pytest

from interlock.detect.process import DETECTORS, NotFittedError, ProcessDetector
from tests.process.conftest import plant

NAMES = sorted(DETECTORS)


def make(name: str) -> ProcessDetector:
    return DETECTORS[name]()


@pytest.mark.parametrize("name", NAMES)
def test_clone_keeps_params_and_drops_state(name: str) -> None:
    det = make(name).fit(plant(400, 0))
    twin = det.clone()
    assert twin.get_params() == det.get_params()
    assert not hasattr(twin, "threshold_")
    with pytest.raises(NotFittedError):
        twin.score(plant(50, 1))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores_finite_and_one_per_row(name: str) -> None:
    train, test = plant(400, 0), plant(120, 1)
    a = make(name).fit(train).score(test)
    b = make(name).fit(train).score(test)
    assert a.shape == (len(test),)
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_explain_names_every_tag_and_alerts_name_tags(name: str) -> None:
    train, test = plant(400, 0), plant(120, 1)
    det = make(name).fit(train)
    ranked = det.explain(test, 60)
    assert sorted(t for t, _ in ranked) == sorted(train.tags)
    assert [w for _, w in ranked] == sorted((w for _, w in ranked), reverse=True)
    for alert in det.alerts(test):
        assert alert.tags and set(alert.tags) <= set(train.tags)
        assert alert.score > det.threshold_


@pytest.mark.parametrize("name", NAMES)
def test_scoring_other_tags_is_refused(name: str) -> None:
    det = make(name).fit(plant(200, 0))
    other = plant(50, 1)
    renamed = type(other)(("a", "b", "c", "d"), other.values)
    with pytest.raises(ValueError, match="tags differ"):
        det.score(renamed)


@pytest.mark.parametrize("name", NAMES)
def test_scores_and_blame_of_a_row_do_not_depend_on_later_rows(name: str) -> None:
    """Every detector is causal (it could run online): a row's score and blame are those of the
    rows up to it. ``eval process`` relies on it to blame an attack's first alarm from the rows
    before it only."""
    train, test = plant(400, 0), plant(120, 1)
    det = make(name).fit(train)
    whole, rows = det.score(test), np.array([30, 79])
    np.testing.assert_allclose(det.score(test.rows(0, 80)), whole[:80], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(det._blame(test.values[:80], rows), det._blame(test.values, rows),
                               rtol=1e-9, atol=1e-12)  # fmt: skip
