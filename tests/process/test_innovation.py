"""The innovation detector: each tag's one-step law, charted per tag (controller laws, valves)."""

from __future__ import annotations

import numpy as np
import pytest

from interlock.detect.process import Frame, detector_class
from interlock.detect.process.innovation import InnovationDetector
from interlock.detect.process.stream import RowByRow

TAGS = ("SP", "Y", "VALVE", "NOISE")


def pi_loop(
    rows: int, seed: int, gain_from: int | None = None, stick_from: int | None = None, noise: float = 0.05
) -> Frame:
    """A first-order process under a PI controller in velocity form, setpoint steps every 150 rows.

    The historian records the valve's position, which follows the controller's output u unless it
    sticks (it moves only once u is 1.5 units away: a deadband, as TEP's valves do under IDV(14),
    (15)); in normal operation the recorded position is the controller's law.
    ``gain_from``: from that row the controller's gain is doubled, as a tampered PLC would.
    """
    rng = np.random.default_rng(seed)
    sp_levels = rng.uniform(40, 60, rows // 150 + 1)
    kc, ki, a, b = 0.6, 0.15, 0.9, 0.25
    y, u, valve, err_prev = 50.0, 20.0, 20.0, 0.0
    out = np.empty((rows, 4))
    for t in range(rows):
        sp = sp_levels[t // 150]
        y = a * y + b * valve + 0.5 + rng.normal(0, noise)
        err = sp - y
        k = 2 * kc if gain_from is not None and t >= gain_from else kc
        u = u + k * (err - err_prev) + ki * err
        err_prev = err
        if stick_from is None or t < stick_from or abs(u - valve) > 1.5:
            valve = u
        out[t] = (sp, y, valve, rng.normal(0, 1))
    return Frame(TAGS, out)


def test_controller_and_process_laws_are_charted_and_noise_is_not() -> None:
    det = InnovationDetector().fit(pi_loop(3000, 0))
    charted = {TAGS[j] for j in np.flatnonzero(det.law_.varying)}
    assert {"Y", "VALVE"} <= charted
    assert "NOISE" not in charted  # no law predicts it
    normal = pi_loop(1500, 1)
    assert (det.predict(normal)).mean() < 0.02


def with_flow(frame: Frame, seed: int, noise: float) -> Frame:
    """The loop plus a flow meter behind the valve: 2 x the position, with meter noise."""
    rng = np.random.default_rng(seed)
    flow = 2 * frame.values[:, 2] + rng.normal(0, noise, len(frame))
    return Frame((*TAGS, "FLOW"), np.column_stack([frame.values, flow]))


def test_the_innovation_variance_must_at_least_triple() -> None:
    """A normal run may be noisier than the training run (TEP's differ by up to twice the
    variance); the chart alarms from ``ratio`` = 3 times the held-out variance."""
    train = with_flow(pi_loop(3000, 0), 0, 0.1)
    det = InnovationDetector().fit(train)
    assert det.law_.varying[-1]  # the meter's law is charted
    calmer = with_flow(pi_loop(1500, 6), 6, 0.1 * 1.5**0.5)
    noisier = with_flow(pi_loop(1500, 6), 6, 0.1 * 6**0.5)
    assert det.predict(calmer).mean() < 0.02  # 1.5 times the variance
    assert det.predict(noisier)[100:].mean() > 0.7  # 6 times (its loudest rows clip the chart now and then)
    assert InnovationDetector(ratio=0).fit(train).predict(calmer).mean() > 0.05


def test_a_doubled_controller_gain_breaks_the_controller_law() -> None:
    det = InnovationDetector().fit(pi_loop(3000, 0))
    test = pi_loop(1200, 2, gain_from=600)
    alarms = det.predict(test)
    assert alarms[:600].mean() < 0.02
    first = int(np.flatnonzero(alarms[600:])[0])
    assert first < 30
    assert alarms[600:].mean() > 0.8
    # The controller's law ties SP, Y and VALVE (each can be solved from the others), so the
    # three are named together; the unrelated tag is not.
    assert set(det.alerts(test)[-1].tags) == {"SP", "Y", "VALVE"}


def test_a_sticking_valve_is_seen_while_every_tag_stays_in_its_range() -> None:
    train = pi_loop(3000, 0)
    det = InnovationDetector().fit(train)
    test = pi_loop(1200, 3, stick_from=600)
    lo, hi = train.values.min(axis=0), train.values.max(axis=0)
    assert ((test.values[600:, 1:3] >= lo[1:3]) & (test.values[600:, 1:3] <= hi[1:3])).all()
    alarms = det.predict(test)
    assert alarms[:600].mean() < 0.02
    assert alarms[600:].mean() > 0.5
    # The multivariate chart over every tag at once sees it less often.
    pca = detector_class("pca")().fit(train)
    assert alarms[600:].mean() > pca.predict(test)[600:].mean()


def test_a_large_break_that_ended_is_not_remembered() -> None:
    train = pi_loop(3000, 0)
    test = pi_loop(900, 4)
    x = test.values.copy()
    x[300:330, 2] += 25.0  # the valve position spoofed for 30 rows, then back
    spoofed = Frame(TAGS, x)
    clipped = InnovationDetector().fit(train).predict(spoofed)
    remembered = InnovationDetector(restart=0).fit(train).predict(spoofed)
    assert clipped[310:330].all() and remembered[310:330].all()  # the chart needs a few rows
    assert clipped[340:].mean() < 0.02
    assert remembered[340:].sum() > clipped[340:].sum() + 20


def test_forget_erases_the_chart_so_the_settling_after_a_break_is_not_charted() -> None:
    """After the spoof the loop settles for a while (the valve reading noisier, fading): clipped
    to its alarm's edge the chart stays there on the slightly raised variance; erased to its
    in-control mean it must add the settling up from nothing."""
    train = pi_loop(3000, 0)
    x = pi_loop(900, 4).values.copy()
    x[300:330, 2] += 25.0
    fade = np.exp(-np.arange(200) / 100)
    x[330:530, 2] += np.random.default_rng(1).normal(0, 0.02, 200) * fade
    settling = Frame(TAGS, x)
    clipped = InnovationDetector().fit(train)
    erased = InnovationDetector(forget=True).fit(train)
    np.testing.assert_array_equal(erased.clip_level_, np.minimum(clipped.clip_level_, erased.start_))
    a, b = clipped.predict(settling), erased.predict(settling)
    assert a[310:330].all() and b[310:330].all()
    assert b[330:600].sum() < a[330:600].sum() / 2
    assert not b[600:].any()
    live = RowByRow(erased)
    np.testing.assert_allclose([live.score_row(v) for v in x], erased.score(settling), rtol=1e-9, atol=1e-9)


def test_excise_forgets_the_loud_rows_but_not_a_deviation_charted_before_them() -> None:
    """A flow meter grown six times noisier (a lasting fault), then a 3-row spike: ``forget``
    erases the chart at the end of each loud episode, the meter's own loudest rows included, and
    goes nearly blind; ``excise`` puts it back where it stood before the episode, so the noisy
    meter stays charted, while the settling after a spoof on a sound loop is forgotten as well."""
    train = with_flow(pi_loop(3000, 0), 0, 0.1)
    forget = InnovationDetector(forget=True).fit(train)
    excise = InnovationDetector(excise=True).fit(train)
    noisy = with_flow(pi_loop(1500, 6), 6, 0.1 * 6**0.5)
    x = noisy.values.copy()
    x[700:703, 4] += 30.0
    spiked = Frame(noisy.tags, x)
    assert forget.predict(spiked)[600:].mean() < 0.2
    assert excise.predict(spiked)[600:].mean() > 0.7
    loop = pi_loop(3000, 0)
    x = pi_loop(900, 4).values.copy()
    x[300:330, 2] += 25.0
    x[330:530, 2] += np.random.default_rng(1).normal(0, 0.02, 200) * np.exp(-np.arange(200) / 100)
    settling = Frame(TAGS, x)
    clipped = InnovationDetector().fit(loop).predict(settling)
    excised = InnovationDetector(excise=True).fit(loop).predict(settling)
    assert excised[310:330].all() and excised[330:600].sum() < clipped[330:600].sum() / 2
    with_raw = InnovationDetector(excise=True, keep_raw=True).fit(loop)
    for det, frame in ((excise, spiked), (with_raw, settling)):
        live = RowByRow(det)
        scores = [live.score_row(v) for v in frame.values]
        np.testing.assert_allclose(scores, det.score(frame), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("params", "spoof_episodes"),
    [({}, 2), ({"excise": True, "confirm": 2}, 2), ({"forget": True, "confirm": 5}, 1)],
)
def test_streaming_gives_the_batch_scores_clipping_included(
    params: dict[str, object], spoof_episodes: int
) -> None:
    train = pi_loop(3000, 0)
    x = pi_loop(900, 5, stick_from=700).values.copy()
    x[300:330, 2] += 25.0  # loud to 331 (the lags carry the step back)
    x[336:340, 2] += 25.0  # after 4 quiet rows: one episode with confirm=5, two with 2
    test = Frame(TAGS, x)
    det = InnovationDetector(keep_raw=True, **params).fit(train)  # type: ignore[arg-type]
    episodes = det._episodes(det._normalized(x))
    assert len([a for a, _ in episodes if 290 <= a < 400]) == spoof_episodes  # the clipping is exercised
    live = RowByRow(det)
    scores = np.array([live.score_row(v) for v in x])
    assert live._scorer is not None
    np.testing.assert_allclose(scores, det.score(test), rtol=1e-9, atol=1e-9)


def test_a_lull_inside_an_attack_does_not_end_its_episode_with_confirm() -> None:
    """A spoof that pauses: the valve reads true for 4 rows (2 of them quiet, once the lags have
    passed the step back). Forgetting at the first quiet row erases the chart in the lull; with
    ``confirm=2`` the episode is over only after two quiet rows, so the lull stays charted."""
    train = pi_loop(3000, 0)
    x = pi_loop(900, 4).values.copy()
    x[300:320, 2] += 25.0
    x[324:340, 2] += 25.0
    spoofed = Frame(TAGS, x)
    eager = InnovationDetector(forget=True).fit(train)
    patient = InnovationDetector(forget=True, confirm=2).fit(train)
    assert eager._episodes(eager._normalized(x)) == [(300, 322), (324, 342)]
    (start, over), = patient._episodes(patient._normalized(x))
    assert over == 344 and 295 <= start <= 300  # over 2 quiet rows after 342 (a blip at 297 joins it)
    assert patient.predict(spoofed)[322:324].all() and not eager.predict(spoofed)[322:324].any()
    assert patient.predict(spoofed)[360:].mean() < 0.02  # and forgotten once over


def test_an_offset_valve_reading_is_blamed_not_the_laws_that_read_it() -> None:
    """The valve's recorded position reads 3 high: the controller's law, the process law (Y from
    the valve) and the flow meter's law (2 x the valve) all break. The chart of the meter's law,
    the tightest, is the loudest, and was blamed first; the one fault that explains all three
    breaks is the valve's reading. The noise tag, which every law reads with a tiny coefficient,
    could explain them only with an offset thousands of spreads large, and is not blamed."""
    train = with_flow(pi_loop(3000, 0), 0, 0.1)
    det = InnovationDetector().fit(train)
    x = with_flow(pi_loop(900, 7), 7, 0.1).values.copy()
    x[300:400, 2] += 3.0
    test = Frame(train.tags, x)
    alarms = np.flatnonzero(det.predict(test))
    assert alarms.size and 300 <= alarms[0] < 310 and alarms.max() < 420
    for row in alarms[alarms < 400]:
        ranked = [tag for tag, _ in det.explain(test, int(row))]
        assert ranked[0] == "VALVE", (row, ranked)
        assert ranked.index("NOISE") >= 3


def test_streaming_blames_as_the_batch_at_every_row() -> None:
    train = with_flow(pi_loop(3000, 0), 0, 0.1)
    det = InnovationDetector(keep_raw=True, excise=True, confirm=2).fit(train)
    x = with_flow(pi_loop(600, 8, stick_from=400), 8, 0.1).values.copy()
    x[200:260, 2] += 3.0
    x[100, 4] = np.nan  # a missed meter reading
    live = RowByRow(det)
    streamed = []
    for v in x:
        live.score_row(v)
        streamed.append(live.weights())
    rows = np.arange(len(x))
    np.testing.assert_allclose(np.array(streamed), det._blame(x, rows), rtol=1e-9, atol=1e-9)


def test_a_switched_tag_has_no_chart() -> None:
    """A pump that ran twice in training: its flow is zero, or steady while it runs. "As a moment
    ago" is a tight law on those rows, and breaks at the next switch."""
    base = pi_loop(3000, 0)
    flow = np.zeros(3000)
    noise = np.random.default_rng(9).normal(0, 0.01, 3000)
    for start in (1000, 2000):  # in two held-out blocks, so each block's law has seen it run
        flow[start : start + 60] = 30.0 + noise[start : start + 60]
    train = Frame((*TAGS, "FLOW"), np.column_stack([base.values, flow]))
    # Four switches in 3,000 rows leave "as a moment ago" within 0.19 of the flow's spread: tight
    # enough at 0.25, and then only the switched rule leaves it out.
    assert not InnovationDetector(tight=0.25).fit(train).law_.varying[-1]
    assert InnovationDetector(tight=0.25, switched=1.0).fit(train).law_.varying[-1]


def test_a_training_run_too_short_for_held_out_blocks_charts_nothing() -> None:
    """Fitted on as many rows as it has terms, every law is exact in sample; without held-out
    blocks there is no honest spread, so no chart (a review saw 99% of a normal run alarm)."""
    det = InnovationDetector().fit(pi_loop(40, 0))  # under 5 x (2 x 2 + 10) rows
    assert not det.law_.varying.any()
    assert not det.predict(pi_loop(500, 1)).any()


def test_a_missing_training_reading_counts_as_the_mean() -> None:
    train = pi_loop(2000, 0)
    x = train.values.copy()
    x[500, 2] = np.nan
    det = InnovationDetector().fit(Frame(TAGS, x))
    assert det.law_.varying[2]  # the valve keeps its law
    spoofed = pi_loop(600, 3).values.copy()
    spoofed[300:, 2] += 5.0
    assert det.predict(Frame(TAGS, spoofed))[330:].mean() > 0.9


def test_laws_are_learned_within_runs_not_across_them() -> None:
    """Thirty separate simulation runs in one training frame (Rieth's TEP layout): the jump from
    one run's last row to the next one's first is no step of any law. Learned across the joins,
    the laws' spreads grow 25-45 times and the doubled gain goes unseen."""
    x = np.vstack([pi_loop(200, 100 + k).values for k in range(30)])
    runs = np.repeat(np.arange(30), 200)
    by_run = InnovationDetector().fit(Frame(TAGS, x, runs=runs))
    joined = InnovationDetector().fit(Frame(TAGS, x))
    tampered = pi_loop(1200, 2, gain_from=600)
    assert by_run.predict(tampered)[600:].mean() > 0.9
    assert joined.predict(tampered)[600:].mean() < 0.1
    assert not by_run.predict(pi_loop(1200, 4)).any()


def test_rows_without_a_history_in_their_run_are_not_held_out_evidence() -> None:
    """Many short runs: the first ``lags`` rows of each have no law to check. Counted as perfect
    predictions they shrank the held-out spreads, and a loose law passed as near exact (a review
    saw 49% false alarms); and a frame of many 2-row runs has almost no row to learn from."""
    rng = np.random.default_rng(0)

    def ar(rows: int) -> np.ndarray:
        x = np.zeros(rows)
        for t in range(1, rows):
            x[t] = 0.99 * x[t - 1] + rng.normal()
        y = 2 * np.concatenate([[0.0], x[:-1]]) + rng.normal(0, 0.5, rows)
        return np.column_stack([x, y])

    tags = ("X", "Y")
    short = np.vstack([ar(303)[300:] for _ in range(1000)])  # 1000 runs of 3 rows
    det = InnovationDetector().fit(Frame(tags, short, runs=np.repeat(np.arange(1000), 3)))
    assert not det.law_.varying[0]  # X: a random walk's step, no law
    assert det.predict(Frame(tags, ar(2500))).mean() < 0.02
    pairs = np.vstack([pi_loop(3, 0).values] + [pi_loop(2, k).values for k in range(1, 101)])
    few = InnovationDetector().fit(Frame(TAGS, pairs, runs=np.repeat(np.arange(101), [3] + [2] * 100)))
    assert not few.law_.varying.any()  # one row with a history: nothing to learn from
