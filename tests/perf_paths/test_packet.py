"""The Ethernet + IPv4 + TCP fast path of ``dissect`` gives what its general path gives."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.capture import packet
from tests.protocols.dnp3.test_properties import _mutations


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """Ethernet II frames, mostly IPv4 + TCP, with the fields the fast path tests varied."""
    def pick(usual: int, *others: int) -> int:
        return usual if usual_frame else draw(st.sampled_from([usual, usual, *others]))

    usual_frame = draw(st.booleans())  # what the fast path takes, but for lengths and content
    etype = pick(0x0800, 0x86DD, 0x8100)
    ihl = pick(5, 6, 4)
    version = pick(4, 6)
    frag = draw(st.sampled_from([0, 0, 0, 0x4000, 0x2000, 0x0001, 0x8000]))
    proto = pick(6, 17, 1)
    tcp_words = draw(st.sampled_from([5, 5, 5, 8, 4, 15]))
    payload = draw(st.binary(max_size=30))
    options = bytes(4 * (ihl - 5)) if ihl > 5 else b""
    tcp = struct.pack("!HHIIBBHHH", draw(st.integers(0, 65535)), draw(st.integers(0, 65535)),
                      draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                      tcp_words << 4, draw(st.integers(0, 255)), 1024, 0, 0)
    tcp += bytes(max(0, 4 * tcp_words - 20))
    total = 4 * ihl + len(tcp) + len(payload)
    total = draw(st.sampled_from([total, total, total, 0, total - 3, total + 5, 20, 19]))
    ip = struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, 0, max(total, 0), 1, frag, 64, proto,
                     0, draw(st.binary(min_size=4, max_size=4)),
                     draw(st.sampled_from([b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"])))
    eth = b"\x02" * 12 + struct.pack("!H", etype)
    padding = bytes(draw(st.sampled_from([0, 0, 6])))
    return eth + ip + options + tcp + payload + padding


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fast_path_agrees_with_the_general_path(data: st.DataObject) -> None:
    frame = data.draw(frames())
    if data.draw(st.integers(0, 3)) == 0:
        frame = _mutations(data.draw, frame)
    for linktype in (1, 101):
        assert packet.dissect(linktype, frame) == packet._dissect(linktype, frame)
