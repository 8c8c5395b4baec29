"""The fast paths of the Modbus and DNP3 sessions (and of the DNP3 fragment scan) give exactly
what their general paths give, operation for operation and state for state."""

from __future__ import annotations

import struct
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.protocols.dnp3 import ApplicationRequest
from interlock.protocols.dnp3 import session as dnp3_session
from interlock.protocols.dnp3.codec import _scan, build_fragment, scan_fragment
from interlock.protocols.dnp3.fields import FunctionCode
from interlock.protocols.dnp3.session import DNP3Session
from interlock.protocols.modbus import session as modbus_session
from interlock.protocols.modbus.session import ModbusSession
from tests.protocols.dnp3._streams import frames
from tests.protocols.dnp3.test_properties import _mutations, fragments

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# --------------------------------------------------------------------------- Modbus

_QUANTITIES = [0, 1, 2, 7, 8, 9, 16, 64, 124, 125, 126, 2000, 2001]


def _adu(draw: st.DrawFn, tid: int, unit: int, pdu: bytes) -> bytes:
    pid = draw(st.sampled_from([0, 0, 0, 0, 0, 0, 0, 1]))
    length = len(pdu) + 1 + draw(st.sampled_from([0, 0, 0, 0, 0, 0, 0, 1, -1]))
    return struct.pack(">HHHB", tid, pid, length & 0xFFFF, unit) + pdu


@st.composite
def modbus_exchanges(draw: st.DrawFn) -> list[tuple[bytes, bool]]:
    """A request, mostly a FC 1-4 read, and often its answer, either sometimes slightly wrong."""
    tid = draw(st.integers(0, 3))
    unit = draw(st.integers(0, 2))
    fc = draw(st.sampled_from([1, 2, 3, 4, 1, 2, 3, 4, 0, 5, 6, 0x83]))
    quantity = draw(st.sampled_from(_QUANTITIES))
    out = []
    if draw(st.integers(0, 5)):
        pdu = struct.pack(">BHH", fc, draw(st.integers(0, 0xFFFF)), quantity)
        out.append((_adu(draw, tid, unit, pdu), True))
    if draw(st.integers(0, 5)):
        fc = draw(st.sampled_from([fc, fc, fc, fc, 1, 3, fc | 0x80]))
        if fc in (3, 4):
            count = 2 * quantity
        elif fc in (1, 2):
            count = (quantity + 7) >> 3
        else:
            count = draw(st.integers(0, 4))
        count = draw(st.sampled_from([count, count, count, count + 1, max(count - 1, 0), 0]))
        pdu = bytes((fc, count & 0xFF)) + draw(st.binary(min_size=count, max_size=count))
        out.append((_adu(draw, draw(st.sampled_from([tid, tid, tid, 3 - tid])), unit, pdu),
                    False))
    return out


@st.composite
def modbus_chunks(draw: st.DrawFn) -> list[tuple[bytes, bool]]:
    """ADUs fed one per chunk, several per chunk, or cut in two."""
    out: list[tuple[bytes, bool]] = []
    adus = [adu for exchange in draw(st.lists(modbus_exchanges(), min_size=1, max_size=20))
            for adu in exchange]
    for adu, client in adus:
        how = draw(st.sampled_from(["whole", "whole", "whole", "join", "cut"]))
        if how == "join" and out and out[-1][1] == client:
            out[-1] = (out[-1][0] + adu, client)
        elif how == "cut":
            at = draw(st.integers(1, len(adu)))
            out += [(adu[:at], client), (adu[at:], client)]
        else:
            out.append((adu, client))
    return out


def _modbus_state(s: ModbusSession) -> Any:
    return s._client, s._server, list(s._pending.items())


@SETTINGS
@given(modbus_chunks(), st.sampled_from([1024, 3]))
def test_modbus_fast_path_agrees_with_the_general_path(chunks: list[tuple[bytes, bool]],
                                                       cap: int) -> None:
    with mock.patch.object(modbus_session, "MAX_OPEN_TRANSACTIONS", cap):
        fast, general = ModbusSession(), ModbusSession()
        for data, client in chunks:
            assert fast.feed(data, client) == general._feed(data, client)
            assert _modbus_state(fast) == _modbus_state(general)


