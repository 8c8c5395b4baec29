"""Incidents: alerts grouped by attacker, target and time.

An analyst triages incidents, not alerts: a scan, the exception burst it provokes and the stop
command that follows are one story between one attacker and one target. Alerts between the same
initiator (``src``) and target (``dst``) belong to one incident until ``gap_s`` passes without
any; the next alert then opens a new incident.

>>> from interlock.detect.alerts import Alert, FlowRef
>>> def alert(ts: float, src: str) -> Alert:
...     flow = FlowRef(src, 40000, "10.0.0.3", 502, "modbus")
...     return Alert(ts, "T0814", "Denial of Service", ("Inhibit Response Function",), "high",
...                  src, "10.0.0.3", "10.0.0.3:502/1", "rule", "title", "why", (1,), flow)
>>> [len(i.alerts) for i in group_incidents([alert(0, "a"), alert(60, "a"), alert(9000, "a"), alert(5, "b")])]
[2, 1, 1]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from interlock.detect.alerts import SEVERITY_RANK, Alert, Severity

DEFAULT_GAP_S = 30 * 60.0


@dataclass(frozen=True, slots=True)
class Incident:
    number: int  # 1-based, in order of first alert
    src: str  # attacker (initiator)
    dst: str  # target
    first_ts: float
    last_ts: float
    alerts: tuple[Alert, ...]  # in time order

    @property
    def severity(self) -> Severity:
        return max((a.severity for a in self.alerts), key=SEVERITY_RANK.__getitem__)

    @property
    def techniques(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.technique for a in self.alerts))

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.asset for a in self.alerts))


def group_incidents(alerts: Iterable[Alert], gap_s: float = DEFAULT_GAP_S) -> list[Incident]:
    """Incidents in order of their first alert."""
    open_: dict[tuple[str, str], list[Alert]] = {}
    done: list[list[Alert]] = []
    for alert in sorted(alerts, key=lambda a: a.ts):
        key = (alert.src, alert.dst)
        current = open_.get(key)
        if current is not None and alert.ts - current[-1].ts > gap_s:
            done.append(current)
            current = None
        if current is None:
            current = open_[key] = []
        current.append(alert)
    done.extend(open_.values())
    done.sort(key=lambda group: group[0].ts)
    return [
        Incident(n, g[0].src, g[0].dst, g[0].ts, g[-1].ts, tuple(g))
        for n, g in enumerate(done, start=1)
    ]
