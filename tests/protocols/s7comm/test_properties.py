"""Property tests: round trips for every message kind, no exceptions on any input, and a
session that gives the same Operations whatever the chunking of its input."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.protocols.base import Malformed, Probe
from interlock.protocols.s7comm import S7Session, probe
from interlock.protocols.s7comm import codec as c
from interlock.protocols.s7comm.cotp import (
    ConnectionConfirm,
    ConnectionRequest,
    Data,
    DisconnectConfirm,
    DisconnectRequest,
    TpduError,
    build_tpkt,
    parse_tpkt,
)
from interlock.protocols.s7comm.fields import BLOCK_CONTROL_FUNCTIONS, Rosctr

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
latin1 = st.text(st.characters(max_codepoint=0xFF), max_size=20)


def small_bytes(n: int = 24) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=n)


s7any = st.builds(c.S7AnyItem, u8, u16, u16, u8, st.integers(0, 0xFFFFFF))
raw_item = st.builds(c.RawItem, u8.filter(lambda v: v != 0x10), small_bytes(30))
items = st.lists(st.one_of(s7any, raw_item), max_size=6).map(tuple)


@st.composite
def data_item(draw: st.DrawFn, rc: st.SearchStrategy[int] = u8) -> c.DataItem:
    return_code = draw(rc)
    ts = draw(st.sampled_from([0, 3, 4, 5, 6, 7, 9, 0x11, draw(u8)]))
    length = draw(st.integers(0, 80))
    n = c.data_byte_length(return_code, ts, length)
    return c.DataItem(return_code, ts, length, draw(st.binary(min_size=n, max_size=n)))


data_items = st.lists(data_item(), max_size=6).map(tuple)


@st.composite
def write_request(draw: st.DrawFn) -> c.WriteVarRequest:
    its = draw(items)
    data = tuple(draw(data_item(st.sampled_from([0x00, 0xFF, 0x0A]))) for _ in its)
    return c.WriteVarRequest(draw(u16), its, data, draw(u16))


errors = st.tuples(u8, u8)


@st.composite
def setup(draw: st.DrawFn) -> c.SetupCommunication:
    rosctr = draw(st.sampled_from([Rosctr.JOB, Rosctr.ACK_DATA]))
    ecls, ecod = draw(errors) if rosctr == Rosctr.ACK_DATA else (0, 0)
    return c.SetupCommunication(rosctr, draw(u16), draw(u16), draw(u16), draw(u16), ecls, ecod,
                                draw(u8), draw(u16))  # fmt: skip


@st.composite
def block_job(draw: st.DrawFn) -> c.BlockControlJob:
    filename = draw(st.none() | latin1)
    part2 = draw(st.none() | latin1) if filename is not None else None
    return c.BlockControlJob(draw(st.sampled_from(sorted(BLOCK_CONTROL_FUNCTIONS))), draw(u16),
                             draw(u8), draw(u16), draw(u32), filename, part2, draw(u16))  # fmt: skip


@st.composite
def block_ack(draw: st.DrawFn) -> c.BlockControlAckData:
    status = code = uid = length_string = None
    depth = draw(st.integers(0, 3))
    if depth >= 1:
        status = draw(u8)
    if depth >= 2:
        code, uid = draw(u16), draw(u32)
    if depth >= 3:
        length_string = draw(latin1)
    ecls, ecod = draw(errors)
    data = draw(st.none() | small_bytes(40))
    return c.BlockControlAckData(
        draw(st.sampled_from(sorted(BLOCK_CONTROL_FUNCTIONS))), draw(u16), status, code, uid,
        length_string, data, 0x00FB if data is None else draw(u16), ecls, ecod, draw(u16),
    )  # fmt: skip


@st.composite
def userdata(draw: st.DrawFn) -> c.Userdata:
    ext = draw(st.booleans())
    dur, ldu, err = (draw(u8), draw(u8), draw(u16)) if ext else (None, None, None)
    rest = draw(small_bytes(8)) if ext else b""
    usual = 8 + len(rest) if ext else 4  # the parameter's own length, as parse infers it
    plen = draw(st.none() | u8.filter(lambda v: v != usual))
    has_data = draw(st.booleans())
    rc, ts = (draw(u8), draw(u8)) if has_data else (None, None)
    data = draw(small_bytes(40)) if has_data else b""
    return c.Userdata(draw(u16), draw(st.integers(0, 15)), draw(st.integers(0, 15)), draw(u8),
                      draw(u8), draw(u8), dur, ldu, err, rc, ts, data,
                      draw(st.integers(0, 0xFFFFFF)), plen, rest, draw(u16))  # fmt: skip


messages: st.SearchStrategy[c.S7Pdu] = st.one_of(
    setup(),
    st.builds(c.ReadVarRequest, u16, items, u16),
    st.builds(c.ReadVarResponse, u16, data_items, u8, u8, u16),
    write_request(),
    st.builds(c.WriteVarResponse, u16, st.lists(u8, max_size=8).map(tuple), u8, u8, u16),
    block_job(),
    block_ack(),
    st.builds(c.PiService, u16, latin1, small_bytes(), st.binary(min_size=7, max_size=7), u16),
    st.builds(c.PlcStop, u16, latin1, st.binary(min_size=5, max_size=5), u16),
    st.builds(c.CpuServices, u16, small_bytes(), small_bytes(), u16),
    st.builds(c.FunctionAckData, st.sampled_from([0x00, 0x28, 0x29]), u16, small_bytes(),
              small_bytes(), u8, u8, u16),
    st.builds(c.Ack, u16, u8, u8, st.just(Rosctr.ACK), small_bytes(), small_bytes(), u16),
    st.builds(c.Ack, u16, u8, u8, st.just(Rosctr.ACK_DATA), st.just(b""), small_bytes(), u16),
    userdata(),
    st.builds(c.S7CommPlusPdu, u8, small_bytes(60), st.booleans()),
)


@SETTINGS
@given(messages)
def test_parse_build_round_trip(msg: c.S7Pdu) -> None:
    raw = c.build(msg)
    assert c.parse(raw) == msg
    assert c.build(c.parse(raw)) == raw  # type: ignore[arg-type]


params = st.lists(st.tuples(u8, small_bytes(8)), max_size=4).map(tuple)
tpdus = st.one_of(
    st.builds(ConnectionRequest, u16, u16, u8, params, small_bytes()),
    st.builds(ConnectionConfirm, u16, u16, u8, params, small_bytes()),
    st.builds(DisconnectRequest, u16, u16, u8, params, small_bytes()),
    st.builds(DisconnectConfirm, u16, u16, params),
    st.builds(Data, small_bytes(80), st.booleans(), st.integers(0, 127), params),
    st.builds(TpduError, u16, u8, params),
)


@SETTINGS
@given(tpdus)
def test_tpkt_round_trip(tpdu: Any) -> None:
    assert parse_tpkt(build_tpkt(tpdu)) == tpdu


@SETTINGS
@given(st.builds(c.CyclicSubscription, u8, u8, items), data_items)
def test_cyclic_round_trip(sub: c.CyclicSubscription, data: tuple[c.DataItem, ...]) -> None:
    assert c.parse_cyclic_request(c.build_cyclic_request(sub)) == sub
    assert c.parse_cyclic_data(c.build_cyclic_data(data)) == data


@st.composite
def mutated(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    raw = bytearray(draw(source))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, len(raw)))
        if op == "flip" and pos < len(raw):
            raw[pos] = draw(u8)
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and pos < len(raw):
            del raw[pos]
        elif op == "truncate":
            del raw[pos:]
    return bytes(raw)


fuzz_pdus = st.one_of(st.binary(max_size=120), mutated(messages.map(c.build)),
                      st.binary(max_size=40).map(lambda b: b"\x32" + b),
                      st.binary(max_size=40).map(lambda b: b"\x72" + b))  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(fuzz_pdus)
def test_parse_never_raises(raw: bytes) -> None:
    value = c.parse(raw)
    if isinstance(value, Malformed):
        assert value.reason and 0 <= value.offset <= len(raw)
    else:
        assert c.parse(c.build(value)) == value  # whatever decodes is a consistent value


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=60), mutated(tpdus.map(build_tpkt)),
                 st.binary(max_size=30).map(lambda b: b"\x03\x00" + b)))  # fmt: skip
def test_parse_tpkt_and_probe_never_raise(raw: bytes) -> None:
    value = parse_tpkt(raw)
    assert isinstance(value, Malformed) or parse_tpkt(build_tpkt(value)) == value
    assert probe(raw, True) in (Probe.YES, Probe.NO, Probe.NEED_MORE)
    assert c.parse_cyclic_data(raw) is not None and c.parse_cyclic_request(raw) is not None


def as_frames(msg: c.S7Pdu, split: int) -> bytes:
    """One PDU as TPKT frames, its user data split over ``split`` DTs."""
    raw = c.build(msg)
    if split <= 1 or len(raw) < split:
        return build_tpkt(Data(raw))
    step = len(raw) // split
    parts = [raw[i * step : (i + 1) * step] for i in range(split - 1)] + [raw[(split - 1) * step :]]
    return b"".join(build_tpkt(Data(p, eot=k == split - 1)) for k, p in enumerate(parts))


@st.composite
def stream(draw: st.DrawFn) -> list[tuple[bool, bytes]]:
    """A conversation: (from_client, bytes) per PDU, COTP TPDUs among them."""
    out = []
    for _ in range(draw(st.integers(1, 8))):
        from_client = draw(st.booleans())
        if draw(st.integers(0, 9)) == 0:
            out.append((from_client, build_tpkt(draw(tpdus))))
        else:
            out.append((from_client, as_frames(draw(messages), draw(st.integers(1, 3)))))
    return out


def feed_chunks(chunks: list[tuple[bool, bytes]]) -> list[Any]:
    s = S7Session()
    ops = []
    for from_client, data in chunks:
        ops.extend(s.feed(data, from_client))
    return ops


@SETTINGS
@given(stream(), st.randoms(use_true_random=False))
def test_chunking_does_not_change_operations(conv: list[tuple[bool, bytes]], rnd: Any) -> None:
    whole = feed_chunks(conv)
    bytewise = feed_chunks([(fc, data[i : i + 1]) for fc, data in conv for i in range(len(data))])
    assert bytewise == whole
    random_chunks = []
    for fc, data in conv:
        i = 0
        while i < len(data):
            n = rnd.randint(1, 40)
            random_chunks.append((fc, data[i : i + n]))
            i += n
    assert feed_chunks(random_chunks) == whole
    # one operation per PDU or COTP TPDU that is not a DT; fragments of S7comm-plus merge
    assert len(whole) <= len(conv)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.one_of(
    st.binary(max_size=80), mutated(messages.map(lambda m: build_tpkt(Data(c.build(m))))),
    mutated(tpdus.map(build_tpkt)))), max_size=12))  # fmt: skip
def test_feed_never_raises(chunks: list[tuple[bool, bytes]]) -> None:
    s = S7Session()
    for from_client, data in chunks:
        for op in s.feed(data, from_client):
            assert op.protocol in ("s7comm", "s7comm-plus")
            assert op.malformed is None or op.op_class == "malformed"
    assert all(len(b) < 70000 for b in s._buf) and all(len(b) <= 65536 for b in s._seg)
