"""Controller tampering: setpoint, gain and mode changes no operator made, and PID loops that no
longer follow their law.

Two checks over historian data of a PLC (HMI values, one row per poll):

1. **Unexplained changes.** Every change of a tag whose point-list kind is ``setpoint``,
   ``tuning`` or ``mode`` is matched against the operator log (CSV ``time,tag,value``, plant
   seconds): a change is explained when the log holds the same tag set to the new value (within
   half a register step, or 0.1% of it) at most ``tolerance_s`` before the historian saw it.
   Without a log every change is unexplained: a change no one can account for is the finding.
2. **Loop law.** A positional PI block moves its output by ``kp * (e_t - e_{t-1}) + kp * dt / ti
   * e_t`` per step (``e = sp - pv``, negated for a direct-acting loop), while unsaturated in auto;
   in manual the output equals the manual value. From HMI polls the output is seen at 1 s and the
   PV at its own register resolution, so the two terms get one scale each, ``alpha`` and
   ``beta``, fitted on **normal data** by least squares drawn towards the programmed 1 (using
   the gains the registers held at each row, so a logged re-tune keeps fitting; see
   ``_law_coefficients``), and the spread of what remains is measured there too. The score is
   the root mean square of that normalised residual over ``window`` rows; the alarm threshold
   is ``factor`` times its ``quantile`` on normal data (at least ``factor``). A controller
   whose program was altered, or an output register spoofed to the HMI, breaks the law while
   the registers look untouched. A stopped CPU does not: its PV registers freeze with its
   output, so the law holds trivially (frozen values are for the replay detector).

Written by hand: this is the range's own PID law (``interlock.range.pid``); no package checks
a controller's observed behaviour against its registered tuning. Loops are listed per plant in
``LOOPS`` (the point lists name registers, not which register feeds which loop).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import FloatArray, Frame

WATCHED_KINDS = ("setpoint", "tuning", "mode")
PRIOR_SD = 0.25  # spread of the loop law's scales around the programmed 1 (see _law_coefficients)
# Every point kind whose unexplained change is a finding, with the ATT&CK for ICS ids of such a
# change (the drill's process defenders and ``interlock range watch`` report them).
CHANGE_IDS: dict[str, tuple[str, ...]] = {
    "setpoint": ("T0836",),
    "tuning": ("T0836",),
    "mode": ("T0836", "T0831"),
    "alarm_setpoint": ("T0838", "T0878", "T0836"),
    "trip_setpoint": ("T0880", "T0836"),
    "bypass": ("T0880", "T0836"),
    "command": ("T0855", "T0831"),
    "alarm_enable": ("T0878", "T0855"),
    "cpu_state": ("T0858", "T0816"),  # a CPU put in STOP or restarted (the HMI reads its mode)
}


@dataclass(frozen=True)
class Loop:
    """One PI loop of a PLC program: its registers (or fixed gains) and output travel."""

    name: str
    sp: str
    pv: str
    out: str
    mode: str
    manual: str
    kp: str | float
    ti_s: str | float
    out_low: float
    out_high: float
    direct: bool = False


# As programmed in interlock.range.logic; recycle gains are constants in its program.
LOOPS: dict[str, tuple[Loop, ...]] = {
    "reactor": (
        Loop("temperature", "temp_sp_k", "reactor_temp_k", "coolant_output_k", "temp_mode",
             "coolant_manual_k", "temp_kp", "temp_ti_s", 280.0, 320.0),
    ),
    "gas-pipeline": (
        Loop("discharge pressure", "discharge_sp_bar", "discharge_bar", "speed_output", "speed_mode",
             "speed_manual", "pressure_kp", "pressure_ti_s", 0.0, 1.05),
        Loop("surge margin", "surge_margin_sp_kg_s", "surge_margin_kg_s", "recycle_output", "recycle_mode",
             "recycle_manual", 0.05, 20.0, 0.0, 1.0),
    ),
    "refinery": (
        Loop("coil outlet temperature", "cot_sp_c", "heater_outlet_c", "fuel_output", "heater_mode",
             "fuel_manual", "cot_kp", "cot_ti_s", 0.0, 1.0),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One tampering finding: when (plant seconds), what kind, the tags and why."""

    time_s: float
    kind: str  # "unexplained-change" or "loop-law"
    tags: tuple[str, ...]
    detail: str
    score: float = 0.0


@dataclass(frozen=True)
class OperatorCommand:
    time_s: float
    tag: str
    value: float


