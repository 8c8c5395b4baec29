"""Process detection in ``interlock range watch``: the operator's view judged as it arrives.

The watch first learns the device's normal polls for ``--learn`` seconds, fits an ensemble of
process detectors on them (``detect.process``), then scores every later poll as it comes, one
row at a time (``RowByRow``: exactly the batch scores), and says in one line whether the process
looks normal and, if not, which tags are to blame. A poll that did not read every tag is
skipped: a missed read is not a reading.

The members default to ``replay+frozen``: a sensor stream repeating a window value for value
(within the last hour of polls at one a second: ``horizon=3600`` keeps its tables bounded),
a reading held far past its normal runs. Both judge against odds set from the normal polls and
hold on minutes of them. The correlation models do not: learned on the first 10 minutes of
the gas pipeline's HMI view (1 s polls), ``cva`` alarmed on 88% and ``control`` on 99.8% of the
next 20 normal minutes, whose operating point had moved on; ``--members`` adds them for a watch
that learns over a longer stretch of normal operation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from interlock.detect.process.base import Alert, Frame
from interlock.detect.process.ensemble import EnsembleDetector
from interlock.detect.process.stream import OnlineMonitor, RowByRow


class LiveDetection:
    """Learn ``learn_rows`` complete polls, then alert on each later one above the threshold."""

    def __init__(
        self,
        learn_rows: int,
        members: str = "replay(horizon=3600)+frozen",
        tags: tuple[str, ...] | None = None,
    ) -> None:
        self.learn_rows = max(2, learn_rows)
        self.members = members
        self.tags = tags  # None: the tags of the first poll that read anything
        self.rows: list[list[float]] = []
        self.monitor: OnlineMonitor | None = None
        self.scored = 0
        self.alarms = 0
        self.last: tuple[str, Alert] | None = None
        self.error: str | None = None

    def update(self, values: Mapping[str, float]) -> Alert | None:
        """Take one poll; an ``Alert`` when a learned model finds it abnormal."""
        if self.error is not None:
            return None
        if self.tags is None and values:
            self.tags = tuple(sorted(values))
        if not self.tags or any(t not in values for t in self.tags):
            return None
        if self.monitor is None:
            self.rows.append([float(values[t]) for t in self.tags])
            if len(self.rows) >= self.learn_rows:
                try:
                    det = EnsembleDetector(members=self.members).fit(Frame(self.tags, np.array(self.rows)))
                except ValueError as exc:
                    self.error = str(exc)
                    return None
                self.monitor = OnlineMonitor(RowByRow(det))
                self.rows = []  # learned: the model holds what it needs
            return None
        alert = self.monitor.update({t: float(values[t]) for t in self.tags}, at=self.scored)
        self.scored += 1
        if alert is not None:
            self.alarms += 1
            self.last = (time.strftime("%H:%M:%S"), alert)
        return alert

    def line(self) -> str:
        """The status line under the operator's table (rich markup)."""
        if self.error is not None:
            return f"process: cannot learn the normal polls: {self.error}"
        if self.monitor is None:
            return f"process: learning the normal polls, {len(self.rows)} of {self.learn_rows}"
        if self.last is None:
            return f"process: normal ({self.scored} polls judged)"
        at, alert = self.last
        return (f"[bold red]process: {self.alarms} abnormal of {self.scored} polls[/]; last at {at}: "
                f"{', '.join(alert.tags)}")  # fmt: skip
