"""An ensemble: several process detectors, each over its own threshold, alarm when any alarms.

Attacks on a process leave different traces: a replayed sensor repeats itself exactly (only
``replay`` sees it), a driven actuator breaks the correlations between tags (``dpca``, ``cva``),
a spoofed level makes its pump switch at the wrong moment (``control``). No single statistic
covers them all, so the ensemble runs its ``members`` side by side. Each member keeps the
threshold it learned on normal data; the ensemble's score at a row is the largest member
score divided by that member's threshold, so its own threshold is 1 and it alarms exactly when
some member does. The blame and the explanation come from the member with the largest ratio.

``members`` is a ``+``-separated list of detector names, each with its own parameters in
brackets if need be, so it can be set from the command line
(``--param "members=replay+cva(ewma=0.2,keep_raw=1)"``). The default takes one detector per
kind of trace: ``replay`` (concealment), ``cva`` (the process dynamics: raw and EWMA
charts), ``control`` (the PLC's switching logic and the pumps' operating ranges),
``frozen`` (a stuck valve or a held sensor value), ``innovation`` (a controller or valve
breaking its own law while every tag stays in range), since the twelfth session ``limits``
(a tag where it never was in training, overall or in the state of an on/off tag: a tank filled
past a PLC level that was raised, every law intact) and since the thirteenth ``switches`` (a
pump switched at a tank level it never switched at: a PLC level lowered, every reading in
range). The two charting members forget a loud
deviation once it has ended, after a raw alarm episode that peaked at twice its limit: ``cva``'s
filters start again from the training mean (``restart=2``, ``forget=1``), ``innovation``'s charts
are clipped to the lower of their alarm's edge and where they would stand had the episode's
rows been in control (``excise=1``: their level before it, decayed over its rows; a deviation
charted before the loud rows is kept, where ``forget`` erases it; ``confirm=2``: an episode is
over only after 2 quiet rows, so a lull of a row or two inside an attack is not its end). The
deviation was reported, and an attack's end is followed by hours of the plant returning, which
a remembering chart goes on alarming about (BATADAL's false alarms were those hours). ``cva``'s variance chart
(``var_ewma``) was in the default from the fifth to the ninth session; forgetting, it added 0.03
points on TEP, alarmed at the start of files (its held-out limits, from erased charts, fell
threefold) and cost BATADAL's F1, so it left.
Every member gets the ensemble's ``quantile``; ``replay``, ``frozen``, ``limits`` and
``switches`` keep theirs (an exact repeat, a tag frozen past anything seen in normal data, a tag
past its widened training range, a switch past the widened levels of every training switch, is
never normal).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import Alert, FloatArray, Frame, ProcessDetector, RowScorer, typed_param

_TINY = 1e-9


class EnsembleDetector(ProcessDetector):
    name = "ensemble"

    def __init__(
        self,
        members: str = (
            "replay+cva(ewma=0.2,keep_raw=1,restart=2,forget=1)+control+frozen+innovation(excise=1,confirm=2)"
            "+limits+switches"
        ),
        quantile: float = 0.99,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.members = members

    def _make(self) -> list[ProcessDetector]:
        from interlock.detect.process import NAMES, detector_class

        out = []
        for item in self.members.split("+"):
            name, _, args = item.strip().partition("(")
            if name not in NAMES or name == self.name:
                raise ValueError(f"ensemble member {name!r}: choose among {', '.join(NAMES)}")
            cls = detector_class(name)
            kwargs: dict[str, Any] = {"smooth": self.smooth}
            if cls().quantile < 1.0:  # replay, frozen, limits, switches keep theirs (1: any finding)
                kwargs["quantile"] = self.quantile
            kwargs.update(_member_params(item.strip(), args, cls().get_params()))
            out.append(cls(**kwargs))
        return out

    def fit(self, train: Frame) -> EnsembleDetector:
        if len(train) < 2:
            raise ValueError("training data needs at least 2 rows")
        self.detectors_ = [d.fit(train) for d in self._make()]
        self.tags_ = train.tags
        self.threshold_ = 1.0
        return self

    def _ratios(self, frame: Frame) -> FloatArray:
        """Rows x members: each member's score over its threshold (> 1: that member alarms)."""
        cols = []
        for d in self.detectors_:
            s = d.score(frame)
            t = d.threshold_
            # A threshold at or below 0 (replay: any repeat) cannot divide: above it maps to
            # 1 + the excess, so the ensemble still alarms exactly when the member does.
            cols.append(s / t if t > _TINY else np.where(s > t, 1.0 + (s - t), 0.0))
        return np.column_stack(cols)

    def score(self, frame: Frame) -> FloatArray:
        self._check(frame)
        return np.asarray(self._ratios(frame).max(axis=1), dtype=np.float64)

    def _score(self, x: FloatArray) -> FloatArray:
        return self.score(Frame(self.tags_, x))

    def alerts(self, frame: Frame, limit: int | None = None) -> list[Alert]:
        self._check(frame)
        ratios = self._ratios(frame)  # once: every member scores the frame once
        rows = np.flatnonzero(ratios.max(axis=1) > self.threshold_)[:limit]
        if not rows.size:
            return []
        winner = np.argmax(ratios[rows], axis=1)
        blame = self._member_blame(frame.values, rows, winner)
        out = []
        for row, member, weights in zip(rows, winner, blame, strict=True):
            order = [i for i in np.argsort(-weights)[:3] if weights[i] > 0] or [int(np.argmax(weights))]
            why = ", ".join(f"{self.tags_[i]} {weights[i]:.3g}" for i in order)
            name = self.detectors_[int(member)].name
            tags = tuple(self.tags_[i] for i in order)
            out.append(Alert(int(row), float(ratios[row].max()), tags, f"ensemble/{name}: {why}"))
        return out

    def _member_blame(
        self, x: FloatArray, rows: npt.NDArray[np.intp], winner: npt.NDArray[np.intp]
    ) -> FloatArray:
        """Blame of each row from the member that alarmed most there, one call per member."""
        out = np.zeros((len(rows), len(self.tags_)))
        for m, member in enumerate(self.detectors_):
            mine = winner == m
            if mine.any():
                out[mine] = member._blame(x, rows[mine])
        return out

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        ratios = self._ratios(Frame(self.tags_, x))
        return self._member_blame(x, rows, np.argmax(ratios[rows], axis=1))

    def _row_scorer(self) -> RowScorer:
        return _EnsembleRows(self)


