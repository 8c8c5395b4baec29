"""Policies learned from traffic: allow exactly what benign traffic did, deny the rest.

:class:`PolicyLearner` is fed Modbus requests (from ``interlock learn --policy`` reading
captures, or from ``interlock firewall --mode learn`` watching live traffic) and writes a policy
file: ``default: deny`` and one allow rule per client, unit and function code naming the address
ranges it touched; writes get one rule per contiguous address block with the range of the values
written to it. The output is plain policy YAML (docs/firewall.md) for an engineer to read, widen
and commit.

>>> learner = PolicyLearner()
>>> learner.observe("10.0.0.5", Request(1, 6, ((50, 50),), (1200,)))
>>> learner.observe("10.0.0.5", Request(1, 6, ((51, 51),), (1500,)))
>>> p = parse_policy(learner.to_yaml())
>>> decide(Request(1, 6, ((51, 51),), (1300,)), "10.0.0.5", p).allow
True
>>> decide(Request(1, 6, ((51, 51),), (9000,)), "10.0.0.5", p).allow
False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from interlock.protocols.modbus import FunctionCode
from interlock.respond.policy import Request, Span, decide, parse_policy  # noqa: F401 (doctest)

__all__ = ["Dnp3PolicyLearner", "PolicyLearner", "request_of_record"]


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted inclusive spans with overlapping or adjacent ones joined."""
    out: list[Span] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@dataclass
class _Seen:
    """What one client did with one function code on one unit."""

    spans: list[Span] = field(default_factory=list)
    # write blocks: (lo, hi) address span -> (min value, max value)
    written: list[tuple[Span, tuple[int, int]]] = field(default_factory=list)
    requests: int = 0


class PolicyLearner:
    """Accumulates requests per (client, unit, function); :meth:`to_yaml` writes the policy."""

    def __init__(self, *, comment: str = "") -> None:
        self.comment = comment
        self._seen: dict[tuple[str, int, int], _Seen] = {}
        self.requests = 0

    def observe(self, client: str, request: Request) -> None:
        seen = self._seen.setdefault((client, request.unit, request.function), _Seen())
        seen.requests += 1
        self.requests += 1
        # keep the lists short as we go: a day of polling is millions of identical spans
        seen.spans = _merge([*seen.spans, *request.spans])
        if request.writes and request.spans:
            lo = min(a for a, _ in request.spans)
            hi = max(b for _, b in request.spans)
            values = request.values or (0,)
            seen.written = self._add_write(seen.written, (lo, hi), (min(values), max(values)))

    @staticmethod
    def _add_write(blocks: list[tuple[Span, tuple[int, int]]], span: Span, vals: tuple[int, int]
                   ) -> list[tuple[Span, tuple[int, int]]]:
        """Join the write into the block it overlaps or touches, widening the value range."""
        lo, hi = span
        vlo, vhi = vals
        keep = []
        for (a, b), (x, y) in blocks:
            if a <= hi + 1 and lo <= b + 1:
                lo, hi, vlo, vhi = min(lo, a), max(hi, b), min(vlo, x), max(vhi, y)
            else:
                keep.append(((a, b), (x, y)))
        return sorted([*keep, ((lo, hi), (vlo, vhi))])

    def rules(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for (client, unit, fc), seen in sorted(self._seen.items()):
            try:
                fname = FunctionCode(fc).name.lower()
            except ValueError:
                fname = str(fc)
            base: dict[str, Any] = {"clients": [client], "units": [unit]}
            if seen.written:
                for k, ((a, b), (x, y)) in enumerate(seen.written):
                    out.append({"name": f"learned-{client}-u{unit}-{fname}"
                                        + (f"-{k + 1}" if len(seen.written) > 1 else ""),
                                **base, "functions": [fname], "addresses": [_text(a, b)],
                                "values": [_text(x, y)]})
                continue
            rule: dict[str, Any] = {"name": f"learned-{client}-u{unit}-{fname}", **base,
                                    "functions": [fname]}
            if seen.spans:
                rule["addresses"] = [_text(a, b) for a, b in seen.spans]
            out.append(rule)
        return out

    def to_yaml(self) -> str:
        head = ["# Firewall policy learned by Interlock: allows exactly what the learning traffic",
                f"# did ({self.requests} requests); everything else is denied. See "
                "docs/firewall.md."]
        if self.comment:
            head.append(f"# {self.comment}")
        doc = {"default": "deny", "action": "exception", "rules": self.rules()}
        return "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, width=100,
                                                     default_flow_style=None)


def _text(a: int, b: int) -> str | int:
    return f"{a}-{b}" if a != b else a


def request_of_record(rec: Mapping[str, Any]) -> Request | None:
    """The policy view of a decoded Modbus request record (``interlock decode`` columns), or
    None for responses, other protocols and malformed requests."""
    if rec.get("protocol") != "modbus" or rec.get("direction") != "request":
        return None
    fc, unit = rec.get("function_code"), rec.get("unit")
    if fc is None or unit is None or rec.get("op_class") == "malformed":
        return None
    address, count = rec.get("address"), rec.get("count")
    spans: tuple[Span, ...] = ()
    if address is not None:
        spans = ((int(address), int(address) + max(int(count or 1), 1) - 1),)
    values = tuple(int(v) for v in rec.get("values") or () if v is not None)
    return Request(int(unit), int(fc), spans, values)


class Dnp3PolicyLearner:
    """The DNP3 counterpart (firewall ``--mode learn --protocol dnp3``): one allow rule per
    client, outstation and function code, with the object groups and point indexes seen."""

    def __init__(self, *, comment: str = "") -> None:
        self.comment = comment
        self.requests = 0
        self._seen: dict[tuple[str, int, int], tuple[set[tuple[int, int]], list[Span]]] = {}

    def observe(self, client: str, destination: int, function: int,
                objects: Iterable[tuple[int, int]], indexes: Iterable[int]) -> None:
        groups, spans = self._seen.setdefault((client, destination, function), (set(), []))
        groups.update(objects)
        spans[:] = _merge([*spans, *((i, i) for i in indexes)])
        self.requests += 1

    def rules(self) -> list[dict[str, Any]]:
        from interlock.respond.dnp3_policy import function_name

        out: list[dict[str, Any]] = []
        for (client, dest, fc), (groups, spans) in sorted(self._seen.items()):
            name = function_name(fc).lower()
            rule: dict[str, Any] = {"name": f"learned-{client}-o{dest}-{name}",
                                    "clients": [client], "units": [dest], "functions": [name]}
            if groups:
                rule["groups"] = [f"g{g}v{v}" for g, v in sorted(groups)]
            if spans:
                rule["indexes"] = [_text(a, b) for a, b in spans]
            out.append(rule)
        return out

    def to_yaml(self) -> str:
        head = ["# DNP3 firewall policy learned by Interlock: allows exactly the requests seen",
                f"# ({self.requests} requests); everything else is dropped. See docs/firewall.md."]
        if self.comment:
            head.append(f"# {self.comment}")
        doc = {"protocol": "dnp3", "default": "deny", "action": "drop", "rules": self.rules()}
        return "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, width=100,
                                                     default_flow_style=None)
