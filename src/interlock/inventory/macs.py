"""IP address -> MAC address, read from the link headers of the frames on their way to the decoder.

The record schema carries IP addresses only, and the capture layer is not changed for the
inventory: :meth:`MacTable.tap` wraps the frame iterator that feeds the decoder and looks at
each frame's link header as it passes, so the capture is read once. The source MAC of a frame
is paired with its source IP: that is the sender's own MAC when both are on one segment, and
the router's MAC for a sender beyond a router (so one MAC for many addresses means a router,
and :meth:`MacTable.shared` reports it). All-zero MACs (loopback captures) are ignored.
Ethernet (with VLAN tags) and Linux cooked captures (SLL, SLL2) carry a source MAC; other link
types do not.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator

from interlock.capture.packet import ETH_IPV4, ETH_IPV6, network_offset
from interlock.capture.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    Frame,
)

MAX_PAIRS = 65536  # (MAC, IP) pairs kept; a spoofed-source flood must not grow memory forever
_ZERO_MAC = bytes(6)
_IPV4_ETH = b"\x08\x00"


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class MacTable:
    """(source MAC, source IP) pairs seen in frames."""

    def __init__(self) -> None:
        self._pairs: set[bytes] = set()  # 6 octets of MAC + 4 or 16 octets of IP
        self.full = False  # MAX_PAIRS reached: later pairs were not kept

    def tap(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Yield the frames unchanged, noting each one's source MAC and source IP."""
        pairs = self._pairs
        for frame in frames:
            linktype, data = frame[2], frame[3]
            if linktype == LINKTYPE_ETHERNET and data[12:14] == _IPV4_ETH and len(data) >= 34:
                key = data[6:12] + data[26:30]  # the common case: Ethernet II, IPv4, no VLAN
                if key not in pairs:
                    self._add(key)
            elif linktype in (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):
                self._general(linktype, data)
            yield frame

    def _general(self, linktype: int, data: bytes) -> None:
        if linktype == LINKTYPE_ETHERNET:
            mac = data[6:12]
        elif linktype == LINKTYPE_LINUX_SLL:  # type, ARPHRD, address length, address (8)
            mac = data[6:12] if data[4:6] == b"\x00\x06" else b""
        else:  # SLL2: protocol, reserved, ifindex, ARPHRD, type, address length, address (8)
            mac = data[12:18] if len(data) > 11 and data[11] == 6 else b""
        if len(mac) != 6:
            return
        net = network_offset(linktype, data)
        if isinstance(net, str):
            return
        etype, off = net
        if etype == ETH_IPV4 and len(data) >= off + 20:
            self._add(mac + data[off + 12 : off + 16])
        elif etype == ETH_IPV6 and len(data) >= off + 40:
            self._add(mac + data[off + 8 : off + 24])

    def _add(self, key: bytes) -> None:
        if key[:6] == _ZERO_MAC:
            return
        if len(self._pairs) >= MAX_PAIRS:
            self.full = True
            return
        self._pairs.add(key)

    def by_address(self) -> dict[str, tuple[str, ...]]:
        """IP address (as the records spell it) -> its MACs, sorted."""
        out: dict[str, set[str]] = {}
        for key in self._pairs:
            raw_ip = key[6:]
            family = socket.AF_INET if len(raw_ip) == 4 else socket.AF_INET6
            ip = socket.inet_ntop(family, raw_ip)
            out.setdefault(ip, set()).add(mac_text(key[:6]))
        return {ip: tuple(sorted(macs)) for ip, macs in out.items()}

    def shared(self, addresses: Iterable[str], min_addresses: int = 3) -> dict[str, int]:
        """MACs that carry the traffic of at least ``min_addresses`` of the given addresses:
        a router or a proxy between the capture point and those hosts."""
        wanted = set(addresses)
        count: dict[str, int] = {}
        for ip, macs in self.by_address().items():
            if ip in wanted:
                for mac in macs:
                    count[mac] = count.get(mac, 0) + 1
        return {mac: n for mac, n in count.items() if n >= min_addresses}