def read_operator_log(path: Path) -> list[OperatorCommand]:
    """CSV with a header ``time,tag,value`` (plant seconds); raises ValueError naming the line."""
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"time", "tag", "value"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: operator log lacks column(s) {', '.join(sorted(missing))}")
        for line, rec in enumerate(reader, start=2):
            try:
                out.append(OperatorCommand(float(rec["time"]), rec["tag"].strip(), float(rec["value"])))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: time and value must be numbers") from None
    return out


def historian_frame(table: Any, device: str = "plc-1", source: str = "hmi", fill: bool = True) -> Frame:
    """One row per plant time, one column per tag of ``device``, from a historian table.

    ``table``: a pyarrow table (``Historian.table()`` or its Parquet file read back) with columns
    plant_time_s, device, tag, value, source. A tag not polled at some time keeps its last value
    (``fill=False``: it is NaN there, for checks that must tell a held reading from a missed one).
    Timestamps are the plant seconds as text (``Frame`` keeps them as text).
    """
    cols = {
        name: table.column(name).to_numpy(zero_copy_only=False)
        for name in ("plant_time_s", "device", "tag", "value", "source")
    }
    keep = (cols["device"] == device) & (cols["source"] == source)
    if not keep.any():
        raise ValueError(f"historian holds no {source} rows of {device}")
    times, t_idx = np.unique(cols["plant_time_s"][keep].astype(np.float64), return_inverse=True)
    tags, g_idx = np.unique(cols["tag"][keep].astype(str), return_inverse=True)
    x = np.full((len(times), len(tags)), np.nan)
    x[t_idx, g_idx] = cols["value"][keep].astype(np.float64)
    frame = Frame(tuple(str(t) for t in tags), x, tuple(f"{t:g}" for t in times))
    return forward_filled(frame) if fill else frame


def forward_filled(frame: Frame) -> Frame:
    """Each NaN replaced by the tag's last value (the first ones by its first value; a tag
    never read by 0): the HMI's view between polls."""
    x = frame.values.copy()
    for j in range(x.shape[1]):
        col = x[:, j]
        valid = ~np.isnan(col)
        if not valid.any():
            col[:] = 0.0
            continue
        idx = np.where(valid, np.arange(len(col)), 0)
        np.maximum.accumulate(idx, out=idx)
        col[:] = col[idx]
        col[: int(np.argmax(valid))] = col[int(np.argmax(valid))]
    return Frame(frame.tags, x, frame.timestamps)


def _times(frame: Frame) -> FloatArray:
    if frame.timestamps is None:
        return np.arange(len(frame), dtype=np.float64)
    return np.array([float(t) for t in frame.timestamps])


@dataclass
class _LoopModel:
    loop: Loop
    alpha: float = 1.0
    beta: float = 1.0
    sigma: float = 1.0
    threshold: float = np.inf
    rows_used: int = 0
    kp_ref: float = 1.0


