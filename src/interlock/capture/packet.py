"""Link, network and transport headers: from a frame's bytes to addresses, ports and payload.

Hand-written for speed and for the cases sensors get wrong: 802.1Q and QinQ VLAN stacks,
Linux cooked captures (SLL and SLL2), raw IP, BSD loopback, IPv6 extension headers. Returns a
plain tuple (no object per packet) because this runs once per frame on the hot path.
IPv4 fragments are not reassembled: they are counted and skipped (ICS PDUs are far below the
MTU, so a fragmented one is itself a finding for the detectors that come later).
"""

from __future__ import annotations

import socket
import struct

from interlock.capture.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

TCP = 6
UDP = 17
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
IPV6_EXT = frozenset((0, 43, 60, 135, 139, 140))  # hop-by-hop, routing, dest opts, mobility...
IPV6_FRAG = 44

# (src, dst, sport, dport, proto, seq, flags, payload, ack)
Packet = tuple[str, str, int, int, int, int, int, bytes, int]

# Why these outcomes are counted rather than raised: a sensor must keep going.
SKIP_NOT_IP = "not_ip"
SKIP_FRAGMENT = "ip_fragment"
SKIP_TRUNCATED = "truncated"
SKIP_OTHER_TRANSPORT = "other_transport"

_addr4: dict[bytes, str] = {}
_addr6: dict[bytes, str] = {}
_H = struct.Struct("!H")
_TCP = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HHH")
# Ethernet II + IPv4 + TCP in one unpack, for the fast path of ``dissect``: ethertype, IP
# version/IHL, total length, flags/fragment offset, protocol, source and destination addresses
# (as one 64-bit word, the key of ``_pairs``), then the TCP ports, seq, ack, offset and flags.
_ETH_IP4_TCP = struct.Struct("!12xHBxH2xHxB2xQHHIIBB")
_pairs: dict[int, tuple[str, str]] = {}  # both IPv4 addresses as one word -> their texts


def _ip4(raw: bytes) -> str:
    s = _addr4.get(raw)
    if s is None:
        if len(_addr4) > 65536:
            _addr4.clear()
        s = _addr4[raw] = socket.inet_ntop(socket.AF_INET, raw)
    return s


def _ip6(raw: bytes) -> str:
    s = _addr6.get(raw)
    if s is None:
        if len(_addr6) > 65536:
            _addr6.clear()
        s = _addr6[raw] = socket.inet_ntop(socket.AF_INET6, raw)
    return s


def network_offset(linktype: int, data: bytes) -> tuple[int, int] | str:
    """(ethertype, offset of the network header), or a skip reason."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return SKIP_TRUNCATED
        etype = (data[12] << 8) | data[13]
        off = 14
        while etype in VLAN_TYPES:
            if len(data) < off + 4:
                return SKIP_TRUNCATED
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        return etype, off
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return SKIP_TRUNCATED
        etype = (data[14] << 8) | data[15]
        off = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return SKIP_TRUNCATED
        etype = (data[0] << 8) | data[1]
        off = 20
    elif linktype in (LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not data:
            return SKIP_TRUNCATED
        etype = ETH_IPV4 if data[0] >> 4 == 4 else ETH_IPV6
        off = 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 5:
            return SKIP_TRUNCATED
        etype = ETH_IPV4 if data[4] >> 4 == 4 else ETH_IPV6
        off = 4
    else:
        return SKIP_NOT_IP
    while etype in VLAN_TYPES:  # cooked captures keep VLAN tags when the NIC did not strip them
        if len(data) < off + 4:
            return SKIP_TRUNCATED
        etype = (data[off + 2] << 8) | data[off + 3]
        off += 4
    return etype, off


def _pair(addrs: int, data: bytes) -> tuple[str, str]:
    if len(_pairs) > 65536:
        _pairs.clear()
    pair = _pairs[addrs] = (_ip4(data[26:30]), _ip4(data[30:34]))
    return pair


def dissect(linktype: int, data: bytes) -> Packet | str:
    """Addresses, ports, TCP sequence and flags, payload, TCP ack; or why the frame is skipped.

    Ethernet without VLAN, IPv4 without options or fragmentation and TCP (nearly every frame of
    an ICS capture) take one struct unpack; any other frame takes the general path.
    """
    if linktype == LINKTYPE_ETHERNET and len(data) >= 54:
        (etype, vihl, total, frag, proto, addrs, sport, dport, seq, ack, doff,
         flags) = _ETH_IP4_TCP.unpack_from(data)
        if etype == ETH_IPV4 and vihl == 0x45 and proto == TCP and not frag & 0x3FFF:
            n = len(data)
            end = 14 + total if total >= 20 else n  # total 0: TSO on the capturing host
            if end > n:
                end = n
            start = 34 + (doff >> 4) * 4  # payload after a TCP header of at least 20 octets
            if start >= 54 and start <= end:
                pair = _pairs.get(addrs)
                if pair is None:
                    pair = _pair(addrs, data)
                return pair[0], pair[1], sport, dport, TCP, seq, flags, data[start:end], ack
    return _dissect(linktype, data)


def _dissect(linktype: int, data: bytes) -> Packet | str:
    """The general path of ``dissect``: every link type, VLANs, IPv6, options, UDP."""
    net = network_offset(linktype, data)
    if isinstance(net, str):
        return net
    etype, off = net
    if etype == ETH_IPV4:
        if len(data) < off + 20:
            return SKIP_TRUNCATED
        vihl = data[off]
        if vihl >> 4 != 4:
            return SKIP_NOT_IP
        ihl = (vihl & 0x0F) * 4
        total = (data[off + 2] << 8) | data[off + 3]
        if (data[off + 6] & 0x3F) or data[off + 7]:  # MF flag or fragment offset
            return SKIP_FRAGMENT
        proto = data[off + 9]
        src = _ip4(data[off + 12 : off + 16])
        dst = _ip4(data[off + 16 : off + 20])
        # total==0 happens with TSO on the capturing host: trust the frame length then
        end = off + total if total >= ihl else len(data)
        if end > len(data):
            end = len(data)
        off += ihl
    elif etype == ETH_IPV6:
        if len(data) < off + 40:
            return SKIP_TRUNCATED
        plen = (data[off + 4] << 8) | data[off + 5]
        proto = data[off + 6]
        src = _ip6(data[off + 8 : off + 24])
        dst = _ip6(data[off + 24 : off + 40])
        off += 40
        end = min(off + plen, len(data)) if plen else len(data)
        while proto in IPV6_EXT:
            if end < off + 8:
                return SKIP_TRUNCATED
            proto = data[off]
            off += (data[off + 1] + 1) * 8
        if proto == IPV6_FRAG:
            return SKIP_FRAGMENT
    else:
        return SKIP_NOT_IP
    if proto == TCP:
        if end < off + 20:
            return SKIP_TRUNCATED
        sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, off)
        hl = (doff >> 4) * 4
        if hl < 20 or off + hl > end:
            return SKIP_TRUNCATED
        return src, dst, sport, dport, TCP, seq, flags, data[off + hl : end], ack
    if proto == UDP:
        if end < off + 8:
            return SKIP_TRUNCATED
        sport, dport, ulen = _UDP.unpack_from(data, off)
        stop = off + ulen if ulen >= 8 else end
        return src, dst, sport, dport, UDP, 0, 0, data[off + 8 : min(stop, end)], 0
    return SKIP_OTHER_TRANSPORT
