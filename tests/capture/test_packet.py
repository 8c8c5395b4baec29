"""Link/IP/transport dissection: synthetic frames of every link type, and tshark on real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import CookedLinux, Dot1AD, Dot1Q, Ether

from interlock.capture import packet
from interlock.capture.pcap import read_frames
from tests.capture.test_pcap import all_shared
from tests.conformance.tshark import tshark_fields

# Explicit addresses everywhere: these frames are only ever turned into bytes, never sent.
MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
PAYLOAD = b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x0a"


def ip4_tcp() -> IP:
    return IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=502, seq=1000, flags="PA") / PAYLOAD


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, Ether(**MACS) / ip4_tcp()),
        (1, Ether(**MACS) / Dot1Q(vlan=10) / ip4_tcp()),
        (1, Ether(**MACS) / Dot1AD(vlan=20) / Dot1Q(vlan=10) / ip4_tcp()),
        (
            113,
            CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02" * 6 + b"\0\0", proto=0x0800)
            / ip4_tcp(),
        ),
        (101, ip4_tcp()),
        (228, ip4_tcp()),
    ],
    ids=["ethernet", "vlan", "qinq", "sll", "raw", "ipv4"],
)
def test_ipv4_tcp_under_every_link_type(linktype: int, frame: object) -> None:
    got = packet.dissect(linktype, bytes(frame))  # type: ignore[call-overload]
    assert got == ("10.0.0.1", "10.0.0.2", 40000, 502, 6, 1000, 0x18, PAYLOAD, 0)


def test_sll2() -> None:
    raw = bytes(ip4_tcp())
    header = (
        (0x0800).to_bytes(2, "big")
        + b"\0\0"
        + (1).to_bytes(4, "big")
        + b"\x00\x01\x00\x06"
        + b"\x02" * 6
        + b"\0\0"
    )
    assert len(header) == 20
    assert packet.dissect(276, header + raw)[7] == PAYLOAD  # type: ignore[index]


def test_ipv6_with_extension_header_and_udp() -> None:
    frame = (
        Ether(**MACS)
        / IPv6(src="fd00::1", dst="fd00::2")
        / IPv6ExtHdrHopByHop()
        / UDP(sport=20000, dport=20000)
        / b"\x05\x64"
    )
    assert packet.dissect(1, bytes(frame)) == ("fd00::1", "fd00::2", 20000, 20000, 17, 0, 0, b"\x05\x64", 0)


def test_ethernet_padding_is_not_payload() -> None:
    frame = bytes(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=502, flags="A"))
    assert packet.dissect(1, frame + b"\0" * 6)[7] == b""  # type: ignore[index]


def test_skips_are_reasons() -> None:
    frag = Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / UDP(sport=1, dport=2) / b"x"
    assert packet.dissect(1, bytes(frag)) == packet.SKIP_FRAGMENT
    assert packet.dissect(1, b"\x00" * 10) == packet.SKIP_TRUNCATED
    assert (
        packet.dissect(1, bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MACS["src"], type=0x0806)) + b"\0" * 28)
        == packet.SKIP_NOT_IP
    )
    assert packet.dissect(999, b"abc") == packet.SKIP_NOT_IP


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from([0, 1, 101, 113, 228, 229, 276]), st.binary(max_size=120))
def test_dissect_never_raises(linktype: int, data: bytes) -> None:
    packet.dissect(linktype, data)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_dissect_survives_mutations(data: st.DataObject) -> None:
    frame = bytearray(bytes(Ether(**MACS) / Dot1Q(vlan=3) / ip4_tcp()))
    for _ in range(data.draw(st.integers(1, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    packet.dissect(1, bytes(frame[:cut]))


@pytest.mark.conformance
@pytest.mark.parametrize("path", all_shared(), ids=lambda p: p.name)
def test_addresses_ports_and_lengths_agree_with_tshark(path: Path) -> None:
    fields = [
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.len",
        "udp.srcport",
        "udp.dstport",
        "udp.length",
    ]
    rows = {
        int(r["frame.number"][0]): r
        for r in tshark_fields(
            path,
            fields,
            "(tcp or udp) and not icmp and not icmpv6 and not ip.flags.mf==1 and not ip.frag_offset>0",
        )
    }
    with path.open("rb") as fh:
        ours = {n: packet.dissect(lt, d) for n, _ts, lt, d in read_frames(fh, path.name)}
    compared = 0
    for n, r in rows.items():
        if len(r["ip.src"]) + len(r["ipv6.src"]) != 1:  # tunnels: tshark lists inner headers too
            continue
        got = ours[n]
        assert not isinstance(got, str), f"frame {n}: skipped as {got}"
        src = (r["ip.src"] or r["ipv6.src"])[0]
        dst = (r["ip.dst"] or r["ipv6.dst"])[0]
        if r["tcp.srcport"]:
            want = (src, dst, int(r["tcp.srcport"][0]), int(r["tcp.dstport"][0]), 6, int(r["tcp.len"][0]))
        else:
            want = (
                src,
                dst,
                int(r["udp.srcport"][0]),
                int(r["udp.dstport"][0]),
                17,
                int(r["udp.length"][0]) - 8,
            )
        assert (got[0], got[1], got[2], got[3], got[4], len(got[7])) == want, f"frame {n}"
        compared += 1
    assert compared or not rows
