"""An incident as a STIX 2.1 bundle, built and checked with the ``stix2`` library (OASIS).

What each alert becomes:

- its technique: an ``attack-pattern`` with the ATT&CK for ICS ID as an external reference
  (``source_name: mitre-ics-attack``, as MITRE's own STIX data names it);
- its flow: ``ipv4-addr``/``ipv6-addr`` and ``network-traffic`` objects, wrapped in one
  ``observed-data`` per alert (first/last observed = the alert's capture time);
- an ``indicator`` whose STIX pattern matches that traffic (initiator, target, target port), with
  an ``indicates`` relationship to the attack pattern;
- a ``sighting`` of the indicator by the sensor ``identity``, pointing at the observed data.

Identifiers of the domain objects are UUIDv5 of the alert id, so the same incident gives the same
bundle (the stix2 library derives the cyber-observables' ids itself, also deterministically).
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, datetime

import stix2  # type: ignore[import-untyped]

from interlock.detect.alerts import Alert
from interlock.detect.incidents import Incident

NAMESPACE = uuid.UUID("6f1c3f0e-8d8b-4e0c-9a55-3a1f5c2b7e10")  # Interlock's STIX id namespace
ATTACK_SOURCE = "mitre-ics-attack"


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, '/'.join((kind, *parts)))}"


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _addr(value: str) -> stix2.IPv4Address | stix2.IPv6Address:
    if ipaddress.ip_address(value).version == 6:
        return stix2.IPv6Address(value=value)
    return stix2.IPv4Address(value=value)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def incident_bundle(incident: Incident, *, sensor: str, created: datetime, capture: str) -> stix2.Bundle:
    """The incident's objects in one bundle; ``created`` is the export time (injected)."""
    identity = stix2.Identity(
        id=_id("identity", sensor),
        name=sensor,
        identity_class="system",
        description="Interlock sensor that captured and analysed the traffic",
        created=created,
        modified=created,
    )
    objects: list[object] = [identity]
    patterns: dict[str, stix2.AttackPattern] = {}
    for alert in incident.alerts:
        if alert.technique not in patterns:
            patterns[alert.technique] = _attack_pattern(alert, identity.id, created)
            objects.append(patterns[alert.technique])
    for alert in incident.alerts:
        objects.extend(_alert_objects(alert, identity.id, patterns[alert.technique], created, capture))
    # Alerts on one connection share their addresses and traffic object (same derived id).
    unique = list({obj.id: obj for obj in objects}.values())  # type: ignore[attr-defined]
    return stix2.Bundle(objects=unique, id=_id("bundle", *(a.digest() for a in incident.alerts)))


def _attack_pattern(alert: Alert, identity: str, created: datetime) -> stix2.AttackPattern:
    number = alert.technique.removeprefix("T")
    return stix2.AttackPattern(
        id=_id("attack-pattern", alert.technique),
        name=alert.technique_name,
        created_by_ref=identity,
        created=created,
        modified=created,
        external_references=[
            {
                "source_name": ATTACK_SOURCE,
                "external_id": alert.technique,
                "url": f"https://attack.mitre.org/techniques/T{number}/",
            }
        ],
        kill_chain_phases=[
            {"kill_chain_name": ATTACK_SOURCE, "phase_name": t.lower().replace(" ", "-")}
            for t in alert.tactics
        ],
    )


def _alert_objects(
    alert: Alert, identity: str, pattern: stix2.AttackPattern, created: datetime, capture: str
) -> list[object]:
    f = alert.flow
    src, dst = _addr(f.src), _addr(f.dst)
    traffic = stix2.NetworkTraffic(
        src_ref=src.id,
        dst_ref=dst.id,
        src_port=f.sport,
        dst_port=f.dport,
        protocols=[f.transport, f.protocol],
    )
    seen = _dt(alert.ts)
    observed = stix2.ObservedData(
        id=_id("observed-data", alert.digest()),
        created_by_ref=identity,
        created=created,
        modified=created,
        first_observed=seen,
        last_observed=seen,
        number_observed=max(1, alert.count),
        object_refs=[src.id, dst.id, traffic.id],
        external_references=[
            {"source_name": "interlock-capture", "description": f"{capture} frames {_frames(alert)}"}
        ],
    )
    # The initiator and target as the alert names them (a response rule's flow is reversed).
    kind = "ipv6-addr" if ":" in alert.src else "ipv4-addr"
    indicator = stix2.Indicator(
        id=_id("indicator", alert.digest()),
        name=alert.title,
        description=alert.explanation,
        created_by_ref=identity,
        created=created,
        modified=created,
        indicator_types=["malicious-activity"],
        pattern_type="stix",
        pattern=(
            f"[network-traffic:src_ref.type = '{kind}' AND "
            f"network-traffic:src_ref.value = '{_quote(alert.src)}' AND "
            f"network-traffic:dst_ref.value = '{_quote(alert.dst)}']"
        ),
        valid_from=seen,
        labels=[alert.severity],
    )
    relation = stix2.Relationship(
        id=_id("relationship", alert.digest(), "indicates"),
        relationship_type="indicates",
        source_ref=indicator.id,
        target_ref=pattern.id,
        created_by_ref=identity,
        created=created,
        modified=created,
    )
    sighting = stix2.Sighting(
        id=_id("sighting", alert.digest()),
        sighting_of_ref=indicator.id,
        observed_data_refs=[observed.id],
        where_sighted_refs=[identity],
        created_by_ref=identity,
        created=created,
        modified=created,
        first_seen=seen,
        last_seen=seen,
        count=max(1, alert.count),
    )
    return [src, dst, traffic, observed, indicator, relation, sighting]


def _frames(alert: Alert) -> str:
    shown = ",".join(map(str, alert.frames[:20]))
    return shown + (",..." if len(alert.frames) > 20 else "")


def check(text: str) -> int:
    """Parse a bundle with stix2 (no custom content allowed); the number of objects.

    Raises ``ValueError`` naming what is wrong: the library's own errors are many classes.
    """
    try:
        json.loads(text)
        bundle = stix2.parse(text, allow_custom=False, version="2.1")
    except Exception as exc:  # stix2 raises STIXError subclasses, ValueError, ...
        raise ValueError(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not isinstance(bundle, stix2.Bundle):
        raise ValueError(f"not a bundle but {getattr(bundle, 'type', type(bundle).__name__)}")
    return len(bundle.objects)
