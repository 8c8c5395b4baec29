"""The drill's ATT&CK-for-ICS technique library: one module per protocol family.

``TECHNIQUES`` maps a technique id (``modbus.write_register``, ``dnp3.cold_restart``, ...) to
its :class:`~interlock.drill.techniques.base.Technique`; :func:`execute` runs one against a
range device and returns the ground-truth :class:`~interlock.drill.techniques.base.Action`
records. The boundary is asked first, so a technique can never touch an endpoint the range did
not start: a refusal raises ``TargetRefused`` before any socket exists.

Frames are built with Interlock's own codecs rather than a protocol library's client, because
the attacker needs malformed and unusual frames and the drill needs byte-exact ground truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from interlock.drill.techniques import dnp3, iec104, mitm, modbus, s7
from interlock.drill.techniques.base import Action, Context, Target, Technique
from interlock.range.boundary import Boundary, TargetRefused

TECHNIQUES: dict[str, Technique] = {
    t.id: t for family in (modbus, dnp3, s7, iec104, mitm) for t in family.TECHNIQUES
}

# Names a scenario may use for a target's protocol, mapped to the decoder's protocol names.
PROTOCOL_ALIASES = {"modbus": "modbus", "modbus/tcp": "modbus", "mbtcp": "modbus", "dnp3": "dnp3",
                    "s7": "s7comm", "s7comm": "s7comm", "iec104": "iec104", "iec-104": "iec104",
                    "iec60870-5-104": "iec104", "iec60870_104": "iec104"}


def get(technique_id: str) -> Technique:
    """The technique with this id; ``KeyError`` listing the known ids otherwise."""
    try:
        return TECHNIQUES[technique_id]
    except KeyError:
        known = ", ".join(sorted(TECHNIQUES))
        raise KeyError(f"unknown technique {technique_id!r}; known: {known}") from None


def resolve_params(tech: Technique, params: Mapping[str, object] | None) -> dict[str, object]:
    """The technique's defaults overridden by ``params``; ``ValueError`` naming an unknown one."""
    given = dict(params or {})
    unknown = sorted(set(given) - set(tech.params))
    if unknown:
        raise ValueError(f"{tech.id}: unknown parameter(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(sorted(tech.params)) or '(none)'}")
    return {**tech.params, **given}


async def execute(technique_id: str, target: Target, params: Mapping[str, object] | None = None, *,
                  boundary: Boundary, source_host: str = "127.0.0.66",
                  now: Callable[[], float] = time.time, timeout_s: float = 2.0) -> list[Action]:
    """Run one technique against ``target`` from ``source_host`` and return its Actions.

    Order matters: the boundary check comes first (``TargetRefused`` before anything else, and
    long before a socket), then the id and the parameters are validated.
    """
    boundary.check(target.host, target.port)
    tech = get(technique_id)
    protocol = PROTOCOL_ALIASES.get(target.protocol.lower(), target.protocol.lower())
    if protocol != tech.protocol:
        raise ValueError(f"{tech.id} speaks {tech.protocol}, but target {target.name or target.endpoint} "
                         f"is {target.protocol}")
    ctx = Context(tech, target, resolve_params(tech, params), boundary, source_host, now, timeout_s)
    return await tech.run(ctx)


__all__ = ["TECHNIQUES", "Action", "Target", "TargetRefused", "Technique", "execute", "get", "resolve_params"]
