"""The learned baseline: who talks to which unit, with which functions, addresses and values.

``interlock learn`` fits a :class:`Baseline` on benign captures and writes it as YAML that an
analyst can read and edit; ``interlock detect --baseline`` loads it and runs a
:class:`BaselineDetector` beside the rules. ``docs/detection.md`` ("Baseline") documents the file.

What is learned, per link (master ip, slave ip, port, unit):

- the request function codes, with the address ranges each one read and wrote (reads and writes
  apart: a write target is a write range);
- the polling period of each (function code, address): the median interval between requests,
  with a tolerance (recorded for the analyst; not alerted on yet, see the limits in the docs);

and per point (slave ip, port, unit, object, address): min and max of every value seen in
responses and writes, the largest rate of change per second, and the states when the point
took few distinct values (a mode switch, a valve position).

Detection compares each operation with the learned state only; it never learns from what it
reads, so an attacker cannot teach the baseline by repeating himself. Thresholds (the margin
around a range, the number of states that makes a point enumerated) are parameters, not learned.
Findings of the same kind on the same link and address become one alert, emitted by
:meth:`BaselineDetector.finish` with every frame as evidence.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from interlock.capture.records import CONNECTION_PROTOCOL, ics_only
from interlock.detect import attack
from interlock.detect.alerts import Alert, FlowRef, Severity
from interlock.detect.network.rules import RuleError, _compose
from interlock.yamlnodes import Node

FORMAT_VERSION = 1
MODEL = "interlock-baseline"
MAX_FRAMES = 10_000
WRITE_CLASSES = frozenset({"write", "command", "control"})

LinkKey = tuple[str, str, int, int]  # master ip, slave ip, port, unit (-1: none)
PointKey = tuple[str, int, int, str, int]  # slave ip, port, unit, object, address


class BaselineError(ValueError):
    """A baseline file that cannot be used: ``FILE:LINE: reason``."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = str(path), line, reason


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges, sorted, with overlapping or adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _covered(ranges: list[tuple[int, int]], lo: int, hi: int) -> bool:
    return any(a <= lo and hi <= b for a, b in ranges)


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else round(v, 6)


@dataclass
class LinkModel:
    """What one master did with one unit while learning."""

    functions: set[int] = field(default_factory=set)
    reads: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # fc -> ranges
    writes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    periods: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)  # median, tol
    # (function, address) -> (intervals learned, the longest one): how regular the poll was
    gaps: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)


@dataclass
class PointModel:
    """The values one register, coil or point showed while learning."""

    min: float
    max: float
    max_rate_per_s: float = 0.0
    states: tuple[float, ...] | None = None  # None: more distinct values than enum_max
    samples: int = 0
    rising: bool = False  # never fell, rose at least 3 times: a counter or a clock


@dataclass(frozen=True, slots=True)
class Deviation:
    """One way an operation differs from the baseline."""

    kind: str  # new_master, new_link, new_function, new_read_range, new_write_target, value
    technique: str
    severity: Severity
    address: int | None
    text: str  # the explanation without the frame


