"""Hypothesis strategies that generate every IEC-104 APDU kind and every ASDU type id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from interlock.protocols.iec104 import codec
from interlock.protocols.iec104.codec import (
    Apdu,
    Asdu,
    CP24Time2a,
    CP56Time2a,
    IFormat,
    InformationObject,
    SFormat,
    UFormat,
)
from interlock.protocols.iec104.fields import (
    ELEMENT_LENGTH,
    VARIABLE_LENGTH_TYPES,
    Quality,
    TypeID,
    UFunction,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
i16 = st.integers(-0x8000, 0x7FFF)
f32 = st.floats(width=32, allow_nan=False)
seq = st.integers(0, 0x7FFF)

cp24 = st.builds(CP24Time2a, u16, st.integers(0, 63), st.booleans())
cp56 = st.builds(CP56Time2a, u16, st.integers(0, 63), st.integers(0, 31), st.integers(0, 31),
                 st.integers(0, 15), st.integers(0, 127), st.booleans(), st.booleans(),
                 st.integers(0, 7))


def quality(mask: int) -> st.SearchStrategy[Quality]:
    return u8.map(lambda q: Quality(q & mask))


TIME_KIND: dict[int, st.SearchStrategy[Any]] = dict.fromkeys((2, 4, 6, 8, 10, 12, 14, 16), cp24)
for _t in (30, 31, 32, 33, 34, 35, 36, 37, 58, 59, 60, 61, 62, 63, 64):
    TIME_KIND[_t] = cp56

# element builders: ioa -> strategy of one information object, per type id
Element = Callable[[int, Any], st.SearchStrategy[Any]]
_FAMILY: dict[tuple[int, ...], Element] = {
    (1, 2, 30): lambda ioa, tm: st.builds(codec.SinglePointInformation, st.just(ioa),
                                          st.booleans(), quality(0xF0), tm),
    (3, 4, 31): lambda ioa, tm: st.builds(codec.DoublePointInformation, st.just(ioa),
                                          st.integers(0, 3), quality(0xF0), tm),
    (5, 6, 32): lambda ioa, tm: st.builds(codec.StepPositionInformation, st.just(ioa),
                                          st.integers(-64, 63), st.booleans(), quality(0xF1),
                                          tm),
    (7, 8, 33): lambda ioa, tm: st.builds(codec.Bitstring32, st.just(ioa),
                                          st.integers(0, 0xFFFFFFFF), quality(0xF1), tm),
    (9, 10, 34): lambda ioa, tm: st.builds(codec.MeasuredValueNormalized, st.just(ioa), i16,
                                           quality(0xF1), tm),
    (21,): lambda ioa, tm: st.builds(codec.MeasuredValueNormalized, st.just(ioa), i16,
                                     st.none(), st.none()),
    (11, 12, 35): lambda ioa, tm: st.builds(codec.MeasuredValueScaled, st.just(ioa), i16,
                                            quality(0xF1), tm),
    (13, 14, 36): lambda ioa, tm: st.builds(codec.MeasuredValueShortFloat, st.just(ioa), f32,
                                            quality(0xF1), tm),
    (15, 16, 37): lambda ioa, tm: st.builds(codec.IntegratedTotals, st.just(ioa),
                                            st.integers(-(1 << 31), (1 << 31) - 1),
                                            st.integers(0, 31), st.booleans(), st.booleans(),
                                            st.booleans(), tm),
    (45, 58): lambda ioa, tm: st.builds(codec.SingleCommand, st.just(ioa), st.booleans(),
                                        st.integers(0, 31), st.booleans(), tm),
    (46, 59): lambda ioa, tm: st.builds(codec.DoubleCommand, st.just(ioa), st.integers(0, 3),
                                        st.integers(0, 31), st.booleans(), tm),
    (47, 60): lambda ioa, tm: st.builds(codec.RegulatingStepCommand, st.just(ioa),
                                        st.integers(0, 3), st.integers(0, 31), st.booleans(),
                                        tm),
    (48, 61): lambda ioa, tm: st.builds(codec.SetpointNormalized, st.just(ioa), i16,
                                        st.integers(0, 127), st.booleans(), tm),
    (49, 62): lambda ioa, tm: st.builds(codec.SetpointScaled, st.just(ioa), i16,
                                        st.integers(0, 127), st.booleans(), tm),
    (50, 63): lambda ioa, tm: st.builds(codec.SetpointShortFloat, st.just(ioa), f32,
                                        st.integers(0, 127), st.booleans(), tm),
    (51, 64): lambda ioa, tm: st.builds(codec.Bitstring32Command, st.just(ioa),
                                        st.integers(0, 0xFFFFFFFF), tm),
    (70,): lambda ioa, tm: st.builds(codec.EndOfInitialisation, st.just(ioa),
                                     st.integers(0, 127), st.booleans()),
    (100,): lambda ioa, tm: st.builds(codec.InterrogationCommand, st.just(ioa), u8),
    (101,): lambda ioa, tm: st.builds(codec.CounterInterrogationCommand, st.just(ioa),
                                      st.integers(0, 63), st.integers(0, 3)),
    (102,): lambda ioa, tm: st.builds(codec.ReadCommand, st.just(ioa)),
    (103,): lambda ioa, tm: st.builds(codec.ClockSynchronisationCommand, st.just(ioa), cp56),
    (104,): lambda ioa, tm: st.builds(codec.TestCommand, st.just(ioa), u16),
    (105,): lambda ioa, tm: st.builds(codec.ResetProcessCommand, st.just(ioa), u8),
    (106,): lambda ioa, tm: st.builds(codec.DelayAcquisitionCommand, st.just(ioa), u16),
    (107,): lambda ioa, tm: st.builds(codec.TestCommandWithTime, st.just(ioa), u16, cp56),
    (110,): lambda ioa, tm: st.builds(codec.ParameterNormalized, st.just(ioa), i16, u8),
    (111,): lambda ioa, tm: st.builds(codec.ParameterScaled, st.just(ioa), i16, u8),
    (112,): lambda ioa, tm: st.builds(codec.ParameterShortFloat, st.just(ioa), f32, u8),
    (113,): lambda ioa, tm: st.builds(codec.ParameterActivation, st.just(ioa), u8),
}
ELEMENT: dict[int, Element] = {t: f for types, f in _FAMILY.items() for t in types}


def _raw(t: int) -> Element:
    if t == TypeID.F_SG_NA_1:
        return lambda ioa, tm: st.tuples(st.binary(min_size=3, max_size=3),
                                         st.binary(max_size=40)).map(
            lambda p: codec.RawInformation(ioa, p[0] + bytes([len(p[1])]) + p[1]))
    return lambda ioa, tm: st.binary(min_size=ELEMENT_LENGTH[t], max_size=ELEMENT_LENGTH[t]).map(
        lambda d: codec.RawInformation(ioa, d))


for _t in TypeID:
    if _t not in ELEMENT and _t not in VARIABLE_LENGTH_TYPES - {TypeID.F_SG_NA_1}:
        ELEMENT[_t] = _raw(_t)

SECURITY = sorted(VARIABLE_LENGTH_TYPES - {TypeID.F_SG_NA_1})
ASDU_BUDGET = 249  # APDU length 253 minus the four control octets


@st.composite
def asdus(draw: st.DrawFn, types: list[int] | None = None) -> Asdu:
    t = draw(st.sampled_from(types or sorted(int(x) for x in TypeID)))
    cot = draw(st.integers(0, 63))
    ca = draw(u16)
    negative, test, originator = draw(st.booleans()), draw(st.booleans()), draw(u8)
    if t in SECURITY:
        data = draw(st.binary(max_size=ASDU_BUDGET - 6))
        return Asdu(TypeID(t), cot, ca, (codec.RawInformation(0, data),), draw(st.booleans()),
                    negative, test, originator)
    sq = draw(st.booleans())
    element = ELEMENT[t]
    tm = TIME_KIND.get(t, st.none())
    size = ELEMENT_LENGTH.get(t, 4 + 40)
    per_object = size if sq else size + 3
    most = min(127, (ASDU_BUDGET - 6 - 3) // max(per_object, 1))
    n = draw(st.integers(0, min(most, 8)))
    first = draw(st.integers(0, 0xFFFFFF))
    objects: list[InformationObject] = []
    budget = ASDU_BUDGET - 6
    for i in range(n):
        ioa = first + i if sq else draw(st.integers(0, 0xFFFFFF))
        obj = draw(element(ioa, tm))
        cost = (3 if (i == 0 or not sq) else 0) + len(codec._element(obj, codec._LAYOUT[t][2]))
        if cost > budget:
            break
        budget -= cost
        objects.append(obj)
    return Asdu(TypeID(t), cot, ca, tuple(objects), sq, negative, test, originator)


def apdus(types: list[int] | None = None) -> st.SearchStrategy[Apdu]:
    return st.one_of(
        st.builds(UFormat, st.sampled_from(list(UFunction))),
        st.builds(SFormat, seq),
        st.builds(IFormat, seq, seq, asdus(types)),
    )
