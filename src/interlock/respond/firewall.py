"""The inline Modbus/TCP firewall: an asyncio proxy that applies a :class:`Policy` per request.

Each client connection gets its own upstream connection and is served in order, one request then
its response, which is how Modbus/TCP clients and most PLCs work; so transaction ids pass through
unchanged and responses are relayed byte for byte. The decision is the pure
:func:`~interlock.respond.policy.decide`; this module only moves bytes and reports.

Failure behaviour (issue 8): a request that breaks the spec is dropped and alerted, in every
mode; a broken MBAP header ends the connection, because the next frame
boundary cannot be found. Upstream unreachable: GATEWAY_PATH_UNAVAILABLE (0x0A); upstream silent
or gone mid-request: GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND (0x0B). The proxy keeps serving and
reconnects on the next request. An unexpected exception in decoding or in the policy engine
follows ``fail``: ``open`` forwards the request, ``closed`` answers SERVER_DEVICE_FAILURE (0x04);
both alert. Connections over ``max_connections`` (total) or ``max_clients_per_host`` are reset
before a byte is read. ``learn`` mode forwards everything and learns a policy from it
(:class:`~interlock.respond.learned.PolicyLearner`). :meth:`Firewall.reload` swaps the policy of
a running firewall (the command line calls it on SIGHUP and when the policy file changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar

from interlock.detect import attack
from interlock.detect.alerts import Alert, FlowRef
from interlock.protocols.base import Direction, Malformed
from interlock.protocols.modbus import ExceptionCode, ModbusPdu, build_adu, parse_mbap, parse_pdu
from interlock.protocols.modbus.fields import MBAP_SIZE
from interlock.respond.learned import PolicyLearner
from interlock.respond.limits import ConnectionLimits
from interlock.respond.limits import reset as _reset
from interlock.respond.policy import (
    Policy,
    RateLimiter,
    Request,
    Verdict,
    decide,
    parse_policy,
    request_of,
)

Mode = Literal["enforce", "monitor", "learn"]
FailMode = Literal["open", "closed"]
AlertSink = Callable[[Alert], None]
Severity = Literal["low", "medium", "high", "critical"]


@dataclass(frozen=True, slots=True)
class FirewallConfig:
    listen: tuple[str, int]
    upstream: tuple[str, int]
    policy: Policy
    mode: Mode = "enforce"
    # A PLC answers in milliseconds; seconds of silence mean it is gone, and the client's own
    # timeout (pymodbus: 3 s) should see our 0x0B rather than expire first.
    response_timeout: float = 2.0
    connect_timeout: float = 1.0
    fail: FailMode = "closed"  # what an unexpected error in decoding or the policy engine does
    max_connections: int | None = None
    max_clients_per_host: int | None = None
    learn_out: Path | None = None  # learn mode: where the learned policy is written on close


@dataclass(slots=True)
class Stats:
    connections: int = 0
    forwarded: int = 0
    blocked: int = 0
    malformed: int = 0
    upstream_failures: int = 0
    refused: int = 0  # connections over a limit
    engine_errors: int = 0
    reloads: int = 0


def exception_adu(transaction_id: int, unit: int, function: int, code: ExceptionCode) -> bytes:
    """The exception response a gateway sends: function code with bit 7 set, then the code."""
    return build_adu(transaction_id, unit, bytes(((function & 0x7F) | 0x80, int(code))))


class _Learner(Protocol):
    def to_yaml(self) -> str: ...


LearnerT = TypeVar("LearnerT", bound=_Learner)


class Proxy(Generic[LearnerT]):
    """What the Modbus and DNP3 firewalls share: the listening server, the policy and its rate
    limit (reloadable), the connection limits, the learner of learn mode, and the alerts.

    A subclass names its protocol (``PROTOCOL`` for flows, ``NAME`` for alert titles), sets
    ``learner`` in learn mode and serves one admitted client connection in ``_session``.
    """

    PROTOCOL = ""
    NAME = ""

    def __init__(self, config: FirewallConfig, sink: AlertSink,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.sink = sink
        self.clock = clock
        self.stats = Stats()
        self.rate = RateLimiter(config.policy.max_rate) if config.policy.max_rate else None
        self.limits = ConnectionLimits(config.max_connections, config.max_clients_per_host)
        self.learner: LearnerT | None = None
        self._server: asyncio.Server | None = None

    def reload(self, policy: Policy) -> None:
        """Use ``policy`` from the next request on; connections stay open. The rate buckets
        restart only when the rate changes."""
        old = self.config.policy.max_rate
        self.config = replace(self.config, policy=policy)
        if policy.max_rate != old:
            self.rate = RateLimiter(policy.max_rate) if policy.max_rate else None
        self.stats.reloads += 1

    def write_learned(self) -> Path | None:
        """Learn mode: write the policy seen so far to ``learn_out`` (None if nothing to do)."""
        if self.learner is None or self.config.learn_out is None:
            return None
        self.config.learn_out.write_text(self.learner.to_yaml(), encoding="utf-8")
        return self.config.learn_out

    async def start(self) -> None:
        host, port = self.config.listen
        self._server = await asyncio.start_server(self._serve, host, port)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # --- one client connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Admit the client (or reset it, over a connection limit), then serve its session."""
        peer = writer.get_extra_info("peername") or ("?", 0)
        client = (str(peer[0]), int(peer[1]))
        refused = self.limits.admit(client[0])
        if refused is not None:
            self.stats.refused += 1
            if self.limits.should_alert(client[0], time.monotonic()):
                self._emit("T0814", "medium", client, 0, "firewall/limit",
                           f"{self.NAME} connection refused by firewall limit",
                           f"{client[0]}: {refused}; further refusals of this host are counted, "
                           "alerted again after 10 s")
            _reset(writer)
            return
        self.stats.connections += 1
        try:
            await self._session(reader, writer, client)
        finally:
            self.limits.release(client[0])

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       client: tuple[str, int]) -> None:
        raise NotImplementedError

    def _over_rate(self, client: str) -> bool:
        """True when ``client`` exceeds the policy's ``max_rate`` (this request spends a token)."""
        return self.rate is not None and not self.rate.take(client, time.monotonic())

    # --- alerts

    def _emit(self, technique_id: str, severity: Severity, client: tuple[str, int], unit: int,
              rule: str, title: str, explanation: str) -> None:
        """One alert about ``client``'s traffic to ``unit`` (Modbus unit, DNP3 destination)."""
        t = attack.technique(technique_id)
        host, port = self.config.upstream
        self.sink(Alert(
            ts=self.clock(), technique=t.id, technique_name=t.name,
            tactics=tuple(attack.tactic(s).name for s in t.tactics), severity=severity,
            src=client[0], dst=host, asset=f"{host}:{port}/{unit}", rule=rule, title=title,
            explanation=explanation, frames=(),
            flow=FlowRef(client[0], client[1], host, port, self.PROTOCOL)))


