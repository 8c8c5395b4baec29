"""The process defenders of a drill: Interlock's process detectors over the range historian.

The network defenders judge the capture; these judge what the HMI *showed* (the historian's
``source == "hmi"`` rows; the ``truth`` rows are the simulator's and no defender has them). Every
detector is fitted on the drill's warm-up only (rows before ``warmup_s``, benign by the scenario's
contract) and scores the rest; the inject schedule is never read. Four detectors:

1. **Controller tampering** (``detect.process.tampering``) on every controller or RTU the HMI
   polls, whatever its protocol: each change of a setpoint, tuning, loop-mode, alarm-setpoint,
   trip-setpoint or bypass point, and of each command or alarm-enable point (coils, DNP3 binary
   outputs), that the operator log does not explain, and, on the PLC, each breach of a PI
   loop's law. A command point toggled back and forth (``BRUTE_CHANGES`` changes in one
   episode) is Brute Force I/O. A drill has no operator, so its log is empty and every change
   is unexplained, which is right here: nobody on the range's side writes after the start.
2. **Physical watermark** (``range.watermark``): the control program dithers one actuator with a
   key (the drill's seed); under a replay of the HMI's view the dither's response vanishes from
   the sensor the HMI shows. The response is learned on the warm-up; where the sensor is the
   actuator's own feedback (reactor coolant, refinery fuel valve) the controller's command
   register is subtracted first, so a setpoint step does not swamp the dither; transients are
   clipped at 4 warm-up spreads, and no verdict is given while the actuator's command sat at a
   limit of its travel (the plant clamps the dither there). One alert per episode, once the
   correlation has stayed below chance for ``WATERMARK_HOLD`` polls running (an estimate over
   120 polls wanders below it for a few polls in benign runs; a replay stays for minutes).
3. **Replayed windows** (``detect.process.replay``): a window of the PLC's sensor values that
   repeats, value for value, one seen earlier (warm-up included) is a replay's fingerprint.
4. **Frozen sensors** (``detect.process.frozen``): a sensor that holds one value far longer than
   it ever did in the warm-up: a spoof that answers with one held reading, or a dead transmitter.

ATT&CK for ICS ids of the findings (``src/interlock/data/attack_ics.json``):

- setpoint and tuning change: T0836 Modify Parameter. A write to a loop's *manual output* register
  also gets T0831 Manipulation of Control: it drives the actuator directly.
- loop mode change (auto <-> manual): T0836 and T0831. Not T0858 Change Operating Mode, which is
  the controller's own mode (run/program/remote) and would be a CPU finding; the loop's mode is a
  parameter of its program (T0836), and switching it to manual takes the loop out of automatic
  control, which is what T0831 describes.
- alarm setpoint change: T0838 Modify Alarm Settings, T0878 Alarm Suppression (its effect) and
  T0836 (it is a parameter too).
- trip setpoint or bypass of a safety controller: T0880 Loss of Safety and T0836.
- command coil (compressor run, block valves, feed enable): T0855 Unauthorized Command Message
  and T0831 (it operates the plant); the alarm-enable coil: T0878 Alarm Suppression and T0855;
  either toggled back and forth within one episode: T0806 Brute Force I/O first. The HMI polls
  once a second, so a burst of writes inside one poll leaves no trace here (that is the
  network detectors' to see); a toggle it can see is one.
- loop-law breach: T0831 (the output no longer answers the loop's inputs as programmed) and
  T0836 (the usual cause on the range: the program's parameters are not those registered).
- frozen sensors: the whole view frozen, T0856 and T0832; some readings frozen while the
  others move (a machine stopped or at a limit, or one spoofed reading), T0831 then T0856.
- watermark vanished, replayed window: T0856 Spoof Reporting Message and T0832
  Manipulation of View: the HMI is shown values that are not the plant's.

One alert per finding *episode*: changes of one tag less than ``EPISODE_GAP_S`` apart are one
episode (a brute-force toggle is one finding, not 24), as are alarm runs of one detector separated
by less than its own window.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import Frame
from interlock.detect.process.frozen import _run_lengths
from interlock.detect.process.tampering import (
    CHANGE_IDS,
    LOOPS,
    ControllerTamperingDetector,
    Finding,
    OperatorCommand,
    forward_filled,
    historian_frame,
)
from interlock.drill.model import AlertSeen
from interlock.range.watermark import PLANT_WATERMARKS, Watermark, WatermarkDetector

FloatArray = npt.NDArray[np.float64]

log = logging.getLogger(__name__)

EPISODE_GAP_S = 60.0  # changes of one tag closer than this are one finding
WATERMARK_HOLD = 30  # polls below chance before the watermark's verdict (see _watermark)
REPLAY_WINDOW = 20  # polls: a repeat this long of a noisy sensor does not happen by chance
SEVERITY = "high"

# Command points toggled this many times in one episode: Brute Force I/O (T0806), not an operation.
BRUTE_CHANGES = 4
BRUTE_KINDS = ("command", "bypass", "alarm_enable")  # coils: the I/O points T0806 is about
LOOP_LAW_IDS = ("T0831", "T0836")
# The controller output register that commands each plant's dithered actuator (range.logic).
WATERMARK_COMMANDS: dict[str, str] = {
    "reactor": "coolant_output_k",
    "gas-pipeline": "recycle_output",
    "refinery": "fuel_output",
}
# Where the watermark's sensor is the dithered actuator's own feedback, in its units, the
# controller's (undithered) command register for it; the pipeline's sensor is a flow, not the
# valve, and is used as it is.
CONTROL_OUTPUTS: dict[str, str] = {
    "reactor": "coolant_output_k",  # jacket coolant temperature vs its command, K
    "refinery": "fuel_output",  # fuel valve position feedback vs its command, fraction
}
SPOOF_IDS = ("T0856", "T0832")
VIEW_IDS = ("T0815", "T0814")  # Denial of View, Denial of Service: see _lost_view
VIEW_LOST_MIN = 3  # polls: the least run of unread polls that is a finding
STUCK_IDS = ("T0831", "T0856")  # readings frozen while others move: see _frozen


@dataclass(frozen=True)
class _Episode:
    start_s: float
    end_s: float
    count: int
    first: str
    last: str


def process_alerts(
    trends: Any,
    plant: str,
    warmup_s: float,
    *,
    seed: int,
    watermark: bool,
    operator_log: Sequence[OperatorCommand] = (),
) -> list[AlertSeen]:
    """The process detectors' alerts on a drill's historian (plant seconds, time order).

    ``trends``: the pyarrow historian table of the run; ``plant``: its plant id; ``warmup_s``: the
    benign lead-in every detector learns on; ``seed``: the watermark key (``Range`` keys its dither
    by its seed); ``watermark``: whether the run's control program dithered (else that detector is
    off); ``operator_log``: the HMI's own commands, none in a drill. A detector that cannot learn
    on the warm-up (too few rows, a watermark too weak to tell) is left out, with a log message.
    """
    if trends is None or trends.num_rows == 0:
        return []
    from interlock.range.points import load_point_list

    alerts: list[AlertSeen] = []
    points = load_point_list(plant)
    for device in points.devices:  # whatever its protocol: the HMI's view is one historian
        kinds = {p.tag: p.kind for p in device.points if p.kind in CHANGE_IDS}
        if not kinds:
            continue
        try:
            polled = historian_frame(trends, device.name, "hmi", fill=False)
        except ValueError:
            continue  # the HMI never read this device
        read = ~np.isnan(polled.values)
        alerts += _tampering(forward_filled(polled), plant, device.name, kinds, warmup_s, operator_log, read)
    if watermark:
        alerts += _watermark(trends, plant, warmup_s, seed)
    alerts += _replay(trends, plant, warmup_s, points)
    alerts += _frozen(trends, plant, warmup_s, points)
    alerts += _lost_view(trends, warmup_s, points)
    return sorted(alerts, key=lambda a: a.time_s)


# -- controller tampering ------------------------------------------------------------------------
def _tampering(
    frame: Frame,
    plant: str,
    device: str,
    kinds: dict[str, str],
    warmup_s: float,
    operator_log: Sequence[OperatorCommand],
    read: npt.NDArray[np.bool_] | None = None,
) -> list[AlertSeen]:
    times = np.array([float(t) for t in frame.timestamps or ()])
    normal = frame.rows(0, int(np.searchsorted(times, warmup_s, side="left")))
    det = ControllerTamperingDetector(plant, watched=tuple(kinds), device=device)
    has_loops = any({lp.sp, lp.pv, lp.out, lp.mode} <= set(frame.tags) for lp in LOOPS.get(plant, ()))
    if has_loops:
        try:
            det.fit(normal)
        except ValueError as exc:
            log.info("process defender: no loop law on %s: %s", device, exc)
    # Scored on the whole run so a change at the very end of the warm-up still has its previous
    # row; only findings after the warm-up are kept (nothing was learned from them).
    findings = [f for f in det.check(frame, operator_log, read) if f.time_s >= warmup_s]
    manual_tags = {lp.manual for lp in LOOPS.get(plant, ())}
    out: list[AlertSeen] = []
    changes = [f for f in findings if f.kind == "unexplained-change"]
    for tag in sorted({f.tags[0] for f in changes}):
        ids = CHANGE_IDS[kinds[tag]]
        if tag in manual_tags and "T0831" not in ids:
            ids = (*ids, "T0831")
        for ep in _episodes([f for f in changes if f.tags[0] == tag], EPISODE_GAP_S):
            more = f"; {ep.count} changes until t={ep.end_s:g}s, last: {ep.last}" if ep.count > 1 else ""
            brute = kinds[tag] in BRUTE_KINDS and ep.count >= BRUTE_CHANGES
            out.append(
                AlertSeen(
                    ep.start_s, ("T0806", *ids) if brute else ids, "", device,
                    f"process.tampering.{kinds[tag]}-{'toggling' if brute else 'change'}", SEVERITY,
                    f"{device}: {ep.first} (t={ep.start_s:g}s){more}",
                )
            )  # fmt: skip
    law = [f for f in findings if f.kind == "loop-law"]
    for loop_tags in sorted({f.tags for f in law}):
        for ep in _episodes([f for f in law if f.tags == loop_tags], float(det.window)):
            if _after_own_change(ep.start_s, loop_tags, plant, changes, float(det.window)):
                continue
            out.append(
                AlertSeen(ep.start_s, LOOP_LAW_IDS, "", device, "process.tampering.loop-law", SEVERITY,
                          f"{device}: {ep.first}")
            )  # fmt: skip
    return out


def _after_own_change(
    start_s: float, loop_tags: tuple[str, ...], plant: str, changes: list[Finding], window_s: float
) -> bool:
    """A loop-law breach starting within one scoring window of a reported change of that loop's
    own registers (setpoint, mode, manual value, gains) is the change's transient: the law's
    scales are fitted on a warm-up without steps, and a large step leaves them. The change is
    the finding, already reported."""
    own: set[str] = set()
    for lp in LOOPS.get(plant, ()):
        if lp.out in loop_tags:
            own |= {lp.sp, lp.mode, lp.manual} | {g for g in (lp.kp, lp.ti_s) if isinstance(g, str)}
    return any(f.tags[0] in own and 0.0 <= start_s - f.time_s <= window_s for f in changes)


def _episodes(findings: list[Finding], gap_s: float) -> list[_Episode]:
    """Findings (one kind, one tag set) merged into episodes: the next starts ``gap_s`` after the last."""
    out: list[_Episode] = []
    for f in sorted(findings, key=lambda f: f.time_s):
        if out and f.time_s - out[-1].end_s < gap_s:
            ep = out[-1]
            out[-1] = _Episode(ep.start_s, f.time_s, ep.count + 1, ep.first, f.detail)
        else:
            out.append(_Episode(f.time_s, f.time_s, 1, f.detail, f.detail))
    return out


# -- physical watermark --------------------------------------------------------------------------
def _watermark(trends: Any, plant: str, warmup_s: float, seed: int) -> list[AlertSeen]:
    from interlock.range.watermark import _highpass, sensor_series

    if plant not in PLANT_WATERMARKS:
        return []
    _, _, sensor = PLANT_WATERMARKS[plant]
    t, v = sensor_series(trends, sensor)
    output = CONTROL_OUTPUTS.get(plant)
    if output is not None:
        t, v = _without_control(t, v, *sensor_series(trends, output))
    train = t < warmup_s
    # Transients of an upset clipped at 4 spreads of the warm-up's high-passed signal: the dither
    # lives inside that band, a process step outside it would swamp the correlation.
    spread = float(np.std(_highpass(v[train], 20))) if train.sum() > 20 else np.inf
    det = _ClippedWatermarkDetector(Watermark.for_plant(plant, seed), sensor, clip=4.0 * spread)
    try:
        det.fit(t[train], v[train])
    except ValueError as exc:
        log.info("process defender: no watermark check on %s: %s", sensor, exc)
        return []
    # The detector's own threshold (midway between chance and the warm-up's lowest correlation)
    # needs more normal data than a 6-minute warm-up: on the reactor it sat within noise of
    # normal and raised one false alarm in 13 benign runs. The drill alarms at the chance level,
    # 3 / sqrt(window), which the correlation of a stream without the watermark stays below with
    # probability ~0.999; ``fit`` has checked that the warm-up clears it.
    det.threshold_ = 3.0 / math.sqrt(det.window)
    corr = det.correlation(t, v)
    alarm = np.nan_to_num(corr, nan=np.inf) < det.threshold_
    alarm &= ~_saturated(trends, plant, t, det.window)
    alarm &= ~train
    # A verdict once the correlation has stayed below chance for WATERMARK_HOLD polls running:
    # benign reactor runs dip there for up to 8 polls (36 runs of 25 minutes), a replay stays
    # for minutes. The alert is raised when the hold is complete, not back-dated to its start.
    confirmed = np.zeros_like(alarm)
    for start, stop in _runs(alarm, t, 0.0):
        if stop - start >= WATERMARK_HOLD:
            confirmed[start + WATERMARK_HOLD - 1 : stop] = True
    out = []
    for start, stop in _runs(confirmed, t, float(det.window)):
        first = start - WATERMARK_HOLD + 1
        low = float(np.min(corr[first:stop]))
        out.append(
            AlertSeen(
                float(t[start]), SPOOF_IDS, "", "plc-1", "process.watermark", SEVERITY,
                f"plc-1: the watermark is gone from {sensor} as the HMI shows it: correlation with "
                f"the keyed dither {corr[start]:.2f} (lowest {low:.2f}; chance level {det.threshold_:.2f}) "
                f"from t={t[first]:g}s, {WATERMARK_HOLD} polls running, until t={t[stop - 1]:g}s; the HMI's "
                "values are not the plant's (a replay or a spoofed report)",
            )
        )  # fmt: skip
    return out


class _ClippedWatermarkDetector(WatermarkDetector):
    """The watermark detector with the high-passed sensor clipped at ``clip``."""

    def __init__(self, watermark: Watermark, sensor: str, *, clip: float) -> None:
        super().__init__(watermark, sensor)
        self.clip = clip

    def _signals(self, times: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        lagged, y = super()._signals(times, values)
        return lagged, np.clip(y, -self.clip, self.clip)


def _saturated(trends: Any, plant: str, t: FloatArray, window: int) -> npt.NDArray[np.bool_]:
    """Rows whose trailing ``window`` polls saw the dithered actuator's command at a limit of its
    travel: the plant clamps the actuator there, so the dither is cut and the watermark cannot
    testify (a replayed view shows the recorded, unsaturated command and is still judged)."""
    from interlock.range.watermark import sensor_series

    loop = next((lp for lp in LOOPS.get(plant, ()) if lp.out == WATERMARK_COMMANDS.get(plant)), None)
    if loop is None:
        return np.zeros(len(t), dtype=np.bool_)
    tu, u = sensor_series(trends, loop.out)
    _, amplitude, _ = PLANT_WATERMARKS[plant]
    at_limit = (u <= loop.out_low + amplitude) | (u >= loop.out_high - amplitude)
    # The command's state at each sensor row, then "any in the trailing window".
    idx = np.clip(np.searchsorted(tu, t, side="right") - 1, 0, max(len(tu) - 1, 0))
    hit = at_limit[idx].astype(np.int64) if len(tu) else np.zeros(len(t), dtype=np.int64)
    c = np.concatenate([[0], np.cumsum(hit)])
    rows = np.arange(1, len(t) + 1)
    return np.asarray(c[rows] - c[np.maximum(rows - window, 0)] > 0, dtype=np.bool_)


def _without_control(
    t: FloatArray, v: FloatArray, tu: FloatArray, u: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The actuator's feedback minus its controller's command register: the dither and the
    actuator's own lag, without the controller's moves.

    A setpoint step moves the actuator far more than the dither does and the detector's 20-poll
    high-pass does not remove the transient: on the reactor a 2.5 K setpoint change took the
    coolant's correlation below chance for two minutes. The command register is undithered
    (the dither is added after the PID block), so the difference keeps the dither. Under replay
    feedback and command are replayed together: the difference then holds an old dither."""
    common, iv, iu = np.intersect1d(t, tu, return_indices=True)
    return common, np.asarray(v[iv] - u[iu], dtype=np.float64)


