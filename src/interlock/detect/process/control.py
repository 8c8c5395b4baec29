"""Control-logic consistency: does each actuator do what the plant's control rules say it should?

A PLC switches a pump or a valve from the levels and pressures it reads (a tank's pump starts
below one level and stops above another: hysteresis). Those rules are learned here from normal
data, one shallow decision tree per on/off tag (a tag with two values in training), from
its own previous state and the continuous tags now and one row back, leaving out those that
merely mirror it (its own flow, its discharge pressure). An attacker who drives an
actuator (a pump forced on) or who spoofs the level its PLC reads (so the PLC switches at the
wrong moment while the historian shows the true level) breaks the learned rule: the observed
state disagrees with a leaf that was near-pure in training.

Two findings per row, summed into the score:
- a **rule break**: the state differs from the tree's answer in a leaf at least ``purity`` pure
  (uncertain leaves, such as the hour a pump is switched, are not counted);
- a **rare state**: the tag sits in a state it held on under ``rare`` of the training rows, or
  in one never seen (a standby pump running: attackers start equipment operators never use).

The threshold is the ``quantile`` of held-out training scores: the training rows are cut into
``folds`` contiguous blocks, each scored by trees grown on the other blocks, as ``dpca`` does
for its limits, so the threshold reflects rules applied to data the trees did not see.

Written with scikit-learn's trees; the rule-per-actuator framing is ours, because no library
learns PLC switching rules. Tags are told apart by their values only, so it runs on any plant.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.tree import DecisionTreeClassifier  # type: ignore[import-untyped]

from interlock.detect.process.base import FloatArray, ProcessDetector, RowScorer


@dataclass(frozen=True)
class _Rule:
    tag: int  # column of the on/off tag
    tree: DecisionTreeClassifier | None  # None: too few switches to learn a rule
    causes: list[int]  # the columns the tree reads, now and one row back
    sure: npt.NDArray[np.bool_]  # per tree node: leaf pure enough to count a disagreement
    rare_value: float | None  # the state held on under ``rare`` of the training rows
    known: tuple[float, ...]  # the states seen in training: any other is flagged


@dataclass(frozen=True)
class _Envelope:
    tag: int  # column of a continuous tag that mirrors an on/off tag (a pump's flow)
    bounds: dict[bytes, tuple[float, float]]  # per state of every on/off tag: allowed range


class ControlDetector(ProcessDetector):
    name = "control"
    row_memory = 1  # a row's features reach one row back

    def __init__(
        self,
        depth: int = 3,
        min_leaf: int = 20,
        purity: float = 0.99,
        rare: float = 0.005,
        mirror: float = 0.95,
        envelope: float = 0.001,
        max_rows: int = 20_000,
        inputs: str = "",
        folds: int = 5,
        quantile: float = 0.99,
        smooth: int = 1,
    ) -> None:
        super().__init__(quantile, smooth)
        self.depth = depth
        self.min_leaf = min_leaf
        self.purity = purity
        self.rare = rare
        self.mirror = mirror
        self.envelope = envelope
        self.max_rows = max_rows  # trees learn from at most this many rows, evenly spaced
        self.inputs = inputs  # regular expression on tag names; empty: every continuous tag
        self.folds = folds

    def _roles(self, x: FloatArray) -> tuple[list[int], list[int]]:
        binary, continuous = [], []
        pattern = re.compile(self.inputs) if self.inputs else None
        for j in range(x.shape[1]):
            values = np.unique(x[:, j])
            if len(values) <= 2:
                binary.append(j)
            elif len(values) > 2 and (pattern is None or pattern.search(self.tags_[j])):
                continuous.append(j)
        return binary, continuous

    def _causes(self, corr: FloatArray, tag: int) -> list[int]:
        """The inputs that may drive ``tag``: not those that mirror it on the same row.

        A pump's own flow or discharge pressure follows its state (one threshold on it tells the
        two states apart with a balanced accuracy of at least ``mirror``): a rule built on them
        says "the pump runs because its flow is high" and would explain away any forced start.
        The levels the PLC acts on do not mirror it: both states share the hysteresis band.
        """
        return [j for j in self.inputs_ if corr[j, tag] < self.mirror]

    def _features(
        self, x: FloatArray, tag: int, causes: list[int], rows: npt.NDArray[np.intp] | None = None
    ) -> FloatArray:
        """Previous state, causes now, causes one row back; for ``rows`` only if given."""
        now = np.arange(len(x)) if rows is None else rows
        before = np.maximum(now - 1, 0)
        cols = np.asarray(causes, dtype=np.intp)
        return np.column_stack([x[before, tag], x[np.ix_(now, cols)], x[np.ix_(before, cols)]])

    def _rules(self, x: FloatArray, corr: FloatArray) -> list[_Rule]:
        """A rule per on/off tag, from ``corr``: ``_separations`` of ``x``."""
        rules = []
        for j in self.actuators_:
            y = x[:, j]
            values, counts = np.unique(y, return_counts=True)
            share = counts / len(y)
            rare_value = float(values[np.argmin(share)]) if share.min() < self.rare else None
            tree, sure, causes = None, np.zeros(0, dtype=np.bool_), self._causes(corr, j)
            if len(values) == 2 and counts.min() >= 2 * self.min_leaf:
                # A depth-3 rule needs no more than a few thousand switches to place its
                # thresholds; evenly spaced rows keep fitting time flat on long histories.
                rows = np.arange(0, len(x), max(1, -(-len(x) // self.max_rows)))
                # Classes as 0/1 (the index of the state): a tag with two non-integer values
                # (a setpoint moved once) would be "continuous" to scikit-learn.
                tree = DecisionTreeClassifier(
                    max_depth=self.depth, min_samples_leaf=self.min_leaf, random_state=0
                ).fit(self._features(x, j, causes, rows), (y[rows] == values[1]).astype(np.int64))
                dist = tree.tree_.value[:, 0, :]
                sure = dist.max(axis=1) / np.maximum(dist.sum(axis=1), 1e-12) >= self.purity
            rules.append(_Rule(j, tree, causes, sure, rare_value, tuple(map(float, values))))
        return rules

    def _state_keys(self, x: FloatArray) -> list[bytes]:
        return [row.tobytes() for row in np.ascontiguousarray(x[:, self.actuators_])]

    def _envelopes(self, x: FloatArray, tags: list[int]) -> list[_Envelope]:
        """Ranges of the tags that mirror an on/off tag, for each state of all on/off tags.

        A pump running slower than it should (Stuxnet's frequency converters) keeps its status
        but moves its flow out of the range that status had in training. The range is the
        ``envelope`` .. 1 - ``envelope`` quantiles, widened by a tenth of its width; states
        seen on fewer than ``4 * min_leaf`` rows get no range (rare states are flagged anyway).
        """
        keys = self._state_keys(x)
        groups: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        out = []
        for j in tags:
            bounds = {}
            for key, rows in groups.items():
                if len(rows) >= 4 * self.min_leaf:
                    lo, hi = np.quantile(x[rows, j], [self.envelope, 1.0 - self.envelope])
                    pad = 0.1 * (hi - lo) + 1e-9
                    bounds[key] = (float(lo - pad), float(hi + pad))
            out.append(_Envelope(j, bounds))
        return out

    def _flags(self, rules: list[_Rule], envelopes: list[_Envelope], x: FloatArray) -> FloatArray:
        """Rows x (actuators + envelopes): 1 for a rule break, a rare state, a value out of range."""
        out = np.zeros((len(x), len(rules) + len(envelopes)))
        if not len(x):
            return out
        for i, rule in enumerate(rules):
            y = x[:, rule.tag]
            if rule.rare_value is not None:
                out[:, i] += y == rule.rare_value
            out[:, i] += ~np.isin(y, rule.known)
            if rule.tree is not None:
                feats = self._features(x, rule.tag, rule.causes)
                leaf = rule.tree.apply(feats)
                states = np.asarray(rule.known)[rule.tree.predict(feats)]
                out[:, i] += (states != y) & rule.sure[leaf]
        keys = self._state_keys(x)
        for k, env in enumerate(envelopes, len(rules)):
            lo = np.array([env.bounds.get(key, (-np.inf, np.inf))[0] for key in keys])
            hi = np.array([env.bounds.get(key, (-np.inf, np.inf))[1] for key in keys])
            out[:, k] = (x[:, env.tag] < lo) | (x[:, env.tag] > hi)
        return out

    def _fit(self, x: FloatArray) -> None:
        self.actuators_, self.inputs_ = self._roles(x)
        # Each input's sort order, found once: the held-out folds take theirs from it.
        orders: dict[int, npt.NDArray[np.integer]] = {}
        if self.actuators_:
            index = np.int32 if len(x) < 2**31 else np.int64  # half the memory of numpy's int64
            orders = {j: np.argsort(x[:, j], kind="stable").astype(index) for j in self.inputs_}
        corr = _separations(x, self.inputs_, self.actuators_, orders.__getitem__)
        self.rules_ = self._rules(x, corr)
        mirrors = [j for j in self.inputs_ if any(corr[j, a] >= self.mirror for a in self.actuators_)]
        self.envelopes_ = self._envelopes(x, mirrors)
        held_out = self._held_out_flags(x, orders) > 0
        # Rules join from the most to the least reliable on held-out normal rows while the rows
        # any kept rule flags stay within 1 - quantile: a rule that breaks often (a pump also run
        # by a timer, say) is dropped rather than let it alarm.
        self.kept_ = np.zeros(held_out.shape[1], dtype=np.bool_)
        any_flag = np.zeros(len(x), dtype=np.bool_)
        for i in np.argsort(held_out.mean(axis=0), kind="stable"):
            joined = any_flag | held_out[:, i]
            if joined.mean() <= 1.0 - self.quantile:
                self.kept_[i], any_flag = True, joined
        self.held_out_scores_ = held_out[:, self.kept_].sum(axis=1).astype(np.float64)

    def _held_out_flags(self, x: FloatArray, orders: dict[int, npt.NDArray[np.integer]]) -> FloatArray:
        n = len(x)
        if self.folds < 2 or n < self.folds * 4 * self.min_leaf:
            return self._flags(self.rules_, self.envelopes_, x)
        out = np.zeros((n, len(self.rules_) + len(self.envelopes_)))
        edges = np.linspace(0, n, self.folds + 1).astype(int)

        def fold(lo: int, hi: int) -> None:
            rest = np.vstack([x[:lo], x[hi:]])
            corr = _separations(rest, self.inputs_, self.actuators_, lambda j: _without(orders[j], lo, hi))
            # Rare states are judged with the full-data rule: a fold cannot tell rarity apart.
            rules = [
                _Rule(r.tag, h.tree, h.causes, h.sure, r.rare_value, r.known)
                for r, h in zip(self.rules_, self._rules(rest, corr), strict=True)
            ]
            start = max(lo - 1, 0)  # one row of history for the lagged inputs
            envelopes = self._envelopes(rest, [e.tag for e in self.envelopes_])
            out[lo:hi] = self._flags(rules, envelopes, x[start:hi])[lo - start :]

        # The folds are independent, and scikit-learn grows its trees without the GIL: threads
        # use every core (a wide plant's 50 fold trees took 80% of control's fit on one).
        with ThreadPoolExecutor(max_workers=min(self.folds, os.cpu_count() or 1)) as pool:
            for done in [pool.submit(fold, int(lo), int(hi)) for lo, hi in itertools.pairwise(edges)]:
                done.result()
        return out

    def _train_scores(self, x: FloatArray) -> FloatArray:
        return np.asarray(self.held_out_scores_, dtype=np.float64)

    def _score(self, x: FloatArray) -> FloatArray:
        flags = self._flags(self.rules_, self.envelopes_, x)
        return np.asarray(flags[:, self.kept_].sum(axis=1), dtype=np.float64)

    def _row_scorer(self) -> RowScorer:
        return _ControlRows(self)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        flags = self._flags(self.rules_, self.envelopes_, x)[rows]
        out = np.zeros((len(rows), len(self.tags_)))
        columns = [r.tag for r in self.rules_] + [e.tag for e in self.envelopes_]
        for i, tag in enumerate(columns):
            if self.kept_[i]:
                out[:, tag] += flags[:, i]
        return out


class _Tree:
    """A fitted tree as plain lists, walked for one row: scikit-learn's ``apply`` and
    ``predict`` cost about 0.1 ms a call however small the input, the walk a few microseconds.
    Each split reads its feature straight from the row or the row before (``_features`` order:
    previous state, causes now, causes one row back)."""

    def __init__(
        self, tree: DecisionTreeClassifier, tag: int, causes: list[int], states: tuple[float, ...]
    ) -> None:
        t = tree.tree_
        self.left, self.right = t.children_left.tolist(), t.children_right.tolist()
        self.threshold = t.threshold.tolist()
        # where a missing value goes at each split (scikit-learn >= 1.3 learns it; before: right)
        missing = getattr(t, "missing_go_to_left", None)
        self.missing_left = [False] * len(self.left) if missing is None else [bool(m) for m in missing]
        self.label = np.asarray(states)[tree.classes_[np.argmax(t.value[:, 0, :], axis=1)]].tolist()
        n = len(causes)
        # per split: (read the row before?, its column); leaves (feature -2) read nothing
        self.reads = [
            (False, -1) if f < 0 else (True, tag) if f == 0
            else (False, causes[f - 1]) if f <= n else (True, causes[f - 1 - n])
            for f in t.feature.tolist()
        ]  # fmt: skip

    def leaf(self, now: list[float], before: list[float]) -> int:
        """The leaf of a row and its previous one, both given as float32 values: scikit-learn
        compares the features as float32, the thresholds as float64."""
        node = 0
        while self.left[node] != -1:
            back, col = self.reads[node]
            value = before[col] if back else now[col]
            go_left = self.missing_left[node] if value != value else value <= self.threshold[node]  # NaN
            node = self.left[node] if go_left else self.right[node]
        return node


class _ControlRows(RowScorer):
    """``ControlDetector._flags`` one row at a time (the previous row is its state)."""

    own_blame = True

    def __init__(self, det: ControlDetector) -> None:
        self.det = det
        self.rules = [
            (r.tag, r.rare_value, set(r.known),
             None if r.tree is None else _Tree(r.tree, r.tag, r.causes, r.known), r.sure.tolist())
            for r in det.rules_
        ]  # fmt: skip
        self.prev: list[float] | None = None  # the previous row as float32 values, for the trees
        self.columns = [r.tag for r in det.rules_] + [e.tag for e in det.envelopes_]
        self.kept = det.kept_.tolist()
        self.flags = [0.0] * len(self.columns)

    def __call__(self, row: FloatArray) -> float:
        det, now = self.det, row.tolist()
        now32 = row.astype(np.float32).tolist()
        before = now32 if self.prev is None else self.prev
        self.prev = now32
        flags = []
        for tag, rare, known, tree, sure in self.rules:
            y = now[tag]
            flag = float(rare is not None and y == rare) + float(y not in known)
            if tree is not None:
                leaf = tree.leaf(now32, before)
                flag += float(tree.label[leaf] != y and sure[leaf])
            flags.append(flag)
        key = np.ascontiguousarray(row[det.actuators_]).tobytes()
        for env in det.envelopes_:
            lo, hi = env.bounds.get(key, (-np.inf, np.inf))
            flags.append(float(now[env.tag] < lo or now[env.tag] > hi))
        self.flags = flags
        return float(sum(f for f, keep in zip(flags, self.kept, strict=True) if keep))

    def blame(self) -> FloatArray:
        out = np.zeros(len(self.det.tags_))
        for tag, flag, keep in zip(self.columns, self.flags, self.kept, strict=True):
            if keep:
                out[tag] += flag
        return out


def _without(order: npt.NDArray[np.integer], lo: int, hi: int) -> npt.NDArray[np.integer]:
    """The stable sort order of a column without its rows lo..hi-1, from the column's own:
    the rows keep their order (by value, then by row) and the later ones move up by hi - lo."""
    kept = order[(order < lo) | (order >= hi)]
    return np.where(kept >= hi, kept - (hi - lo), kept)


def _separations(
    x: FloatArray, tags: list[int], actuators: list[int],
    order_of: Callable[[int], npt.NDArray[np.integer]] | None = None,
) -> FloatArray:  # fmt: skip
    """How well one threshold on tag j alone tells actuator a's two states apart, [j, a].

    The balanced accuracy (mean of the two states' hit rates) of the best cut, in either
    direction: 1.0 for a pump's own flow, about 0.5 for an unrelated tag. A level that drives a
    pump through a hysteresis band scores well below 1, since both states share the band.
    ``order_of(j)``: the stable sort order of column j, if known (sorting is most of the cost).
    """
    out = np.zeros((x.shape[1], x.shape[1]))
    states = []
    for a in actuators:
        values = np.unique(x[:, a])
        if len(values) == 2:
            on = x[:, a] == values[1]
            states.append((a, on, int(on.sum()), int((~on).sum())))
    if not states:
        return out
    for j in tags:
        # once per tag, shared by every actuator
        order = np.argsort(x[:, j], kind="stable") if order_of is None else order_of(j)
        col = x[order, j]
        # Cut after each position where the value changes: below it "off", above it "on".
        ends = np.flatnonzero(np.diff(col) > 0)
        for a, on, n_on, n_off in states:
            on_below = np.cumsum(on[order])[ends]
            off_below = (ends + 1) - on_below
            acc = 0.5 * (off_below / n_off + (n_on - on_below) / n_on)
            out[j, a] = float(np.max(np.maximum(acc, 1.0 - acc))) if acc.size else 0.5
    return out