# --------------------------------------------------------------------------- DNP3 scan


@st.composite
def polls(draw: st.DrawFn) -> bytes:
    """Class or all-object polls (qualifier 0x06), sometimes with one other header."""
    function = draw(st.sampled_from([FunctionCode.READ, FunctionCode.READ, FunctionCode.WRITE,
                                     FunctionCode.IMMED_FREEZE, FunctionCode.ASSIGN_CLASS]))
    headers = [bytes((draw(st.sampled_from([60, 1, 30, 0, 255])), draw(st.integers(0, 4)), 6))
               for _ in range(draw(st.integers(0, 5)))]
    if draw(st.integers(0, 4)) == 0:
        headers.insert(draw(st.integers(0, len(headers))),
                       bytes((1, 2, draw(st.sampled_from([0, 7, 0x17, 0x28])))))
    return bytes((draw(st.integers(0, 255)), function)) + b"".join(headers)


null_responses = st.builds(lambda ctl, fc, iin: bytes((ctl, fc)) + iin,
                           st.integers(0, 255), st.sampled_from([129, 130, 131, 128, 132, 1]),
                           st.binary(min_size=0, max_size=3))
any_fragment = st.one_of(polls(), null_responses, fragments().map(build_fragment),
                         st.binary(max_size=40))


@SETTINGS
@given(st.data())
def test_scan_fast_path_agrees_with_the_general_scan(data: st.DataObject) -> None:
    frag = data.draw(any_fragment)
    if data.draw(st.booleans()):
        frag = _mutations(data.draw, frag)
    assert scan_fragment(frag) == _scan(frag)


# --------------------------------------------------------------------------- DNP3 session


@st.composite
def dnp3_chunks(draw: st.DrawFn) -> list[tuple[bytes, bool]]:
    """Polls, answers and other fragments as link frames, whole, joined, cut or damaged."""
    out: list[tuple[bytes, bool]] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["poll", "poll", "null", "any"]))
        if kind == "poll":
            frag, master = draw(polls()), True
        elif kind == "null":
            frag, master = draw(null_responses), False
        else:
            value = draw(fragments())
            frag, master = build_fragment(value), isinstance(value, ApplicationRequest)
        size = draw(st.sampled_from([249, 249, 249, 40, 7]))
        tseq = draw(st.integers(0, 63))
        link = frames(frag, master=master, size=size, tseq=tseq,
                      outstation=draw(st.sampled_from([10, 11])))
        for f in link:
            if draw(st.integers(0, 6)) == 0:
                f = _mutations(draw, f)
            how = draw(st.sampled_from(["whole", "whole", "whole", "join", "cut"]))
            client = draw(st.sampled_from([master, master, master, not master]))
            if how == "join" and out and out[-1][1] == client:
                out[-1] = (out[-1][0] + f, client)
            elif how == "cut" and f:
                at = draw(st.integers(1, len(f)))
                out += [(f[:at], client), (f[at:], client)]
            else:
                out.append((f, client))
    return out


def _dnp3_state(s: DNP3Session) -> Any:
    streams = [(st.buf, st.synced, st.lost, st.skipped) for st in s._streams.values()]
    return streams, list(s._reassembly.items()), list(s._requests.items())


@SETTINGS
@given(dnp3_chunks(), st.sampled_from([1024, 2]))
def test_dnp3_fast_path_agrees_with_the_general_path(chunks: list[tuple[bytes, bool]],
                                                     cap: int) -> None:
    with mock.patch.object(dnp3_session, "MAX_OPEN_REQUESTS", cap):
        fast, general = DNP3Session(), DNP3Session()
        for data, client in chunks:
            assert fast.feed(data, client) == general._feed(data, client)
            assert _dnp3_state(fast) == _dnp3_state(general)
