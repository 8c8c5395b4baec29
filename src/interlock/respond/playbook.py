"""Response playbooks: YAML data naming the steps to take against one incident.

A playbook (``playbooks/*.yaml`` at the repository root, shipped inside the package) is::

    name: contain-modbus-attacker
    description: ...
    steps:
      - kind: block          # deny the attacker in a running firewall's policy file
        policy: /etc/interlock/plc3.yaml
      - kind: quarantine     # drop the attacker's traffic inside an Interlock network namespace
        namespace: ilk-plant
      - kind: safe_state     # write the plant's safe-state registers (loopback PLCs only)
        host: 127.0.0.20
        port: 5020
        unit: 1
        writes: [[10, 0], [11, 1]]
      - kind: notify         # a JSON line to a file, or standard output
        file: notifications.jsonl
        message: "blocked {attacker} attacking {target}"

Text fields may name ``{attacker}``, ``{target}``, ``{incident}``, ``{severity}`` and
``{techniques}``; they are filled from the incident. :func:`plan` turns a playbook and an
incident into :class:`Action` values, each with a one-line ``text`` (what a dry run prints) and
a ``run()`` that does it and returns what happened, or raises :class:`StepFailed`.

Safety rules (docs/firewall.md, "Playbooks"): ``quarantine`` only touches a namespace whose name
starts with ``ilk-`` *and* which carries Interlock's marker file
(``/run/interlock/netns/NAME``, written by :func:`interlock.respond.netns.create_namespace`);
``safe_state`` only writes to loopback endpoints, registered in and checked by a
:class:`~interlock.range.boundary.Boundary`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from interlock.protocols.modbus import (
    WriteSingleCoilRequest,
    WriteSingleRegisterRequest,
    build_adu,
)
from interlock.range.boundary import Boundary, TargetRefused
from interlock.respond.netns import MARKER_DIR, NAME_PREFIX, namespace_exists
from interlock.respond.policy import PolicyError, parse_policy
from interlock.yamlnodes import Node, NodeError, compose, located

KINDS = ("block", "quarantine", "safe_state", "notify")
FIELDS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "block": ({"policy"}, {"client", "name"}),
    "quarantine": ({"namespace"}, {"host", "name"}),
    "safe_state": ({"host", "port", "unit", "writes"}, {"table", "timeout", "name"}),
    "notify": (set(), {"file", "message", "name"}),
}
CONTEXT_KEYS = ("attacker", "target", "incident", "severity", "techniques")


class PlaybookError(ValueError):
    """A playbook or incident that cannot be used: ``FILE:LINE: reason``."""


class StepFailed(RuntimeError):
    """A step could not be carried out; the message says what happened and what to check."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    name: str
    line: int
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Playbook:
    name: str
    description: str
    steps: tuple[Step, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Incident:
    """What a playbook needs from an incident: who attacked what."""

    id: str
    attacker: str
    target: str
    severity: str = "unknown"
    techniques: tuple[str, ...] = ()

    def context(self) -> dict[str, str]:
        return {"attacker": self.attacker, "target": self.target, "incident": self.id,
                "severity": self.severity, "techniques": ", ".join(self.techniques)}


@dataclass(frozen=True, slots=True)
class Action:
    step: Step
    text: str  # what will be done, with every value filled in
    run: Callable[[], str] = field(compare=False)


# --- loading


def _fail(source: str, node: Node, reason: str) -> PlaybookError:
    return PlaybookError(located(source, node.line, reason))


def _check_template(source: str, node: Node, text: str) -> None:
    for key in re.findall(r"{([^{}]*)}", text):
        if key not in CONTEXT_KEYS:
            raise _fail(source, node, f"unknown placeholder {{{key}}}; known: "
                        + ", ".join(f"{{{k}}}" for k in CONTEXT_KEYS))


def parse_playbook(text: str, source: str = "<playbook>") -> Playbook:
    try:
        root = compose(text, mode="raw")  # the shape and lines; the values come from safe_load
    except NodeError as e:
        raise PlaybookError(located(source, e.at(1), f"not valid YAML: {e.problem}")) from None
    if root is None or not root.is_mapping:
        raise PlaybookError(located(source, 1, "a playbook is a mapping with name and steps"))
    for key in root.mapping():
        if key not in ("name", "description", "steps"):
            raise PlaybookError(located(source, root.key_line(key), f"unknown key {key!r} "
                                        "(known: description, name, steps)"))
    step_nodes = root.mapping()["steps"].sequence() if "steps" in root.mapping() else []
    if not step_nodes:  # missing, not a list, or an empty one
        raise PlaybookError(located(source, 1, "no steps; add 'steps:' with at least one step"))
    data = yaml.safe_load(text)
    steps = []
    for i, (node, raw) in enumerate(zip(step_nodes, data["steps"], strict=True)):
        if not isinstance(raw, dict) or "kind" not in raw:
            raise _fail(source, node, "a step is a mapping with a 'kind'")
        kind = str(raw["kind"])
        if kind not in KINDS:
            raise _fail(source, node, f"unknown step kind {kind!r}; use one of {', '.join(KINDS)}")
        required, optional = FIELDS[kind]
        params = {k: v for k, v in raw.items() if k != "kind"}
        missing = required - set(params)
        if missing:
            raise _fail(source, node, f"{kind} step needs {', '.join(sorted(missing))}")
        extra = set(params) - required - optional
        if extra:
            raise _fail(source, node, f"unknown field {sorted(extra)[0]!r} in a {kind} step "
                        f"(known: {', '.join(sorted(required | optional))})")
        for value in params.values():
            if isinstance(value, str):
                _check_template(source, node, value)
        if kind == "safe_state":
            _check_safe_state(source, node, params)
        steps.append(Step(kind, str(params.get("name", f"step {i + 1} ({kind})")),
                          node.line, params))
    name = str(data.get("name") or Path(source).stem)
    return Playbook(name, str(data.get("description") or ""), tuple(steps), source)


def _check_safe_state(source: str, node: Node, p: Mapping[str, Any]) -> None:
    writes = p["writes"]
    if not isinstance(writes, list) or not writes or not all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(x, int) for x in w)
            and 0 <= w[0] <= 0xFFFF and 0 <= w[1] <= 0xFFFF for w in writes):
        raise _fail(source, node, "writes must be a list of [address, value] pairs, each "
                    "0..65535, e.g. [[10, 0], [11, 1]]")
    if not isinstance(p["port"], int) or not 0 < p["port"] <= 0xFFFF:
        raise _fail(source, node, f"port {p['port']!r} must be 1..65535")
    if not isinstance(p["unit"], int) or not 0 <= p["unit"] <= 255:
        raise _fail(source, node, f"unit {p['unit']!r} must be 0..255")
    if p.get("table", "holding_registers") not in ("holding_registers", "coils"):
        raise _fail(source, node, "table must be holding_registers or coils")


