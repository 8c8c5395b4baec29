"""Detection rules as data: loading, schema check, and the engine that runs them over records.

A rule is a YAML file with Sigma's header (title, id, status, description, references, author,
date, tags, logsource, detection, falsepositives, level). Its ``detection`` holds named
selections over the fields of the record schema (``docs/records.md``) and a ``condition`` that
joins them with ``and``/``or``/``not``; an optional ``aggregate`` block turns a rule about one
operation into a rule about behaviour over time (scans, floods, bursts). ``docs/detection.md``
is the reference of the language.

Why a hand-written evaluator and not pySigma: pySigma (2.x) parses Sigma and *converts* it into
the query language of a backend (Splunk, Elasticsearch, SQL...); it has no backend that
evaluates a rule against records in memory. Using it would mean converting to SQL and running an
embedded database over each Arrow batch, which loses the two things this module is for: windows
that carry over batch boundaries while a capture streams, and errors that point at the
file and line of the rule (pySigma keeps no YAML marks). Sigma's correlation rules are also a
separate document type, where a scan is one field in one rule here. What is kept from Sigma is
the format: header, tags, named selections, modifiers, one condition, so rules read the same.

Evaluation is columnar: each selection becomes a boolean mask over an Arrow batch computed with
``pyarrow.compute``; only rows that match become Python values. ``detail.<key>`` fields live in
the JSON ``detail`` column and are checked in Python, on the rows the other fields of the same
selection already matched.
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interlock.capture.records import CONNECTION_PROTOCOL, SCHEMA
from interlock.detect import attack
from interlock.detect.alerts import SEVERITIES, Alert, FlowRef, Severity
from interlock.protocols.registry import PROTOCOLS
from interlock.yamlnodes import Node, NodeError, compose

# --- the language's vocabulary -------------------------------------------------------------

INT_FIELDS = frozenset(
    {"frame", "sport", "dport", "unit", "transaction", "function_code", "address", "count"}
)
STR_FIELDS = frozenset(
    {"src", "dst", "transport", "protocol", "direction", "op_class", "function", "object",
     "status", "malformed"}
)
NOT_MATCHABLE = {
    "ts": "is the capture time; rules match what happened, windows (aggregate) handle time",
    "values": "is a list of data values; no modifier matches lists yet",
    "detail": "is a JSON object; match one of its keys as detail.<key>",
}
assert INT_FIELDS | STR_FIELDS | NOT_MATCHABLE.keys() == set(SCHEMA.names)

COMPARISONS = ("gt", "gte", "lt", "lte")
STRING_OPS = ("contains", "startswith", "endswith")
MODIFIERS = frozenset({*COMPARISONS, *STRING_OPS, "exists", "cidr", "expand", "all"})
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
# "tcp": the decoder's connection records (SYN, RST), seen only by rules that name it; "any"
# is every ICS protocol, so request counts and floods never count connection attempts.
SERVICES = frozenset({"any", "s7comm-plus", CONNECTION_PROTOCOL, *(p.name for p in PROTOCOLS)})
HEADER = (
    "title", "id", "status", "description", "references", "author", "date", "modified", "tags",
    "logsource", "detection", "falsepositives", "level",
)
EXTENSIONS = ("options", "level_unconfigured")  # Interlock's additions, documented in detection.md
TOP_KEYS = (*HEADER, *EXTENSIONS)
REQUIRED = ("title", "id", "status", "description", "tags", "logsource", "detection", "level")
AGGREGATE_KEYS = ("group_by", "window_s", "distinct", "gte")
REPEAT_KEYS = ("content", "within_s", "periodic_tolerance", "retry_field", "retry_s", "other_than")
SEQUENCE_KEYS = ("field", "modulo", "stream", "source", "within_s")
STATEFUL = ("aggregate", "repeat", "sequence")  # detection keys that are not selections
MAX_EVIDENCE_FRAMES = 10_000  # frames kept per alert; ``count`` still counts them all
MAX_DISTINCT = 10_000  # distinct values remembered per alert, for its explanation
_TECHNIQUE_TAG = re.compile(r"attack\.(t\d{4})$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


class RuleError(Exception):
    """A rule file that cannot be used; ``str()`` is ``FILE:LINE: reason``."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = str(path), line, reason


# --- YAML with line numbers (interlock.yamlnodes) ----------------------------------------------

def _compose(path: Path, text: str) -> Node:
    try:
        node = compose(text)
    except NodeError as exc:
        reason = exc.problem if exc.kind in ("key", "duplicate") else f"YAML error: {exc.problem}"
        raise RuleError(path, exc.at(1), reason) from None
    if node is None:
        raise RuleError(path, 1, "empty file: a rule needs title, id, ... (see docs/detection.md)")
    return node


# --- compiled rule ----------------------------------------------------------------------------

Op = Literal["eq", "contains", "startswith", "endswith", "gt", "gte", "lt", "lte", "exists", "cidr"]
Cond = tuple[Any, ...]  # ("sel", name) | ("not", c) | ("and", a, b) | ("or", a, b)


@dataclass(frozen=True, slots=True)
class Match:
    """One ``field|modifiers: values`` item. Values are any-of, or all-of with ``|all``."""

    field: str  # a record column, or detail.<key>[.<key>...]
    op: Op
    values: tuple[Any, ...]
    all: bool = False
    expand: bool = False  # values are %option% placeholders until the engine binds them


