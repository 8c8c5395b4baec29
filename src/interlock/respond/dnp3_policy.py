"""DNP3 policy decisions: what a rule sees in one application request, and the pure ``decide``.

A policy with ``protocol: dnp3`` names, per rule, ``clients``, ``units`` (the outstation's link
destination address), ``functions`` (DNP3 codes or names: ``read``, ``select``, ``operate``,
``direct_operate``, ``cold_restart``...), ``groups`` (``g12v1``, ``g12``, ``12``) and ``indexes``
(point index ranges). Every object header of the request must be in ``groups`` and every point
index it names in ``indexes``. A denied request carries the IIN2 bit an outstation would set for
that reason, for the optional ``action: exception`` answer: function not allowed ->
NO_FUNC_CODE_SUPPORT, object group -> OBJECT_UNKNOWN, point index -> PARAMETER_ERROR.

>>> p = parse_policy("protocol: dnp3\\ndefault: deny\\nrules:\\n  - functions: [read]\\n")
>>> decide_dnp3(Dnp3Request(10, 5, ((12, 1),), (2,)), "10.0.0.9", p).technique
'T0855'
"""

from __future__ import annotations

from dataclasses import dataclass

from interlock.protocols.dnp3 import ApplicationRequest, FunctionCode
from interlock.protocols.dnp3.fields import IIN
from interlock.respond.policy import Policy, Rule, Span, Verdict, match, parse_policy  # noqa: F401

# Functions that change the outstation's state or its outputs (issue 8: select/operate, direct
# operate, writes, restarts and the application/unsolicited controls).
CONTROL_FUNCTIONS = frozenset({2, 3, 4, 5, 6, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 27, 31})
RESTARTS = frozenset({FunctionCode.COLD_RESTART, FunctionCode.WARM_RESTART})


@dataclass(frozen=True, slots=True)
class Dnp3Request:
    """What a policy looks at in one DNP3 request fragment."""

    destination: int  # outstation link address
    function: int
    objects: tuple[tuple[int, int], ...] = ()  # (group, variation) of each object header
    indexes: tuple[int, ...] = ()  # every point index named (ranges expanded, capped)

    @property
    def controls(self) -> bool:
        return self.function in CONTROL_FUNCTIONS


MAX_INDEXES = 4096  # a header naming 0..65535 is judged by its bounds, not 65,536 integers


def request_of_fragment(destination: int, frag: ApplicationRequest) -> Dnp3Request:
    objects: list[tuple[int, int]] = []
    indexes: list[int] = []
    for h in frag.headers:
        objects.append((h.group, h.variation))
        if h.indexes is not None:
            indexes.extend(h.indexes)
        elif h.range_code <= 2 and h.start is not None and h.stop is not None:
            if h.stop - h.start < MAX_INDEXES:
                indexes.extend(range(h.start, h.stop + 1))
            else:
                indexes.extend((h.start, h.stop))
        elif h.range_code <= 5 and h.start is not None:
            indexes.append(h.start)
        # range code 6 (all objects) and plain counts name no particular index
    return Dnp3Request(destination, int(frag.function), tuple(objects), tuple(indexes))


def function_name(code: int) -> str:
    try:
        return FunctionCode(code).name
    except ValueError:
        return f"function {code}"


def describe(req: Dnp3Request) -> str:
    text = f"{function_name(req.function)} to outstation {req.destination}"
    if req.objects:
        text += " objects " + ", ".join(f"g{g}v{v}" for g, v in dict.fromkeys(req.objects))
    if req.indexes:
        shown = sorted(set(req.indexes))
        text += " indexes " + ", ".join(map(str, shown[:8])) + (", ..." if len(shown) > 8 else "")
    return text


def _group_ok(rule: Rule, obj: tuple[int, int]) -> bool:
    assert rule.groups is not None
    return (obj[0], obj[1]) in rule.groups or (obj[0], None) in rule.groups


def _depth(rule: Rule, req: Dnp3Request) -> int:
    """How far ``req`` gets through ``rule``: 0 function, 1 group, 2 index, 3 full match."""
    if rule.functions is not None and req.function not in rule.functions:
        return 0
    if rule.groups is not None and not all(_group_ok(rule, o) for o in req.objects):
        return 1
    if rule.indexes is not None and not all(
            any(lo <= i <= hi for lo, hi in rule.indexes) for i in req.indexes):
        return 2
    return 3


_IIN_BY_DEPTH = {0: IIN.NO_FUNC_CODE_SUPPORT, 1: IIN.OBJECT_UNKNOWN, 2: IIN.PARAMETER_ERROR}
_WHAT = {IIN.NO_FUNC_CODE_SUPPORT: "function", IIN.OBJECT_UNKNOWN: "object group",
         IIN.PARAMETER_ERROR: "point index"}


def technique_of(function: int) -> str:
    """ATT&CK for ICS id of a blocked request: restarts T0816, disable unsolicited T0815 (the
    master loses its event reports), everything else T0855 Unauthorized Command Message."""
    if function in RESTARTS:
        return "T0816"
    if function == FunctionCode.DISABLE_UNSOLICITED:
        return "T0815"
    return "T0855"


def decide_dnp3(request: Dnp3Request, client: str, policy: Policy) -> Verdict:
    """Allow or deny one DNP3 request; ``Verdict.iin`` holds the IIN2 bit of a refusal."""
    found = match(policy, client, request.destination, lambda rule: _depth(rule, request))
    if found.allows(policy):
        return Verdict(True, found.name, f"{describe(request)} allowed by {found.name}")
    if found.rule is not None:  # a deny rule: refused for the most specific field it names
        rule = found.rule
        bit = (IIN.PARAMETER_ERROR if rule.indexes is not None
               else IIN.OBJECT_UNKNOWN if rule.groups is not None
               else IIN.NO_FUNC_CODE_SUPPORT)
        return _deny(request, client, rule.name, bit)
    return _deny(request, client, "default", _IIN_BY_DEPTH.get(found.depth, IIN.NO_FUNC_CODE_SUPPORT),
                 found.closest)


def _deny(req: Dnp3Request, client: str, rule: str, bit: IIN, closest: str | None = None
          ) -> Verdict:
    near = f"; closest rule {closest}" if closest else ""
    return Verdict(False, rule, f"{describe(req)} from {client}: {_WHAT[bit]} not allowed "
                   f"({rule}{near})", None, technique_of(req.function), iin=int(bit))
