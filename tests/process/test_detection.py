"""Detectors find anomalies injected into held-back normal data, with known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from interlock.detect.process import (
    Frame,
    IsolationForestDetector,
    PCADetector,
    ReplayDetector,
    ResidualDetector,
)
from interlock.detect.process.metrics import evaluate
from tests.process.conftest import plant, shared


def inject(frame: Frame, tag: str, start: int, stop: int, offset: float) -> Frame:
    """Spoof one sensor: the tag reads ``offset`` higher than the physics says."""
    x = frame.values.copy()
    j = frame.tags.index(tag)
    x[start:stop, j] += offset
    label = np.zeros(len(frame), dtype=np.int8)
    label[start:stop] = 1
    return Frame(frame.tags, x, label=label)


@pytest.mark.parametrize("detector", [PCADetector(), ResidualDetector()], ids=lambda d: d.name)
def test_spoofed_level_is_found_and_quiet_elsewhere(detector: PCADetector | ResidualDetector) -> None:
    # The level reads 1 unit high (about 1.3 of its standard deviations): within its own
    # normal range, so only the relation to inflow, pump and pressure gives it away.
    train, held_back = plant(2000, 0), plant(600, 1)
    test = inject(held_back, "L_TANK", 300, 360, 1.0)
    detector.fit(train)
    report = evaluate(test.label, detector.predict(test))
    assert report.episodes[0].detected_at is not None
    assert report.recall > 0.5
    assert report.false_alarm_rate < 0.05
    # The spoofed tag, or the one tied to it, is blamed first.
    first = report.episodes[0].detected_at
    assert detector.explain(test, first)[0][0] in ("L_TANK", "P_OUT")


def test_isolation_forest_finds_out_of_range_values_and_saturates() -> None:
    train, held_back = plant(2000, 0), plant(600, 1)
    det = IsolationForestDetector(smooth=5).fit(train)
    four, eight = (inject(held_back, "F_PUMP", 300, 360, k) for k in (4.0, 8.0))
    report = evaluate(four.label if four.label is not None else np.zeros(0), det.predict(four))
    assert report.recall > 0.5 and report.false_alarm_rate < 0.05
    # Trees split only within the training range, so a reading 8 units out is isolated no
    # faster than one 4 units out: the score saturates. Documented as the forest's limit.
    np.testing.assert_allclose(det.score(four), det.score(eight))


def test_residual_blames_the_spoofed_tag() -> None:
    train, held_back = plant(2000, 0), plant(600, 1)
    test = inject(held_back, "F_PUMP", 100, 150, 1.5)
    det = ResidualDetector().fit(train)
    alerts = det.alerts(test)
    in_attack = [a for a in alerts if 100 <= a.row < 150]
    assert len(in_attack) > 25
    assert sum(a.tags[0] in ("F_PUMP", "L_TANK") for a in in_attack) > 0.8 * len(in_attack)


def test_replay_finds_a_copied_window_and_nothing_else() -> None:
    train, held_back = plant(1000, 0), plant(500, 1)
    x = held_back.values.copy()
    x[400:460, 2] = x[100:160, 2]  # the attacker plays back an hour of level readings
    test = Frame(held_back.tags, x)
    det = ReplayDetector(window=12).fit(train)
    flagged = np.flatnonzero(det.predict(test))
    # Flags start once a whole window of the copy has been seen, and name the level.
    assert flagged.size > 0
    assert flagged.min() >= 400 + 12 - 1 and flagged.max() < 460
    assert len(flagged) == 60 - 12 + 1
    assert det.alerts(test)[0].tags == ("L_TANK",)


def test_replay_of_training_data_is_found() -> None:
    train, held_back = plant(1000, 0), plant(300, 1)
    x = held_back.values.copy()
    x[100:130, 0] = train.values[500:530, 0]
    det = ReplayDetector(window=12).fit(train)
    flagged = np.flatnonzero(det.predict(Frame(train.tags, x)))
    assert flagged.size == 30 - 12 + 1 and flagged.min() == 111


def test_replay_picks_each_tags_shortest_window_that_never_repeats_in_training() -> None:
    rng = np.random.default_rng(0)
    rows = 2000
    noisy = rng.normal(0, 1, rows)  # never repeats 3 rows at 3 decimals
    coarse = rng.integers(0, 4, rows).astype(float)  # 4 values: short windows repeat by chance
    status = (np.arange(rows) // 10 % 2).astype(float)  # a schedule: repeats at any length
    train = Frame(("noisy", "coarse", "status"), np.column_stack([noisy, coarse, status]))
    det = ReplayDetector(chance=1e-6).fit(train)
    assert det.windows_[0] == 3 + 2  # the minimum, plus two rows of margin
    assert 5 < det.windows_[1] <= 12 + 2  # 4 values: 4**w windows; repeats stop near w = 7
    assert det.windows_[2] == 0  # left out
    # At the default chance (1e-12) 4 values need 16 rows: more than the longest window.
    assert ReplayDetector().fit(train).windows_.tolist() == [5, 0, 0]
    held = rng.normal(0, 1, 300)
    x = np.column_stack([held, rng.integers(0, 4, 300).astype(float), status[:300]])
    x[200:260, 0] = x[50:110, 0]  # the noisy tag replays 60 rows
    flagged = np.flatnonzero(ReplayDetector().fit(train).predict(Frame(train.tags, x)))
    # Found 5 rows into the replay (its own window), not 12; and nowhere else.
    assert flagged.min() == 200 + 5 - 1 and flagged.max() < 260


def test_replay_window_covers_the_chance_of_a_sample_and_hold_repeat() -> None:
    """An analyser sampled every 5 rows: 500 rows hold no repeat of 3 + 2 rows, yet a longer
    run does by chance. The window comes from the odds of a chance match, not the file alone."""
    rng = np.random.default_rng(5)

    def analyser(rows: int) -> np.ndarray:
        return np.repeat(np.round(rng.normal(0.5, 0.01, rows // 5 + 1), 3), 5)[:rows]

    noisy = rng.normal(0, 1, 500)
    train = Frame(("noisy", "analyser"), np.column_stack([noisy, analyser(500)]))
    empirical = ReplayDetector(chance=0.5).fit(train)  # chance 0.5: the windows of the file alone
    det = ReplayDetector().fit(train)
    assert empirical.windows_[1] > 0 and det.windows_[0] == empirical.windows_[0] == 5
    assert det.windows_[1] == 0 or det.windows_[1] > empirical.windows_[1]
    normal = Frame(train.tags, np.column_stack([rng.normal(0, 1, 5000), analyser(5000)]))
    assert empirical.predict(normal).sum() > 0  # chance repeats of the analyser
    assert det.predict(normal).sum() == 0
    with pytest.raises(ValueError, match="chance must be in"):
        ReplayDetector(chance=1.0).fit(train)
    # A counter's step always repeats: its odds never fall under the chance, so it is left out.
    counter = Frame(("counter", "noisy"), np.column_stack([np.arange(500.0), noisy]))
    assert ReplayDetector().fit(counter).windows_.tolist() == [0, 5]


def test_replay_is_quiet_on_the_tep_normal_test_run() -> None:
    """TEP's 15-minute analysers repeated 5-row windows by chance in d00_te (0.94% of rows)."""
    from interlock.detect.process.data import read_frame

    train, normal = read_frame(shared("tep/d00.dat")), read_frame(shared("tep/d00_te.dat"))
    det = ReplayDetector().fit(train)
    assert det.predict(normal).sum() == 0
    watched = {train.tags[j] for j in np.flatnonzero(det.windows_)}
    assert {"x1", "x9", "x42"} <= watched and not {"x37", "x38", "x39"} & watched