def load_playbook(path: Path) -> Playbook:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PlaybookError(f"{path}:0: cannot read the playbook: {e}") from None
    return parse_playbook(text, str(path))


# --- planning


def plan(playbook: Playbook, incident: Incident, *, boundary: Boundary | None = None,
         echo: Callable[[str], None] = print) -> list[Action]:
    """The actions of ``playbook`` for ``incident``; nothing is done until ``run()``."""
    ctx = incident.context()
    boundary = boundary if boundary is not None else Boundary()
    out = []
    for step in playbook.steps:
        p = {k: v.format_map(ctx) if isinstance(v, str) else v for k, v in step.params.items()}
        out.append(_action(step, p, incident, playbook, boundary, echo))
    return out


def _action(step: Step, p: dict[str, Any], incident: Incident, playbook: Playbook,
            boundary: Boundary, echo: Callable[[str], None]) -> Action:
    if step.kind == "block":
        client = str(p.get("client", incident.attacker))
        path = Path(p["policy"])
        return Action(step, f"block: add a deny rule for {client} at the top of the firewall "
                      f"policy {path} (a running firewall reloads it within a second)",
                      lambda: block(path, client, f"block-{client}"))
    if step.kind == "quarantine":
        host, ns = str(p.get("host", incident.attacker)), str(p["namespace"])
        return Action(step, f"quarantine: in network namespace {ns}, nftables drops all traffic "
                      f"from and to {host}", lambda: quarantine(ns, host))
    if step.kind == "safe_state":
        host, port, unit = str(p["host"]), int(p["port"]), int(p["unit"])
        writes = [(int(a), int(v)) for a, v in p["writes"]]
        table = str(p.get("table", "holding_registers"))
        shown = ", ".join(f"{a}={v}" for a, v in writes)
        return Action(step, f"safe_state: write {table} {shown} to unit {unit} at {host}:{port}",
                      lambda: safe_state(boundary, host, port, unit, writes, table,
                                         float(p.get("timeout", 2.0))))
    message = str(p.get("message", "incident {incident}: {attacker} -> {target}".format_map(
        incident.context())))
    target = p.get("file")
    where = f"append to {target}" if target else "print"
    return Action(step, f"notify: {where}: {message}",
                  lambda: notify(Path(target) if target else None, message, incident, playbook,
                                 echo))


