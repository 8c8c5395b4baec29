"""``protocol: dnp3`` policies: loading (FILE:LINE errors) and ``decide_dnp3`` over a table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from interlock.cli import main
from interlock.protocols.dnp3 import ApplicationRequest, FunctionCode, ObjectHeader
from interlock.protocols.dnp3.fields import IIN
from interlock.respond.dnp3_policy import Dnp3Request, decide_dnp3, request_of_fragment
from interlock.respond.policy import PolicyError, parse_policy

POLICY = """\
protocol: dnp3
default: deny
rules:
  - name: no-restarts
    action: deny
    functions: [cold_restart, warm_restart]
  - name: polls
    clients: [10.0.0.0/24]
    units: [10]
    functions: [read]
  - name: breaker
    clients: [10.0.0.5]
    units: [10]
    functions: [select, operate]
    groups: [g12v1]
    indexes: [0-3]
"""


def test_parse_dnp3_policy() -> None:
    p = parse_policy(POLICY)
    assert p.protocol == "dnp3" and p.action == "drop"  # a DNP3 gateway drops by default
    assert p.rules[0].functions == {13, 14}
    assert p.rules[2].groups == {(12, 1)} and p.rules[2].indexes == ((0, 3),)
    assert parse_policy("protocol: dnp3\nrules:\n  - groups: [12, g30]\n").rules[0].groups \
        == {(12, None), (30, None)}


@pytest.mark.parametrize(("text", "error"), [
    ("protocol: dnp3\nrules:\n  - addresses: [1]\n", "<policy>:3: 'addresses' is not a dnp3"),
    ("rules:\n  - groups: [g12v1]\n", "<policy>:2: 'groups' is not a modbus rule field; add "
                                       "'protocol: dnp3'"),
    ("protocol: dnp3\nrules:\n  - groups: [x12]\n", "group 'x12' must look like 12, g12"),
    ("protocol: dnp3\nrules:\n  - functions: [129]\n", "dnp3 function code 129 is outside 0..33"),
    ("protocol: iec104\n", "protocol must be one of modbus, dnp3"),
])
def test_bad_dnp3_policies(text: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error.replace("[", r"\[").replace(".", r"\.")):
        parse_policy(text)


def test_decide_dnp3() -> None:
    p = parse_policy(POLICY)
    crob = ObjectHeader(12, 1, 0x17, count=1, indexes=(2,))
    req = request_of_fragment(10, ApplicationRequest(FunctionCode.SELECT, 0, (crob,)))
    assert req == Dnp3Request(10, 3, ((12, 1),), (2,))
    assert decide_dnp3(req, "10.0.0.5", p).allow
    far = Dnp3Request(10, 3, ((12, 1),), (7,))
    v = decide_dnp3(far, "10.0.0.5", p)
    assert not v.allow and v.iin == IIN.PARAMETER_ERROR and "closest rule breaker" in v.reason
    v = decide_dnp3(Dnp3Request(10, 3, ((41, 2),), (1,)), "10.0.0.5", p)
    assert v.iin == IIN.OBJECT_UNKNOWN
    v = decide_dnp3(Dnp3Request(10, 5, ((12, 1),), (1,)), "10.0.0.6", p)
    assert v.iin == IIN.NO_FUNC_CODE_SUPPORT and v.technique == "T0855"
    v = decide_dnp3(Dnp3Request(10, 13), "10.0.0.5", p)
    assert (v.rule, v.technique) == ("no-restarts", "T0816")
    assert decide_dnp3(Dnp3Request(10, 21, ((60, 2),)), "10.0.0.5", p).technique == "T0815"
    ranged = ObjectHeader(1, 2, 0x00, start=0, stop=3)
    assert request_of_fragment(10, ApplicationRequest(FunctionCode.READ, 0, (ranged,))).indexes \
        == (0, 1, 2, 3)


def test_firewall_cli_option_errors(tmp_path: Path) -> None:
    base = ["firewall", "--listen", "127.0.0.41:0", "--upstream", "127.0.0.41:502"]
    r = CliRunner().invoke(main, [*base, "--mode", "learn"])
    assert r.exit_code == 2 and "--mode learn needs --learn-out FILE" in r.output
    r = CliRunner().invoke(main, [*base, "--mode", "monitor", "--learn-out", "x.yaml"])
    assert r.exit_code == 2 and "--learn-out only applies to --mode learn" in r.output
    policy = tmp_path / "p.yaml"
    policy.write_text("protocol: dnp3\ndefault: deny\n")
    r = CliRunner().invoke(main, [*base, "--policy", str(policy), "--protocol", "modbus"])
    assert r.exit_code == 2 and "a dnp3 policy, but --protocol modbus" in r.output