def _repeats_by_bytes(col: np.ndarray, w: int) -> bool:
    """The plain definition: a non-flat window whose bytes equal those of one that ended at
    least ``w`` rows earlier."""
    first: dict[bytes, int] = {}
    for end in range(w, len(col) + 1):
        win = col[end - w : end]
        if np.all(win == win[0]):
            continue
        if end - first.setdefault(win.tobytes(), end) >= w:
            return True
    return False


def test_replay_hashed_windows_agree_with_the_plain_definition() -> None:
    from interlock.detect.process.replay import _repeats_in

    rng = np.random.default_rng(3)
    for values in (rng.integers(0, 3, 400), rng.normal(0, 1, 400), rng.integers(0, 40, 400)):
        col = np.round(values.astype(float), 3)
        for w in (3, 4, 6, 9):
            assert _repeats_in(col, w) == _repeats_by_bytes(col, w)
    # Scoring finds a copied window exactly where the plain definition does, row by row: any
    # training window, or a window of the scored rows that ended at least w rows before.
    train = np.round(rng.normal(0, 1, (600, 1)), 1)
    test = np.round(rng.normal(0, 1, (300, 1)), 1)
    test[100:120] = train[50:70]
    test[250:262] = test[200:212]
    w = 4
    det = ReplayDetector(window=w).fit(Frame(("x",), train))
    assert det.windows_.tolist() == [w]
    old = {train[e - w : e, 0].tobytes() for e in range(w, 601) if np.ptp(train[e - w : e, 0]) > 0}
    plain = []
    for e in range(1, 301):
        win = test[max(e - w, 0) : e, 0]
        earlier = {test[f - w : f, 0].tobytes() for f in range(w, e - w + 1)}
        plain.append(e >= w and np.ptp(win) > 0 and (win.tobytes() in old or win.tobytes() in earlier))
    found = det.predict(Frame(("x",), test)).astype(bool)
    assert found.tolist() == plain and found[103:120].all() and found[253:262].all()
    # A tag that barely moves (one step, a status) is not watched: its few changing windows
    # being distinct says nothing of chance.
    assert _repeats_in(np.repeat([1.0, 2.0], 200), 3)
    assert _repeats_in(np.zeros(400), 3)
