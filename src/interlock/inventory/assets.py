"""The asset inventory: hosts, what they speak, whom they talk to and what they are.

Built from the record stream (``docs/records.md``) one Arrow batch at a time: the builder keeps
counters per host, per conversation (client, server, protocol) and per distinct read request,
never the records, so memory grows with the number of hosts and distinct reads, not with the
capture. A record's ``direction`` says which end is the client (master, controlling station):
``request`` rows go from client to server, ``response`` rows the other way.

Roles come from behaviour, with the evidence kept per asset (``because``), by these rules, in
this order (thresholds in :class:`RoleThresholds`):

1. A host that *serves* an ICS protocol is a controller: an **RTU** when it is a DNP3
   outstation or an IEC-104 controlled station, a **PLC** when it is a Modbus or S7 server.
2. A client that changes a controller or its program is an **engineering workstation**:
   requests of class ``control`` (PLC stop/run, PI services, download, cold restart) or
   ``file`` (block upload, file transfer), or S7 block and programmer functions
   (``userdata.block.*``: list blocks, block info; ``userdata.programmer.*``).
3. A client that polls (the same read repeated at least ``poll_min_requests`` times at a
   steady pace: gaps with a coefficient of variation of at most ``poll_max_cv``), subscribes
   to S7 cyclic or change-driven data, or is a DNP3 master or IEC-104 controlling station, is
   an **HMI/SCADA master**, unless it only
   reads, reads at least ``historian_min_points`` points and was seen for at least
   ``historian_min_span_s``: then it is a **historian**.
4. A client that reads device identity or diagnostics (Modbus FC43 and FC8, S7 SZL reads)
   without polling is an **engineering workstation** (commissioning or a scan). HMIs read SZL
   lists too (WinCC does for its alarms), which is why polling is checked first.
5. A client that only reads, enough points over a long enough time, is a **historian**.
6. Any other client is an **ICS client**: too little behaviour to say more.

DNP3 unsolicited on/off, class assignment and time sync, and IEC-104 clock sync and test
commands are master upkeep (:data:`ROUTINE_MASTER`), not engineering. A host that is both a
server and a client keeps its server role; the client roles that had
evidence are listed in ``also``. The same holds for rules 2-5: every role with evidence other
than the chosen one goes to ``also``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interlock.capture.records import ics_only
from interlock.inventory.identity import DNP3_G0, Identity, IdentityCollector


class Role(StrEnum):
    PLC = "PLC"
    RTU = "RTU"
    HMI = "HMI/SCADA master"
    ENGINEERING = "engineering workstation"
    HISTORIAN = "historian"
    CLIENT = "ICS client"


# Server side of a protocol -> the role it gives.
SERVER_ROLES: dict[str, Role] = {
    "modbus": Role.PLC,
    "s7comm": Role.PLC,
    "s7comm-plus": Role.PLC,
    "dnp3": Role.RTU,
    "iec104": Role.RTU,
}
# Protocols whose client is a SCADA master by the protocol's own terms.
MASTER_PROTOCOLS: dict[str, str] = {"dnp3": "DNP3 master", "iec104": "IEC-104 controlling station"}
ENGINEERING_CLASSES = frozenset({"control", "file"})
# Control and diagnostic functions every SCADA master sends in its start-up and upkeep: evidence
# of a master, not of engineering (DNP3 unsolicited on/off, class assignment and time sync,
# IEC-104 clock sync and test command).
ROUTINE_MASTER = frozenset({
    ("dnp3", "ENABLE_UNSOLICITED"), ("dnp3", "DISABLE_UNSOLICITED"), ("dnp3", "ASSIGN_CLASS"),
    ("dnp3", "RECORD_CURRENT_TIME"), ("dnp3", "DELAY_MEASURE"),
    ("iec104", "C_CS_NA_1"), ("iec104", "C_TS_NA_1"), ("iec104", "C_TS_TA_1"),
})
ENGINEERING_PREFIXES = ("userdata.block.", "userdata.programmer.")
SUBSCRIBE_PREFIXES = ("userdata.cyclic.",)  # S7 cyclic / change-driven data: what HMIs ask for
INSPECT_CLASSES = frozenset({"identify", "diagnostic"})
OPERATOR_CLASSES = frozenset({"write", "command"})
MAX_READ_KEYS = 200_000  # distinct read requests followed for polling and points
SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class RoleThresholds:
    """The numbers of the role rules (module docstring)."""

    poll_min_requests: int = 3  # a read repeated this often...
    poll_max_cv: float = 0.5  # ...with gaps this regular (std / mean) is a poll
    historian_min_points: int = 100  # distinct points read
    historian_min_span_s: float = 1800.0  # first to last request


@dataclass(frozen=True, slots=True)
class Service:
    """One protocol spoken by an asset, on one side."""

    protocol: str
    side: str  # "server" or "client"
    transport: str
    ports: tuple[int, ...]  # the server's ports (for a client: the ports it connected to)
    units: tuple[int, ...]  # Modbus unit ids, DNP3 outstation addresses, IEC-104 common addresses
    peers: tuple[str, ...]

    def label(self) -> str:
        ports = ",".join(str(p) for p in self.ports[:3]) + ("..." if len(self.ports) > 3 else "")
        return f"{self.protocol} {self.side} {self.transport}/{ports}"


@dataclass(frozen=True, slots=True)
class Asset:
    address: str
    macs: tuple[str, ...]
    role: Role
    because: tuple[str, ...]  # the evidence for ``role``
    also: tuple[Role, ...]  # other roles with evidence, in the order of the rules
    evidence: Mapping[Role, tuple[str, ...]]  # every role with evidence -> that evidence
    identity: Identity
    services: tuple[Service, ...]
    peers: tuple[str, ...]
    sent: Mapping[str, int]  # requests sent, by op_class
    received: Mapping[str, int]  # requests received, by op_class
    malformed: int  # malformed PDUs sent
    first_seen: float  # epoch seconds
    last_seen: float
    notes: tuple[str, ...] = ()

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(sorted({s.protocol for s in self.services}))

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "macs": list(self.macs),
            "role": str(self.role),
            "because": list(self.because),
            "also": [str(r) for r in self.also],
            "evidence": {str(r): list(v) for r, v in self.evidence.items()},
            "identity": self.identity.to_json(),
            "services": [
                {"protocol": s.protocol, "side": s.side, "transport": s.transport,
                 "ports": list(s.ports), "units": list(s.units), "peers": list(s.peers)}
                for s in self.services
            ],
            "peers": list(self.peers),
            "operations": {"sent": dict(self.sent), "received": dict(self.received)},
            "malformed": self.malformed,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Edge:
    """Who talks to whom: one client, one server, one protocol."""

    client: str
    server: str
    protocol: str
    transport: str
    ports: tuple[int, ...]
    operations: Mapping[str, int]  # requests by op_class, plus spontaneous data as "monitor"
    functions: Mapping[str, int]  # requests by function name
    first_seen: float
    last_seen: float

    @property
    def total(self) -> int:
        return sum(self.operations.values())

    def label(self, top: int = 3) -> str:
        """'modbus: read 84, write 2': the busiest classes, session upkeep only when alone."""
        ops = sorted(self.operations.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = [kv for kv in ops if kv[0] != "session"] or ops
        return f"{self.protocol}: " + ", ".join(f"{k} {v}" for k, v in shown[:top])

    def to_json(self) -> dict[str, Any]:
        return {"client": self.client, "server": self.server, "protocol": self.protocol,
                "transport": self.transport, "ports": list(self.ports),
                "operations": dict(self.operations), "functions": dict(self.functions),
                "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen)}


@dataclass(frozen=True, slots=True)
class Inventory:
    captures: tuple[str, ...]
    assets: tuple[Asset, ...]
    edges: tuple[Edge, ...]
    notes: tuple[str, ...] = ()

    def asset(self, address: str) -> Asset | None:
        for a in self.assets:
            if a.address == address:
                return a
        return None

    def to_json(self) -> dict[str, Any]:
        return {"captures": list(self.captures), "assets": [a.to_json() for a in self.assets],
                "edges": [e.to_json() for e in self.edges], "notes": list(self.notes)}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------- building


class _Host:
    __slots__ = ("first", "last", "malformed", "received", "sent", "served", "used")

    def __init__(self, ts: int) -> None:
        self.first = ts
        self.last = ts
        self.malformed = 0
        # requests sent: (server, protocol, op_class, function) -> count
        self.sent: Counter[tuple[str, str, str, str]] = Counter()
        self.received: Counter[str] = Counter()
        # protocol -> (transport, server ports, units, peers), as server and as client
        self.served: dict[str, tuple[str, set[int], set[int], set[str]]] = {}
        self.used: dict[str, tuple[str, set[int], set[int], set[str]]] = {}


class _Conv:
    __slots__ = ("first", "functions", "last", "ops", "ports", "transport")

    def __init__(self, transport: str, ts: int) -> None:
        self.transport = transport
        self.ports: set[int] = set()
        self.ops: Counter[str] = Counter()
        self.functions: Counter[str] = Counter()
        self.first = ts
        self.last = ts


class _Poll:
    """One distinct read request of one client: how often, and how regular its gaps are."""

    __slots__ = ("gap_n", "gap_sq", "gap_sum", "last", "n")

    def __init__(self) -> None:
        self.n = 0
        self.last = 0  # microseconds
        self.gap_n = 0
        self.gap_sum = 0.0
        self.gap_sq = 0.0

    def cv(self) -> float:
        if self.gap_n < 1 or self.gap_sum <= 0:
            return math.inf
        mean = self.gap_sum / self.gap_n
        var = max(self.gap_sq / self.gap_n - mean * mean, 0.0)
        return math.sqrt(var) / mean

    def period(self) -> float:
        return self.gap_sum / self.gap_n if self.gap_n else 0.0


def _str(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Dictionary columns as plain strings, for comparisons and joins."""
    if pa.types.is_dictionary(col.type):
        return pc.cast(col, pa.string())
    return col


