"""The whole decoder never raises on hostile traffic: random payloads on every ICS port, with
segments reordered, repeated and cut, in both directions."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.capture.decode import Decoder
from interlock.capture.records import SCHEMA

PORTS = [502, 20000, 102, 2404, 5020, 80]
# Valid first PDUs, so that flows get recognised and the sessions see the hostile rest.
STARTS = [
    bytes.fromhex("000100000006010300000002"),  # Modbus read holding registers
    bytes.fromhex("000100000005010302aabb"),  # Modbus response
    bytes.fromhex("056405c00100020074e3"),  # DNP3 reset link states
    bytes.fromhex("680407000000"),  # IEC-104 STARTDT act
    bytes.fromhex("0300001611e00000000100c0010ac1020100c2020102"),  # TPKT + COTP CR
]


def frame(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes, back: bool) -> bytes:
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    src, dst = (b, a) if back else (a, b)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, 5 << 4, flags, 8192, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp + payload


segment = st.tuples(
    st.booleans(),  # from the server side
    st.integers(-40, 400),  # sequence offset: overlaps, holes, retransmissions
    st.sampled_from([0x18, 0x10, 0x02, 0x12, 0x11, 0x04]),
    st.binary(max_size=300),
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PORTS), st.lists(segment, max_size=25), st.data())
def test_decoder_never_raises(
    port: int, segments: list[tuple[bool, int, int, bytes]], data: st.DataObject
) -> None:
    seeds = data.draw(st.lists(st.sampled_from(STARTS) | st.binary(min_size=1, max_size=40), max_size=3))
    frames = []
    seq = {False: 1000, True: 5000}
    for i, (back, offset, flags, payload) in enumerate(segments):
        if seeds and i < len(seeds):
            payload = seeds[i] + payload  # sometimes a plausible start, sometimes not
        s = seq[back] + offset
        seq[back] = max(seq[back], s + len(payload))
        sport, dport = (port, 40000) if back else (40000, port)
        frames.append((i + 1, 1.0 + i / 100, 1, frame(sport, dport, s, seq[not back], flags, payload, back)))
    decoder = Decoder(batch_size=7)
    for batch in decoder.frames(frames):
        assert batch.schema == SCHEMA
        for row in batch.to_pylist():
            assert row["protocol"] in {"modbus", "dnp3", "s7comm", "s7comm-plus", "iec104", "tcp"}
            assert 1 <= row["frame"] <= len(frames)
            if row["protocol"] == "tcp":  # connection records: SYN attempts and RST answers only
                assert (row["function"], row["direction"], row["op_class"]) in {
                    ("syn", "request", "session"), ("rst", "response", "session")}