Group = tuple[Match, ...]  # AND
Selection = tuple[Group, ...]  # OR


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Behaviour over time: per ``group_by`` key, a sliding ``window_s`` of matching records
    fires when it holds ``gte`` records (or ``gte`` distinct values of ``distinct``)."""

    group_by: tuple[str, ...]
    window_s: float
    gte: int
    distinct: str | None = None


@dataclass(frozen=True, slots=True)
class Repeat:
    """Interlock: a matching record passes only when its ``content`` (record fields) equals an
    earlier matching record's within ``within_s``: a replay. Repeats at a steady interval (the
    last two gaps within ``periodic_tolerance`` of this one) are a periodic command, and a record
    with the same ``retry_field`` value within ``retry_s`` a retry: neither passes. With
    ``other_than``, only a repeat whose fields differ from the first sighting's passes (another
    connection: ``[src, sport]``)."""

    content: tuple[str, ...]
    within_s: float
    periodic_tolerance: float = 0.2
    retry_field: str | None = None
    retry_s: float = 0.0
    other_than: tuple[str, ...] = ()  # these fields must differ from the first sighting's


@dataclass(frozen=True, slots=True)
class SequenceCheck:
    """Interlock: per ``stream`` key, a matching record passes only when its ``field`` (a
    counter modulo ``modulo``) repeats or goes back from the stream's previous record, which came
    from another ``source`` no more than ``within_s`` before: a second sender in one
    conversation (masquerading, replay)."""

    field: str
    modulo: int
    stream: tuple[str, ...]
    source: tuple[str, ...]
    within_s: float


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    status: str
    description: str
    level: Severity
    techniques: tuple[str, ...]  # first one is the alert's technique
    tactics: tuple[str, ...]  # tactic shortnames from the tags (may be empty)
    service: str  # a protocol name or "any"
    selections: Mapping[str, Selection]
    condition: Cond
    aggregate: Aggregate | None = None
    repeat: Repeat | None = None
    sequence: SequenceCheck | None = None
    options: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    level_unconfigured: Severity | None = None
    references: tuple[str, ...] = ()
    author: str = ""
    date: str = ""
    tags: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    path: str = ""
    keys: tuple[str, ...] = ()  # top-level keys in file order (the corpus lint checks Sigma's order)


# --- loading and checking ----------------------------------------------------------------------


def load_rules(directory: Path) -> tuple[Rule, ...]:
    """Every ``*.yml``/``*.yaml`` under ``directory`` (recursively, in path order).

    Raises :class:`RuleError` for the first broken file, or when two files share an id.
    """
    if not directory.is_dir():
        raise RuleError(directory, 0, "not a directory of rules")
    paths = sorted(p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    if not paths:
        raise RuleError(directory, 0, "no rule files (*.yml) in this directory")
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in paths:
        rule = load_rule(path)
        if rule.id in seen:
            raise RuleError(path, 1, f"id {rule.id} is already used by {seen[rule.id]}")
        seen[rule.id] = str(path)
        rules.append(rule)
    return tuple(rules)


def load_rule(path: Path) -> Rule:
    """Read and check one rule file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(path, 0, f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise RuleError(path, 1, "not UTF-8 text") from None
    return parse_rule(text, path)


def parse_rule(text: str, path: Path | str = "<rule>") -> Rule:
    """Check a rule's text and compile it; :class:`RuleError` names the line of the problem."""
    path = Path(path)
    doc = _compose(path, text)
    return _Checker(path).rule(doc)


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, line: int, reason: str) -> RuleError:
        return RuleError(self.path, line, reason)

    def text(self, node: Node, name: str) -> str:
        if not isinstance(node.value, str) or not node.value.strip():
            raise self.fail(node.line, f"{name} must be non-empty text")
        return node.value.strip()

    def texts(self, node: Node, name: str) -> tuple[str, ...]:
        if not isinstance(node.value, list):
            raise self.fail(node.line, f"{name} must be a list of text")
        return tuple(self.text(item, f"each item of {name}") for item in node.value)

    def mapping(self, node: Node, name: str) -> dict[str, Node]:
        if not isinstance(node.value, dict):
            raise self.fail(node.line, f"{name} must be a mapping (key: value)")
        return cast(dict[str, Node], node.value)

    def rule(self, doc: Node) -> Rule:
        top = self.mapping(doc, "a rule file")
        for key in top:
            if key not in TOP_KEYS:
                raise self.fail(doc.key_lines[key], f"unknown field '{key}' (fields: {', '.join(TOP_KEYS)})")
        for key in REQUIRED:
            if key not in top:
                raise self.fail(doc.line, f"missing field '{key}'")
        rule_id = self.text(top["id"], "id")
        try:
            uuid.UUID(rule_id)
        except ValueError:
            raise self.fail(top["id"].line, f"id {rule_id!r} is not a UUID (make one: python -c "
                            "'import uuid; print(uuid.uuid4())')") from None
        status = self.text(top["status"], "status")
        if status not in STATUSES:
            raise self.fail(top["status"].line, f"status {status!r} is not one of {', '.join(STATUSES)}")
        level = self.level(top["level"], "level")
        level_unconfigured = self.level(top["level_unconfigured"], "level_unconfigured") \
            if "level_unconfigured" in top else None
        tags = self.texts(top["tags"], "tags")
        techniques, tactics = self.tags(tags, top["tags"], doc.key_lines["tags"])
        service = self.logsource(top["logsource"])
        options = self.options(top["options"]) if "options" in top else {}
        if level_unconfigured is not None and not options:
            raise self.fail(top["level_unconfigured"].line,
                            "level_unconfigured applies when an option is empty, but the rule has no options")
        selections, condition, aggregate, repeat, sequence = self.detection(top["detection"], options)
        date_node = top.get("date")
        rule_date = ""
        if date_node is not None:
            if not isinstance(date_node.value, str | date):
                raise self.fail(date_node.line, "date must be YYYY-MM-DD")
            rule_date = str(date_node.value)
        return Rule(
            id=rule_id,
            title=self.text(top["title"], "title"),
            status=status,
            description=self.text(top["description"], "description"),
            level=level,
            level_unconfigured=level_unconfigured,
            techniques=techniques,
            tactics=tactics,
            service=service,
            selections=selections,
            condition=condition,
            aggregate=aggregate,
            repeat=repeat,
            sequence=sequence,
            options=options,
            references=self.texts(top["references"], "references") if "references" in top else (),
            author=self.text(top["author"], "author") if "author" in top else "",
            date=rule_date,
            tags=tags,
            falsepositives=self.texts(top["falsepositives"], "falsepositives")
            if "falsepositives" in top else (),
            path=str(self.path),
            keys=tuple(top),
        )

    def level(self, node: Node, name: str) -> Severity:
        value = node.value
        if value not in SEVERITIES:
            raise self.fail(node.line, f"{name} {value!r} is not one of {', '.join(SEVERITIES)}")
        return cast(Severity, value)

    def tags(self, tags: tuple[str, ...], node: Node,
             key_line: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        table = attack.load()
        techniques: list[str] = []
        tactics: list[tuple[str, int]] = []
        for tag, item in zip(tags, node.value, strict=True):
            if not tag.lower().startswith("attack."):
                continue  # other namespaces (car., cve., detection.) are Sigma's business
            m = _TECHNIQUE_TAG.match(tag)
            if m:
                tid = m.group(1).upper()
                if tid not in table.techniques:
                    raise self.fail(item.line, f"tag {tag}: {tid} is not an ATT&CK for ICS v{table.version} "
                                    "technique (see src/interlock/data/attack_ics.json)")
                techniques.append(tid)
                continue
            short = tag[len("attack."):].lower()
            if short not in table.tactics:
                raise self.fail(item.line, f"tag {tag}: not an ATT&CK for ICS technique (attack.t0xxx) "
                                f"or tactic ({', '.join('attack.' + t for t in table.tactics)})")
            tactics.append((short, item.line))
        if not techniques:
            raise self.fail(key_line, "tags name no technique: add attack.t0xxx (ATT&CK for ICS)")
        for short, line in tactics:
            if not any(short in table.techniques[t].tactics for t in techniques):
                raise self.fail(line, f"tag attack.{short}: no technique of this rule belongs to that "
                                f"tactic ({', '.join(techniques)})")
        return tuple(techniques), tuple(short for short, _ in tactics)

    def logsource(self, node: Node) -> str:
        src = self.mapping(node, "logsource")
        for key in src:
            if key not in ("product", "service", "category", "definition"):
                raise self.fail(node.key_lines[key], f"unknown logsource field '{key}'")
        product = src.get("product")
        if product is None or product.value != "interlock":
            raise self.fail(product.line if product else node.line, "logsource product must be 'interlock'")
        service = src.get("service")
        if service is None:
            raise self.fail(node.line, f"logsource needs a service: {', '.join(sorted(SERVICES))}")
        if service.value not in SERVICES:
            raise self.fail(service.line, f"logsource service {service.value!r} is not one of "
                            f"{', '.join(sorted(SERVICES))}")
        return str(service.value)

    def options(self, node: Node) -> dict[str, tuple[Any, ...]]:
        opts: dict[str, tuple[Any, ...]] = {}
        for name, value in self.mapping(node, "options").items():
            if not _NAME.match(name):
                raise self.fail(node.key_lines[name], f"option name {name!r}: letters, digits and _ only")
            raw = value.plain()
            items = raw if isinstance(raw, list) else [raw] if raw is not None else []
            for item in items:
                if not isinstance(item, str | int | float) or isinstance(item, bool):
                    raise self.fail(value.line, f"option {name}: values must be text or numbers")
            opts[name] = tuple(items)
        return opts

    def detection(
        self, node: Node, options: Mapping[str, tuple[Any, ...]]
    ) -> tuple[dict[str, Selection], Cond, Aggregate | None, Repeat | None, SequenceCheck | None]:
        det = self.mapping(node, "detection")
        if "condition" not in det:
            raise self.fail(node.line, "detection needs a condition")
        selections: dict[str, Selection] = {}
        for name, value in det.items():
            if name == "condition" or name in STATEFUL:
                continue
            if not _NAME.match(name) or name in ("and", "or", "not"):
                raise self.fail(node.key_lines[name], f"selection name {name!r}: letters, digits and _ "
                                "only, and not and/or/not")
            selections[name] = self.selection(value, name, options)
        if not selections:
            raise self.fail(node.line, "detection has no selection")
        cond_node = det["condition"]
        if not isinstance(cond_node.value, str):
            raise self.fail(cond_node.line, "condition must be one expression (text), e.g. 'a and not b'")
        condition = self.condition(cond_node, selections)
        aggregate = self.aggregate(det["aggregate"]) if "aggregate" in det else None
        repeat = self.repeat(det["repeat"]) if "repeat" in det else None
        sequence = self.sequence(det["sequence"]) if "sequence" in det else None
        if repeat is not None and sequence is not None:
            raise self.fail(node.key_lines["sequence"], "a rule takes repeat or sequence, not both")
        return selections, condition, aggregate, repeat, sequence

    def fields(self, node: Node, name: str, *, content: bool = False) -> tuple[str, ...]:
        """A list of record fields (``content`` also allows values and detail)."""
        v = node.value
        items = [v] if isinstance(v, str) else [b.value for b in v] if isinstance(v, list) else None
        if not items or not all(isinstance(b, str) for b in items):
            raise self.fail(node.line, f"{name} must list record fields, e.g. [src, dst]")
        out = []
        for b in items:
            if content and b in ("values", "detail"):
                out.append(b)
            elif b in ("ts", "frame"):
                raise self.fail(node.line, f"{name}: '{b}' differs in every record")
            else:
                out.append(self.field_name(b, node.line))
        return tuple(out)

    def seconds(self, m: dict[str, Node], key: str, *, zero: bool = False) -> float:
        v = m[key].value
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0 or (not zero and v == 0):
            raise self.fail(m[key].line, f"{key} must be a {'' if zero else 'positive '}number")
        return float(v)

    def keys_of(self, node: Node, what: str, keys: tuple[str, ...],
                required: tuple[str, ...]) -> dict[str, Node]:
        m = self.mapping(node, what)
        for key in m:
            if key not in keys:
                raise self.fail(node.key_lines[key],
                                f"unknown {what} field '{key}' (fields: {', '.join(keys)})")
        for key in required:
            if key not in m:
                raise self.fail(node.line, f"{what} needs {key}")
        return m

    def repeat(self, node: Node) -> Repeat:
        m = self.keys_of(node, "repeat", REPEAT_KEYS, ("content", "within_s"))
        retry_field = None
        if "retry_field" in m:
            if not isinstance(m["retry_field"].value, str):
                raise self.fail(m["retry_field"].line, "retry_field names one record field")
            retry_field = self.field_name(m["retry_field"].value, m["retry_field"].line)
        return Repeat(self.fields(m["content"], "content", content=True), self.seconds(m, "within_s"),
                      self.seconds(m, "periodic_tolerance", zero=True) if "periodic_tolerance" in m else 0.2,
                      retry_field, self.seconds(m, "retry_s", zero=True) if "retry_s" in m else 0.0,
                      self.fields(m["other_than"], "other_than") if "other_than" in m else ())

    def sequence(self, node: Node) -> SequenceCheck:
        m = self.keys_of(node, "sequence", SEQUENCE_KEYS, SEQUENCE_KEYS)
        fld = m["field"].value
        if not isinstance(fld, str) or self.field_name(fld, m["field"].line) not in INT_FIELDS:
            raise self.fail(m["field"].line,
                            "sequence field must be a numeric record field, e.g. transaction")
        modulo = m["modulo"].value
        if not isinstance(modulo, int) or isinstance(modulo, bool) or modulo < 2:
            raise self.fail(m["modulo"].line, "modulo must be a whole number >= 2 (16 for DNP3)")
        return SequenceCheck(fld, modulo, self.fields(m["stream"], "stream"),
                             self.fields(m["source"], "source"), self.seconds(m, "within_s"))

    def selection(self, node: Node, name: str, options: Mapping[str, tuple[Any, ...]]) -> Selection:
        if isinstance(node.value, dict):
            return (self.group(node, name, options),)
        if isinstance(node.value, list) and node.value:
            groups = []
            for item in node.value:
                if not isinstance(item.value, dict):
                    raise self.fail(item.line, f"selection {name}: a list must hold mappings of "
                                    "field: value (keyword search is not supported)")
                groups.append(self.group(item, name, options))
            return tuple(groups)
        raise self.fail(node.line, f"selection {name} must map fields to values")

    def group(self, node: Node, name: str, options: Mapping[str, tuple[Any, ...]]) -> Group:
        items = cast(dict[str, Node], node.value)
        if not items:
            raise self.fail(node.line, f"selection {name} is empty")
        return tuple(self.match(key, items[key], node.key_lines[key], options) for key in items)

    def field_name(self, name: str, line: int) -> str:
        if name in INT_FIELDS or name in STR_FIELDS:
            return name
        if name in NOT_MATCHABLE:
            raise self.fail(line, f"field '{name}' {NOT_MATCHABLE[name]}")
        if name.startswith("detail.") and all(_NAME.match(p) for p in name.split(".")[1:]):
            return name
        raise self.fail(line, f"unknown field '{name}' (record fields: "
                        f"{', '.join(sorted(INT_FIELDS | STR_FIELDS))}, or detail.<key>)")

    def match(self, key: str, node: Node, line: int, options: Mapping[str, tuple[Any, ...]]) -> Match:
        name, *mods = key.split("|")
        fname = self.field_name(name, line)
        for mod in mods:
            if mod not in MODIFIERS:
                raise self.fail(line, f"unknown modifier '{mod}' in '{key}' (modifiers: "
                                f"{', '.join(sorted(MODIFIERS))})")
        if len(set(mods)) != len(mods):
            raise self.fail(line, f"modifier repeated in '{key}'")
        ops = [m for m in mods if m not in ("expand", "all")]
        if len(ops) > 1:
            raise self.fail(line, f"'{key}' has two matching modifiers ({', '.join(ops)}); use one")
        op = cast(Op, ops[0] if ops else "eq")
        raw = node.plain()
        values = tuple(raw) if isinstance(raw, list) else (raw,)
        if not values:
            raise self.fail(node.line, f"'{key}': an empty list matches nothing")
        for v in values:
            if isinstance(v, dict | list):
                raise self.fail(node.line, f"'{key}': values must be plain (text, number, null)")
        is_int = fname in INT_FIELDS
        is_str = fname in STR_FIELDS
        if "expand" in mods:
            if op not in ("eq", "cidr"):
                raise self.fail(line, f"'{key}': expand goes with plain equality or cidr")
            for v in values:
                m = _PLACEHOLDER.match(v) if isinstance(v, str) else None
                if m is None:
                    raise self.fail(node.line, f"'{key}': expand takes %option% placeholders, got {v!r}")
                if m.group(1) not in options:
                    raise self.fail(node.line, f"'{key}': placeholder %{m.group(1)}% is not in this "
                                    f"rule's options ({', '.join(options) or 'none declared'})")
            return Match(fname, op, values, "all" in mods, expand=True)
        if op == "exists":
            if len(values) != 1 or not isinstance(values[0], bool):
                raise self.fail(node.line, f"'{key}': exists takes true or false")
        elif op in COMPARISONS:
            if is_str:
                raise self.fail(line, f"'{key}': {op} compares numbers; {fname} is text")
            for v in values:
                if not isinstance(v, int | float) or isinstance(v, bool):
                    raise self.fail(node.line, f"'{key}': {op} needs a number, got {v!r}")
        elif op in STRING_OPS:
            if is_int:
                raise self.fail(line, f"'{key}': {op} matches text; {fname} is a number")
            for v in values:
                if not isinstance(v, str):
                    raise self.fail(node.line, f"'{key}': {op} needs text, got {v!r}")
        elif op == "cidr":
            if is_int:
                raise self.fail(line, f"'{key}': cidr matches addresses; {fname} is a number")
            for v in values:
                try:
                    ipaddress.ip_network(str(v), strict=False)
                except ValueError:
                    raise self.fail(node.line, f"'{key}': {v!r} is not an IP network") from None
        else:  # eq
            for v in values:
                if v is None:
                    continue
                if is_int and (not isinstance(v, int) or isinstance(v, bool)):
                    raise self.fail(node.line, f"'{key}': {fname} is a whole number, got {v!r}")
                if is_str and not isinstance(v, str):
                    raise self.fail(node.line, f"'{key}': {fname} is text, got {v!r} (quote it)")
        return Match(fname, op, values, "all" in mods)

    def condition(self, node: Node, selections: Mapping[str, Selection]) -> Cond:
        text = node.value
        tokens: list[str] = re.findall(r"\(|\)|[^\s()]+", text)
        pos = 0
        used: set[str] = set()

        def peek() -> str | None:
            return tokens[pos] if pos < len(tokens) else None

        def take() -> str:
            nonlocal pos
            tok = tokens[pos]
            pos += 1
            return tok

        def parse_or() -> Cond:
            left = parse_and()
            while peek() == "or":
                take()
                left = ("or", left, parse_and())
            return left

        def parse_and() -> Cond:
            left = parse_not()
            while peek() == "and":
                take()
                left = ("and", left, parse_not())
            return left

        def parse_not() -> Cond:
            if peek() == "not":
                take()
                return ("not", parse_not())
            return parse_atom()

        def parse_atom() -> Cond:
            tok = peek()
            if tok is None:
                raise self.fail(node.line, f"condition {text!r} ends too early")
            take()
            if tok == "(":
                inner = parse_or()
                if peek() != ")":
                    raise self.fail(node.line, f"condition {text!r}: missing ')'")
                take()
                return inner
            if tok in ("1", "all", "of", "them") or "*" in tok or "|" in tok:
                raise self.fail(node.line, f"condition {text!r}: '{tok}' is Sigma syntax not supported "
                                "here; name the selections joined with and/or/not")
            if tok not in selections:
                raise self.fail(node.line, f"condition names '{tok}', which is not a selection "
                                f"(selections: {', '.join(selections)})")
            used.add(tok)
            return ("sel", tok)

        if not tokens:
            raise self.fail(node.line, "condition is empty")
        tree = parse_or()
        if pos != len(tokens):
            raise self.fail(node.line, f"condition {text!r}: unexpected '{tokens[pos]}'")
        unused = [s for s in selections if s not in used]
        if unused:
            raise self.fail(node.line, f"selection(s) {', '.join(unused)} not used in the condition")
        return tree

    def aggregate(self, node: Node) -> Aggregate:
        agg = self.mapping(node, "aggregate")
        for key in agg:
            if key not in AGGREGATE_KEYS:
                raise self.fail(node.key_lines[key], f"unknown aggregate field '{key}' "
                                f"(fields: {', '.join(AGGREGATE_KEYS)})")
        for key in ("group_by", "window_s", "gte"):
            if key not in agg:
                raise self.fail(node.line, f"aggregate needs {key}")
        by = agg["group_by"].value
        by_list = [by] if isinstance(by, str) else [b.value for b in by] if isinstance(by, list) else None
        if not by_list or not all(isinstance(b, str) for b in by_list):
            raise self.fail(agg["group_by"].line, "group_by must list record fields, e.g. [src, dst]")
        group_by = tuple(self.field_name(b, agg["group_by"].line) for b in by_list)
        window = agg["window_s"].value
        if not isinstance(window, int | float) or isinstance(window, bool) or not window > 0:
            raise self.fail(agg["window_s"].line, "window_s must be a positive number of seconds")
        gte = agg["gte"].value
        if not isinstance(gte, int) or isinstance(gte, bool) or gte < 1:
            raise self.fail(agg["gte"].line, "gte must be a whole number >= 1")
        distinct = None
        if "distinct" in agg:
            d = agg["distinct"].value
            if not isinstance(d, str):
                raise self.fail(agg["distinct"].line, "distinct names one record field")
            distinct = self.field_name(d, agg["distinct"].line)
        return Aggregate(group_by, float(window), gte, distinct)


# --- evaluation over Arrow batches -------------------------------------------------------------


class _View:
    """Columns of one batch, decoded and lower-cased once however many rules read them."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch
        self.n = batch.num_rows
        self._cols: dict[str, pa.Array] = {}
        self._lower: dict[str, pa.Array] = {}
        self._details: dict[int, Any] = {}
        self._uniq: dict[str, list[Any]] = {}

    def col(self, name: str) -> pa.Array:
        arr = self._cols.get(name)
        if arr is None:
            arr = self.batch.column(name)
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            self._cols[name] = arr
        return arr

    def lower(self, name: str) -> pa.Array:
        arr = self._lower.get(name)
        if arr is None:
            arr = self._lower[name] = pc.utf8_lower(self.col(name))
        return arr

    def unique(self, name: str) -> list[Any]:
        u = self._uniq.get(name)
        if u is None:
            u = self._uniq[name] = pc.unique(self.col(name)).to_pylist()
        return u

    def detail(self, i: int) -> Any:
        if i not in self._details:
            text = self.col("detail")[i].as_py()
            self._details[i] = json.loads(text) if text else None
        return self._details[i]


def _false(n: int) -> pa.BooleanArray:
    return pa.array(np.zeros(n, dtype=bool))


def _combine(masks: Sequence[pa.Array], all_: bool, n: int) -> pa.Array:
    if not masks:
        return _false(n)
    out = masks[0]
    for m in masks[1:]:
        out = pc.and_(out, m) if all_ else pc.or_(out, m)
    return out


def _column_mask(view: _View, m: Match) -> pa.Array:
    """The mask of one item over a record column (never null)."""
    col = view.col(m.field)
    n = view.n
    if m.op == "exists":
        return pc.is_valid(col) if m.values[0] else pc.is_null(col)
    masks: list[pa.Array] = []
    if m.op == "eq":
        present = [v for v in m.values if v is not None]
        if None in m.values:
            masks.append(pc.is_null(col))
        if present:
            if m.field in STR_FIELDS:
                lowered = pa.array([str(v).lower() for v in present], pa.string())
                if m.all:
                    masks.extend(pc.equal(view.lower(m.field), v) for v in lowered)
                else:
                    masks.append(pc.is_in(view.lower(m.field), value_set=lowered))
            else:
                values = pa.array(present, col.type)
                if m.all:
                    masks.extend(pc.equal(col, v) for v in values)
                else:
                    masks.append(pc.is_in(col, value_set=values))
    elif m.op in COMPARISONS:
        fn = {"gt": pc.greater, "gte": pc.greater_equal, "lt": pc.less, "lte": pc.less_equal}[m.op]
        masks.extend(fn(col, v) for v in m.values)
    elif m.op in STRING_OPS:
        fn2 = {"contains": pc.match_substring, "startswith": pc.starts_with, "endswith": pc.ends_with}[m.op]
        masks.extend(fn2(col, pattern=str(v), ignore_case=True) for v in m.values)
    elif m.op == "cidr":
        nets = [ipaddress.ip_network(str(v), strict=False) for v in m.values]
        hits = [u for u in view.unique(m.field) if u is not None and _in_nets(u, nets, m.all)]
        return pc.fill_null(pc.is_in(col, value_set=pa.array(hits, pa.string())), False)
    return pc.fill_null(_combine(masks, m.all, n), False)


def _in_nets(value: str, nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network], all_: bool) -> bool:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    hits = (addr.version == net.version and addr in net for net in nets)
    return all(hits) if all_ else any(hits)


def _get_path(obj: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _value_matches(value: Any, m: Match) -> bool:
    """One item against a Python value (``detail.*`` fields)."""
    if m.op == "exists":
        return (value is not None) is bool(m.values[0])
    if value is None or isinstance(value, dict | list):
        return m.op == "eq" and value is None and None in m.values

    def one(v: Any) -> bool:
        if m.op == "eq":
            if v is None:
                return False
            if isinstance(v, str) or isinstance(value, str):
                return str(value).lower() == str(v).lower()
            return bool(value == v)
        if m.op in COMPARISONS:
            if not isinstance(value, int | float) or isinstance(value, bool):
                return False
            return bool({"gt": value > v, "gte": value >= v, "lt": value < v, "lte": value <= v}[m.op])
        if m.op == "cidr":
            return _in_nets(str(value), [ipaddress.ip_network(str(v), strict=False)], False)
        text, pat = str(value).lower(), str(v).lower()
        return {"contains": pat in text, "startswith": text.startswith(pat),
                "endswith": text.endswith(pat)}[m.op]

    hits = (one(v) for v in m.values)
    return all(hits) if m.all else any(hits)


def _group_mask(view: _View, group: Group) -> pa.Array:
    columns = [m for m in group if not m.field.startswith("detail.")]
    details = [m for m in group if m.field.startswith("detail.")]
    mask = _combine([_column_mask(view, m) for m in columns], True, view.n) if columns else None
    if not details:
        assert mask is not None
        return mask
    candidates = (
        np.flatnonzero(mask.to_numpy(zero_copy_only=False)) if mask is not None else np.arange(view.n)
    )
    out = np.zeros(view.n, dtype=bool)
    paths = [m.field.split(".")[1:] for m in details]
    for i in candidates.tolist():
        d = view.detail(i)
        if all(_value_matches(_get_path(d, p), m) for p, m in zip(paths, details, strict=True)):
            out[i] = True
    return pa.array(out)


def _eval(
    view: _View, cond: Cond, selections: Mapping[str, Selection], cache: dict[str, pa.Array]
) -> pa.Array:
    kind = cond[0]
    if kind == "sel":
        name = cond[1]
        if name not in cache:
            cache[name] = _combine([_group_mask(view, g) for g in selections[name]], False, view.n)
        return cache[name]
    if kind == "not":
        return pc.invert(_eval(view, cond[1], selections, cache))
    left = _eval(view, cond[1], selections, cache)
    right = _eval(view, cond[2], selections, cache)
    return pc.and_(left, right) if kind == "and" else pc.or_(left, right)


# --- alerts ------------------------------------------------------------------------------------

ROW_FIELDS = (
    "frame", "src", "dst", "sport", "dport", "transport", "protocol", "direction", "unit",
    "function_code", "function", "address", "count", "object", "status", "malformed", "detail",
)
PROTOCOL_LABEL = {"modbus": "Modbus", "dnp3": "DNP3", "s7comm": "S7comm", "s7comm-plus": "S7comm-plus",
                  "iec104": "IEC-104", "tcp": "TCP"}


def _row(view: _View, i: int, ts: float) -> dict[str, Any]:
    row = {name: view.col(name)[i].as_py() for name in ROW_FIELDS if name != "detail"}
    row["detail"] = view.detail(i)
    row["ts"] = ts
    return row


def _ends(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """(initiator, target, asset): a response's initiator is the host it answers."""
    if row["direction"] == "response":
        initiator, target, port = row["dst"], row["src"], row["sport"]
    else:
        initiator, target, port = row["src"], row["dst"], row["dport"]
    host = f"[{target}]" if ":" in target else target
    unit = row.get("unit")
    return initiator, target, f"{host}:{port}" + (f"/{unit}" if unit is not None else "")


def _operation(row: Mapping[str, Any]) -> str:
    """'Modbus diagnostics (function 8, FORCE_LISTEN_ONLY_MODE)' and the like."""
    proto = row["protocol"]
    label = PROTOCOL_LABEL.get(proto, proto)
    name = row["function"] or ("malformed PDU" if row["malformed"] else "PDU")
    facts: list[str] = []
    fc = row["function_code"]
    if fc is not None:
        facts.append(f"type {fc}" if proto == "iec104" else
                     f"function 0x{fc:02x}" if proto == "s7comm" else f"function {fc}")
    detail = row["detail"] if isinstance(row["detail"], dict) else {}
    if detail.get("sub_function_name"):
        facts.append(str(detail["sub_function_name"]))
    if row["object"] and row["object"] != name:
        facts.append(str(row["object"]))
    if row["address"] is not None:
        count = f" count {row['count']}" if row["count"] is not None else ""
        facts.append(f"address {row['address']}{count}")
    if row["status"]:
        facts.append(str(row["status"]))
    if row["malformed"]:
        why = detail.get("detail")
        facts.append(f"malformed: {row['malformed']}" + (f", {why}" if why else ""))
    return f"{label} {name}" + (f" ({', '.join(facts)})" if facts else "")


def _flow(row: Mapping[str, Any]) -> FlowRef:
    return FlowRef(row["src"], row["sport"], row["dst"], row["dport"], row["protocol"], row["transport"])


_Entry = tuple[float, Any, int, Any, Any]  # ts, distinct value, frame, function, status


class _Episode:
    """One run of a behaviour: opened when the window first meets the threshold, kept open while
    it meets it again within one window (so a flood hovering at the threshold is one alert, not
    forty), closed one quiet window later. Records after the last moment the threshold held are
    held apart (``tail``) and dropped at the close: they are not part of the behaviour."""

    __slots__ = ("count", "distinct", "first_ts", "frames", "functions", "last_hot", "peak", "row",
                 "statuses", "tail")

    def __init__(self, row: dict[str, Any], window: Iterable[_Entry], measure: int) -> None:
        self.row = row  # the record that first met the threshold
        self.frames: list[int] = []
        self.count = 0
        self.distinct: set[Any] = set()
        self.functions: dict[Any, None] = {}  # names seen, in order
        self.statuses: dict[Any, None] = {}
        self.tail: list[_Entry] = []
        self.first_ts = row["ts"]
        self.last_hot = row["ts"]
        self.peak = measure
        entries = list(window)
        self.first_ts = entries[0][0] if entries else row["ts"]
        self.tail = entries
        self.commit(row["ts"], measure)

    def commit(self, ts: float, measure: int) -> None:
        """The threshold holds at ``ts``: everything held since the last time is evidence."""
        for _, value, frame, function, status in self.tail:
            if len(self.frames) < MAX_EVIDENCE_FRAMES:
                self.frames.append(frame)
            self.count += 1
            if value is not None and len(self.distinct) < MAX_DISTINCT:
                self.distinct.add(value)
            if function:
                self.functions.setdefault(function, None)
            if status:
                self.statuses.setdefault(status, None)
        self.tail = []
        self.last_hot = ts
        self.peak = max(self.peak, measure)


class _Group:
    __slots__ = ("episode", "last_ts", "values", "window")

    def __init__(self) -> None:
        self.window: deque[_Entry] = deque()
        self.values: Counter[Any] = Counter()
        self.episode: _Episode | None = None
        self.last_ts = 0.0


class _BoundRule:
    """A rule with its options filled in, and its windows."""

    def __init__(self, rule: Rule, options: Mapping[str, tuple[Any, ...]], capture: str | None) -> None:
        self.rule = rule
        self.capture = capture
        unset = [name for name in rule.options if not options.get(name, rule.options[name])]
        self.severity: Severity = rule.level_unconfigured if unset and rule.level_unconfigured else rule.level
        self.selections = {
            name: tuple(tuple(_bind(m, rule, options) for m in group) for group in sel)
            for name, sel in rule.selections.items()
        }
        table = attack.load()
        tech = table.techniques[rule.techniques[0]]
        shorts = [t for t in tech.tactics if t in rule.tactics] or list(tech.tactics)
        self.technique = tech
        self.tactics = tuple(table.tactics[t].name for t in shorts)
        self.groups: dict[tuple[Any, ...], _Group] = {}
        self.state: _RepeatState | _SequenceState | None = (
            _RepeatState(rule.repeat) if rule.repeat is not None
            else _SequenceState(rule.sequence) if rule.sequence is not None else None)

    def alert(
        self, row: Mapping[str, Any], ts: float, frames: Sequence[int], count: int, explanation: str
    ) -> Alert:
        initiator, target, asset = _ends(row)
        return Alert(
            ts=ts, technique=self.technique.id, technique_name=self.technique.name, tactics=self.tactics,
            severity=self.severity, src=initiator, dst=target, asset=asset, rule=self.rule.id,
            title=self.rule.title, explanation=explanation, frames=tuple(frames), flow=_flow(row),
            count=count, capture=self.capture,
        )

    def single(self, row: Mapping[str, Any]) -> Alert:
        text = f"{row['src']} sent {_operation(row)} to {_receiver(row)} in frame {row['frame']}{_note(row)}."
        return self.alert(row, row["ts"], (row["frame"],), 1, text)

    def early(self, ep: _Episode) -> Alert:
        """The alert of an episode at the moment it met the threshold: the evidence so far."""
        agg = self.rule.aggregate
        assert agg is not None
        row = ep.row
        initiator, _, asset = _ends(row)
        label = PROTOCOL_LABEL.get(row["protocol"], row["protocol"])
        what = f"{len(ep.distinct)} distinct {agg.distinct} values" if agg.distinct else \
            f"{ep.count} {label} {row['direction']}s"
        text = (f"{initiator} and {asset}: {what} within {agg.window_s:g} s reached the threshold "
                f"({agg.gte}) in frame {row['frame']} (evidence so far: frames {ep.frames[0]}-"
                f"{ep.frames[-1]}); still going: the complete alert follows when the episode ends.")
        return self.alert(row, row["ts"], ep.frames, ep.count, text)

    def close(self, group: _Group) -> Alert | None:
        ep = group.episode
        group.episode = None
        if ep is None:
            return None
        agg = self.rule.aggregate
        assert agg is not None
        row = ep.row
        initiator, _, asset = _ends(row)
        label = PROTOCOL_LABEL.get(row["protocol"], row["protocol"])
        kinds = _listing(ep.functions, 5)
        if ep.statuses:
            kinds += "; " + _listing(ep.statuses, 5)
        span = f"frames {ep.frames[0]}-{ep.frames[-1]}, {ep.last_hot - ep.first_ts:.1f} s"
        if agg.gte == 1:  # a rule that only gathers repeats into one alert
            more = f", {ep.count - 1} more like it up to frame {ep.frames[-1]}" if ep.count > 1 else ""
            text = (f"{row['src']} sent {_operation(row)} to {_receiver(row)} in frame {row['frame']}"
                    f"{_note(row)}{more} ({ep.count} in {span}).")
        elif agg.distinct is not None:
            values = sorted(ep.distinct, key=lambda v: (str(type(v)), v))
            n = f"{'at least ' if len(values) >= MAX_DISTINCT else ''}{len(values)}"
            text = (f"{initiator} and {asset} exchanged {ep.count} {label} operations ({kinds}) with "
                    f"{n} distinct {agg.distinct} values ({_listing(values, 12)}), up to "
                    f"{ep.peak} within {agg.window_s:g} s (threshold {agg.gte}); {span}.")
        else:
            sent = f"{ep.count} {label} {row['direction']}s ({kinds})"
            sentence = f"{asset} sent {sent} to {initiator}" if row["direction"] == "response" \
                else f"{initiator} sent {sent} to {asset}"
            text = f"{sentence}, up to {ep.peak} within {agg.window_s:g} s (threshold {agg.gte}); {span}."
        return self.alert(row, row["ts"], ep.frames, ep.count, text)


def _noted(row: dict[str, Any], note: str | None) -> dict[str, Any]:
    if note:
        row["note"] = note
    return row


def _note(row: Mapping[str, Any]) -> str:
    return f" ({row['note']})" if row.get("note") else ""


def _hits_values(view: _View, name: str, hits: np.ndarray) -> list[Any]:
    """Hashable Python values of one field (or ``values``, ``detail``) for the hit rows."""
    if name.startswith("detail."):
        path = name.split(".")[1:]
        return [_hashable(_get_path(view.detail(i), path)) for i in hits.tolist()]
    values = view.col(name).take(pa.array(hits)).to_pylist()
    return [tuple(v) if isinstance(v, list) else v for v in values]


MAX_STATE = 100_000  # contents or streams remembered per rule; the stalest go first


class _RepeatState:
    """What a ``repeat`` rule remembers: per content, its first and last sighting."""

    def __init__(self, spec: Repeat) -> None:
        self.spec = spec
        # content -> [first frame, first ts, last ts, recent gaps, last retry value, first
        # other_than values]; least recently seen first
        self.seen: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()

    def filter(self, view: _View, hits: np.ndarray, ts_all: pa.Array) -> tuple[np.ndarray, dict[int, str]]:
        spec = self.spec
        idx = pa.array(hits)
        ts = ts_all.take(idx).to_pylist()
        frames = view.col("frame").take(idx).to_pylist()
        contents = list(zip(*(_hits_values(view, f, hits) for f in spec.content), strict=True))
        retries = _hits_values(view, spec.retry_field, hits) if spec.retry_field else [None] * len(hits)
        where = list(zip(*(_hits_values(view, f, hits) for f in spec.other_than), strict=True)) \
            if spec.other_than else [()] * len(hits)
        keep: list[int] = []
        notes: dict[int, str] = {}
        for j, i in enumerate(hits.tolist()):
            content, t = contents[j], ts[j]
            prev = self.seen.get(content)
            if prev is None or t - prev[2] > spec.within_s:
                self.seen[content] = [frames[j], t, t, [], retries[j], where[j]]
            else:
                first_frame, first_ts, last_ts, gaps, last_retry, first_where = prev
                gap = t - last_ts
                periodic = len(gaps) >= 2 and all(abs(g - gap) <= spec.periodic_tolerance * gap
                                                  for g in gaps[-2:])
                retry = spec.retry_field is not None and retries[j] == last_retry and gap <= spec.retry_s
                elsewhere = not spec.other_than or all(
                    a != b for a, b in zip(where[j], first_where, strict=True))
                if not periodic and not retry and elsewhere:
                    keep.append(i)
                    notes[i] = (f"the content of frame {first_frame}, {t - first_ts:.1f} s earlier, "
                                "sent again")
                gaps.append(gap)
                del gaps[:-3]
                prev[2], prev[4] = t, retries[j]
            self.seen.move_to_end(content)
        # forget contents older than the horizon, and the stalest beyond the cap
        while self.seen and (len(self.seen) > MAX_STATE
                             or next(iter(self.seen.values()))[2] < ts[-1] - spec.within_s):
            self.seen.popitem(last=False)
        return np.array(keep, dtype=np.int64), notes


class _SequenceState:
    """What a ``sequence`` rule remembers: per stream, the last counter value and its sender."""

    def __init__(self, spec: SequenceCheck) -> None:
        self.spec = spec
        self.streams: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], int, float, int]] = OrderedDict()

    def filter(self, view: _View, hits: np.ndarray, ts_all: pa.Array) -> tuple[np.ndarray, dict[int, str]]:
        spec = self.spec
        idx = pa.array(hits)
        ts = ts_all.take(idx).to_pylist()
        frames = view.col("frame").take(idx).to_pylist()
        counters = view.col(spec.field).take(idx).to_pylist()
        streams = list(zip(*(_hits_values(view, f, hits) for f in spec.stream), strict=True))
        sources = list(zip(*(_hits_values(view, f, hits) for f in spec.source), strict=True))
        keep: list[int] = []
        notes: dict[int, str] = {}
        for j, i in enumerate(hits.tolist()):
            seq = counters[j]
            if seq is None:
                continue
            seq %= spec.modulo
            prev = self.streams.get(streams[j])
            if prev is not None and ts[j] - prev[2] <= spec.within_s and sources[j] != prev[0]:
                behind = (prev[1] - seq) % spec.modulo
                if behind < spec.modulo // 2:  # 0: the same number again; else a step back
                    keep.append(i)
                    who = ":".join(map(str, prev[0]))
                    notes[i] = (f"sequence number {seq} after {prev[1]} from {who} in frame {prev[3]}, "
                                f"{ts[j] - prev[2]:.1f} s earlier: "
                                + ("repeated" if behind == 0 else "gone back") + " by another sender")
            self.streams[streams[j]] = (sources[j], seq, ts[j], frames[j])
            self.streams.move_to_end(streams[j])
        while self.streams and (len(self.streams) > MAX_STATE
                                or next(iter(self.streams.values()))[2] < ts[-1] - spec.within_s):
            self.streams.popitem(last=False)
        return np.array(keep, dtype=np.int64), notes


