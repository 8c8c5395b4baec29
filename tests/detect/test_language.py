"""The rule language on records built by hand: selections, modifiers, conditions, windows."""

from __future__ import annotations

import textwrap
from typing import Any

import pyarrow as pa
import pytest

from interlock.capture.records import RecordBuilder
from interlock.detect.alerts import Alert
from interlock.detect.network.rules import Rule, RuleEngine, parse_rule, run_rules
from interlock.protocols.base import Direction, OpClass, Operation

REQ, RSP = Direction.REQUEST, Direction.RESPONSE


def rule(detection: str, *, service: str = "any", extra: str = "", level: str = "medium") -> Rule:
    text = textwrap.dedent("""\
        title: test rule
        id: 3d1c6f0e-7b7a-4c49-9a51-0f7f5b0a2c11
        status: test
        description: a rule under test
        tags: [attack.t0855]
        logsource: {product: interlock, service: %s}
        detection:
        %s
        level: %s
        %s
        """) % (service, textwrap.indent(textwrap.dedent(detection), "  "), level, extra)
    return parse_rule(text, "test.yml")


def op(fc: int | None = 3, *, direction: Direction = REQ, protocol: str = "modbus", **kw: Any) -> Operation:
    op_class = kw.pop("op_class", OpClass.READ)
    return Operation(protocol, direction, op_class, fc, kw.pop("function", "read_holding_registers"),
                     kw.pop("unit", 1), None, kw.pop("address", 0), kw.pop("count", 1), None,
                     kw.pop("object", None), kw.pop("status", None), kw.pop("malformed", None),
                     kw.pop("detail", None))


Row = tuple[float, Operation] | tuple[float, Operation, str]


def batch(*rows: Row, first_frame: int = 1) -> pa.RecordBatch:
    b = RecordBuilder()
    for n, row in enumerate(rows):
        ts, operation = row[0], row[1]
        src = row[2] if len(row) > 2 else "10.0.0.1"
        ends = (src, "10.0.0.2", 40000, 502, "tcp")
        if operation.direction == RSP:
            ends = ("10.0.0.2", src, 502, 40000, "tcp")
        b.add(first_frame + n, ts, ends, operation)
    out = b.flush()
    assert out is not None
    return out


def frames(alerts: list[Alert]) -> list[tuple[int, ...]]:
    return [a.frames for a in alerts]


def test_lists_are_any_of_text_is_case_insensitive_and_not_negates() -> None:
    r = rule("""\
        write: {function_code: [5, 6], function: WRITE_SINGLE_REGISTER}
        unit0: {unit: 0}
        condition: write and not unit0
        """)
    rows = batch((1, op(6, function="write_single_register")),
                 (2, op(6, function="write_single_register", unit=0)),
                 (3, op(5, function="write_single_coil")),
                 (4, op(3)))
    assert frames(run_rules([r], [rows])) == [(1,)]


def test_null_checks() -> None:
    r = rule("""\
        answered: {status: null, malformed|exists: false}
        condition: answered
        """)
    rows = batch((1, op(3)), (2, op(3, status="ILLEGAL_FUNCTION")), (3, op(3, malformed="INVALID_LENGTH")))
    assert frames(run_rules([r], [rows])) == [(1,)]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("function|contains: HOLDING", [(1,)]),
        ("function|startswith: write", [(2,), (3,)]),
        ("function|endswith: [coil, coils]", [(3,)]),
        ("function|contains|all: [write, single]", [(2,), (3,)]),
        ("address|gte: 100", [(2,), (3,)]),
        ("address|lt: 100", [(1,)]),
        ("src|cidr: 10.0.0.0/8", [(1,), (2,)]),
        ("src|cidr: [192.0.2.0/24, 2001:db8::/32]", [(3,)]),
    ],
)
def test_modifiers(item: str, expected: list[tuple[int, ...]]) -> None:
    r = rule(f"sel: {{{item}}}\ncondition: sel\n")
    rows = batch((1, op(3, address=5), "10.0.0.1"),
                 (2, op(6, function="write_single_register", address=100), "10.1.2.3"),
                 (3, op(5, function="write_single_coil", address=200), "192.0.2.7"))
    assert frames(run_rules([r], [rows])) == expected


def test_detail_fields_are_matched_in_the_json() -> None:
    r = rule("""\
        diag: {function_code: 8, detail.sub_function: [1, 4], detail.data|startswith: '00'}
        condition: diag
        """)
    rows = batch((1, op(8, detail={"sub_function": 4, "data": "0000"})),
                 (2, op(8, detail={"sub_function": 10, "data": "0000"})),
                 (3, op(8, detail={"sub_function": 1, "data": "ff00"})),
                 (4, op(8)),
                 (5, op(3, detail={"sub_function": 4, "data": "0000"})))
    assert frames(run_rules([r], [rows])) == [(1,)]