class Firewall(Proxy[PolicyLearner]):
    """Serve ``config.listen``; ``sink`` receives every alert (block, flag, malformed frame)."""

    PROTOCOL = "modbus"
    NAME = "Modbus"

    def __init__(self, config: FirewallConfig, sink: AlertSink,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, sink, clock)
        self.learner = PolicyLearner(comment=f"learned live by interlock firewall in front of "
                                     f"{config.upstream[0]}:{config.upstream[1]}"
                                     ) if config.mode == "learn" else None

    def enforce_learned(self) -> Policy | None:
        """Learn mode -> enforce mode with the policy learned so far (the drill does this when its
        warm-up ends); None, and no change, when not learning."""
        if self.learner is None:
            return None
        policy = parse_policy(self.learner.to_yaml(), "<learned>")
        self.learner = None
        self.config = replace(self.config, mode="enforce")
        self.reload(policy)
        return policy

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    # --- one client connection

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       client: tuple[str, int]) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                frame = await self._read_request(reader, client)
                if frame is None:
                    return
                # read per request: a learning firewall may switch to enforcing mid-connection
                enforce = self.config.mode == "enforce"
                adu, tid, unit, pdu = frame
                function = adu[MBAP_SIZE]
                if pdu is None:
                    # malformed but framed: already alerted; dropped in every mode, since a
                    # PLC's parser is the last place a malformed request should be tested
                    continue
                else:
                    try:
                        if isinstance(pdu, Exception):
                            raise pdu
                        req = request_of(unit, pdu, function)
                        if self.learner is not None:
                            self.learner.observe(client[0], req)
                            verdict = Verdict(True, "learn", "learn mode")
                        else:
                            verdict = self._verdict(req, client[0])
                    except Exception as exc:
                        if not self._engine_error(exc, client, unit, function) and enforce:
                            self.stats.blocked += 1
                            writer.write(exception_adu(tid, unit, function,
                                                       ExceptionCode.SERVER_DEVICE_FAILURE))
                            await writer.drain()
                            continue
                        verdict = Verdict(True, "fail-open", "forwarded")
                    if not verdict.allow:
                        self._alert(verdict, client, unit, req)
                        if enforce:
                            self.stats.blocked += 1
                            action = self.config.policy.action
                            if action == "reset":
                                _reset(writer)
                                return
                            if action == "exception" and verdict.exception is not None:
                                writer.write(exception_adu(tid, unit, function, verdict.exception))
                                await writer.drain()
                            continue
                response, upstream = await self._forward(adu, tid, unit, function, upstream)
                writer.write(response)
                await writer.drain()
        except (ConnectionError, OSError):
            return  # the client went away; nothing to answer
        finally:
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    def _verdict(self, req: Request, client: str) -> Verdict:
        if self._over_rate(client):
            return Verdict(False, "rate", f"{client} exceeds {self.config.policy.max_rate:g} "
                           "requests/s", ExceptionCode.SERVER_DEVICE_BUSY, "T0814")
        return decide(req, client, self.config.policy)

    def _engine_error(self, exc: Exception, client: tuple[str, int], unit: int,
                      function: int) -> bool:
        """An unexpected exception while decoding or deciding: alert; True if it fails open."""
        self.stats.engine_errors += 1
        opened = self.config.fail == "open"
        fate = ("forwarded (--fail open)" if opened else "blocked (--fail closed)") \
            if self.config.mode == "enforce" else f"forwarded ({self.config.mode} mode)"
        self._emit("T0855", "high", client, unit, f"firewall/fail-{self.config.fail}",
                   f"Modbus request {fate} after a firewall error",
                   f"function {function} from {client[0]}: {type(exc).__name__}: {exc}")
        return opened

    async def _read_request(self, reader: asyncio.StreamReader, client: tuple[str, int]
                            ) -> tuple[bytes, int, int, ModbusPdu | Exception | None] | None:
        """Next request ADU as (bytes, tid, unit, pdu or None if malformed, or the exception
        the codec raised); None ends the connection."""
        try:
            head = await reader.readexactly(MBAP_SIZE)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                self._malformed(client, 0, f"connection closed inside an MBAP header "
                                           f"({len(e.partial)} bytes)")
            return None
        header = parse_mbap(head)
        if isinstance(header, Malformed):
            self._malformed(client, head[6], f"{header.reason}: {header.detail}; "
                                             "connection closed (frame boundary lost)")
            return None
        try:
            body = await reader.readexactly(header.length - 1)
        except asyncio.IncompleteReadError as e:
            self._malformed(client, header.unit_id, f"MBAP length {header.length} but only "
                                                    f"{len(e.partial)} PDU bytes before close")
            return None
        try:
            pdu = parse_pdu(body, Direction.REQUEST)
        except Exception as exc:
            return head + body, header.transaction_id, header.unit_id, exc
        if isinstance(pdu, Malformed):
            self._malformed(client, header.unit_id,
                            f"function {body[0]}: {pdu.reason} {pdu.detail}".strip())
            return head + body, header.transaction_id, header.unit_id, None
        return head + body, header.transaction_id, header.unit_id, pdu

    async def _forward(self, adu: bytes, tid: int, unit: int, function: int,
                       upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
                       ) -> tuple[bytes, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
        host, port = self.config.upstream
        if upstream is None:
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                  self.config.connect_timeout)
            except (OSError, TimeoutError):
                self.stats.upstream_failures += 1
                return exception_adu(tid, unit, function,
                                     ExceptionCode.GATEWAY_PATH_UNAVAILABLE), None
        up_reader, up_writer = upstream
        try:
            # asyncio.timeout, not wait_for: wait_for wraps each read in a task, which costs
            # more than the rest of the request's path (measured with benchmarks/firewall.py)
            async with asyncio.timeout(self.config.response_timeout):
                up_writer.write(adu)
                await up_writer.drain()
                head = await up_reader.readexactly(MBAP_SIZE)
                length = struct.unpack_from(">H", head, 4)[0]
                body = await up_reader.readexactly(max(length - 1, 0))
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            self.stats.upstream_failures += 1
            with contextlib.suppress(Exception):
                up_writer.close()
            return exception_adu(tid, unit, function,
                                 ExceptionCode.GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND), None
        self.stats.forwarded += 1
        return head + body, upstream

    # --- alerts

    def _alert(self, verdict: Verdict, client: tuple[str, int], unit: int, req: Request) -> None:
        enforce = self.config.mode == "enforce"
        verb = {"exception": "blocked", "drop": "dropped", "reset": "reset"}[
            self.config.policy.action] if enforce else "flagged (monitor mode, forwarded)"
        self._emit(verdict.technique, "high" if req.writes else "medium", client, unit,
                   f"firewall/{verdict.rule}", f"Modbus request {verb} by firewall policy",
                   verdict.reason)

    def _malformed(self, client: tuple[str, int], unit: int, detail: str) -> None:
        self.stats.malformed += 1
        fate = "dropped"
        self._emit("T0855", "medium", client, unit, "firewall/malformed",
                   f"Malformed Modbus request {fate}", f"from {client[0]}: {detail}")