def _listing(values: Iterable[Any], limit: int) -> str:
    items = [str(v) for v in values]
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _receiver(row: Mapping[str, Any]) -> str:
    host = f"[{row['dst']}]" if ":" in row["dst"] else row["dst"]
    unit = row.get("unit")
    return f"{host}:{row['dport']}" + (f"/{unit}" if unit is not None else "")


def _bind(m: Match, rule: Rule, options: Mapping[str, tuple[Any, ...]]) -> Match:
    if not m.expand:
        return m
    values: list[Any] = []
    for placeholder in m.values:
        name = placeholder.strip("%")
        values.extend(options.get(name, rule.options[name]))
    if m.op == "cidr":
        for v in values:
            try:
                ipaddress.ip_network(str(v), strict=False)
            except ValueError:
                raise ValueError(f"option {placeholder.strip('%')} of rule {rule.path}: {v!r} is not an "
                                 "IP network") from None
    if not values:
        return replace(m, values=(), expand=False)  # an empty list: matches nothing
    return replace(m, values=tuple(str(v) if m.field in STR_FIELDS else v for v in values), expand=False)


class RuleEngine:
    """Runs rules over record batches, in capture order; the shared detector shape.

    ``process(batch)`` returns the alerts a batch completes; ``finish()`` those still open
    (behaviours whose window had not closed when the capture ended). One engine per capture:
    frame numbers and windows do not carry from one file to the next.

    ``options`` fill rule options by name (e.g. ``allowed_masters``); a name that no rule
    declares raises ``ValueError``.

    ``early=True`` (live use) also reports each behaviour (scan, flood) the moment its window
    first meets the threshold, with the evidence so far, beside the complete alert at the end of
    the episode. An :class:`Alert` is a frozen value whose id hashes its content, so it cannot
    grow in place: the complete alert has the same ``ts``, rule, initiator and target and
    supersedes the early one. Without ``early`` (files, evaluation) an episode is one alert.
    """

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        options: Mapping[str, Sequence[Any]] | None = None,
        capture: str | None = None,
        early: bool = False,
    ) -> None:
        self.rules = tuple(rules)
        self.early = early
        opts = {k: tuple(v) for k, v in (options or {}).items()}
        declared = {name for r in self.rules for name in r.options}
        unknown = sorted(set(opts) - declared)
        if unknown:
            raise ValueError(f"no rule declares option {', '.join(unknown)} (declared: "
                             f"{', '.join(sorted(declared)) or 'none'})")
        self._bound = [_BoundRule(r, opts, capture) for r in self.rules]
        self.alerts = 0

    def process(self, batch: pa.RecordBatch) -> list[Alert]:
        if batch.num_rows == 0:
            return []
        view = _View(batch)
        ts_all = pc.divide(pc.cast(batch.column("ts").cast(pa.int64()), pa.float64()), 1e6)
        protocols = view.col("protocol")
        out: list[Alert] = []
        service_masks: dict[str, pa.Array] = {}
        for bound in self._bound:
            rule = bound.rule
            mask = _eval(view, rule.condition, bound.selections, {})
            if rule.service not in service_masks:
                service_masks[rule.service] = pc.fill_null(
                    pc.not_equal(protocols, CONNECTION_PROTOCOL) if rule.service == "any"
                    else pc.equal(protocols, rule.service), False)
            mask = pc.and_(mask, service_masks[rule.service])
            hits = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            notes: dict[int, str] = {}
            if bound.state is not None and len(hits):  # repeat / sequence: records that pass
                hits, notes = bound.state.filter(view, hits, ts_all)
            if rule.aggregate is None:
                for i in hits.tolist():
                    out.append(bound.single(_noted(_row(view, i, ts_all[i].as_py()), notes.get(i))))
            else:
                out.extend(self._aggregate(bound, view, hits, ts_all, notes))
        out.sort(key=lambda a: (a.ts, a.frames[0]))  # capture order across rules
        self.alerts += len(out)
        return out

    def _aggregate(
        self, bound: _BoundRule, view: _View, hits: np.ndarray, ts_all: pa.Array,
        notes: Mapping[int, str] | None = None,
    ) -> Iterator[Alert]:
        agg = bound.rule.aggregate
        assert agg is not None
        window = agg.window_s
        if len(hits):
            idx = pa.array(hits)
            ts_list = ts_all.take(idx).to_pylist()
            frames = view.col("frame").take(idx).to_pylist()
            functions = view.col("function").take(idx).to_pylist()
            statuses = view.col("status").take(idx).to_pylist()
            keys = list(zip(*(self._values(view, f, hits) for f in agg.group_by), strict=True))
            distinct = self._values(view, agg.distinct, hits) if agg.distinct else [None] * len(hits)
            for j, i in enumerate(hits.tolist()):
                ts = ts_list[j]
                group = bound.groups.get(keys[j])
                if group is None:
                    group = bound.groups[keys[j]] = _Group()
                ep = group.episode
                if ep is not None and ts - ep.last_hot > window:
                    done = bound.close(group)
                    if done is not None:
                        yield done
                    ep = None
                win, counter = group.window, group.values
                while win and win[0][0] < ts - window:
                    old = win.popleft()
                    if old[1] is not None:
                        counter[old[1]] -= 1
                        if not counter[old[1]]:
                            del counter[old[1]]
                value = distinct[j]
                entry = (ts, value, frames[j], functions[j], statuses[j])
                win.append(entry)
                if value is not None:
                    counter[value] += 1
                group.last_ts = ts
                measure = len(counter) if agg.distinct else len(win)
                if ep is None:
                    if measure >= agg.gte:
                        group.episode = _Episode(_noted(_row(view, i, ts), (notes or {}).get(i)),
                                                 win, measure)
                        if self.early and agg.gte > 1:  # gte 1 only gathers repeats: no threshold
                            yield bound.early(group.episode)
                else:
                    ep.tail.append(entry)
                    if measure >= agg.gte:
                        ep.commit(ts, measure)
        # A group quiet for a whole window cannot grow: close it now, so memory stays flat.
        yield from self._close_quiet(bound, ts_all[len(ts_all) - 1].as_py())

    @staticmethod
    def _close_quiet(bound: _BoundRule, now: float) -> Iterator[Alert]:
        """Alerts of behaviours quiet for a whole window before ``now``; idle groups dropped."""
        agg = bound.rule.aggregate
        assert agg is not None
        window = agg.window_s
        for key, group in list(bound.groups.items()):
            if group.episode is not None and group.episode.last_hot < now - window:
                done = bound.close(group)
                if done is not None:
                    yield done
            if group.last_ts < now - window:
                del bound.groups[key]

    def tick(self, now: float) -> list[Alert]:
        """Time passed without records (a live sensor on a quiet network): report the behaviours
        whose window has closed by ``now`` (epoch seconds), as a later record would have."""
        out = [a for b in self._bound if b.rule.aggregate is not None for a in self._close_quiet(b, now)]
        out.sort(key=lambda a: (a.ts, a.frames[0]))
        self.alerts += len(out)
        return out

    @staticmethod
    def _values(view: _View, name: str, hits: np.ndarray) -> list[Any]:
        if name.startswith("detail."):
            path = name.split(".")[1:]
            return [_hashable(_get_path(view.detail(i), path)) for i in hits.tolist()]
        return cast(list[Any], view.col(name).take(pa.array(hits)).to_pylist())

    def finish(self) -> list[Alert]:
        out: list[Alert] = []
        for bound in self._bound:
            for group in bound.groups.values():
                done = bound.close(group)
                if done is not None:
                    out.append(done)
            bound.groups.clear()
        out.sort(key=lambda a: (a.ts, a.frames[0]))
        self.alerts += len(out)
        return out


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def run_rules(
    rules: Iterable[Rule], batches: Iterable[pa.RecordBatch], **kwargs: Any
) -> list[Alert]:
    """All alerts of the rules over the batches (for tests and small inputs)."""
    engine = RuleEngine(rules, **kwargs)
    alerts: list[Alert] = []
    for batch in batches:
        alerts.extend(engine.process(batch))
    alerts.extend(engine.finish())
    return alerts