# --- the steps


def block(path: Path, client: str, name: str) -> str:
    """Put ``- {name, action: deny, clients: [client]}`` first in the policy at ``path``.

    The rule is inserted as text after the ``rules:`` line, so the engineer's comments and
    layout survive; the result is parsed before it replaces the file (atomically), so a running
    firewall never reloads a broken policy."""
    try:
        ipaddress.ip_network(client, strict=False)
    except ValueError:
        raise StepFailed(f"block: {client!r} is not an IP address; the incident names no "
                         "attacker address") from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise StepFailed(f"block: cannot read the policy {path}: {e.strerror}; check the "
                         "playbook's policy path") from None
    try:
        before = parse_policy(text, str(path))
    except PolicyError as e:
        raise StepFailed(f"block: the policy is broken before the change: {e}") from None
    if before.rules and before.rules[0].name == name and before.rules[0].action == "deny":
        return f"{client} already blocked by rule {name} in {path}"
    rule = f"{{name: {name}, action: deny, clients: [{client}]}}"
    inserted = _insert_rule(text, rule)
    try:
        after = parse_policy(inserted, str(path)) if inserted is not None else None
    except PolicyError:
        after = None
    if inserted is not None and after is not None and after.rules[0].name == name:
        new = inserted
    else:
        # a layout the text insertion does not understand (flow style...): rewrite the document
        doc = yaml.safe_load(text) or {}
        doc["rules"] = [{"name": name, "action": "deny", "clients": [client]},
                        *(doc.get("rules") or [])]
        new = "# rewritten by interlock respond (block)\n" + yaml.safe_dump(doc, sort_keys=False)
        parse_policy(new, str(path))
    tmp = path.with_name(f".{path.name}.interlock-{os.getpid()}")
    try:
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StepFailed(f"block: cannot write {path}: {e.strerror}") from None
    return f"rule {name} denies {client} first in {path}"


def _insert_rule(text: str, rule: str) -> str | None:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if re.match(r"^rules:\s*(#.*)?$", line):
            indent = "  "
            for nxt in lines[i + 1:]:
                m = re.match(r"^(\s*)- ", nxt)
                if m:
                    indent = m.group(1)
                    break
                if nxt.strip() and not nxt.lstrip().startswith("#"):
                    break
            return "".join([*lines[: i + 1], f"{indent}- {rule}\n", *lines[i + 1:]])
    if not re.search(r"^rules:", text, re.M):
        return text.rstrip("\n") + f"\nrules:\n  - {rule}\n"
    return None


def _run(cmd: list[str]) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StepFailed(f"quarantine: {' '.join(cmd)} could not run: {e}; install iproute2 "
                         "and nftables") from None
    if r.returncode:
        raise StepFailed(f"quarantine: {' '.join(cmd)} failed: {r.stderr.strip()}")


def check_namespace(ns: str) -> None:
    """Refuse any namespace Interlock did not create (prefix and marker file)."""
    if not ns.startswith(NAME_PREFIX):
        raise StepFailed(f"quarantine: refusing namespace {ns!r}: Interlock only changes "
                         f"namespaces it created, named {NAME_PREFIX}*")
    if not (MARKER_DIR / ns).is_file():
        raise StepFailed(f"quarantine: refusing namespace {ns!r}: no Interlock marker "
                         f"{MARKER_DIR / ns}; create it with interlock.respond.netns")
    if not namespace_exists(ns):
        raise StepFailed(f"quarantine: namespace {ns!r} does not exist (ip netns list)")


