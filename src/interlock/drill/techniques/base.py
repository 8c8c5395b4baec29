"""What every technique family shares: targets, ground-truth actions, the run context, streams.

A technique is an async function that takes a :class:`Context` and returns :class:`Action`
records, one per run: the ground truth a drill compares with what the sensor reported. Every
application-layer frame the attacker sends goes through :meth:`Stream.send`, which keeps a copy
in the context, so ``Action.frames`` is exactly what a capture of the run must show.

Frames are hand-built with Interlock's own sans-I/O codecs over plain asyncio streams instead
of a protocol library's client (pymodbus, dnp3py, c104, snap7): a client library hides the
framing (transaction ids, retries, keep-alives it sends on its own), refuses malformed or unusual
frames, and so could neither fuzz nor give byte-exact ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from interlock.range.boundary import Boundary

OK = "ok"
NO_RESPONSE = "no response"
CONNECTION_REFUSED = "connection refused"
CONNECTION_CLOSED = "connection closed"
MALFORMED_RESPONSE = "malformed response"


@dataclass(frozen=True)
class Target:
    """A device of the range to attack.

    ``unit`` is the Modbus unit id, the DNP3 outstation (link) address, the IEC-104 common
    address (ASDU address), or for S7comm the rack and slot packed as ``rack * 32 + slot``
    (the low 5 bits of the COTP destination TSAP's second octet, as Siemens packs them).
    """

    host: str
    port: int
    protocol: str
    unit: int = 1
    name: str = ""

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Action:
    """Ground truth of one technique run: who sent what to whom, when, and what came back.

    ``frames`` holds every application-layer frame sent (Modbus ADU, DNP3 link frame, TPKT
    packet, IEC-104 APDU), in order; ``started``/``ended`` are wall-clock epoch seconds.
    """

    technique: str
    attack_ids: tuple[str, ...]
    source: str
    target: str
    started: float
    ended: float
    requests: int
    responses: int
    bytes_sent: int
    frames: tuple[bytes, ...]
    outcome: str
    detail: Mapping[str, object]


@dataclass(frozen=True)
class Technique:
    """One entry of the library: ids, protocol, parameters (name -> default) and the coroutine."""

    id: str
    attack_ids: tuple[str, ...]
    protocol: str
    description: str
    params: Mapping[str, object]
    run: Callable[..., Awaitable[list[Action]]]


def technique(tid: str, attack_ids: tuple[str, ...], protocol: str, description: str,
              params: Mapping[str, object],
              run: Callable[[Context], Awaitable[list[Action]]]) -> Technique:
    """A ``Technique`` whose params mapping is read-only (it is shared by every run)."""
    return Technique(tid, attack_ids, protocol, description, MappingProxyType(dict(params)), run)


class Refused(ConnectionError):
    """The target endpoint refused the TCP connection (nothing listens)."""


@dataclass
class Context:
    """One run: the target, its checked parameters, the clock, and the ledger of what was sent."""

    technique: Technique
    target: Target
    params: Mapping[str, object]
    boundary: Boundary
    source_host: str = "127.0.0.66"
    now: Callable[[], float] = time.time
    timeout_s: float = 2.0
    started: float = 0.0
    source: str = ""
    requests: int = 0
    responses: int = 0
    bytes_sent: int = 0
    frames: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.now()
        self.source = f"{self.source_host}:0"

    # --- parameters, typed (scenario files give YAML scalars and lists)

    def get(self, name: str) -> object:
        return self.params[name]

    def as_int(self, name: str) -> int:
        value = self.params[name]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{self.technique.id}: parameter {name} must be an integer, got {value!r}")
        return int(value, 0) if isinstance(value, str) else int(value)

    def as_float(self, name: str) -> float:
        value = self.params[name]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{self.technique.id}: parameter {name} must be a number, got {value!r}")
        return float(value)

    def as_bool(self, name: str) -> bool:
        value = self.params[name]
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "on", "yes")
        return bool(value)

    def as_str(self, name: str) -> str:
        return str(self.params[name])

    def as_ints(self, name: str) -> tuple[int, ...]:
        value = self.params[name]
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, Sequence):
            raise ValueError(f"{self.technique.id}: parameter {name} must be a list, got {value!r}")
        out = []
        for v in value:
            if isinstance(v, bool | int | float):
                out.append(int(v))
            elif isinstance(v, str):
                out.append(int(v, 0))
            else:
                raise ValueError(f"{self.technique.id}: {name} holds {v!r}, not an integer")
        return tuple(out)

    def unit(self) -> int:
        """The ``unit`` parameter, or the target's unit when the scenario leaves it out (None)."""
        return self.target.unit if self.params.get("unit") is None else self.as_int("unit")

    async def pause(self) -> None:
        """The ``interval_s`` between repeats: a real sleep, so the capture shows the rhythm."""
        interval = self.as_float("interval_s") if "interval_s" in self.params else 0.0
        if interval > 0:
            await asyncio.sleep(interval)

    # --- I/O

    async def connect(self, host: str | None = None, port: int | None = None) -> Stream:
        """A TCP connection from ``source_host`` to the target (checked against the boundary
        again here, so no code path opens a socket to an endpoint the range did not start)."""
        host = self.target.host if host is None else host
        port = self.target.port if port is None else port
        self.boundary.check(host, port)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(self.source_host, 0)), self.timeout_s)
        except ConnectionRefusedError as exc:
            raise Refused(f"{host}:{port} refused the connection") from exc
        sock = writer.get_extra_info("sockname")
        if self.source.endswith(":0") and sock:
            self.source = f"{sock[0]}:{sock[1]}"
        return Stream(self, reader, writer)

    def action(self, outcome: str, detail: Mapping[str, object] | None = None,
               attack_ids: tuple[str, ...] | None = None) -> Action:
        return Action(
            technique=self.technique.id,
            attack_ids=self.technique.attack_ids if attack_ids is None else attack_ids,
            source=self.source,
            target=self.target.endpoint,
            started=self.started,
            ended=self.now(),
            requests=self.requests,
            responses=self.responses,
            bytes_sent=self.bytes_sent,
            frames=tuple(self.frames),
            outcome=outcome,
            detail=dict(detail or {}),  # a plain dict: Actions are serialised (asdict, JSON)
        )


