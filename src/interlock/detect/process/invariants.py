"""Invariants mined from normal data, kept as a readable list; an alarm names the one that broke.

Physical plants obey relations an operator can read: a pressure that follows a level, a flow that
is zero whenever its pump is off, a setpoint that never moves. Mined from normal operation only:

* ``linear``: ``A ~ a*B + b`` for every pair of varying tags whose correlation reaches
  ``min_corr`` (each pair once, the tag with the larger spread on the left); fitted on the first
  ``1 - holdout`` of the training rows, its residual spread measured on the rest (so an
  over-fitted pair cannot turn drift into alarms); tolerance ``z`` spreads.
* ``balance``: ``A ~ c1*B + c2*C + c3*D + c0``, a conservation-like relation over the three tags
  that best explain A (orthogonal matching pursuit), kept only when it explains at least
  ``min_r2`` of A's variance on the held-out rows and leaves at most half the error of A's best
  pair.
* ``implies``: for an on/off tag S (two values in training) and a varying tag F: when S is on,
  F stays above a level, and when S is off, F stays below it (a pump and its flow, a valve and
  its downstream pressure): actuator/sensor direction consistency.
* ``constant``: a tag that never moved in training (setpoints, modes) stays put.
* ``range``: every tag stays inside its training range widened by ``margin`` of its span.

Each invariant gives a violation per row in multiples of its tolerance; the row's score is the
worst violation, and the blame goes to the tags of the invariants broken. Written by hand: no
maintained Python package mines readable invariants from process data (the literature's
Daikon-style miners, e.g. for SWaT, are research code); the fits use numpy least squares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from interlock.detect.process.base import Alert, FloatArray, Frame, ProcessDetector


@dataclass(frozen=True)
class Invariant:
    """One mined relation: kind, tags (the left-hand tag first), readable text and its law."""

    kind: str
    tags: tuple[str, ...]
    text: str
    columns: tuple[int, ...]
    coef: tuple[float, ...]  # linear/balance: slopes then intercept; implies: level, on value
    tolerance: float

    def violation(self, x: FloatArray) -> FloatArray:
        """Per row, how far the relation is broken, in tolerances (0 = holds exactly)."""
        c = list(self.columns)
        if self.kind in ("linear", "balance"):
            pred = x[:, c[1:]] @ np.array(self.coef[:-1]) + self.coef[-1]
            return np.asarray(np.abs(x[:, c[0]] - pred) / self.tolerance, dtype=np.float64)
        if self.kind == "implies":
            level, on_value = self.coef
            s, f = x[:, c[0]], x[:, c[1]]
            on = np.isclose(s, on_value)
            # On: F below the level is a breach; off: F above it.
            gap = np.where(on, level - f, f - level)
            return np.asarray(np.maximum(gap, 0) / self.tolerance, dtype=np.float64)
        if self.kind == "constant":
            return np.asarray(np.abs(x[:, c[0]] - self.coef[0]) / self.tolerance, dtype=np.float64)
        lo, hi = self.coef  # range
        v = x[:, c[0]]
        return np.asarray(np.maximum(np.maximum(lo - v, v - hi), 0) / self.tolerance, dtype=np.float64)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


class InvariantDetector(ProcessDetector):
    name = "invariants"

    def __init__(
        self,
        min_corr: float = 0.95,
        min_r2: float = 0.99,
        z: float = 4.0,
        margin: float = 0.1,
        holdout: float = 0.25,
        max_pairs: int = 200,
        quantile: float = 0.99,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.min_corr = min_corr
        self.min_r2 = min_r2
        self.z = z
        self.margin = margin
        self.holdout = holdout
        self.max_pairs = max_pairs

    def _fit(self, x: FloatArray) -> None:
        tags = self.tags_
        n, k = x.shape
        cut = max(int(n * (1 - self.holdout)), 2) if self.holdout > 0 else n
        fit, hold = x[:cut], (x[cut:] if cut < n else x)
        std = x.std(axis=0)
        varying = [j for j in range(k) if std[j] > 1e-12]
        found: list[Invariant] = []
        for j in range(k):
            lo, hi = float(x[:, j].min()), float(x[:, j].max())
            if j not in varying:
                found.append(
                    Invariant(
                        "constant", (tags[j],), f"{tags[j]} == {_fmt(lo)}", (j,), (lo,), 1e-6 + 1e-3 * abs(lo)
                    )
                )
            else:
                tol = self.margin * (hi - lo)
                found.append(
                    Invariant(
                        "range", (tags[j],), f"{_fmt(lo)} <= {tags[j]} <= {_fmt(hi)}", (j,), (lo, hi), tol
                    )
                )
        found += self._implications(x, varying)
        if len(varying) >= 2:
            corr: FloatArray = np.atleast_2d(
                np.asarray(np.corrcoef(x[:, varying], rowvar=False), dtype=np.float64)
            )
            np.fill_diagonal(corr, 0.0)
            corr = np.nan_to_num(corr)  # a NaN only for a constant column, excluded already
            pair_err = {j: np.inf for j in varying}
            pairs = []
            for a in range(len(varying)):
                for b in range(a + 1, len(varying)):
                    if abs(corr[a, b]) >= self.min_corr:
                        pairs.append((abs(corr[a, b]), varying[a], varying[b]))
            for _, ja, jb in sorted(pairs, reverse=True)[: self.max_pairs]:
                left, right = (ja, jb) if std[ja] >= std[jb] else (jb, ja)
                inv, err = self._linear(fit, hold, left, (right,), "linear")
                if inv is not None:
                    found.append(inv)
                    pair_err[left] = min(pair_err[left], err)
                    pair_err[right] = min(pair_err[right], err * std[right] / std[left])
            for j in varying:
                if np.unique(x[:, j]).size <= 2:
                    continue  # on/off tags are covered by the implications
                others = self._pursuit(fit, j, varying)
                if len(others) < 2:
                    continue
                inv, err = self._linear(fit, hold, j, others, "balance")
                if inv is None or err > 0.5 * pair_err[j]:
                    continue
                r2 = 1 - err**2 / max(float(hold[:, j].var()), 1e-24)
                if r2 >= self.min_r2:
                    found.append(inv)
        self.invariants_ = found

    def _linear(
        self, fit: FloatArray, hold: FloatArray, left: int, right: tuple[int, ...], kind: str
    ) -> tuple[Invariant | None, float]:
        design = np.column_stack([fit[:, list(right)], np.ones(len(fit))])
        coef, *_ = np.linalg.lstsq(design, fit[:, left], rcond=None)
        pred = hold[:, list(right)] @ coef[:-1] + coef[-1]
        err = float(np.std(hold[:, left] - pred))
        spread = float(np.std(np.concatenate([fit[:, left], hold[:, left]])))
        # A floor of 1% of the tag's spread: a perfect fit must not make quantisation an alarm.
        tol = self.z * max(err, 0.01 * spread, 1e-9)
        tags = self.tags_
        terms = " + ".join(f"{_fmt(c)}*{tags[r]}" for c, r in zip(coef[:-1], right, strict=True))
        text = f"{tags[left]} ~ {terms} + {_fmt(coef[-1])}  (+-{_fmt(tol)})"
        cols = (left, *right)
        return Invariant(kind, tuple(tags[c] for c in cols), text, cols, tuple(map(float, coef)), tol), err

    def _pursuit(self, fit: FloatArray, target: int, varying: list[int], terms: int = 3) -> tuple[int, ...]:
        """Orthogonal matching pursuit: the tags that, added one at a time, best explain ``target``.

        Picking by correlation with what is still unexplained (not with the target) finds the
        branch flows of a header even when each alone correlates poorly with the total.
        """
        z = (fit - fit.mean(axis=0)) / np.where(fit.std(axis=0) > 1e-12, fit.std(axis=0), 1.0)
        chosen: list[int] = []
        resid = z[:, target]
        for _ in range(terms):
            pool = [c for c in varying if c != target and c not in chosen]
            if not pool:
                break
            gains = np.abs(z[:, pool].T @ resid)
            chosen.append(pool[int(np.argmax(gains))])
            coef, *_ = np.linalg.lstsq(z[:, chosen], z[:, target], rcond=None)
            resid = z[:, target] - z[:, chosen] @ coef
        return tuple(chosen)

    def _implications(self, x: FloatArray, varying: list[int]) -> list[Invariant]:
        out = []
        tags = self.tags_
        for s in varying:
            values = np.unique(x[:, s])
            if values.size != 2:
                continue
            off_value, on_value = float(values[0]), float(values[1])
            on = x[:, s] == on_value
            if on.sum() < 5 or (~on).sum() < 5:
                continue
            for f in varying:
                if f == s or np.unique(x[:, f]).size <= 2:
                    continue
                lo_on, hi_off = float(x[on, f].min()), float(x[~on, f].max())
                if lo_on <= hi_off:
                    continue  # the two states overlap: no clean implication
                level = (lo_on + hi_off) / 2
                tol = max((lo_on - hi_off) / 2, 1e-9)
                text = (
                    f"{tags[s]} = {_fmt(on_value)} => {tags[f]} > {_fmt(level)};  "
                    f"{tags[s]} = {_fmt(off_value)} => {tags[f]} < {_fmt(level)}"
                )
                out.append(Invariant("implies", (tags[s], tags[f]), text, (s, f), (level, on_value), tol))
        return out

    def _violations(self, x: FloatArray) -> FloatArray:
        return np.column_stack([inv.violation(x) for inv in self.invariants_])

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._violations(x).max(axis=1), dtype=np.float64)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        v = self._violations(x[rows])
        out = np.zeros((len(rows), len(self.tags_)))
        for i, inv in enumerate(self.invariants_):
            for c in inv.columns:
                out[:, c] = np.maximum(out[:, c], v[:, i])
        return out

    def broken(self, frame: Frame, row: int, limit: int = 3) -> list[tuple[Invariant, float]]:
        """The invariants broken at one row, worst first, with their violation in tolerances."""
        self._check(frame)
        v = self._violations(frame.values[row : row + 1])[0]
        order = [int(i) for i in np.argsort(-v) if v[i] > 1.0][:limit]
        return [(self.invariants_[i], float(v[i])) for i in order]

    def alerts(self, frame: Frame, limit: int | None = None) -> list[Alert]:
        """As the base class, but each alert names the invariants that broke and their tags."""
        out = []
        for alert in super().alerts(frame, limit):
            broken = self.broken(frame, alert.row)
            if broken:
                tags = tuple(dict.fromkeys(t for inv, _ in broken for t in inv.tags))
                why = "; ".join(f"{inv.text} broken x{v:.3g}" for inv, v in broken)
                alert = Alert(alert.row, alert.score, tags, f"invariants: {why}")
            out.append(alert)
        return out

    def describe(self) -> list[str]:
        """The mined invariants, one readable line each, grouped by kind."""
        order = {"implies": 0, "balance": 1, "linear": 2, "constant": 3, "range": 4}
        return [f"[{i.kind}] {i.text}" for i in sorted(self.invariants_, key=lambda i: order[i.kind])]