class InventoryBuilder:
    """Feeds on record batches (:meth:`update`), then builds the :class:`Inventory`."""

    def __init__(self, thresholds: RoleThresholds | None = None) -> None:
        self.thresholds = thresholds or RoleThresholds()
        self._hosts: dict[str, _Host] = {}
        self._convs: dict[tuple[str, str, str], _Conv] = {}
        self._polls: dict[str, _Poll] = {}
        self._points: dict[tuple[Any, ...], int] = {}
        self._identity = IdentityCollector()
        self._capped = False

    # -- one batch at a time ------------------------------------------------------------

    def update(self, batch: pa.RecordBatch) -> None:
        # Connection records (a SYN, a RST) say nothing of a host's ICS role: a host that only
        # sent SYNs is no master, one that refused them serves nothing.
        batch = ics_only(batch)
        if batch.num_rows == 0:
            return
        direction = _str(batch.column("direction"))
        request = pc.equal(direction, "request")
        src, dst = batch.column("src"), batch.column("dst")
        t = pa.table({
            "client": pc.if_else(request, src, dst),
            "server": pc.if_else(request, dst, src),
            "port": pc.if_else(request, batch.column("dport"), batch.column("sport")),
            "transport": _str(batch.column("transport")),
            "protocol": _str(batch.column("protocol")),
            "direction": direction,
            "op_class": _str(batch.column("op_class")),
            "function": batch.column("function"),
            "unit": batch.column("unit"),
            "object": batch.column("object"),
            "address": batch.column("address"),
            "count": batch.column("count"),
            "ts": pc.cast(batch.column("ts"), pa.int64()),
        })
        self._conversations(t)
        reads = pc.equal(t.column("op_class"), "read")
        self._polling(t.filter(pc.and_(reads, request)))
        self._read_points(t.filter(reads))
        self._identities(batch, t)

    def _conversations(self, t: pa.Table) -> None:
        keys = ["client", "server", "port", "transport", "protocol", "direction", "op_class",
                "function", "unit"]
        groups = t.group_by(keys).aggregate([("ts", "min"), ("ts", "max"), ("ts", "count")])
        hosts, convs = self._hosts, self._convs
        for g in groups.to_pylist():
            client, server, proto = g["client"], g["server"], g["protocol"]
            first, last, n = g["ts_min"], g["ts_max"], g["ts_count"]
            op_class, function, is_request = g["op_class"], g["function"], g["direction"] == "request"
            for addr in (client, server):
                h = hosts.get(addr)
                if h is None:
                    h = hosts[addr] = _Host(first)
                h.first = min(h.first, first)
                h.last = max(h.last, last)
            c, s = hosts[client], hosts[server]
            conv = convs.get((client, server, proto))
            if conv is None:
                conv = convs[(client, server, proto)] = _Conv(g["transport"], first)
            conv.first = min(conv.first, first)
            conv.last = max(conv.last, last)
            if g["port"] is not None:
                conv.ports.add(g["port"])
            for side, addr, peer in ((s.served, proto, client), (c.used, proto, server)):
                entry = side.get(addr)
                if entry is None:
                    entry = side[addr] = (g["transport"], set(), set(), set())
                if g["port"] is not None:
                    entry[1].add(g["port"])
                if g["unit"] is not None and len(entry[2]) < 256:
                    entry[2].add(g["unit"])
                entry[3].add(peer)
            if op_class == "malformed":
                (c if is_request else s).malformed += n
            if is_request:
                conv.ops[op_class] += n
                if function:
                    conv.functions[function] += n
                c.sent[(server, proto, op_class, function or "")] += n
                s.received[op_class] += n
            elif op_class in ("monitor", "malformed"):
                conv.ops[op_class] += n  # spontaneous data and bad answers have no request

    def _polling(self, reads: pa.Table) -> None:
        """Per distinct read request: count and the regularity of its gaps, batch-wise."""
        if reads.num_rows == 0:
            return
        parts = [reads.column(c) for c in ("client", "server", "protocol")]
        parts += [pc.cast(reads.column(c), pa.string())
                  for c in ("unit", "function", "object", "address", "count")]
        keys = pc.binary_join_element_wise(*parts, SEP, null_handling="replace",
                                           null_replacement="")
        enc = keys.combine_chunks().dictionary_encode()
        idx = enc.indices.to_numpy()
        names = enc.dictionary.to_pylist()
        ts = reads.column("ts").to_numpy()
        order = np.lexsort((ts, idx))
        idx_s, ts_s = idx[order], ts[order]
        cut = np.flatnonzero(idx_s[1:] != idx_s[:-1]) + 1
        starts = np.concatenate(([0], cut))
        ends = np.concatenate((cut, [len(idx_s)]))
        gaps = np.diff(ts_s).astype(np.float64) / 1e6
        gaps[idx_s[1:] != idx_s[:-1]] = 0.0
        csum = np.concatenate(([0.0], np.cumsum(gaps)))
        csq = np.concatenate(([0.0], np.cumsum(gaps * gaps)))
        polls = self._polls
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            name = names[idx_s[a]]
            p = polls.get(name)
            if p is None:
                if len(polls) >= MAX_READ_KEYS:
                    self._capped = True
                    continue
                p = polls[name] = _Poll()
            elif p.n:
                gap = (int(ts_s[a]) - p.last) / 1e6  # from the last poll of the previous batch
                p.gap_n += 1
                p.gap_sum += gap
                p.gap_sq += gap * gap
            p.n += b - a
            p.gap_n += b - a - 1
            p.gap_sum += float(csum[b - 1] - csum[a])
            p.gap_sq += float(csq[b - 1] - csq[a])
            p.last = int(ts_s[b - 1])

    def _read_points(self, reads: pa.Table) -> None:
        """Points read per client: the largest count seen for each distinct read (request or
        answer: DNP3 and IEC-104 requests name classes, their answers the points)."""
        if reads.num_rows == 0:
            return
        keys = ["client", "server", "protocol", "unit", "object", "address"]
        groups = reads.group_by(keys).aggregate([("count", "max")])
        points = self._points
        for g in groups.to_pylist():
            count = g["count_max"]
            if not count:
                continue
            key = tuple(g[k] for k in keys)
            old = points.get(key)
            if old is None and len(points) >= MAX_READ_KEYS:
                self._capped = True
                continue
            if old is None or count > old:
                points[key] = count

    def _identities(self, batch: pa.RecordBatch, t: pa.Table) -> None:
        op_class, direction = t.column("op_class"), t.column("direction")
        protocol, function = t.column("protocol"), t.column("function")
        detail = batch.column("detail")
        mask = pc.or_kleene(
            pc.or_kleene(
                pc.and_kleene(pc.equal(op_class, "identify"), pc.equal(direction, "response")),
                pc.equal(function, "cotp_cr"),
            ),
            pc.and_kleene(pc.equal(protocol, "dnp3"), pc.match_substring(detail, DNP3_G0)),
        )
        mask = pc.fill_null(mask, False)
        if not pc.any(mask).as_py():
            return
        cols = ["frame", "src", "dst", "sport", "dport", "detail"]
        rows = pa.table({c: batch.column(c) for c in cols}).filter(mask)
        extra = t.filter(mask).select(["protocol", "direction", "op_class", "function"])
        for r, e in zip(rows.to_pylist(), extra.to_pylist(), strict=True):
            self._identity.add({**r, **e})

    # -- the result -------------------------------------------------------------------

    def addresses(self) -> list[str]:
        """The hosts seen so far in ICS records."""
        return list(self._hosts)

    def finish(self, captures: Iterable[str] = (),
               macs: Mapping[str, tuple[str, ...]] | None = None,
               notes: Iterable[str] = ()) -> Inventory:
        macs = macs or {}
        identities = self._identity.identities()
        polls = self._polls_by_client()
        points = Counter[str]()
        servers_read: dict[str, set[str]] = {}
        for (client, server, *_), count in self._points.items():
            points[client] += count
            servers_read.setdefault(client, set()).add(server)
        assets = []
        for addr in sorted(self._hosts, key=_address_key):
            h = self._hosts[addr]
            role, evidence = self._role(h, polls.get(addr, []), points[addr],
                                        len(servers_read.get(addr, ())))
            sent = Counter[str]()
            for (_, _, op_class, _), n in h.sent.items():
                sent[op_class] += n
            services = [_service(p, "server", e) for p, e in sorted(h.served.items())]
            services += [_service(p, "client", e) for p, e in sorted(h.used.items())]
            peers = {p for s in services for p in s.peers}
            assets.append(Asset(
                address=addr, macs=macs.get(addr, ()), role=role, because=evidence[role],
                also=tuple(r for r in evidence if r is not role), evidence=evidence,
                identity=identities.get(addr, Identity()),
                services=tuple(services), peers=tuple(sorted(peers, key=_address_key)),
                sent=dict(sent.most_common()), received=dict(h.received.most_common()),
                malformed=h.malformed, first_seen=h.first / 1e6, last_seen=h.last / 1e6,
                notes=tuple(self._identity.notes.get(addr, ())),
            ))
        edges = tuple(
            Edge(client=c, server=s, protocol=p, transport=v.transport,
                 ports=tuple(sorted(v.ports)), operations=dict(v.ops.most_common()),
                 functions=dict(v.functions.most_common()), first_seen=v.first / 1e6,
                 last_seen=v.last / 1e6)
            for (c, s, p), v in sorted(self._convs.items(),
                                       key=lambda kv: (_address_key(kv[0][0]),
                                                       _address_key(kv[0][1]), kv[0][2]))
        )
        all_notes = list(notes)
        if self._capped:
            all_notes.append(f"more than {MAX_READ_KEYS} distinct reads: later ones were not "
                             "followed for polling and points")
        return Inventory(captures=tuple(captures), assets=tuple(assets), edges=edges,
                         notes=tuple(all_notes))

    def _polls_by_client(self) -> dict[str, list[tuple[str, str, _Poll]]]:
        """Reads that qualify as polls, per client: (server, protocol, stats)."""
        th = self.thresholds
        out: dict[str, list[tuple[str, str, _Poll]]] = {}
        for name, p in self._polls.items():
            if p.n >= th.poll_min_requests and p.cv() <= th.poll_max_cv:
                client, server, protocol = name.split(SEP, 3)[:3]
                out.setdefault(client, []).append((server, protocol, p))
        return out

    def _role(self, h: _Host, polls: list[tuple[str, str, _Poll]], points: int,
              n_servers: int) -> tuple[Role, dict[Role, tuple[str, ...]]]:
        """The role and the evidence of every role that had some, chosen role first."""
        th = self.thresholds
        found: dict[Role, list[str]] = {}
        # 1. servers
        for proto, (transport, ports, units, peers) in sorted(h.served.items()):
            role = SERVER_ROLES.get(proto, Role.PLC)
            what = "outstation" if proto == "dnp3" else "controlled station" if proto == "iec104" \
                else "server"
            unit_text = f" (unit {_list(sorted(units))})" if units else ""
            found.setdefault(role, []).append(
                f"{proto} {what} on {transport}/{_list(sorted(ports))}{unit_text} "
                f"for {_count(len(peers), 'client')}")
        # client behaviour, from the requests it sent
        eng = Counter[tuple[str, str]]()  # (server, "protocol function") -> requests
        inspect = Counter[tuple[str, str]]()
        operator = Counter[tuple[str, str]]()
        subscribe = Counter[tuple[str, str]]()
        routine = Counter[tuple[str, str]]()
        reads = 0
        for (server, proto, op_class, function), n in h.sent.items():
            name = (server, f"{proto} {function or op_class}")
            if (proto, function) in ROUTINE_MASTER:
                routine[name] += n
            elif op_class in ENGINEERING_CLASSES or function.startswith(ENGINEERING_PREFIXES):
                eng[name] += n
            elif op_class in INSPECT_CLASSES:
                inspect[name] += n
            elif op_class in OPERATOR_CLASSES:
                operator[name] += n
            elif function.startswith(SUBSCRIBE_PREFIXES):
                subscribe[name] += n
            elif op_class == "read":
                reads += n
        masters = [f"{MASTER_PROTOCOLS[p]} of {_list(sorted(e[3], key=_address_key))}"
                   for p, e in sorted(h.used.items()) if p in MASTER_PROTOCOLS]
        span = (h.last - h.first) / 1e6
        reads += sum(subscribe.values())
        reads_only = reads > 0 and not eng and not operator
        historian = (reads_only and points >= th.historian_min_points
                     and span >= th.historian_min_span_s)
        if eng:
            found.setdefault(Role.ENGINEERING, []).append(
                "engineering functions " + _counted(eng))
        poll_text = _polls_text(polls)
        if subscribe:
            poll_text.append("subscribes to data: " + _counted(subscribe))
        if poll_text or masters:
            role = Role.HISTORIAN if historian else Role.HMI
            found.setdefault(role, []).extend(poll_text + masters)
            if routine:
                found.setdefault(role, []).append("master upkeep " + _counted(routine))
            if operator:
                found.setdefault(role, []).append("writes and commands " + _counted(operator))
        if inspect:
            found.setdefault(Role.ENGINEERING, []).append(
                "identity and diagnostics " + _counted(inspect))
        if historian:
            found.setdefault(Role.HISTORIAN, []).append(
                f"reads only: {points} points from {_count(n_servers, 'server')} over "
                f"{_duration(span)}")
        # the order of the rules decides between roles that all have evidence
        if any(r in found for r in (Role.PLC, Role.RTU)):
            order = [Role.RTU, Role.PLC, Role.ENGINEERING, Role.HISTORIAN, Role.HMI]
        elif eng:
            order = [Role.ENGINEERING, Role.HISTORIAN, Role.HMI]
        else:
            order = [Role.HISTORIAN, Role.HMI, Role.ENGINEERING]
        chosen = next((r for r in order if r in found), None)
        if chosen is None:
            sent = sum(h.sent.values())
            what = ("writes and commands " + _counted(operator) if operator
                    else _count(reads, "read") if reads else _count(sent, "request"))
            return Role.CLIENT, {Role.CLIENT: (f"too little behaviour to say more: {what}",)}
        if chosen in (Role.HMI, Role.HISTORIAN) and inspect and not eng:
            # HMIs read identity and diagnostics too (rule 4 comes after polling): say so
            found[chosen].append("also identity and diagnostics " + _counted(inspect))
            del found[Role.ENGINEERING]
        return chosen, {r: tuple(found[r]) for r in [chosen, *order] if r in found}