class Stream:
    """One TCP connection of a run; every frame sent is counted in the run's ledger."""

    def __init__(self, ctx: Context, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer

    async def send(self, frame: bytes, *, request: bool = True) -> None:
        """Write one application-layer frame; ``request=False`` for confirmations/acks, which are
        still frames on the wire (kept in ``frames`` and ``bytes_sent``) but not requests."""
        self.ctx.frames.append(bytes(frame))
        self.ctx.bytes_sent += len(frame)
        if request:
            self.ctx.requests += 1
        self.writer.write(frame)
        await self.writer.drain()

    async def recv(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly ``n`` bytes; ``TimeoutError`` after the run's timeout, ``IncompleteReadError``
        when the peer closes."""
        return await asyncio.wait_for(self.reader.readexactly(n),
                                      self.ctx.timeout_s if timeout is None else timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


class Link:
    """What every family's client shares: the run's context and its one TCP stream.

    ``open`` is the family's session setup (S7's COTP and setup communication, IEC-104's
    STARTDT); the families that connect on their first request keep the default, which does
    nothing. ``report`` adds what the link itself noticed to the body's detail.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.stream: Stream | None = None

    async def open(self) -> None:
        """Set the session up before the body runs (here: nothing, connect on the first request)."""

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()
            self.stream = None

    def report(self, detail: dict[str, object]) -> dict[str, object]:
        """The Action's detail: the body's, and what the link noticed (here: nothing)."""
        return detail


L = TypeVar("L")
LinkT = TypeVar("LinkT", bound=Link)
R = TypeVar("R")
Outcome = tuple[str, dict[str, object]]


@dataclass(frozen=True)
class Session:
    """How a family whose link opens a session turns the failures of a run into its outcome:
    ``refused`` (the family's exception for a session the peer would not set up) is ``session
    refused``, a timeout is ``no response`` with ``timeout_detail``, a dropped connection is
    ``connection closed``."""

    refused: type[Exception]
    timeout_detail: Mapping[str, object] = field(default_factory=dict)

    def outcome(self, exc: Exception) -> Outcome | None:
        """The outcome of a run that raised ``exc``; None when ``exc`` is none of the above."""
        if isinstance(exc, self.refused):
            return "session refused", {"error": str(exc)}
        if isinstance(exc, TimeoutError):
            return NO_RESPONSE, dict(self.timeout_detail)
        if isinstance(exc, asyncio.IncompleteReadError | ConnectionError):
            return CONNECTION_CLOSED, {"error": str(exc)}
        return None


def runner(new_link: Callable[[Context], LinkT], body: Callable[[Context, LinkT], Awaitable[Outcome]],
           session: Session | None = None) -> Callable[[Context], Awaitable[list[Action]]]:
    """Wrap a technique body: one link, opened before and closed after, one Action. A refused
    connection is an outcome; with a ``session`` its failures are outcomes too (see
    :class:`Session`), without one anything else the body raises propagates."""
    async def run(ctx: Context) -> list[Action]:
        link = new_link(ctx)
        try:
            await link.open()
            outcome, detail = await body(ctx, link)
        except Refused as exc:
            return [ctx.action(CONNECTION_REFUSED, {"error": str(exc)})]
        except Exception as exc:
            failure = None if session is None else session.outcome(exc)
            if failure is None:
                raise
            return [ctx.action(*failure)]
        finally:
            await link.close()
        return [ctx.action(outcome, link.report(detail))]
    return run


def family(protocol: str, new_link: Callable[[Context], LinkT],
           rows: Iterable[tuple[str, tuple[str, ...], str, Mapping[str, object],
                                Callable[[Context, LinkT], Awaitable[Outcome]]]],
           session: Session | None = None) -> tuple[Technique, ...]:
    """A family's library: a technique per row (id, ATT&CK ids, description, parameters, body),
    each body run by :func:`runner` on a link of ``new_link``."""
    return tuple(technique(tid, ids, protocol, desc, params, runner(new_link, body, session))
                 for tid, ids, desc, params, body in rows)


async def repeat(ctx: Context, send: Callable[[], Awaitable[R]]) -> list[R]:
    """Await ``send()`` ``repeat`` times (at least once), ``interval_s`` apart: the results."""
    results: list[R] = []
    for i in range(max(1, ctx.as_int("repeat"))):
        if i:
            await ctx.pause()
        results.append(await send())
    return results


def again(body: Callable[[Context, L], Awaitable[Outcome]]) -> Callable[[Context, L], Awaitable[Outcome]]:
    """Run a technique body ``repeat`` times, ``interval_s`` apart, on the same connection
    (for techniques whose body is a whole procedure: a scan, an identification, a download)."""
    async def run(ctx: Context, link: L) -> Outcome:
        runs = await repeat(ctx, lambda: body(ctx, link))
        outcomes = [outcome for outcome, _ in runs]
        detail = runs[-1][1]
        if len(outcomes) > 1:
            detail = {**detail, "runs": outcomes}
        return summarize(outcomes), detail
    return run


def summarize(outcomes: Sequence[str]) -> str:
    """One outcome for many requests: the common one, or the first that is not ``ok``."""
    if not outcomes:
        return NO_RESPONSE
    if all(o == outcomes[0] for o in outcomes):
        return outcomes[0]
    return next(o for o in outcomes if o != OK)