def _runs(flags: npt.NDArray[np.bool_], t: npt.NDArray[np.float64], gap_s: float) -> list[tuple[int, int]]:
    """(start, stop) row ranges where ``flags`` hold, runs less than ``gap_s`` apart merged."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    out: list[tuple[int, int]] = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if out and t[start] - t[out[-1][1] - 1] < gap_s:
            out[-1] = (out[-1][0], int(stop))
        else:
            out.append((int(start), int(stop)))
    return out


# -- replayed windows and frozen sensors --------------------------------------------------------
def _sensor_frames(
    trends: Any, warmup_s: float, points: Any
) -> Iterator[tuple[str, Frame, int, FloatArray, npt.NDArray[np.bool_]]]:
    """Per Modbus device of the plant (safety controllers aside): its sensors as the HMI saw them,
    the first row after the warm-up, the plant times and which cells were read at that time (the
    frame carries a missed read forward), where the warm-up has enough rows."""
    for device in points.devices:
        if device.protocol != "modbus" or device.role == "sis":
            continue
        sensors = [p.tag for p in device.points if p.kind == "sensor"]
        try:
            polled = historian_frame(trends, device.name, "hmi", fill=False)
        except ValueError:
            continue
        frame = forward_filled(polled)
        cols = [frame.tags.index(s) for s in sensors if s in frame.tags]
        if not cols:
            continue
        times = np.array([float(x) for x in frame.timestamps or ()])
        cut = int(np.searchsorted(times, warmup_s, side="left"))
        if cut < 3 * REPLAY_WINDOW or cut >= len(times):
            continue
        sub = Frame(tuple(frame.tags[c] for c in cols), frame.values[:, cols], frame.timestamps)
        read = ~np.isnan(polled.values[:, cols])
        yield device.name, sub, cut, times, read


def _replay(trends: Any, plant: str, warmup_s: float, points: Any) -> list[AlertSeen]:
    from interlock.detect.process.replay import ReplayDetector

    out: list[AlertSeen] = []
    for name, sub, cut, times, _ in _sensor_frames(trends, warmup_s, points):
        det = ReplayDetector(window=REPLAY_WINDOW, decimals=6).fit(sub.rows(0, cut))
        after = sub.rows(cut, len(sub))
        flags = det._flags(after.values)  # rows x tags; the public score only counts them
        rows = np.asarray(flags.any(axis=1), dtype=np.bool_)
        t_after = times[cut:]
        for start, stop in _runs(rows, t_after, float(REPLAY_WINDOW)):
            tags = [after.tags[j] for j in np.flatnonzero(flags[start:stop].any(axis=0))]
            first = t_after[start] - (REPLAY_WINDOW - 1) * float(np.median(np.diff(times)))
            out.append(
                AlertSeen(
                    float(t_after[start]), SPOOF_IDS, "", name, "process.replay", SEVERITY,
                    f"{name}: the HMI's {', '.join(tags)} repeat value for value a "
                    f"{REPLAY_WINDOW}-poll window seen earlier (window from t={first:g}s), until "
                    f"t={t_after[stop - 1]:g}s: replayed readings",
                )
            )  # fmt: skip
    return out


FROZEN_DECIMALS = 6  # the HMI's registers, scaled: finer than any change a sensor reports


def _frozen(trends: Any, plant: str, warmup_s: float, points: Any) -> list[AlertSeen]:
    """Sensors the HMI sees holding one value far longer than in the warm-up
    (``detect.process.frozen``; the limit is twice the longest warm-up run + 2, at least).

    Every watched sensor of a device frozen together is a frozen *view* (a proxy answering with one
    held reading): T0856/T0832. Some frozen while the device's others move is a machine stopped
    or driven to a limit of its range (a compressor at full speed, a valve wide open), a dead
    transmitter, or one spoofed reading: T0831 first, T0856 beside it.
    """
    from interlock.detect.process.frozen import FrozenDetector

    out: list[AlertSeen] = []
    for name, sub, cut, times, read in _sensor_frames(trends, warmup_s, points):
        # Limits learned per sensor on the warm-up polls that read it: a value carried over a missed
        # read would lengthen the longest normal run, and the limit with it.
        limits = np.zeros(len(sub.tags), dtype=np.int64)  # 0: not watched
        for k, tag in enumerate(sub.tags):
            got = np.flatnonzero(read[:cut, k])
            if len(got) >= 2:
                column = Frame((tag,), sub.values[got, k : k + 1])
                limits[k] = FrozenDetector(decimals=FROZEN_DECIMALS).fit(column).limits_[0]
        watched = np.flatnonzero(limits > 0)
        # Runs counted over the whole frame: a freeze that began in the warm-up is not reset at the
        # cut. Only polls that read the sensor count: the value carried over a missed read (a
        # flood, a dropped block) is not a reading the device gave, so it neither holds the run
        # nor breaks it (missed reads cannot hide a freeze either).
        frozen = np.zeros(sub.values.shape, dtype=np.bool_)
        for j in watched:
            got = np.flatnonzero(read[:, j])
            runs = _run_lengths(np.round(sub.values[got, j], FROZEN_DECIMALS)[:, None])[:, 0]
            frozen[got, j] = runs >= limits[j]
        frozen = frozen[cut:]  # rows x tags, after the warm-up
        values = sub.values[cut:]
        rows = np.asarray(frozen.any(axis=1), dtype=np.bool_)
        t_after = times[cut:]
        for start, stop in _runs(rows, t_after, EPISODE_GAP_S):
            cols = np.flatnonzero(frozen[start:stop].any(axis=0))
            first = {j: start + int(np.argmax(frozen[start:stop, j])) for j in cols}  # where each froze
            held = ", ".join(f"{sub.tags[j]} at {values[first[j], j]:g}" for j in cols)
            polls = int(limits[cols].min())
            # A frozen view: every watched sensor over its limit at the same row (not one after another).
            if len(watched) >= 2 and frozen[start:stop][:, watched].all(axis=1).any():
                ids, why = SPOOF_IDS, "every watched sensor of the device at once: a frozen view"
            else:
                ids = STUCK_IDS
                why = ("while its other sensors move: a machine stopped or at a limit of its range, a "
                       "dead transmitter, or one spoofed reading")  # fmt: skip
            out.append(
                AlertSeen(
                    float(t_after[start]), ids, "", name, "process.frozen", SEVERITY,
                    f"{name}: the HMI's {held} held one value for {polls}+ polls (longer than the "
                    f"warm-up makes likely), until t={t_after[stop - 1]:g}s; {why}",
                )
            )  # fmt: skip
    return out


def write_process_alerts(alerts: Sequence[AlertSeen], path: Path) -> None:
    """``process_alerts.jsonl``: one JSON object a line (plant_time_s, technique, rule, device,
    message); ``technique`` is the first ATT&CK id, ``attack_ids`` all of them. The network alerts
    stay in ``alerts.jsonl`` (Interlock's alert schema, which has no plant time)."""
    with path.open("w", encoding="utf-8") as fh:
        for a in alerts:
            rec = {
                "plant_time_s": round(a.time_s, 3),
                "technique": a.attack_ids[0] if a.attack_ids else "",
                "attack_ids": list(a.attack_ids),
                "rule": a.rule,
                "device": a.destination,
                "severity": a.severity,
                "message": a.message,
            }
            fh.write(json.dumps(rec) + "\n")


# -- lost view ---------------------------------------------------------------------------------------
def _lost_view(trends: Any, warmup_s: float, points: Any) -> list[AlertSeen]:
    """Devices the HMI could not read, whole or some of their blocks, for more polls running than
    the warm-up makes likely: a SCADA's communication-failure alarm, held to what is unusual.

    A poll counts as short for a device when the HMI got fewer of its values than the most it got
    at one warm-up poll (nothing at all when the device did not answer). The limit is twice the
    longest warm-up run of short polls + 2, and at least ``VIEW_LOST_MIN``. A flood that makes
    reads time out, a device forced into listen-only mode or restarted, a link cut: T0815 Denial
    of View, T0814 Denial of Service (what the operators lose either way; the cause is the network
    detectors' finding).
    """
    cols = {
        name: trends.column(name).to_numpy(zero_copy_only=False)
        for name in ("plant_time_s", "device", "source")
    }
    hmi = cols["source"] == "hmi"
    stamps = cols["plant_time_s"][hmi].astype(np.float64)
    polls = np.unique(stamps)
    cut = int(np.searchsorted(polls, warmup_s, side="left"))
    if cut < 2 or cut >= len(polls):
        return []
    devices = cols["device"][hmi].astype(str)
    out: list[AlertSeen] = []
    for device in points.devices:
        got = np.zeros(len(polls), dtype=np.int64)
        mine = devices == device.name
        np.add.at(got, np.searchsorted(polls, stamps[mine]), 1)
        full = int(got[:cut].max())
        if full == 0:
            continue  # never read in the warm-up: nothing to lose
        short = got < full
        runs = np.where(short, _run_lengths(short[:, None].astype(np.float64))[:, 0], 0)
        longest = int(runs[:cut].max())
        limit = max(2 * longest + 2, VIEW_LOST_MIN)
        for start, stop in _runs(short[cut:], polls[cut:], EPISODE_GAP_S):
            over = np.flatnonzero(runs[cut + start : cut + stop] >= limit)
            if not over.size:
                continue  # short-lived: no longer than the warm-up makes likely
            at = cut + start + int(over[0])
            seen = got[cut + start : cut + stop][short[cut + start : cut + stop]]
            what = "no answer" if not seen.any() else f"at most {int(seen.max())} of its {full} values"
            out.append(
                AlertSeen(
                    float(polls[at]), VIEW_IDS, "", device.name, "process.view-lost", SEVERITY,
                    f"{device.name}: the HMI got {what} for {limit}+ polls running (at most {longest} in "
                    f"the warm-up), from t={polls[cut + start]:g}s until t={polls[cut + stop - 1]:g}s",
                )
            )  # fmt: skip
    return out

