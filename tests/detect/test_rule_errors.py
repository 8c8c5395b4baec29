"""A broken rule file is refused with FILE:LINE: reason, by the loader and by the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from interlock.detect.network.rules import RuleError, load_rules, parse_rule

from .conftest import RULES_DIR

GOOD = """\
title: Modbus write to unit 0
id: 0f5b6c1e-9a3c-4a8e-9d7e-2b1f3c4d5e6f
status: experimental
description: A broadcast write.
references:
  - https://attack.mitre.org/techniques/T0855/
author: test
date: 2026-11-26
tags:
  - attack.impair-process-control
  - attack.t0855
logsource:
  product: interlock
  service: modbus
detection:
  write:
    function_code: [5, 6]
    unit: 0
  reads:
    op_class: read
  condition: write and not reads
falsepositives:
  - none
level: high
"""


def edit(line: int, new: str) -> str:
    """GOOD with (1-based) ``line`` replaced by ``new`` (which may hold several lines)."""
    lines = GOOD.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def test_the_good_rule_loads() -> None:
    rule = parse_rule(GOOD, "good.yml")
    assert rule.techniques == ("T0855",) and rule.service == "modbus" and rule.level == "high"
    assert rule.condition == ("and", ("sel", "write"), ("not", ("sel", "reads")))


CASES = [
    ("yaml", edit(17, "    function_code: [5, 6"), 18, "YAML error"),
    ("unknown field", edit(8, "date: 2026-11-26\nseverity: high"), 9, "unknown field 'severity'"),
    ("unknown modifier", edit(18, "    unit|between: 0"), 18, "unknown modifier 'between'"),
    ("unknown record field", edit(18, "    unitid: 0"), 18, "unknown field 'unitid'"),
    ("text for a number", edit(18, "    unit: '0'"), 18, "unit is a whole number"),
    ("number for text", edit(20, "    op_class: 3"), 20, "op_class is text"),
    ("comparison on text", edit(20, "    op_class|gte: 3"), 20, "gte compares numbers"),
    ("condition unknown name", edit(21, "  condition: write and not read"), 21,
     "condition names 'read', which is not a selection"),
    ("condition unbalanced", edit(21, "  condition: write and (not reads"), 21, "missing ')'"),
    ("condition sigma syntax", edit(21, "  condition: 1 of write*"), 21, "not supported"),
    ("selection unused", edit(21, "  condition: write"), 21, "reads not used in the condition"),
    ("no technique tag", edit(11, "  - attack.collection"), 9, "tags name no technique"),
    ("unknown technique", edit(11, "  - attack.t0999"), 11, "T0999 is not an ATT&CK for ICS"),
    ("tactic of no technique", edit(10, "  - attack.collection"), 10, "attack.collection: no technique"),
    ("bad level", edit(24, "level: severe"), 24, "level 'severe' is not one of"),
    ("bad id", edit(2, "id: rule-1"), 2, "is not a UUID"),
    ("duplicate key", edit(18, "    unit: 0\n    unit: 1"), 19, "duplicate key 'unit'"),
    ("unknown service", edit(14, "  service: profinet"), 14, "service 'profinet'"),
    ("aggregate unknown key", edit(21, "  condition: write and not reads\n  aggregate:\n"
                                       "    group_by: [src]\n    window: 60\n    gte: 2"), 24,
     "unknown aggregate field 'window'"),
    ("aggregate bad gte", edit(21, "  condition: write and not reads\n  aggregate:\n"
                                   "    group_by: [src]\n    window_s: 60\n    gte: 0"), 25, "gte must be"),
    ("repeat unknown key", edit(21, "  condition: write and not reads\n  repeat:\n"
                                    "    content: [dst, values]\n    within: 60"), 24,
     "unknown repeat field 'within'"),
    ("repeat needs within_s", edit(21, "  condition: write and not reads\n  repeat:\n"
                                       "    content: [dst, values]"), 23, "repeat needs within_s"),
    ("repeat on frame", edit(21, "  condition: write and not reads\n  repeat:\n"
                                 "    content: [frame]\n    within_s: 60"), 23, "differs in every record"),
    ("sequence on text", edit(21, "  condition: write and not reads\n  sequence:\n    field: src\n"
                                  "    modulo: 16\n    stream: [dst]\n    source: [src]\n"
                                  "    within_s: 60"), 23, "numeric record field"),
    ("repeat and sequence", edit(21, "  condition: write and not reads\n  repeat:\n"
                                     "    content: [dst]\n    within_s: 60\n  sequence:\n"
                                     "    field: transaction\n    modulo: 16\n    stream: [dst]\n"
                                     "    source: [src]\n    within_s: 60"), 25,
     "repeat or sequence, not both"),
    ("placeholder not declared", edit(20, "    src|expand: '%masters%'"), 20, "%masters% is not in"),
    ("missing level", edit(24, ""), 1, "missing field 'level'"),
    ("empty file", "", 1, "empty file"),
]


@pytest.mark.parametrize(("text", "line", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_rule_names_file_line_and_reason(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(text)
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message, message
    assert "\n" not in message


def test_two_files_with_one_id(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(GOOD)
    (tmp_path / "b.yml").write_text(GOOD)
    with pytest.raises(RuleError, match=r"b\.yml:1: id 0f5b6c1e-.* is already used by .*a\.yml"):
        load_rules(tmp_path)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no rule files"):
        load_rules(tmp_path)


def test_command_refuses_a_broken_rule_with_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ok.yml").write_text(GOOD)
    (rules / "bad.yml").write_text(edit(18, "    unit|between: 0").replace(
        "0f5b6c1e-9a3c-4a8e-9d7e-2b1f3c4d5e6f", "9f5b6c1e-9a3c-4a8e-9d7e-2b1f3c4d5e6f"))
    sample = Path(__file__).resolve().parents[2] / "src" / "interlock" / "data" / "sample.pcap"
    res = subprocess.run(
        [sys.executable, "-m", "interlock.cli", "detect", str(sample), "--rules", str(rules)],
        capture_output=True, text=True,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"interlock: error: {rules / 'bad.yml'}:18: unknown modifier 'between' in 'unit|between' "
        "(modifiers: all, cidr, contains, endswith, exists, expand, gt, gte, lt, lte, startswith)"
    ]
    assert res.stdout == ""


def test_shipped_rules_follow_sigma_header_order_and_say_what_fires_them() -> None:
    """The corpus lint: Sigma's header order, references, false positives, known techniques."""
    rules = load_rules(RULES_DIR)
    order = ["title", "id", "status", "description", "references", "author", "date", "tags",
             "logsource", "detection", "falsepositives", "level"]
    for rule in rules:
        header = [k for k in rule.keys if k in order]
        assert header == order, f"{rule.path}: header order {header}"
        assert rule.falsepositives and rule.references and rule.description, rule.path
        assert Path(rule.path).parent.name == rule.service, rule.path
        assert rule.status == "experimental"