class Baseline:
    """Learns a plant's ICS conversations and values; tells how an operation deviates.

    >>> b = Baseline(margin=0.1)
    >>> rec = dict(src="10.0.0.1", dst="10.0.0.2", dport=502, sport=40000, unit=1,
    ...            direction="request", op_class="write", function_code=6, address=7,
    ...            count=1, values=[50.0], object="holding_registers", ts=0.0, frame=1)
    >>> b.learn_one(rec); b.learn_one({**rec, "values": [60.0], "ts": 1.0})
    >>> [d.technique for d in b.deviations({**rec, "values": [500.0]})]
    ['T0836']
    >>> [d.kind for d in b.deviations({**rec, "src": "10.0.0.9"})]
    ['new_master']
    """

    def __init__(self, *, margin: float = 0.1, relative_margin: float = 0.02, enum_max: int = 8,
                 period_tolerance: float = 0.5, missing_periods: float = 4.0,
                 burst_factor: float = 10.0, min_poll_samples: int = 5) -> None:
        self.margin = margin  # widen each learned value range by this share of its span ...
        # ... or by this share of its largest magnitude, if more: an analog value that drifted
        # over 20 units in the learning hour (4282..4302) still drifts next hour (4303).
        self.relative_margin = relative_margin
        self.enum_max = enum_max  # at most this many distinct values: the point is enumerated
        self.period_tolerance = period_tolerance  # share of the median polling period
        # A learned poll (>= min_poll_samples intervals) is missing when silent for more than
        # missing_periods periods (and 1.5 times its longest learned interval); a burst is
        # burst_factor times its learned rate over missing_periods periods.
        self.missing_periods = missing_periods
        self.burst_factor = burst_factor
        self.min_poll_samples = min_poll_samples

    # --- learning ------------------------------------------------------------------------------

    def _ensure(self) -> None:
        if not hasattr(self, "links_"):
            self.links_: dict[LinkKey, LinkModel] = {}
            self.points_: dict[PointKey, PointModel] = {}
            self.sources_: list[str] = []
            self.first_ts_: float | None = None
            self.last_ts_: float | None = None
            self._request_ts: dict[tuple[LinkKey, int, int], list[float]] = {}
            self._last_value: dict[PointKey, tuple[float, float]] = {}
            self._distinct: dict[PointKey, set[float]] = {}
            self._trend: dict[PointKey, tuple[int, bool]] = {}  # rises, fell once

    def fit(self, batches: Iterable[pa.RecordBatch], source: str | None = None) -> Self:
        """Learn from Arrow batches of records (may be called again for more captures)."""
        self._ensure()
        if source:
            self.sources_.append(source)
        for batch in batches:
            for rec in ics_only(batch).to_pylist():
                self.learn_one(rec)
        self._finalize()
        return self

    def learn_one(self, rec: Mapping[str, Any]) -> None:
        """Learn one record (a dict with the record schema's columns); connection records
        (protocol ``tcp``) are no ICS link and are left out."""
        self._ensure()
        if rec.get("protocol") == CONNECTION_PROTOCOL:
            return
        ts = _ts(rec.get("ts"))
        if ts is not None:
            self.first_ts_ = ts if self.first_ts_ is None else min(self.first_ts_, ts)
            self.last_ts_ = ts if self.last_ts_ is None else max(self.last_ts_, ts)
        fc, address, count = rec.get("function_code"), rec.get("address"), rec.get("count")
        if rec.get("direction") == "request" and fc is not None and rec.get("op_class") != "malformed":
            link = self.links_.setdefault(_link(rec), LinkModel())
            link.functions.add(fc)
            if address is not None:
                hi = address + max((count or 1), 1) - 1
                table = link.writes if rec.get("op_class") in WRITE_CLASSES else link.reads
                table[fc] = _merge([*table.get(fc, []), (address, hi)])
                if ts is not None:
                    self._request_ts.setdefault((_link(rec), fc, address), []).append(ts)
        for key, value in _point_values(rec):
            self._learn_value(key, value, ts)

    def _learn_value(self, key: PointKey, value: float, ts: float | None) -> None:
        p = self.points_.get(key)
        if p is None:
            p = self.points_[key] = PointModel(value, value)
        p.min, p.max, p.samples = min(p.min, value), max(p.max, value), p.samples + 1
        last = self._last_value.get(key)
        if last is not None and ts is not None and ts > last[0]:
            p.max_rate_per_s = max(p.max_rate_per_s, abs(value - last[1]) / (ts - last[0]))
        if last is not None:
            rises, fell = self._trend.get(key, (0, False))
            self._trend[key] = (rises + (value > last[1]), fell or value < last[1])
        if ts is not None:
            self._last_value[key] = (ts, value)
        distinct = self._distinct.setdefault(key, set())
        if len(distinct) <= self.enum_max:
            distinct.add(value)

    def _finalize(self) -> None:
        for (lk, fc, address), times in self._request_ts.items():
            gaps = [b - a for a, b in zip(sorted(times), sorted(times)[1:], strict=False) if b > a]
            if len(gaps) >= 2:
                median = statistics.median(gaps)
                self.links_[lk].periods[(fc, address)] = (median, median * self.period_tolerance)
                self.links_[lk].gaps[(fc, address)] = (len(gaps), max(gaps))
        for key, distinct in self._distinct.items():
            p = self.points_[key]
            # One value is a constant, not a choice: the range (with its margins) judges it.
            p.states = tuple(sorted(distinct)) if 2 <= len(distinct) <= self.enum_max else None
        self.__dict__.pop("_static_limits", None)  # limits change with what was learned
        for key, (rises, fell) in self._trend.items():
            self.points_[key].rising = rises >= 3 and not fell
            if self.points_[key].rising:
                self.points_[key].states = None

    # --- scoring -------------------------------------------------------------------------------

    def deviations(self, rec: Mapping[str, Any]) -> list[Deviation]:
        """How one record differs from the baseline (empty: as learned)."""
        self._ensure()
        out: list[Deviation] = []
        if rec.get("protocol") == CONNECTION_PROTOCOL:
            return out
        fc, address, count = rec.get("function_code"), rec.get("address"), rec.get("count")
        request = rec.get("direction") == "request"
        writes = rec.get("op_class") in WRITE_CLASSES
        name = rec.get("function") or f"function {fc}"
        if request and fc is not None and rec.get("op_class") != "malformed":
            lk = _link(rec)
            link = self.links_.get(lk)
            asset = _asset(rec)
            if link is None or (writes and not link.writes):
                if writes:
                    known = sorted({m for (m, s, p, u), lm in self.links_.items()
                                    if (s, p, u) == lk[1:] and lm.writes})
                    out.append(Deviation(
                        "new_master", "T0855", "high", address,
                        f"{rec['src']} wrote ({name}, address {address}) to {asset}; while learning "
                        + (f"only {', '.join(known)} wrote to it" if known else "no host wrote to it")))
                else:
                    out.append(Deviation(
                        "new_link", "T0846", "medium", address,
                        f"{rec['src']} sent {name} to {asset}, a unit it never talked to while learning"))
                return out
            if fc not in link.functions:
                out.append(Deviation(
                    "new_function", "T0855" if writes else "T0888", "high" if writes else "medium",
                    address, f"{rec['src']} sent {name} (function {fc}) to {asset}; learned functions: "
                    f"{', '.join(map(str, sorted(link.functions)))}"))
            elif address is not None:
                hi = address + max((count or 1), 1) - 1
                table = link.writes if writes else link.reads
                ranges = table.get(fc, [])
                if not _covered(ranges, address, hi):
                    learned = ", ".join(f"{a}-{b}" for a, b in ranges) or "none"
                    out.append(Deviation(
                        "new_write_target" if writes else "new_read_range",
                        "T0855" if writes else "T0861", "high" if writes else "low", address,
                        f"{rec['src']} {'wrote' if writes else 'read'} addresses {address}-{hi} of {asset} "
                        f"with {name}; learned {'write targets' if writes else 'ranges'}: {learned}"))
        static = self.__dict__.setdefault("_static_limits", {})  # fitted state: see _finalize
        for key, value in _point_values(rec):
            p = self.points_.get(key)
            if p is None:
                continue
            if p.rising:
                lo, hi_v = self.limits(p, _ts(rec.get("ts")))
            else:  # the common case: limits that do not depend on time, computed once
                bounds = static.get(key)
                if bounds is None:
                    bounds = static[key] = self.limits(p)
                lo, hi_v = bounds
            in_states = p.states is None or value in p.states
            if lo <= value <= hi_v and in_states:
                continue
            learned = (f"states {', '.join(str(_num(s)) for s in p.states)}" if p.states is not None
                       else f"range {_num(lo)}..{_num(hi_v)}")
            what = f"{key[3]} {key[4]} of {key[0]}:{key[1]}/{key[2]}"
            if request:
                out.append(Deviation("value", "T0836", "high", key[4],
                                     f"{rec['src']} wrote {_num(value)} to {what} (learned {learned})"))
            else:
                out.append(Deviation("reported_value", "T0856", "low", key[4],
                                     f"{rec['src']} reported {_num(value)} for {what} (learned {learned})"))
        return out

    def score_one(self, rec: Mapping[str, Any]) -> float:
        """0 when the record is as learned; the number of deviations otherwise."""
        return float(len(self.deviations(rec)))

    def explain(self, rec: Mapping[str, Any]) -> list[str]:
        """One sentence per deviation, naming the point, the value seen and what was learned."""
        return [f"{d.text} (frame {rec.get('frame')})." for d in self.deviations(rec)]

    def limits(self, p: PointModel, ts: float | None = None) -> tuple[float, float]:
        """The accepted value range of a point at time ``ts``: its learned range widened by the
        margins; a rising point (a counter) may also have climbed at its learned rate, with the
        margin, since learning ended."""
        pad = max((p.max - p.min) * self.margin, max(abs(p.min), abs(p.max)) * self.relative_margin)
        climb = 0.0
        if p.rising and ts is not None and self.last_ts_ is not None and ts > self.last_ts_:
            climb = p.max_rate_per_s * (1 + self.margin) * (ts - self.last_ts_)
        return p.min - pad, p.max + pad + climb

    # --- the YAML file -------------------------------------------------------------------------

    def to_yaml(self) -> str:
        """The baseline as commented YAML, one flow-style line per link item and point."""
        self._ensure()
        lines = [
            "# Interlock baseline: what the plant did while learning. Edit freely; see",
            "# docs/detection.md, section Baseline, for every key. Ranges are inclusive.",
            f"interlock_baseline: {FORMAT_VERSION}",
            f"learned_from: {_flow(self.sources_)}",
            f"first: {_flow(_iso(self.first_ts_))}",
            f"last: {_flow(_iso(self.last_ts_))}",
            "parameters: " + _flow({"margin": self.margin, "relative_margin": self.relative_margin,
                                    "enum_max": self.enum_max, "period_tolerance": self.period_tolerance,
                                    "missing_periods": self.missing_periods,
                                    "burst_factor": self.burst_factor,
                                    "min_poll_samples": self.min_poll_samples}),
            "links:",
        ]
        for (m, s, port, unit), link in sorted(self.links_.items()):
            lines += [f"  - master: {m}", f"    slave: {s}", f"    port: {port}", f"    unit: {unit}"]
            lines.append("    functions:")
            for fc in sorted(link.functions):
                entry: dict[str, Any] = {"function": fc}
                if fc in link.reads:
                    entry["reads"] = [list(r) for r in link.reads[fc]]
                if fc in link.writes:
                    entry["writes"] = [list(r) for r in link.writes[fc]]
                lines.append(f"      - {_flow(entry)}")
            if link.periods:
                lines.append("    polling:  # function/address: median seconds between requests, tolerance")
                for (fc, address), (median, tol) in sorted(link.periods.items()):
                    entry = {"function": fc, "address": address, "period_s": round(median, 3),
                             "tolerance_s": round(tol, 3)}
                    if (fc, address) in link.gaps:
                        n_gaps, longest = link.gaps[(fc, address)]
                        entry.update(intervals=n_gaps, max_gap_s=round(longest, 3))
                    lines.append(f"      - {_flow(entry)}")
        lines.append("points:  # per register/coil/point: learned range, rate of change, states")
        for (s, port, unit, obj, address), p in sorted(self.points_.items()):
            d: dict[str, Any] = {"slave": s, "port": port, "unit": unit, "object": obj, "address": address,
                                 "min": _num(p.min), "max": _num(p.max),
                                 "max_rate_per_s": _num(round(p.max_rate_per_s, 6)), "samples": p.samples}
            if p.states is not None:
                d["states"] = [_num(v) for v in p.states]
            if p.rising:
                d["rising"] = True
            lines.append(f"  - {_flow(d)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_yaml(cls, text: str, path: Path | str = "<baseline>") -> Baseline:
        """Read a baseline file; :class:`BaselineError` names the line of any problem."""
        try:
            doc = _compose(Path(path), text)
        except RuleError as exc:
            raise BaselineError(path, exc.line, exc.reason) from None
        return _Reader(path).read(doc)


def load_baseline(path: Path) -> Baseline:
    """A baseline file from disk; unreadable or invalid files raise :class:`BaselineError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BaselineError(path, 1, f"cannot read the baseline ({reason})") from None
    return Baseline.from_yaml(text, path)


class _Reader:
    """Checks a baseline document key by key, so an edit gone wrong is found with its line."""

    LINK_KEYS = ("master", "slave", "port", "unit", "functions", "polling")
    POINT_KEYS = ("slave", "port", "unit", "object", "address", "min", "max", "max_rate_per_s",
                  "samples", "states", "rising")
    TOP_KEYS = ("interlock_baseline", "learned_from", "first", "last", "parameters", "links", "points")

    def __init__(self, path: Path | str) -> None:
        self.path = path

    def fail(self, node: Node, reason: str) -> BaselineError:
        return BaselineError(self.path, node.line, reason)

    def mapping(self, node: Node, what: str, keys: tuple[str, ...]) -> dict[str, Node]:
        if not isinstance(node.value, dict):
            raise self.fail(node, f"{what} must be a mapping (key: value)")
        for k in node.value:
            if k not in keys:
                raise BaselineError(self.path, node.key_lines.get(k, node.line),
                                    f"unknown key '{k}' in {what} (keys: {', '.join(keys)})")
        return dict(node.value)

    def number(self, m: dict[str, Node], key: str, node: Node, *, integer: bool = False) -> float:
        if key not in m:
            raise self.fail(node, f"missing key '{key}'")
        v = m[key].value
        if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
            raise self.fail(m[key], f"{key} must be {'an integer' if integer else 'a number'}, not {v!r}")
        return float(v) if not integer else v

    def text(self, m: dict[str, Node], key: str, node: Node) -> str:
        if key not in m:
            raise self.fail(node, f"missing key '{key}'")
        v = m[key].value
        if not isinstance(v, str) or not v:
            raise self.fail(m[key], f"{key} must be text (an IP address, an object name)")
        return v

    def ranges(self, node: Node, what: str) -> list[tuple[int, int]]:
        if not isinstance(node.value, list):
            raise self.fail(node, f"{what} must be a list of [first, last] address pairs")
        out = []
        for item in node.value:
            pair = item.plain()
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
                    or pair[0] > pair[1]):
                raise self.fail(item, f"{what}: {pair!r} is not a [first, last] pair of addresses")
            out.append((pair[0], pair[1]))
        return _merge(out)

    def read(self, doc: Node) -> Baseline:
        top = self.mapping(doc, "the baseline", self.TOP_KEYS)
        version = top.get("interlock_baseline")
        if version is None or version.value != FORMAT_VERSION:
            raise self.fail(version or doc, f"not an Interlock baseline of format {FORMAT_VERSION} "
                            "(interlock_baseline: 1); make one with interlock learn")
        names = ("margin", "relative_margin", "enum_max", "period_tolerance", "missing_periods",
                 "burst_factor", "min_poll_samples")
        params = self.mapping(top["parameters"], "parameters", names) if "parameters" in top else {}
        kwargs: dict[str, Any] = {}
        for k in ("margin", "relative_margin", "period_tolerance", "missing_periods", "burst_factor"):
            if k in params:
                kwargs[k] = self.number(params, k, top["parameters"])
                if kwargs[k] < 0:
                    raise self.fail(params[k], f"{k} must be >= 0")
        for k in ("enum_max", "min_poll_samples"):
            if k in params:
                kwargs[k] = int(self.number(params, k, top["parameters"], integer=True))
        b = Baseline(**kwargs)
        b._ensure()
        learned = top.get("learned_from")
        b.sources_ = [str(x) for x in learned.plain()] if learned and isinstance(learned.value, list) else []
        for k in ("first", "last"):
            if k in top and top[k].value is not None:
                try:
                    ts = datetime.fromisoformat(str(top[k].value)).timestamp()
                except ValueError:
                    raise self.fail(top[k], f"{k} must be an ISO 8601 time") from None
                setattr(b, f"{k}_ts_", ts)
        for node in self.items(top, "links"):
            m = self.mapping(node, "a link", self.LINK_KEYS)
            key = (self.text(m, "master", node), self.text(m, "slave", node),
                   int(self.number(m, "port", node, integer=True)),
                   int(self.number(m, "unit", node, integer=True)))
            link = b.links_.setdefault(key, LinkModel())
            if "functions" not in m:
                raise self.fail(node, "a link needs functions: a list of "
                                "{function: code, reads: ..., writes: ...}")
            for fnode in self.items(m, "functions"):
                e = self.mapping(fnode, "a function entry", ("function", "reads", "writes"))
                fc = int(self.number(e, "function", fnode, integer=True))
                link.functions.add(fc)
                if "reads" in e:
                    link.reads[fc] = self.ranges(e["reads"], f"function {fc} reads")
                if "writes" in e:
                    link.writes[fc] = self.ranges(e["writes"], f"function {fc} writes")
            if "polling" in m:
                for pnode in self.items(m, "polling"):
                    pm = self.mapping(pnode, "a polling entry",
                                      ("function", "address", "period_s", "tolerance_s", "intervals",
                                       "max_gap_s"))
                    poll = (int(self.number(pm, "function", pnode, integer=True)),
                            int(self.number(pm, "address", pnode, integer=True)))
                    link.periods[poll] = (self.number(pm, "period_s", pnode),
                                          self.number(pm, "tolerance_s", pnode))
                    if link.periods[poll][0] <= 0:
                        raise self.fail(pm["period_s"], "period_s must be > 0")
                    if "intervals" in pm and "max_gap_s" in pm:
                        link.gaps[poll] = (int(self.number(pm, "intervals", pnode, integer=True)),
                                           self.number(pm, "max_gap_s", pnode))
        for node in self.items(top, "points"):
            m = self.mapping(node, "a point", self.POINT_KEYS)
            pkey = (self.text(m, "slave", node), int(self.number(m, "port", node, integer=True)),
                    int(self.number(m, "unit", node, integer=True)), self.text(m, "object", node),
                    int(self.number(m, "address", node, integer=True)))
            lo, hi = self.number(m, "min", node), self.number(m, "max", node)
            if lo > hi:
                raise self.fail(m["min"], f"min {_num(lo)} is above max {_num(hi)}")
            p = PointModel(lo, hi)
            if "max_rate_per_s" in m:
                p.max_rate_per_s = self.number(m, "max_rate_per_s", node)
            if "samples" in m:
                p.samples = int(self.number(m, "samples", node, integer=True))
            if "states" in m and m["states"].value is not None:
                states = m["states"].plain()
                if not isinstance(states, list) or not all(
                        isinstance(x, int | float) and not isinstance(x, bool) for x in states):
                    raise self.fail(m["states"], "states must be a list of numbers")
                p.states = tuple(sorted(float(x) for x in states))
            if "rising" in m:
                if not isinstance(m["rising"].value, bool):
                    raise self.fail(m["rising"], "rising must be true or false")
                p.rising = m["rising"].value
            b.points_[pkey] = p
        return b

    def items(self, m: dict[str, Node], key: str) -> list[Node]:
        node = m.get(key)
        if node is None or node.value is None:
            return []
        if not isinstance(node.value, list):
            raise self.fail(node, f"{key} must be a list")
        return list(node.value)


class BaselineDetector:
    """The :class:`~interlock.detect.Detector` face of a :class:`Baseline`: batches in, alerts out.

    Deviations of the same kind, link and address are gathered into one alert (the first
    operation's explanation, every frame as evidence), emitted by :meth:`finish`.
    """

    def __init__(self, baseline: Baseline, *, capture: str | None = None) -> None:
        self.baseline = baseline
        self.capture = capture
        # (kind, master, slave, port, unit, address) -> first deviation, its record, frames, count
        self._open: dict[tuple[str, str, str, int, int, int | None],
                         tuple[Deviation, dict[str, Any], list[int], list[int]]] = {}
        self._link_cache: dict[tuple[Any, ...], bool] = {}  # request shape -> deviates
        self._index_points()
        self._index_polls()
        self._poll_state: dict[PollKey, _PollState] = {}

    def process(self, batch: pa.RecordBatch) -> list[Alert]:
        """Judge a batch column-wise; only the rows that deviate become Python records.

        The link checks depend on a handful of columns whose combinations repeat (a poller sends
        the same requests all day): each distinct combination is judged once and cached. Register
        values are flattened and compared with the learned limits as numpy arrays. Rows flagged by
        either pass are judged again by :meth:`Baseline.deviations`, so the alerts are exactly
        those of the row-by-row reference, :meth:`process_rows`.
        """
        batch = ics_only(batch)  # connection records: for the tcp rules, not the baseline
        if batch.num_rows == 0:
            return []
        batch = _epoch_seconds(batch)
        requests = self._requests(batch)
        flagged = self._link_flags(batch, requests) | self._value_flags(batch)
        rows = np.flatnonzero(flagged)
        if len(rows):
            self._gather(batch.take(pa.array(rows)).to_pylist())
        return self._polls(batch, requests)

    def process_rows(self, batch: pa.RecordBatch) -> list[Alert]:
        """The row-by-row reference of :meth:`process` (every record through ``deviations``)."""
        self._gather(_epoch_seconds(ics_only(batch)).to_pylist())
        return []

    def _gather(self, records: Iterable[dict[str, Any]]) -> None:
        for rec in records:
            for d in self.baseline.deviations(rec):
                request = rec.get("direction") == "request"
                master, slave = (rec["src"], rec["dst"]) if request else (rec["dst"], rec["src"])
                port = rec.get("dport") if request else rec.get("sport")
                key = (d.kind, master, slave, port or 0, rec.get("unit") or -1, d.address)
                entry = self._open.setdefault(key, (d, rec, [], [0]))
                if len(entry[2]) < MAX_FRAMES and (not entry[2] or entry[2][-1] != rec["frame"]):
                    entry[2].append(rec["frame"])
                entry[3][0] += 1

    # --- columnar passes -------------------------------------------------------------------------

    @staticmethod
    def _requests(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """Request rows (not malformed, with a function code), each row's index among the
        distinct request shapes, and those shapes (src, dst, op_class, dport, unit, function,
        address, count as text)."""
        request = _is(batch.column("direction"), "request") & ~_is(batch.column("op_class"), "malformed") \
            & _valid(batch.column("function_code"))
        rows = np.flatnonzero(request)
        if not len(rows):
            return rows, rows, []
        idx = pa.array(rows)
        names = ("src", "dst", "op_class", "dport", "unit", "function_code", "address", "count")
        inverse, combos = _combos([batch.column(name).take(idx) for name in names])
        return rows, inverse, combos

    def _link_flags(self, batch: pa.RecordBatch,
                    requests: tuple[np.ndarray, np.ndarray, list[list[str]]]) -> np.ndarray:
        """Rows whose request (link, function, addresses) the baseline has not seen."""
        flags = np.zeros(batch.num_rows, dtype=bool)
        rows, inverse, combos = requests
        if not len(rows):
            return flags
        verdict = np.zeros(len(combos), dtype=bool)
        for j, (src, dst, op_class, *numbers) in enumerate(combos):
            dport, unit, fc, address, count = (None if x == "" else int(x) for x in numbers)
            key = (src, dst, op_class, dport, unit, fc, address, count)
            hit = self._link_cache.get(key)
            if hit is None:
                rec = {"src": src, "dst": dst, "op_class": op_class, "direction": "request",
                       "dport": dport, "unit": unit, "function_code": fc, "address": address,
                       "count": count}
                hit = self._link_cache[key] = bool(self.baseline.deviations(rec))
            verdict[j] = hit
        flags[rows] = verdict[inverse]
        return flags

    def _value_flags(self, batch: pa.RecordBatch) -> np.ndarray:
        """Rows with a value outside its point's learned limits or states."""
        n = batch.num_rows
        flags = np.zeros(n, dtype=bool)
        if not self._points:
            return flags
        values = batch.column("values")
        op = batch.column("op_class")
        request = _is(batch.column("direction"), "request")
        lengths = np.asarray(pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False),
                             dtype=np.int64)
        obj = batch.column("object")
        eligible = (lengths > 0) & _valid(batch.column("address")) & _valid(obj) \
            & ~_is(op, "malformed") & (~request | _is(op, *WRITE_CLASSES))
        eligible &= pc.fill_null(pc.not_equal(obj, ""), False).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(eligible)
        if not len(rows):
            return flags
        idx = pa.array(rows)
        req = pa.array(request[rows])
        host = pc.if_else(req, batch.column("dst").take(idx), batch.column("src").take(idx))
        port = pc.if_else(req, batch.column("dport").take(idx), batch.column("sport").take(idx))
        inverse, combos = _combos([host, port, batch.column("unit").take(idx), obj.take(idx)])
        # each row's (host, port, unit, object) -> the id under which its points were indexed
        ids = np.array([self._base_ids.get((h, int(p), int(u) if u else -1, o), -1)
                        for h, p, u, o in combos], dtype=np.int64)
        first = _ints(batch.column("address"))
        bases = ids[inverse]
        known_rows = rows[bases >= 0]
        # flatten the whole column (taking list rows would copy every value): element -> row
        flat = pc.list_flatten(values)
        parent = np.asarray(pc.list_parent_indices(values).to_numpy(zero_copy_only=False), dtype=np.int64)
        # per row, the key of its first point minus the row's first element in ``flat``, so that
        # an element's key is one gather and one add; rows not judged get a negative key, which
        # no point has
        shift = np.full(n, _NULL, dtype=np.int64)
        begins = np.cumsum(lengths) - lengths
        shift[known_rows] = bases[bases >= 0] * _ADDRESS_SPAN + first[known_rows] - begins[known_rows]
        key = shift[parent] + np.arange(len(parent))
        value = (flat.to_numpy(zero_copy_only=False) if not flat.null_count
                 else pc.fill_null(flat, np.nan).to_numpy(zero_copy_only=False))
        at = np.searchsorted(self._point_keys, key)  # the index ends with a sentinel: at is valid
        known = self._point_keys[at] == key
        if flat.null_count:
            known &= _valid(flat)
        lo, hi = self._lo[at], self._hi[at]
        climb = self._climb[at]
        rising = np.flatnonzero((climb > 0) & known)
        if len(rising) and self.baseline.last_ts_ is not None:
            # a counter may have climbed since learning ended (see Baseline.limits)
            ts = _seconds(batch.column("ts"))[parent[rising]]
            since = ts - self.baseline.last_ts_
            hi[rising] = hi[rising] + np.where(since > 0, climb[rising] * since, 0.0)
        bad = ~((lo <= value) & (value <= hi))
        enumerated = np.flatnonzero(self._enumerated[at] & known)
        if len(enumerated):  # only enumerated points pay for the states check
            states = self._states[at[enumerated]]
            bad[enumerated] |= ~(states == value[enumerated, None]).any(axis=1)
        flags[parent[bad & known]] = True
        # addresses the index cannot hold go the row-by-row way
        flags[known_rows[(first[known_rows] < 0)
                         | (first[known_rows] + lengths[known_rows] > _ADDRESS_SPAN)]] = True
        return flags

    # --- polling periods ---------------------------------------------------------------------------

    def _index_polls(self) -> None:
        """The learned polls regular enough to watch: key -> (period, silence limit, burst window,
        burst count)."""
        b = self.baseline
        self._watched: dict[PollKey, tuple[float, float, float, int]] = {}
        for (master, slave, port, unit), link in b.links_.items():
            for (fc, address), (median, _tol) in link.periods.items():
                n_gaps, longest = link.gaps.get((fc, address), (b.min_poll_samples, 0.0))
                if n_gaps < b.min_poll_samples or median <= 0:
                    continue  # too few intervals to call it periodic
                limit = max(b.missing_periods * median, 1.5 * longest)
                window = b.missing_periods * median
                self._watched[(master, slave, port, unit, fc, address)] = (
                    median, limit, window, max(int(np.ceil(b.burst_factor * b.missing_periods)), 2))

    def _polls(self, batch: pa.RecordBatch,
               requests: tuple[np.ndarray, np.ndarray, list[list[str]]]) -> list[Alert]:
        """Learned polls that stop (loss of view) or come far faster than learned (a flood).

        Only polls seen in this traffic are watched for silence (a capture of another part of the
        plant is no loss of view), and only while other records show that time passes."""
        if not self._watched:
            return []
        out: list[Alert] = []
        rows, inverse, combos = requests
        seconds = _seconds(batch.column("ts"))
        # request shape -> watched poll (-1: none); shapes differ by count or op_class, polls not
        index: dict[PollKey, int] = {}
        poll_of = np.full(len(combos) + 1, -1, dtype=np.int64)
        for j, (src, dst, _op, dport, unit, fc, address, _count) in enumerate(combos):
            if address == "":
                continue
            key = (src, dst, int(dport), int(unit) if unit else -1, int(fc), int(address))
            if key in self._watched:
                poll_of[j] = index.setdefault(key, len(index))
        polled = poll_of[inverse] if len(rows) else poll_of[:0]
        mine_all = np.flatnonzero(polled >= 0)
        if len(mine_all):
            order = mine_all[np.argsort(polled[mine_all], kind="stable")]  # by poll, capture order
            bounds = np.searchsorted(polled[order], np.arange(len(index) + 1))
            frames = np.asarray(batch.column("frame").to_numpy(zero_copy_only=False), dtype=np.int64)
            for j, key in enumerate(index):
                mine = rows[order[bounds[j]:bounds[j + 1]]]
                state = self._poll_state.get(key)
                if state is None:
                    first = int(mine[0])
                    state = self._poll_state[key] = _PollState(
                        batch.column("sport")[first].as_py() or 0,
                        str(batch.column("protocol")[first].as_py()),
                        str(batch.column("transport")[first].as_py()))
                out.extend(self._judge_poll(key, self._watched[key], state, seconds[mine], frames[mine]))
        if len(seconds):
            now = float(seconds.max())
            for key, state in self._poll_state.items():
                _, limit, _, _ = self._watched[key]
                if not state.silent and now - state.last_ts > limit:
                    state.silent = True
                    out.append(self._poll_alert("poll_missing", key, state, state.last_ts + limit,
                                                [state.last_frame], 1, now - state.last_ts))
        return out

    def _judge_poll(self, key: PollKey, watched: tuple[float, float, float, int], state: _PollState,
                    ts: np.ndarray, frames: np.ndarray) -> list[Alert]:
        median, limit, window, burst = watched
        out: list[Alert] = []
        if state.last_ts >= 0:  # silences between this poll's requests
            gaps = np.diff(np.concatenate([[state.last_ts], ts]))
            prev = np.concatenate([[state.last_frame], frames[:-1]])
            prev_ts = np.concatenate([[state.last_ts], ts[:-1]])
            for i in np.flatnonzero(gaps > limit).tolist():
                if i == 0 and state.silent:
                    continue  # already reported while it lasted
                out.append(self._poll_alert("poll_missing", key, state, float(prev_ts[i]) + limit,
                                            [int(prev[i]), int(frames[i])], 1, float(gaps[i])))
        # requests within one burst window, ending at each request: far more than learned?
        all_ts = np.concatenate([state.recent_ts, ts])
        all_frames = np.concatenate([state.recent_frames, frames])
        counts = np.arange(1, len(all_ts) + 1) - np.searchsorted(all_ts, all_ts - window, side="left")
        hot = counts[len(state.recent_ts):] >= burst
        if hot.any() or state.burst:
            for i, h in enumerate(hot.tolist()):
                at = len(state.recent_ts) + i
                if h and not state.burst:
                    start = at - int(counts[at]) + 1
                    out.append(self._poll_alert(
                        "poll_burst", key, state, float(all_ts[at]),
                        all_frames[start:at + 1].tolist(), int(counts[at]), median))
                state.burst = h
        keep = all_ts >= all_ts[-1] - window
        state.recent_ts, state.recent_frames = all_ts[keep][-burst:], all_frames[keep][-burst:]
        state.last_ts, state.last_frame, state.silent = float(ts[-1]), int(frames[-1]), False
        return out

    def _poll_alert(self, kind: str, key: PollKey, state: _PollState, ts: float, frames: list[int],
                    count: int, measure: float) -> Alert:
        master, slave, port, unit, fc, address = key
        median = self._watched[key][0]
        asset = f"{slave}:{port}" + ("" if unit < 0 else f"/{unit}")
        if kind == "poll_missing":
            technique, severity = "T0815", "medium"
            text = (f"{master} stopped polling {asset} (function {fc}, address {address}): no request "
                    f"for {measure:.1f} s, learned every {median:.3g} s; last request in frame "
                    f"{frames[0]}" + (f", polling resumed in frame {frames[1]}." if len(frames) > 1 else "."))
        else:
            technique, severity = "T0814", "high"
            window = self._watched[key][2]
            text = (f"{master} polled {asset} (function {fc}, address {address}) {count} times within "
                    f"{window:.3g} s, learned every {median:.3g} s; frames {frames[0]}-{frames[-1]} "
                    "(the alert is raised when the burst crosses the threshold).")
        t = attack.technique(technique)
        return Alert(
            ts=ts, technique=t.id, technique_name=t.name,
            tactics=tuple(attack.tactic(x).name for x in t.tactics), severity=cast(Severity, severity),
            src=master, dst=slave, asset=asset, rule=f"{MODEL}/{kind}", title=TITLES[kind],
            explanation=text, frames=tuple(frames),
            flow=FlowRef(master, state.sport, slave, port, state.protocol, state.transport),
            count=count, capture=self.capture)

    def tick(self, now: float) -> list[Alert]:
        """Time passed without records (a live sensor): report polls silent for too long."""
        out = []
        for key, state in self._poll_state.items():
            limit = self._watched[key][1]
            if not state.silent and now - state.last_ts > limit:
                state.silent = True
                out.append(self._poll_alert("poll_missing", key, state, state.last_ts + limit,
                                            [state.last_frame], 1, now - state.last_ts))
        return out

    def _index_points(self) -> None:
        """Learned points as sorted numpy keys with their limits, for :meth:`_value_flags`."""
        b = self.baseline
        self._base_ids: dict[tuple[str, int, int, str], int] = {}
        entries: list[tuple[int, PointModel]] = []
        for (host, port, unit, obj, address), p in b.points_.items():
            base = self._base_ids.setdefault((host, port, unit, obj), len(self._base_ids))
            if 0 <= address < _ADDRESS_SPAN:  # others: records there take the row path
                entries.append((base * _ADDRESS_SPAN + address, p))
        entries.sort(key=lambda e: e[0])
        self._points = len(entries)
        # a sentinel above every key: searchsorted then always lands on a valid index
        self._point_keys = np.array([*(k for k, _ in entries), np.iinfo(np.int64).max], dtype=np.int64)
        entries.append((0, PointModel(0.0, 0.0)))  # the sentinel's limits: never read as known
        limits = [b.limits(p) for _, p in entries]
        self._lo = np.array([lo for lo, _ in limits], dtype=np.float64)
        # a rising point's upper limit grows with time: limits() adds rate * (1 + margin) * elapsed
        self._hi = np.array([hi for _, hi in limits], dtype=np.float64)
        self._climb = np.array([p.max_rate_per_s * (1 + b.margin) if p.rising else 0.0
                                for _, p in entries], dtype=np.float64)
        # an edited file's empty states list accepts nothing: NaN never equals a value
        self._enumerated = np.array([p.states is not None for _, p in entries], dtype=bool)
        width = max([len(p.states) for _, p in entries if p.states] or [1])  # NaN-padded
        self._states = np.full((len(entries), width), np.nan)
        for j, (_, p) in enumerate(entries):
            if p.states:
                self._states[j, :len(p.states)] = p.states

    def finish(self) -> list[Alert]:
        alerts = [self._alert(d, rec, frames, n[0]) for d, rec, frames, n in self._open.values()]
        self._open.clear()
        return sorted(alerts, key=lambda a: (a.ts, a.frames))

    def _alert(self, d: Deviation, rec: dict[str, Any], frames: list[int], count: int) -> Alert:
        t = attack.technique(d.technique)
        request = rec.get("direction") == "request"
        src, dst = (rec["src"], rec["dst"]) if request else (rec["dst"], rec["src"])
        more = f"; {count - 1} more like it" if count > 1 else ""
        return Alert(
            ts=_ts(rec.get("ts")) or 0.0, technique=t.id, technique_name=t.name,
            tactics=tuple(attack.tactic(s).name for s in t.tactics), severity=d.severity,
            src=src, dst=dst, asset=_asset(rec), rule=f"{MODEL}/{d.kind}", title=TITLES[d.kind],
            explanation=f"{d.text} in frame {rec['frame']}{more}.", frames=tuple(frames),
            flow=FlowRef(rec["src"], rec.get("sport") or 0, rec["dst"], rec.get("dport") or 0,
                         rec.get("protocol") or "", rec.get("transport") or "tcp"),
            count=count, capture=self.capture)


TITLES = {
    "poll_missing": "A learned periodic poll stopped (loss of view)",
    "poll_burst": "A learned poll comes far faster than learned",
    "new_master": "Write from a host that never wrote to this unit",
    "new_link": "A host talks to a unit it never talked to while learning",
    "new_function": "Function code outside the baseline",
    "new_read_range": "Read of addresses outside the baseline",
    "new_write_target": "Write to an address outside the baseline",
    "value": "Write of a value outside the learned range",
    "reported_value": "Reported value outside the learned range",
}


PollKey = tuple[str, str, int, int, int, int]  # master, slave, port, unit, function, address


@dataclass
class _PollState:
    """What the detector saw of one learned poll: its last request and its recent ones."""

    sport: int
    protocol: str
    transport: str
    last_ts: float = -1.0
    last_frame: int = 0
    silent: bool = False  # a missing-poll alert was raised for the current silence
    burst: bool = False  # inside a burst already reported
    recent_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    recent_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


_NULL = -(2**62)  # stands for a missing integer in the columnar passes
_ADDRESS_SPAN = 2**32  # point key = base id * span + address


def _epoch_seconds(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with ``ts`` as epoch seconds: to_pylist builds a datetime per row otherwise."""
    i = batch.schema.get_field_index("ts")
    if i >= 0 and pa.types.is_timestamp(batch.schema.field(i).type):
        batch = batch.set_column(i, "ts", _seconds_array(batch.column(i)))
    return batch


def _seconds_array(ts: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(ts.type):
        return pc.divide(pc.cast(ts, pa.int64()), 1e6)
    return ts


def _seconds(ts: pa.Array) -> np.ndarray:
    return np.asarray(_seconds_array(ts).to_numpy(zero_copy_only=False), dtype=np.float64)


def _is(arr: pa.Array, *texts: str) -> np.ndarray:
    """Rows of a (dictionary) string column equal to one of ``texts`` (null: False). A
    dictionary column is compared through its few dictionary entries, not row by row."""
    if pa.types.is_dictionary(arr.type):
        words = np.isin(np.asarray(arr.dictionary.to_pylist(), dtype=object), texts)
        codes = np.asarray(pc.fill_null(arr.indices.cast(pa.int32()), -1).to_numpy(zero_copy_only=False))
        out: np.ndarray = np.append(words, False)[codes]  # code -1 (null) reads the appended False
        return out
    return np.asarray(pc.fill_null(pc.is_in(arr, pa.array(texts)), False).to_numpy(zero_copy_only=False))


def _valid(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False))


def _ints(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr.cast(pa.int64()), _NULL).to_numpy(zero_copy_only=False))


def _combos(columns: list[pa.Array]) -> tuple[np.ndarray, list[list[str]]]:
    """Each row's index among the distinct combinations of ``columns``, and those combinations
    as text ('' for null). Hash-based (Arrow's dictionary encoding of the joined text), so a
    batch of polls costs no sort."""
    text = [pc.fill_null(c.cast(pa.string()), "") for c in columns]
    joined = pc.binary_join_element_wise(*text, "\x1f")
    enc = joined.dictionary_encode()
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, [str(v).split("\x1f") for v in enc.dictionary.to_pylist()]


def _ts(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.timestamp()
    return float(v)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _flow(v: Any) -> str:
    text = yaml.safe_dump(v, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def _link(rec: Mapping[str, Any]) -> LinkKey:
    unit = rec.get("unit")
    return (str(rec["src"]), str(rec["dst"]), int(rec.get("dport") or 0), -1 if unit is None else int(unit))


def _asset(rec: Mapping[str, Any]) -> str:
    request = rec.get("direction") == "request"
    host, port = (rec["dst"], rec.get("dport")) if request else (rec["src"], rec.get("sport"))
    unit = rec.get("unit")
    return f"{host}:{port}" + ("" if unit is None else f"/{unit}")


def _point_values(rec: Mapping[str, Any]) -> list[tuple[PointKey, float]]:
    """(point, value) pairs of a write request or a read response with paired addresses."""
    values, address, obj = rec.get("values"), rec.get("address"), rec.get("object")
    if not values or address is None or not obj or rec.get("op_class") == "malformed":
        return []
    request = rec.get("direction") == "request"
    if request and rec.get("op_class") not in WRITE_CLASSES:
        return []
    host, port = (rec["dst"], rec.get("dport")) if request else (rec["src"], rec.get("sport"))
    unit = rec.get("unit")
    base = (str(host), int(port or 0), -1 if unit is None else int(unit), str(obj))
    return [((*base, address + i), float(v)) for i, v in enumerate(values) if v is not None]
