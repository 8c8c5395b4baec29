"""Firewall policy: a YAML file of allow/deny rules and the pure ``decide()`` that applies it.

A policy is data (house style): ``default`` (allow or deny), ``action`` (what a block does:
``exception``, ``drop`` or ``reset``), an optional ``max_rate`` (requests per second per client)
and ``rules``, tried in order; the first rule that matches every field it names wins. A rule names
any of ``clients`` (IPs or CIDRs), ``units``, ``functions`` (codes or ``FunctionCode`` names),
``addresses`` and ``values`` (ranges ``"a-b"``, single numbers or ``[a, b]``). See docs/firewall.md.

When nothing matches and the default is deny, the exception code is the one a gateway would send
for the *closest* allow rule of that client and unit: no rule allows the function ->
ILLEGAL_FUNCTION; one allows the function but not the address -> ILLEGAL_DATA_ADDRESS; one allows
the address but not the written value -> ILLEGAL_DATA_VALUE.

>>> p = parse_policy("default: deny\\nrules:\\n  - functions: [3]\\n    addresses: [0-9]\\n")
>>> decide(request_of(1, ReadHoldingRegistersRequest(20, 2)), "10.0.0.5", p).exception
<ExceptionCode.ILLEGAL_DATA_ADDRESS: 2>
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from interlock.protocols.modbus import (
    ExceptionCode,
    FunctionCode,
    MaskWriteRegisterRequest,
    ModbusPdu,
    ReadCoilsRequest,
    ReadDiscreteInputsRequest,
    ReadFifoQueueRequest,
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    ReadWriteMultipleRegistersRequest,
    WriteMultipleCoilsRequest,
    WriteMultipleRegistersRequest,
    WriteSingleCoilRequest,
    WriteSingleRegisterRequest,
)
from interlock.yamlnodes import Node, NodeError, compose, located

Action = Literal["allow", "deny"]
BlockAction = Literal["exception", "drop", "reset"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Span = tuple[int, int]  # inclusive

# Function codes that change the device's state; a block of one is "Unauthorized Command Message".
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16, 21, 22, 23})
RULE_KEYS = frozenset({"name", "action", "clients", "units", "functions", "addresses", "values",
                       "groups", "indexes"})
POLICY_KEYS = frozenset({"protocol", "default", "action", "max_rate", "rules"})
Protocol = Literal["modbus", "dnp3"]
GroupVariation = tuple[int, int | None]  # (group, variation); None: any variation


class PolicyError(ValueError):
    """A policy file that cannot be used; the message starts with ``FILE:LINE:``."""


@dataclass(frozen=True, slots=True)
class Request:
    """What a policy looks at in one Modbus request, whatever its function code."""

    unit: int
    function: int
    spans: tuple[Span, ...] = ()  # address ranges touched (read and write), inclusive
    values: tuple[int, ...] = ()  # values written (coils as 0/1)

    @property
    def writes(self) -> bool:
        return self.function in WRITE_FUNCTIONS


def _span(address: int, quantity: int) -> Span:
    return (address, address + max(quantity, 1) - 1)


def request_of(unit: int, pdu: ModbusPdu, function: int | None = None) -> Request:
    """The policy view of a decoded request PDU; pass ``function`` if the wire bytes are at
    hand (the proxy has them), else it is found by building the PDU."""
    fc = _function_code(pdu) if function is None else function
    match pdu:
        case (ReadCoilsRequest() | ReadDiscreteInputsRequest() | ReadHoldingRegistersRequest()
              | ReadInputRegistersRequest()):
            return Request(unit, fc, (_span(pdu.address, pdu.quantity),))
        case WriteSingleCoilRequest():
            return Request(unit, fc, ((pdu.address, pdu.address),), (int(pdu.value),))
        case WriteSingleRegisterRequest():
            return Request(unit, fc, ((pdu.address, pdu.address),), (pdu.value,))
        case WriteMultipleCoilsRequest():
            bits = tuple((pdu.outputs_value[i // 8] >> (i % 8)) & 1 for i in range(pdu.quantity))
            return Request(unit, fc, (_span(pdu.address, pdu.quantity),), bits)
        case WriteMultipleRegistersRequest():
            return Request(unit, fc, (_span(pdu.address, len(pdu.registers)),),
                           tuple(pdu.registers))
        case MaskWriteRegisterRequest():
            # The value written depends on the register's current content; the masks are checked.
            return Request(unit, fc, ((pdu.address, pdu.address),), (pdu.and_mask, pdu.or_mask))
        case ReadWriteMultipleRegistersRequest():
            return Request(unit, fc, (_span(pdu.read_address, pdu.read_quantity),
                                      _span(pdu.write_address, len(pdu.write_registers))),
                           tuple(pdu.write_registers))
        case ReadFifoQueueRequest():
            return Request(unit, fc, ((pdu.address, pdu.address),))
    return Request(unit, fc)


def _function_code(pdu: ModbusPdu) -> int:
    from interlock.protocols.modbus import build_pdu

    # build_pdu knows every message's code; one table, not a second copy of it here
    return build_pdu(pdu)[0]


@dataclass(frozen=True, slots=True)
class Rule:
    line: int
    name: str
    action: Action = "allow"
    clients: tuple[Network, ...] | None = None
    units: frozenset[int] | None = None
    functions: frozenset[int] | None = None
    addresses: tuple[Span, ...] | None = None
    values: tuple[Span, ...] | None = None
    groups: frozenset[GroupVariation] | None = None  # DNP3 only
    indexes: tuple[Span, ...] | None = None  # DNP3 only: point indexes


@dataclass(frozen=True, slots=True)
class Policy:
    default: Action = "allow"
    action: BlockAction = "exception"
    max_rate: float | None = None
    rules: tuple[Rule, ...] = ()
    source: str = "<policy>"
    protocol: Protocol = "modbus"


MONITOR_POLICY = Policy(source="<none>")  # no policy file: everything allowed, nothing blocked


@dataclass(frozen=True, slots=True)
class Verdict:
    allow: bool
    rule: str  # the rule's name, "default" or "rate"
    reason: str  # one sentence with the values involved
    exception: ExceptionCode | None = None
    technique: str = "T0855"  # Unauthorized Command Message; T0836 Modify Parameter for values
    iin: int = 0  # DNP3 only: the IIN2 bit an outstation would set for this refusal


def _within(items: Iterable[int], ranges: tuple[Span, ...]) -> bool:
    return all(any(lo <= v <= hi for lo, hi in ranges) for v in items)


def _spans_within(spans: tuple[Span, ...], ranges: tuple[Span, ...]) -> bool:
    return all(any(lo <= a and b <= hi for lo, hi in ranges) for a, b in spans)


FULL = 3  # the depth of a request that meets every field of a rule


@dataclass(frozen=True, slots=True)
class Match:
    """Where a request lands in a policy: the first rule it meets in full (``rule``), or, with
    ``rule`` None, the default, ``depth`` being how far the closest allow rule let it get (-1:
    none applied to its client and unit) and ``closest`` that rule's name when it got past the
    function (the rule an engineer would widen)."""

    rule: Rule | None
    depth: int = -1
    closest: str | None = None

    @property
    def name(self) -> str:
        return "default" if self.rule is None else self.rule.name

    def allows(self, policy: Policy) -> bool:
        return (self.rule.action if self.rule is not None else policy.default) == "allow"


def match(policy: Policy, client: str, unit: int, depth: Callable[[Rule], int]) -> Match:
    """Walk ``policy``'s rules in order for a request to ``unit`` from ``client``; ``depth(rule)``
    is how far the request gets through the rule's protocol fields (0 function, 1 and 2 the next
    fields, ``FULL``) once the rule's clients and units admit it."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(client)
    except ValueError:
        ip = None
    best, closest = -1, ""
    for rule in policy.rules:
        if rule.clients is not None and (ip is None or not any(ip in n for n in rule.clients)):
            continue
        if rule.units is not None and unit not in rule.units:
            continue
        reached = depth(rule)
        if reached == FULL:
            return Match(rule)
        if rule.action == "allow" and reached > best:
            best, closest = reached, rule.name
    return Match(None, best, closest if best > 0 else None)