class _EnsembleRows(RowScorer):
    """The ensemble one row at a time: each member streamed by ``RowByRow`` (exactly, where the
    member has a row scorer or a short memory), its score over its threshold as in ``_ratios``."""

    own_blame = True

    smoothed = True  # each member smooths its own score

    def __init__(self, ensemble: EnsembleDetector) -> None:
        from interlock.detect.process.stream import RowByRow

        self.members = [RowByRow(d) for d in ensemble.detectors_]
        self.winner = 0

    def __call__(self, row: FloatArray) -> float:
        ratios = []
        for member in self.members:
            s, t = member.score_row(row), member.threshold_
            ratios.append(s / t if t > _TINY else (1.0 + (s - t) if s > t else 0.0))
        self.winner = int(np.argmax(ratios))
        return float(ratios[self.winner])

    def blame(self) -> FloatArray:
        return self.members[self.winner].weights()


def _member_params(item: str, args: str, known: dict[str, Any]) -> dict[str, Any]:
    """``ewma=0.2,keep_raw=1)`` -> {"ewma": 0.2, "keep_raw": True}, typed as the defaults are."""
    if not args:
        return {}
    if not args.endswith(")"):
        raise ValueError(f"ensemble member {item!r}: close its parameters with ')'")
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in args[:-1].split(","))):
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise ValueError(f"ensemble member {item!r}: {pair!r} is not NAME=VALUE with NAME one of "
                             f"{', '.join(sorted(known))}")  # fmt: skip
        try:
            out[key] = typed_param(known[key], value)
        except ValueError as exc:
            raise ValueError(f"ensemble member {item!r}: {exc}") from None
    return out