@dataclass
class ControllerTamperingDetector:
    """Flag unexplained setpoint/gain/mode changes and PID loops breaking their law."""

    plant: str
    watched: tuple[str, ...] | None = None  # default: the PLC's setpoint/tuning/mode points
    device: str = "plc-1"  # whose point list gives the watched points' register steps
    tolerance_s: float = 5.0
    window: int = 30
    quantile: float = 0.999
    factor: float = 1.5
    min_sigma: float = 1e-3
    models_: list[_LoopModel] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.plant not in LOOPS:
            raise ValueError(f"no loop list for plant {self.plant!r}: choose one of {', '.join(LOOPS)}")
        if self.watched is None:
            from interlock.range.points import load_point_list

            points = load_point_list(self.plant).device(self.device).points
            self.watched = tuple(p.tag for p in points if p.kind in WATCHED_KINDS)
        self.steps_ = self._steps()

    def _steps(self) -> dict[str, float]:
        """Register resolution of each watched tag (1 / scale), to compare logged values."""
        from interlock.range.points import load_point_list

        out = {}
        for p in load_point_list(self.plant).device(self.device).points:
            scale = getattr(p, "scale", None)
            out[p.tag] = 1.0 / float(scale) if scale else 0.0
        return out

    # --- loop law ---
    def _gain(self, frame: Frame, spec: str | float) -> FloatArray:
        if isinstance(spec, str):
            return np.asarray(frame.values[:, frame.tags.index(spec)], dtype=np.float64)
        return np.full(len(frame), float(spec))

    def _terms(
        self, frame: Frame, loop: Loop, read: npt.NDArray[np.bool_] | None = None
    ) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_], FloatArray]:
        """Per row t >= 1: observed output change, the P term, the I term, rows the law covers,
        and the manual-mode mismatch (NaN in auto). ``read`` (rows x tags, optional): which
        values were read at that row rather than carried forward; the law covers only rows whose
        PV and output were read then and one row before (a missed poll is not a frozen PV)."""
        col = {
            t: frame.values[:, frame.tags.index(t)]
            for t in (loop.sp, loop.pv, loop.out, loop.mode, loop.manual)
        }
        kp = self._gain(frame, loop.kp)
        ti = np.maximum(self._gain(frame, loop.ti_s), 1.0)
        dt = np.diff(_times(frame))
        e = col[loop.pv] - col[loop.sp] if loop.direct else col[loop.sp] - col[loop.pv]
        u = col[loop.out]
        du = np.diff(u)
        p_term = kp[1:] * np.diff(e)
        i_term = kp[1:] * dt / ti[1:] * e[1:]
        auto = (col[loop.mode][1:] >= 1) & (col[loop.mode][:-1] >= 1)
        # The law holds only away from the output limits (conditional integration) and while the
        # gains stay put between the two polls.
        span = loop.out_high - loop.out_low
        inside = (u[1:] > loop.out_low + 0.01 * span) & (u[1:] < loop.out_high - 0.01 * span)
        inside &= (u[:-1] > loop.out_low + 0.01 * span) & (u[:-1] < loop.out_high - 0.01 * span)
        steady = (np.diff(kp) == 0) & (np.diff(ti) == 0)
        if read is not None:
            fresh = read[:, frame.tags.index(loop.pv)] & read[:, frame.tags.index(loop.out)]
            steady &= fresh[1:] & fresh[:-1]
        manual = (col[loop.mode][1:] < 1) & (col[loop.mode][:-1] < 1)
        mismatch = np.where(manual, u[1:] - col[loop.manual][1:], np.nan)
        return du, p_term, i_term, auto & inside & steady, mismatch

    def _scale(self, frame: Frame, model: _LoopModel) -> FloatArray:
        """The residual spread per row: the PV's noise enters through kp, so a loop re-tuned to a
        higher gain is allowed proportionally more (never less than on normal data)."""
        kp = np.abs(self._gain(frame, model.loop.kp))[1:]
        return np.asarray(model.sigma * np.maximum(1.0, kp / model.kp_ref), dtype=np.float64)

    def fit(self, normal: Frame) -> Self:
        """Estimate each loop's law (alpha, beta, residual spread, threshold) on normal data."""
        assert self.watched is not None
        self.models_ = []
        for loop in LOOPS[self.plant]:
            if not {loop.sp, loop.pv, loop.out, loop.mode} <= set(normal.tags):
                continue
            du, p_term, i_term, ok, _ = self._terms(normal, loop)
            if ok.sum() < 3 * self.window:
                raise ValueError(
                    f"loop {loop.name}: {int(ok.sum())} usable normal rows, need {3 * self.window}"
                )
            coef = self._law_coefficients(p_term[ok], i_term[ok], du[ok])
            kp_ref = float(np.median(np.abs(self._gain(normal, loop.kp)))) or 1.0
            model = _LoopModel(loop, float(coef[0]), float(coef[1]), rows_used=int(ok.sum()), kp_ref=kp_ref)
            resid = du[ok] - coef[0] * p_term[ok] - coef[1] * i_term[ok]
            model.sigma = max(float(np.std(resid)), self.min_sigma)
            scores = self._loop_scores(normal, model)
            # Never under `factor` spreads: where the output barely moved in training the residual
            # sat under its floor (min_sigma, the register's step), and a moving output's rounding
            # alone would breach a threshold learned there.
            top = float(np.quantile(scores[np.isfinite(scores)], self.quantile))
            model.threshold = self.factor * max(1.0, top)
            self.models_.append(model)
        return self

    def _law_coefficients(self, p_term: FloatArray, i_term: FloatArray, du: FloatArray) -> FloatArray:
        """alpha and beta by least squares drawn towards the programmed law (1, 1), ridge-wise.

        Near its setpoint a loop's error is tiny, so the I term moves the output by far less than
        the register's resolution and normal data cannot identify beta: plain least squares gave
        0.25 on the refinery's heater in industroyer-refinery's warm-up (-1.7 to 1.6 over seeds
        1-6 of a plain run), and the first large transient (a feed stop) then broke the
        "law" with no tampering at all. With a prior of spread ``PRIOR_SD`` around 1 (the PLC runs
        this very law), a term the data pins down keeps its fitted value and one it cannot stays
        near 1. The prior's weight is the residual variance over the prior's.
        """
        a = np.column_stack([p_term, i_term])
        ols, *_ = np.linalg.lstsq(a, du, rcond=None)
        var = max(float(np.var(du - a @ ols)), self.min_sigma**2)
        root = np.sqrt(var) / PRIOR_SD  # the prior as two extra rows: never singular
        rows, target = np.vstack([a, root * np.eye(2)]), np.concatenate([du, [root, root]])
        coef, *_ = np.linalg.lstsq(rows, target, rcond=None)
        return np.asarray(coef, dtype=np.float64)

    def _loop_scores(
        self, frame: Frame, model: _LoopModel, read: npt.NDArray[np.bool_] | None = None
    ) -> FloatArray:
        """Windowed RMS of the normalised law residual per row (row 0 gets 0)."""
        du, p_term, i_term, ok, mismatch = self._terms(frame, model.loop, read)
        scale = self._scale(frame, model)
        r = (du - model.alpha * p_term - model.beta * i_term) / scale
        r = np.where(ok, r, 0.0)
        # In manual the output must equal the manual value: mismatch in the same units.
        r = np.where(np.isnan(mismatch), r, mismatch / scale)
        used = (ok | ~np.isnan(mismatch)).astype(np.float64)
        sq = np.concatenate([[0.0], np.cumsum(r**2)])
        cnt = np.concatenate([[0.0], np.cumsum(used)])
        idx = np.arange(1, len(r) + 1)
        lo = np.maximum(idx - self.window, 0)
        n = cnt[idx] - cnt[lo]
        rms = np.sqrt(np.divide(sq[idx] - sq[lo], n, out=np.zeros(len(r)), where=n >= self.window // 3))
        return np.concatenate([[0.0], rms])

    def loop_scores(self, frame: Frame) -> dict[str, FloatArray]:
        """Each fitted loop's score per row (compare with its ``threshold``)."""
        return {m.loop.name: self._loop_scores(frame, m) for m in self.models_}

    # --- the findings ---
    def check(
        self,
        frame: Frame,
        operator_log: Sequence[OperatorCommand] = (),
        read: npt.NDArray[np.bool_] | None = None,
    ) -> list[Finding]:
        """Unexplained changes and loop-law breaches (each breach run reported once), in time order.
        ``read``: as in ``_terms``, which values were read rather than carried forward."""
        findings = self._changes(frame, operator_log)
        times = _times(frame)
        for m in self.models_:
            scores = self._loop_scores(frame, m, read)
            above = np.concatenate([[False], scores > m.threshold, [False]]).astype(np.int8)
            edges = np.flatnonzero(np.diff(above))
            for start, stop in zip(edges[::2], edges[1::2], strict=True):
                peak = float(scores[start:stop].max())
                findings.append(Finding(
                    float(times[start]), "loop-law", (m.loop.out, m.loop.pv, m.loop.sp),
                    f"loop {m.loop.name}: {m.loop.out} does not follow its PI law on {m.loop.pv} "
                    f"(residual {peak:.1f} sigma RMS over {self.window} rows, threshold {m.threshold:.1f}) "
                    f"until t={times[stop - 1]:g}s",
                    peak,
                ))  # fmt: skip
        return sorted(findings, key=lambda f: f.time_s)

    def _changes(self, frame: Frame, log: Iterable[OperatorCommand]) -> list[Finding]:
        assert self.watched is not None
        times = _times(frame)
        commands = list(log)
        out = []
        for tag in self.watched:
            if tag not in frame.tags:
                continue
            v = frame.values[:, frame.tags.index(tag)]
            # NaN to NaN (a value that stays unreadable, an unknown CPU mode) is no change.
            moved = (v[1:] != v[:-1]) & ~(np.isnan(v[1:]) & np.isnan(v[:-1]))
            for i in np.flatnonzero(moved) + 1:
                t, old, new = float(times[i]), float(v[i - 1]), float(v[i])
                close = max(self.steps_.get(tag, 0.0) / 2, 1e-3 * abs(new), 1e-9)
                explained = any(
                    c.tag == tag
                    and abs(c.value - new) <= close
                    and t - self.tolerance_s - 1.0 <= c.time_s <= t
                    for c in commands
                )
                if not explained:
                    why = f"{tag} changed {old:g} -> {new:g} with no operator command"
                    out.append(Finding(t, "unexplained-change", (tag,), why))
        return out
