"""The pure policy: loading (with FILE:LINE errors) and ``decide()`` over a table of requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.protocols.modbus import (
    ExceptionCode,
    MaskWriteRegisterRequest,
    ReadCoilsRequest,
    ReadHoldingRegistersRequest,
    ReadWriteMultipleRegistersRequest,
    WriteMultipleCoilsRequest,
    WriteMultipleRegistersRequest,
    WriteSingleCoilRequest,
    WriteSingleRegisterRequest,
)
from interlock.respond.policy import (
    PolicyError,
    RateLimiter,
    Request,
    decide,
    load_policy,
    parse_policy,
    request_of,
)

POLICY = """\
default: deny
action: exception
max_rate: 50
rules:
  - name: no-engineering-station-writes
    action: deny
    clients: [10.0.0.66]
    functions: [write_single_register, 16]
  - name: hmi-reads
    clients: [10.0.0.0/24]
    units: [1]
    functions: [read_holding_registers, read_coils]
    addresses: [0-99]
  - name: hmi-setpoints
    clients: 10.0.0.5
    units: [1]
    functions: [6, 16, 23]
    addresses: ["50-59", [200, 201]]
    values: [0-2000]
"""

P = parse_policy(POLICY, "p.yaml")
ILF, ILA, ILV = (ExceptionCode.ILLEGAL_FUNCTION, ExceptionCode.ILLEGAL_DATA_ADDRESS,
                 ExceptionCode.ILLEGAL_DATA_VALUE)


@pytest.mark.parametrize(("client", "unit", "pdu", "allow", "code", "rule", "technique"), [
    ("10.0.0.5", 1, ReadHoldingRegistersRequest(0, 100), True, None, "hmi-reads", None),
    ("10.0.0.9", 1, ReadCoilsRequest(10, 5), True, None, "hmi-reads", None),
    # one register past the allowed table: the whole span must fit
    ("10.0.0.5", 1, ReadHoldingRegistersRequest(0, 101), False, ILA, "default", "T0855"),
    ("10.0.0.5", 2, ReadHoldingRegistersRequest(0, 1), False, ILF, "default", "T0855"),
    ("192.168.1.1", 1, ReadHoldingRegistersRequest(0, 1), False, ILF, "default", "T0855"),
    ("10.0.0.5", 1, WriteSingleRegisterRequest(55, 1500), True, None, "hmi-setpoints", None),
    ("10.0.0.5", 1, WriteSingleRegisterRequest(201, 0), True, None, "hmi-setpoints", None),
    ("10.0.0.5", 1, WriteSingleRegisterRequest(55, 2001), False, ILV, "default", "T0836"),
    ("10.0.0.5", 1, WriteSingleRegisterRequest(60, 10), False, ILA, "default", "T0855"),
    ("10.0.0.5", 1, WriteMultipleRegistersRequest(58, (1, 2)), True, None, "hmi-setpoints", None),
    ("10.0.0.5", 1, WriteMultipleRegistersRequest(58, (1, 2, 3)), False, ILA, "default", "T0855"),
    ("10.0.0.5", 1, WriteMultipleRegistersRequest(50, (1, 9000)), False, ILV, "default", "T0836"),
    # FC 23 reads 0-3 (outside the setpoint rule's addresses) while writing 50: denied on address
    ("10.0.0.5", 1, ReadWriteMultipleRegistersRequest(0, 4, 50, (7,)), False, ILA, "default",
     "T0855"),
    ("10.0.0.5", 1, WriteSingleCoilRequest(3, True), False, ILF, "default", "T0855"),
    ("10.0.0.9", 1, WriteSingleRegisterRequest(55, 10), False, ILF, "default", "T0855"),
    # an explicit deny rule comes first and names only functions: ILLEGAL_FUNCTION
    ("10.0.0.66", 1, WriteSingleRegisterRequest(55, 10), False, ILF,
     "no-engineering-station-writes", "T0855"),
    ("not-an-ip", 1, ReadHoldingRegistersRequest(0, 1), False, ILF, "default", "T0855"),
])
def test_decide_table(client: str, unit: int, pdu: object, allow: bool,
                      code: ExceptionCode | None, rule: str, technique: str | None) -> None:
    v = decide(request_of(unit, pdu), client, P)  # type: ignore[arg-type]
    assert (v.allow, v.exception, v.rule) == (allow, code, rule)
    if technique:
        assert v.technique == technique
        assert client in v.reason
    if code is ILV:
        assert "closest rule hmi-setpoints" in v.reason


def test_default_allow_and_first_match_wins() -> None:
    p = parse_policy("rules:\n  - {action: deny, functions: [5], addresses: [0-9]}\n"
                     "  - {functions: [5]}\n")
    assert p.default == "allow"
    coil = decide(request_of(1, WriteSingleCoilRequest(4, True)), "10.1.1.1", p)
    assert (coil.allow, coil.exception) == (False, ILA)
    assert decide(request_of(1, WriteSingleCoilRequest(40, True)), "10.1.1.1", p).allow
    assert decide(request_of(1, ReadHoldingRegistersRequest(0, 1)), "10.1.1.1", p).allow


def test_request_of_extracts_spans_and_values() -> None:
    r = request_of(3, WriteMultipleCoilsRequest(16, 9, bytes([0b0100_1101, 0b1])))
    assert r == Request(3, 15, ((16, 24),), (1, 0, 1, 1, 0, 0, 1, 0, 1)) and r.writes
    m = request_of(1, MaskWriteRegisterRequest(70, 0xF0F0, 0x0A05))
    assert (m.function, m.spans, m.values) == (22, ((70, 70),), (0xF0F0, 0x0A05))
    assert not request_of(1, ReadHoldingRegistersRequest(5, 3)).writes


def test_rate_limiter_token_bucket() -> None:
    r = RateLimiter(2.0)
    assert [r.take("a", 0.0) for _ in range(3)] == [True, True, False]
    assert r.take("b", 0.0)  # per client
    assert not r.take("a", 0.25) and r.take("a", 0.5)  # refills at 2/s


@pytest.mark.parametrize(("text", "line", "words"), [
    ("default: maybe\n", 1, "default must be one of allow, deny"),
    ("default: deny\nrules:\n  - functions: [3]\n    adresses: [0-9]\n", 4, "unknown key 'adresses'"),
    ("rules:\n  - functions: [3]\n  - functions: [read_everything]\n", 3, "not a number"),
    ("rules:\n  - units: [1]\n    addresses: [90-10]\n", 3, "0 <= a <= b <= 65535"),
    ("rules:\n  - clients: [10.0.0.300]\n", 2, "not an IP address or CIDR"),
    ("max_rate: -1\n", 1, "positive"),
    ("rules:\n  - functions: [3\n", 3, "not valid YAML"),
    ("action: explode\n", 1, "exception, drop, reset"),
    ("", 1, "empty policy"),
])
def test_broken_policy_names_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "site.yaml")
    assert str(e.value).startswith(f"site.yaml:{line}: ")
    assert words in str(e.value)


def test_load_policy_reads_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    p = load_policy(path)
    assert (p.source, p.max_rate, len(p.rules), p.rules[2].line) == (str(path), 50.0, 3, 14)
    with pytest.raises(PolicyError, match=r"missing\.yaml:0: cannot read"):
        load_policy(tmp_path / "missing.yaml")