def quarantine(ns: str, host: str) -> str:
    check_namespace(ns)
    try:
        family = "ip6" if ipaddress.ip_address(host).version == 6 else "ip"
    except ValueError:
        raise StepFailed(f"quarantine: {host!r} is not an IP address") from None
    nft = ["ip", "netns", "exec", ns, "nft"]
    _run([*nft, "add", "table", "inet", "interlock"])
    for chain, hook in (("q_in", "input"), ("q_out", "output"), ("q_fwd", "forward")):
        # priority -10: before any accept rule of the namespace's own tables
        _run([*nft, "add", "chain", "inet", "interlock", chain,
              f"{{ type filter hook {hook} priority -10 ; policy accept ; }}"])
    _run([*nft, "add", "rule", "inet", "interlock", "q_in", family, "saddr", host, "drop"])
    _run([*nft, "add", "rule", "inet", "interlock", "q_out", family, "daddr", host, "drop"])
    _run([*nft, "add", "rule", "inet", "interlock", "q_fwd", family, "saddr", host, "drop"])
    _run([*nft, "add", "rule", "inet", "interlock", "q_fwd", family, "daddr", host, "drop"])
    return f"{host} quarantined in {ns} (table inet interlock)"


def safe_state(boundary: Boundary, host: str, port: int, unit: int,
               writes: list[tuple[int, int]], table: str = "holding_registers",
               timeout: float = 2.0) -> str:
    """Write each (address, value) with FC6 (FC5 for coils) and check every echo."""
    try:
        boundary.register(host, port, "safe_state PLC")
        boundary.check(host, port)
    except TargetRefused as e:
        raise StepFailed(f"safe_state: {e}") from None
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            for tid, (address, value) in enumerate(writes, start=1):
                pdu = (WriteSingleCoilRequest(address, bool(value)) if table == "coils"
                       else WriteSingleRegisterRequest(address, value))
                s.sendall(build_adu(tid, unit, pdu))
                head = _recv(s, 7)
                body = _recv(s, struct.unpack(">H", head[4:6])[0] - 1)
                if body[0] & 0x80:
                    raise StepFailed(f"safe_state: {host}:{port} unit {unit} refused the write "
                                     f"{address}={value} with exception {body[1]}")
    except OSError as e:
        raise StepFailed(f"safe_state: {host}:{port}: {e.strerror or e}; is the PLC up?") \
            from None
    return f"{len(writes)} {table} written to unit {unit} at {host}:{port}"


def _recv(s: socket.socket, n: int) -> bytes:
    data = s.recv(n, socket.MSG_WAITALL)
    if len(data) < n:
        raise StepFailed("safe_state: the PLC closed the connection mid-response")
    return data


def notify(path: Path | None, message: str, incident: Incident, playbook: Playbook,
           echo: Callable[[str], None]) -> str:
    line = json.dumps({"ts": time.time(), "playbook": playbook.name, "incident": incident.id,
                       "attacker": incident.attacker, "target": incident.target,
                       "severity": incident.severity, "message": message})
    if path is None:
        echo(line)
        return "printed"
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError as e:
        raise StepFailed(f"notify: cannot append to {path}: {e.strerror}") from None
    return f"appended to {path}"


# --- incidents


def incident_from_json(path: Path) -> Incident:
    """An incident file: the ledger's incident body (attacker, target, ...), or an incident
    as ``interlock detect`` groups it (src, dst), or a list of alerts (the first one's)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise PlaybookError(f"{path}:0: cannot read the incident: {e}") from None
    except json.JSONDecodeError as e:
        raise PlaybookError(f"{path}:{e.lineno}: not JSON: {e.msg}") from None
    return incident_from_body(doc, path.stem, str(path))


def incident_from_body(doc: Any, default_id: str, source: str) -> Incident:
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        doc = {**doc[0], "techniques": list(dict.fromkeys(a.get("technique") for a in doc))}
    if not isinstance(doc, dict):
        raise PlaybookError(f"{source}:1: an incident is a JSON object with attacker and target")
    attacker = doc.get("attacker", doc.get("src"))
    target = doc.get("target", doc.get("dst"))
    if not attacker or not target:
        raise PlaybookError(f"{source}:1: the incident names no attacker/target (keys "
                            "'attacker' and 'target', or 'src' and 'dst')")
    techniques = doc.get("techniques") or ([doc["technique"]] if "technique" in doc else [])
    return Incident(str(doc.get("id", default_id)), str(attacker), str(target),
                    str(doc.get("severity", "unknown")), tuple(str(t) for t in techniques if t))
