"""RuleEngine.tick: a quiet network still gets its window alerts (live sensor), the same ones
that the end of a capture gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.capture.decode import decode_path
from interlock.detect.cli import default_rules_dir
from interlock.detect.network.rules import RuleEngine, load_rules

SCAN = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/pcaps/modbus/characterization_modbus_6RTU_with_operate.pcap"
)


def test_tick_reports_closed_windows_like_finish() -> None:
    if not SCAN.is_file():
        pytest.skip(f"{SCAN} is absent")
    rules_dir = default_rules_dir()
    assert rules_dir is not None
    rules = load_rules(rules_dir)
    batches = list(decode_path(SCAN)[0])
    last_ts = max(b.column("ts").cast("int64").to_pylist()[-1] for b in batches) / 1e6

    ticking, ending = RuleEngine(rules), RuleEngine(rules)
    seen_t = [a for b in batches for a in ticking.process(b)]
    seen_f = [a for b in batches for a in ending.process(b)]
    assert seen_t == seen_f
    assert ticking.tick(last_ts) == []  # nothing has been quiet for a whole window yet
    late = ticking.tick(last_ts + 3600)
    assert late, "the scan in this capture must be reported once its window has closed"
    assert late == ending.finish()
    assert ticking.tick(last_ts + 7200) == [] and ticking.finish() == []  # reported once