def _depth(rule: Rule, req: Request) -> int:
    """How far ``req`` gets through ``rule``: 0 function, 1 address, 2 value, 3 full match."""
    if rule.functions is not None and req.function not in rule.functions:
        return 0
    if rule.addresses is not None and not _spans_within(req.spans, rule.addresses):
        return 1
    if rule.values is not None and not _within(req.values, rule.values):
        return 2
    return 3


_BY_DEPTH = {0: ExceptionCode.ILLEGAL_FUNCTION, 1: ExceptionCode.ILLEGAL_DATA_ADDRESS,
             2: ExceptionCode.ILLEGAL_DATA_VALUE}


def _describe(req: Request) -> str:
    try:
        name = FunctionCode(req.function).name
    except ValueError:
        name = f"function {req.function}"
    where = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in req.spans)
    text = f"{name} to unit {req.unit}" + (f" at {where}" if where else "")
    if req.values:
        shown = ", ".join(map(str, req.values[:8])) + (", ..." if len(req.values) > 8 else "")
        text += f" with values {shown}"
    return text


def decide(request: Request, client: str, policy: Policy) -> Verdict:
    """Allow or deny one request from ``client``; pure, the rate limit is :class:`RateLimiter`'s."""
    found = match(policy, client, request.unit, lambda rule: _depth(rule, request))
    if found.allows(policy):
        return Verdict(True, found.name, f"{_describe(request)} allowed by {found.name}")
    if found.rule is not None:  # a deny rule: refused for the most specific field it names
        rule = found.rule
        code = (ExceptionCode.ILLEGAL_DATA_VALUE if rule.values is not None
                else ExceptionCode.ILLEGAL_DATA_ADDRESS if rule.addresses is not None
                else ExceptionCode.ILLEGAL_FUNCTION)
        return _deny(request, client, rule.name, code)
    return _deny(request, client, "default", _BY_DEPTH.get(found.depth, ExceptionCode.ILLEGAL_FUNCTION),
                 found.closest)