def test_logsource_service_restricts_the_protocol() -> None:
    r = rule("sel: {function_code: 13}\ncondition: sel\n", service="dnp3")
    rows = batch((1, op(13)), (2, op(13, protocol="dnp3", function="COLD_RESTART")))
    assert frames(run_rules([r], [rows])) == [(2,)]


def test_a_response_names_the_host_it_answers_as_initiator() -> None:
    r = rule("exc: {status: ILLEGAL_FUNCTION}\ncondition: exc\n")
    (alert,) = run_rules([r], [batch((1, op(3, direction=RSP, status="ILLEGAL_FUNCTION"), "10.0.0.9"))])
    assert (alert.src, alert.dst, alert.asset) == ("10.0.0.9", "10.0.0.2", "10.0.0.2:502/1")
    assert (alert.flow.src, alert.flow.dst) == ("10.0.0.2", "10.0.0.9")  # the frame as captured


SCAN = """\
    req: {direction: request}
    condition: req
    aggregate: {group_by: [src, dst], window_s: 60, distinct: function_code, gte: 4}
    """


def test_distinct_window_spans_batches() -> None:
    r = rule(SCAN)
    engine = RuleEngine([r])
    first = batch((0, op(1)), (10, op(2)), first_frame=1)
    second = batch((20, op(3)), (30, op(4)), (40, op(4)), first_frame=3)
    assert engine.process(first) == []
    out = engine.process(second) + engine.finish()
    assert len(out) == 1
    alert = out[0]
    assert alert.frames == (1, 2, 3, 4, 5) and alert.count == 5
    assert alert.ts == 30  # when the fourth code arrived
    assert "4 distinct function_code values (1, 2, 3, 4)" in alert.explanation


def test_values_further_apart_than_the_window_do_not_add_up() -> None:
    r = rule(SCAN)
    rows = batch((0, op(1)), (50, op(2)), (100, op(3)), (150, op(4)))
    assert run_rules([r], [rows]) == []


def test_one_alert_while_the_behaviour_lasts_and_a_new_one_after_a_quiet_window() -> None:
    r = rule("""\
        req: {direction: request}
        condition: req
        aggregate: {group_by: [src], window_s: 1, gte: 3}
        """)
    burst1 = [(t / 10, op(3)) for t in range(0, 50, 3)]  # ~3.3 a second for 5 s
    tail = [(5.7, op(3))]  # within a window of the burst but below the threshold: not evidence
    burst2 = [(20 + t / 10, op(3)) for t in range(0, 20, 2)]
    alerts = run_rules([r], [batch(*burst1, *tail, *burst2)])
    assert len(alerts) == 2
    assert alerts[0].frames == tuple(range(1, len(burst1) + 1))
    assert alerts[1].frames[0] == len(burst1) + 2


def test_options_fill_placeholders_and_empty_options_lower_the_level() -> None:
    r = rule("""\
        cmd: {op_class: command}
        allowed: {src|cidr|expand: '%masters%'}
        condition: cmd and not allowed
        """, level="high", extra="options: {masters: []}\nlevel_unconfigured: low")
    rows = batch((1, op(45, op_class=OpClass.COMMAND), "10.0.0.1"),
                 (2, op(45, op_class=OpClass.COMMAND), "10.0.0.66"))
    assert [(a.frames, a.severity) for a in run_rules([r], [rows])] == [((1,), "low"), ((2,), "low")]
    listed = run_rules([r], [rows], options={"masters": ["10.0.0.0/30"]})
    assert [(a.frames, a.severity) for a in listed] == [((2,), "high")]
    with pytest.raises(ValueError, match="no rule declares option mastres"):
        RuleEngine([r], options={"mastres": ["10.0.0.1"]})
    with pytest.raises(ValueError, match="'not-an-ip' is not an IP network"):
        RuleEngine([r], options={"masters": ["not-an-ip"]})


def test_alert_is_a_frozen_value_with_a_stable_digest() -> None:
    r = rule("sel: {function_code: 3}\ncondition: sel\n")
    rows = batch((1, op(3)))
    a, b = run_rules([r], [rows]), run_rules([r], [rows])
    assert a == b and a[0].digest() == b[0].digest()
    with pytest.raises(AttributeError):
        a[0].severity = "low"  # type: ignore[misc]
