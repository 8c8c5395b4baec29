"""Detection: findings over ICS operation records, as ATT&CK for ICS alerts.

- :mod:`interlock.detect.attack`: the ATT&CK for ICS technique table (bundled).
- :mod:`interlock.detect.alerts`: the :class:`Alert` value and its writers (JSON lines, Suricata
  eve, CEF, CEF over syslog).
- :mod:`interlock.detect.network.rules`: rules as YAML data, checked and run over Arrow batches.
- :mod:`interlock.detect.incidents`: alerts grouped by attacker, target and time.

Every detector that produces alerts has the shape of :class:`Detector`: batches of records in,
in capture order, alerts out; ``finish()`` returns what was still open when the input ended.
The rule engine has it; learned detectors will have it through a thresholding wrapper, so the
CLI, the drill scorer and the benchmarks treat them alike.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from interlock.detect.alerts import Alert, FlowRef


class Detector(Protocol):
    def process(self, batch: pa.RecordBatch) -> list[Alert]: ...
    def finish(self) -> list[Alert]: ...


__all__ = ["Alert", "Detector", "FlowRef"]