def _deny(req: Request, client: str, rule: str, code: ExceptionCode,
          closest: str | None = None) -> Verdict:
    what = {ExceptionCode.ILLEGAL_FUNCTION: "function", ExceptionCode.ILLEGAL_DATA_ADDRESS:
            "address", ExceptionCode.ILLEGAL_DATA_VALUE: "value"}[code]
    # naming the rule that almost allowed it tells the engineer which line to widen, if any
    near = f"; closest rule {closest}" if closest else ""
    return Verdict(False, rule, f"{_describe(req)} from {client}: {what} not allowed "
                   f"({rule}{near})", code,
                   "T0836" if code is ExceptionCode.ILLEGAL_DATA_VALUE else "T0855")


class RateLimiter:
    """Token bucket per client (``rate`` requests/s, bursts of ``rate``); the clock is passed in.

    Mutable on purpose: it is the firewall's running state, kept apart from the frozen policy.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last time)

    def take(self, client: str, now: float) -> bool:
        tokens, last = self._buckets.get(client, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if ok else tokens, now)
        return ok


# --- loading


def _fail(source: str, node: Node, reason: str) -> PolicyError:
    return PolicyError(located(source, node.line, reason))


def _int(source: str, node: Node, what: str, lo: int, hi: int) -> int:
    if not node.is_scalar:
        raise _fail(source, node, f"{what} must be a number")
    try:
        value = int(str(node.value), 0)
    except ValueError:
        raise _fail(source, node, f"{what} {node.value!r} is not a number") from None
    if not lo <= value <= hi:
        raise _fail(source, node, f"{what} {value} is outside {lo}..{hi}")
    return value


def _seq(source: str, node: Node, what: str) -> list[Node]:
    if node.is_sequence:
        return list(node.value)
    if node.is_scalar:
        return [node]  # one item written without brackets
    raise _fail(source, node, f"{what} must be a list")


def _ranges(source: str, node: Node, what: str) -> tuple[Span, ...]:
    out = []
    for item in _seq(source, node, what):
        if item.is_sequence and len(item.value) == 2:
            lo, hi = (_int(source, n, what, 0, 0xFFFF) for n in item.value)
        elif item.is_scalar and "-" in str(item.value).strip("-"):
            a, _, b = str(item.value).partition("-")
            try:
                lo, hi = int(a, 0), int(b, 0)
            except ValueError:
                raise _fail(source, item, f"{what} {item.value!r} is not a range a-b") from None
        else:
            lo = hi = _int(source, item, what, 0, 0xFFFF)
        if not 0 <= lo <= hi <= 0xFFFF:
            raise _fail(source, item, f"{what} {lo}-{hi} must satisfy 0 <= a <= b <= 65535")
        out.append((lo, hi))
    return tuple(out)


def _functions(source: str, node: Node, protocol: Protocol = "modbus") -> frozenset[int]:
    from interlock.protocols.dnp3 import FunctionCode as Dnp3Function

    names: dict[str, int] = {k: int(v) for k, v in (
        Dnp3Function.__members__ if protocol == "dnp3" else FunctionCode.__members__).items()}
    lo, hi = (0, 33) if protocol == "dnp3" else (1, 127)  # DNP3: request codes only
    out = set()
    for item in _seq(source, node, "functions"):
        text = str(item.value) if item.is_scalar else ""
        if text.upper() in names:
            out.add(names[text.upper()])
        else:
            out.add(_int(source, item, f"{protocol} function code", lo, hi))
    return frozenset(out)


def _groups(source: str, node: Node) -> frozenset[GroupVariation]:
    """DNP3 object groups: ``12`` or ``g12`` (any variation), ``g12v1`` or ``12v1``."""
    out: set[GroupVariation] = set()
    for item in _seq(source, node, "groups"):
        text = str(item.value).strip().lower() if item.is_scalar else ""
        g, _, v = text.removeprefix("g").partition("v")
        if not g.isdigit() or (v and not v.isdigit()) or not 0 <= int(g) <= 255 \
                or (v and not 0 <= int(v) <= 255):
            raise _fail(source, item, f"group {item.value!r} must look like 12, g12 or g12v1")
        out.add((int(g), int(v) if v else None))
    return frozenset(out)


def _clients(source: str, node: Node) -> tuple[Network, ...]:
    out = []
    for item in _seq(source, node, "clients"):
        try:
            out.append(ipaddress.ip_network(str(item.value), strict=False))
        except ValueError:
            raise _fail(source, item, f"client {item.value!r} is not an IP address or CIDR") from None
    return tuple(out)


def _choice(source: str, node: Node, what: str, options: tuple[str, ...]) -> str:
    if not node.is_scalar or node.value not in options:
        raise _fail(source, node, f"{what} must be one of {', '.join(options)}")
    return str(node.value)


def _mapping(source: str, node: Node, what: str, keys: frozenset[str]) -> dict[str, Node]:
    if not node.is_mapping:
        raise _fail(source, node, f"{what} must be a mapping")
    for k in node.value:
        if k not in keys:
            raise PolicyError(located(source, node.key_line(k), f"unknown key {k!r} in {what} "
                                      f"(known: {', '.join(sorted(keys))})"))
    return node.mapping()


def _rule(source: str, node: Node, index: int, protocol: Protocol = "modbus") -> Rule:
    get = _mapping(source, node, "a rule", RULE_KEYS)
    # each protocol has its own fields; naming the other's is a mistake, not a no-op
    wrong = ("addresses", "values") if protocol == "dnp3" else ("groups", "indexes")
    for key in wrong:
        if key in get:
            hint = ("use groups and indexes (point indexes) for DNP3" if protocol == "dnp3"
                    else "add 'protocol: dnp3' at the top for a DNP3 policy")
            raise PolicyError(located(source, node.key_line(key),
                                      f"{key!r} is not a {protocol} rule field; {hint}"))
    unit_hi = 0xFFFF if protocol == "dnp3" else 255
    return Rule(
        line=node.line,
        name=str(get["name"].value) if "name" in get else f"rule {index + 1}",
        action="deny" if "action" in get and _choice(
            source, get["action"], "rule action", ("allow", "deny")) == "deny" else "allow",
        clients=_clients(source, get["clients"]) if "clients" in get else None,
        units=frozenset(_int(source, n, "unit", 0, unit_hi)
                        for n in _seq(source, get["units"], "units"))
        if "units" in get else None,
        functions=_functions(source, get["functions"], protocol) if "functions" in get else None,
        addresses=_ranges(source, get["addresses"], "address") if "addresses" in get else None,
        values=_ranges(source, get["values"], "value") if "values" in get else None,
        groups=_groups(source, get["groups"]) if "groups" in get else None,
        indexes=_ranges(source, get["indexes"], "index") if "indexes" in get else None,
    )


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """A :class:`Policy` from YAML text; :class:`PolicyError` ``SOURCE:LINE: reason`` if bad."""
    try:
        root = compose(text, mode="raw")  # scalars as written; the checks below read them
    except NodeError as e:
        raise PolicyError(located(source, e.at(1), f"not valid YAML: {e.problem}")) from None
    if root is None:
        raise PolicyError(located(source, 1, "empty policy; write at least 'default: allow' or 'deny'"))
    get = _mapping(source, root, "the policy", POLICY_KEYS)
    max_rate = None
    if "max_rate" in get:
        node = get["max_rate"]
        try:
            max_rate = float(node.value)
        except (TypeError, ValueError):
            raise _fail(source, node, "max_rate must be a number of requests per second") from None
        if max_rate <= 0:
            raise _fail(source, node, "max_rate must be positive")
    protocol: Protocol = "dnp3" if "protocol" in get and _choice(
        source, get["protocol"], "protocol", ("modbus", "dnp3")) == "dnp3" else "modbus"
    rules = tuple(_rule(source, n, i, protocol)
                  for i, n in enumerate(_seq(source, get["rules"], "rules"))
                  ) if "rules" in get else ()
    default = _choice(source, get["default"], "default", ("allow", "deny")) \
        if "default" in get else "allow"
    # a DNP3 gateway drops what it refuses (see docs/firewall.md); a Modbus one answers
    action = _choice(source, get["action"], "action", ("exception", "drop", "reset")) \
        if "action" in get else ("drop" if protocol == "dnp3" else "exception")
    return Policy(default="deny" if default == "deny" else "allow",
                  action="drop" if action == "drop" else "reset" if action == "reset"
                  else "exception",
                  max_rate=max_rate, rules=rules, source=source, protocol=protocol)


def load_policy(path: Path) -> Policy:
    """Read and parse a policy file; unreadable files are a :class:`PolicyError` too."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"{path}:0: cannot read the policy: {e}") from None
    return parse_policy(text, str(path))