def _service(proto: str, side: str, e: tuple[str, set[int], set[int], set[str]]) -> Service:
    transport, ports, units, peers = e
    return Service(proto, side, transport, tuple(sorted(ports)), tuple(sorted(units)),
                   tuple(sorted(peers, key=_address_key)))


def _polls_text(polls: list[tuple[str, str, _Poll]], limit: int = 3) -> list[str]:
    """'polls 10.0.0.8 (modbus) every 500 ms: 3 reads repeated, 84 requests', busiest first."""
    per: dict[tuple[str, str], list[_Poll]] = {}
    for server, proto, p in polls:
        per.setdefault((server, proto), []).append(p)
    ranked = sorted(per.items(), key=lambda kv: (-sum(p.n for p in kv[1]), _address_key(kv[0][0])))
    out = []
    for (server, proto), ps in ranked[:limit]:
        period = sorted(p.period() for p in ps)[len(ps) // 2]  # the median read's period
        times = sum(p.n for p in ps)
        out.append(f"polls {server} ({proto}) every {_duration(period)}: "
                   f"{_count(len(ps), 'read')} repeated, {times} requests")
    if len(ranked) > limit:
        out.append(f"and polls {len(ranked) - limit} more servers")
    return out


def _counted(c: Counter[tuple[str, str]], limit: int = 4) -> str:
    """'to 10.0.0.8: 3 s7comm pi_service, 1 s7comm plc_stop; to ...' (busiest first)."""
    per: dict[str, Counter[str]] = {}
    for (server, name), n in c.items():
        per.setdefault(server, Counter())[name] += n
    ranked = sorted(per.items(), key=lambda kv: (-sum(kv[1].values()), _address_key(kv[0])))
    parts = []
    for server, names in ranked[:limit]:
        items = names.most_common()
        text = ", ".join(f"{n} {name}" for name, n in items[:limit])
        more = f" and {len(items) - limit} more kinds" if len(items) > limit else ""
        parts.append(f"to {server}: {text}{more}")
    rest = f"; and {len(ranked) - limit} more servers" if len(ranked) > limit else ""
    return "; ".join(parts) + rest


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _list(items: Iterable[Any], limit: int = 4) -> str:
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f" (+{len(items) - limit})" if len(items) > limit else "")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _address_key(addr: str) -> tuple[int, ...]:
    """Numeric order for IPv4 (10.0.0.2 before 10.0.0.10), IPv6 after IPv4."""
    if "." in addr and ":" not in addr:
        try:
            return (4, *(int(p) for p in addr.split(".")))
        except ValueError:
            pass
    return (6, *(ord(ch) for ch in addr))


def build(batches: Iterable[pa.RecordBatch], thresholds: RoleThresholds | None = None,
          **finish: Any) -> Inventory:
    """An inventory from record batches (``decode_path(...)[0]``)."""
    builder = InventoryBuilder(thresholds)
    for batch in batches:
        builder.update(batch)
    return builder.finish(**finish)


__all__ = ["Asset", "Edge", "Inventory", "InventoryBuilder", "Role", "RoleThresholds",
           "Service", "build"]
