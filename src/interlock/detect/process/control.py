"""Control-logic consistency: does each actuator do what the plant's control rules say it should?

A PLC switches a pump or a valve from the levels and pressures it reads (a tank's pump starts
below one level and stops above another: hysteresis). Those rules are learned here from normal
data, one shallow decision tree per on/off tag (a tag with two values in training), from
its own previous state and the continuous tags now and one row back, leaving out those that
merely mirror it (its own flow). An attacker who drives an
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
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.tree import DecisionTreeClassifier  # type: ignore[import-untyped]

from interlock.detect.process.base import FloatArray, ProcessDetector


@dataclass(frozen=True)
class _Rule:
    tag: int  # column of the on/off tag
    tree: DecisionTreeClassifier | None  # None: too few switches to learn a rule
    causes: list[int]  # the columns the tree reads, now and one row back
    sure: npt.NDArray[np.bool_]  # per tree node: leaf pure enough to count a disagreement
    rare_value: float | None  # the state held on under ``rare`` of the training rows
    known: tuple[float, ...]  # the states seen in training: any other is flagged


class ControlDetector(ProcessDetector):
    name = "control"

    def __init__(
        self,
        depth: int = 3,
        min_leaf: int = 20,
        purity: float = 0.99,
        rare: float = 0.005,
        mirror: float = 0.9,
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

    def _causes(self, x: FloatArray, tag: int) -> list[int]:
        """The inputs that may drive ``tag``: not those that mirror it on the same row.

        A pump's own flow or discharge pressure follows its state (|correlation| at least
        ``mirror``): a rule built on them says "the pump runs because its flow is high" and
        would explain away any forced start. The levels the PLC acts on do not mirror it.
        """
        y = x[:, tag] - x[:, tag].mean()
        keep = []
        for j in self.inputs_:
            c = x[:, j] - x[:, j].mean()
            denom = float(np.sqrt((c @ c) * (y @ y)))
            if denom == 0.0 or abs(float(c @ y)) / denom < self.mirror:
                keep.append(j)
        return keep

    def _features(self, x: FloatArray, tag: int, causes: list[int]) -> FloatArray:
        prev = np.vstack([x[:1], x[:-1]])
        return np.column_stack([prev[:, tag], x[:, causes], prev[:, causes]])

    def _rules(self, x: FloatArray) -> list[_Rule]:
        rules = []
        for j in self.actuators_:
            y = x[:, j]
            values, counts = np.unique(y, return_counts=True)
            share = counts / len(y)
            rare_value = float(values[np.argmin(share)]) if share.min() < self.rare else None
            tree, sure, causes = None, np.zeros(0, dtype=np.bool_), self._causes(x, j)
            if len(values) == 2 and counts.min() >= 2 * self.min_leaf:
                tree = DecisionTreeClassifier(
                    max_depth=self.depth, min_samples_leaf=self.min_leaf, random_state=0
                ).fit(self._features(x, j, causes), y)
                dist = tree.tree_.value[:, 0, :]
                sure = dist.max(axis=1) / np.maximum(dist.sum(axis=1), 1e-12) >= self.purity
            rules.append(_Rule(j, tree, causes, sure, rare_value, tuple(map(float, values))))
        return rules

    def _flags(self, rules: list[_Rule], x: FloatArray) -> FloatArray:
        """Rows x actuators: 1 for a rule break or a rare state (both: 2)."""
        out = np.zeros((len(x), len(rules)))
        for i, rule in enumerate(rules):
            y = x[:, rule.tag]
            if rule.rare_value is not None:
                out[:, i] += y == rule.rare_value
            out[:, i] += ~np.isin(y, rule.known)
            if rule.tree is not None:
                feats = self._features(x, rule.tag, rule.causes)
                leaf = rule.tree.apply(feats)
                out[:, i] += (rule.tree.predict(feats) != y) & rule.sure[leaf]
        return out

    def _fit(self, x: FloatArray) -> None:
        self.actuators_, self.inputs_ = self._roles(x)
        self.rules_ = self._rules(x)
        held_out = self._held_out_flags(x)
        # A rule that breaks on more than 1 - quantile of held-out normal rows is no rule of the
        # plant (a pump also run by a timer, say): it is dropped rather than let it alarm.
        self.kept_ = held_out.mean(axis=0) <= 1.0 - self.quantile
        self.held_out_scores_ = held_out[:, self.kept_].sum(axis=1)

    def _held_out_flags(self, x: FloatArray) -> FloatArray:
        n = len(x)
        if self.folds < 2 or n < self.folds * 4 * self.min_leaf:
            return self._flags(self.rules_, x)
        out = np.zeros((n, len(self.rules_)))
        edges = np.linspace(0, n, self.folds + 1).astype(int)
        for lo, hi in itertools.pairwise(edges):
            rest = np.vstack([x[:lo], x[hi:]])
            # Rare states are judged with the full-data rule: a fold cannot tell rarity apart.
            rules = [
                _Rule(r.tag, h.tree, h.causes, h.sure, r.rare_value, r.known)
                for r, h in zip(self.rules_, self._rules(rest), strict=True)
            ]
            start = max(lo - 1, 0)  # one row of history for the lagged inputs
            out[lo:hi] = self._flags(rules, x[start:hi])[lo - start :]
        return out

    def _train_scores(self, x: FloatArray) -> FloatArray:
        return np.asarray(self.held_out_scores_, dtype=np.float64)

    def _score(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._flags(self.rules_, x)[:, self.kept_].sum(axis=1), dtype=np.float64)

    def _blame(self, x: FloatArray, rows: npt.NDArray[np.intp]) -> FloatArray:
        flags = self._flags(self.rules_, x)[rows]
        out = np.zeros((len(rows), len(self.tags_)))
        for i, rule in enumerate(self.rules_):
            if self.kept_[i]:
                out[:, rule.tag] += flags[:, i]
        return out
