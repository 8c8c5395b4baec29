"""A capture of the loopback interface from inside the process (an AF_PACKET socket).

The drill records what its range says on the wire. ``dumpcap`` is the usual tool, but a fresh
machine may not have Wireshark's tools, and the drill must run there; a packet socket bound to
``lo`` needs only the CAP_NET_RAW that capturing needs anyway. Like libpcap, it skips the
outgoing copy of each loopback packet (``PACKET_OUTGOING``), which the kernel also delivers as
incoming, so every packet is written once. Frames go to a pcap file through ``PcapWriter``; only
IPv4 packets between two addresses of ``net`` are kept (the range's own 127.0.0.0/24), or,
with ``hosts``, those to or from one of them.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import threading
import time
from pathlib import Path

from interlock.capture.pcap import PcapWriter

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SNAPLEN = 65535


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("=qq", data[:16])
            return float(sec) + float(nsec) / 1e9
    return time.time()


class TapError(Exception):
    """The tap cannot open: not Linux, no permission (CAP_NET_RAW) or no such interface."""


class LoopbackTap:
    """Capture ``iface`` into ``path`` on a background thread until ``stop``."""

    def __init__(
        self, path: Path, *, iface: str = "lo", net: str = "127.0.0.0/24", hosts: frozenset[str] | None = None
    ) -> None:
        self.path = path
        self.iface = iface
        self.net = ipaddress.ip_network(net)
        # With ``hosts``, a packet is kept only when one end is one of them (the range's own
        # devices), so other software on loopback stays out of the drill's evidence.
        self.hosts = frozenset(ipaddress.IPv4Address(h) for h in hosts) if hosts else None
        self.packets = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> LoopbackTap:
        if not hasattr(socket, "AF_PACKET"):
            raise TapError(
                "capturing needs Linux packet sockets; score an external alert stream with --alerts"
            )
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((self.iface, 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024 * 1024)
            # The kernel's receive time, not when this thread got round to reading the packet.
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except PermissionError:
            raise TapError(
                f"capturing on {self.iface} needs root or CAP_NET_RAW; run as root, or score your own "
                "sensor's alerts with --alerts FILE"
            ) from None
        except OSError as exc:
            raise TapError(f"cannot capture on {self.iface}: {exc.strerror or exc}") from None
        self._sock = sock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="interlock-tap", daemon=True)
        self._thread.start()
        return self

    def _keep(self, frame: bytes) -> bool:
        # Ethernet header on lo is all zeros plus the EtherType; keep IPv4 inside the range's net.
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            return False
        src = ipaddress.IPv4Address(frame[26:30])
        dst = ipaddress.IPv4Address(frame[30:34])
        if self.hosts is not None:
            return src in self.hosts or dst in self.hosts
        return src in self.net and dst in self.net

    def _run(self) -> None:
        assert self._sock is not None
        sock = self._sock
        with self.path.open("wb") as fh:
            writer = PcapWriter(fh)
            while True:
                ready, _, _ = select.select([sock], [], [], 0.05)
                if not ready:
                    if self._stop.is_set():
                        break
                    continue
                frame, ancillary, _flags, addr = sock.recvmsg(SNAPLEN, 64)
                if addr[2] == PACKET_OUTGOING or not self._keep(frame):
                    continue
                writer.write(_kernel_time(ancillary), frame)
                self.packets += 1
            fh.flush()

    def stop(self) -> None:
        """Drain what the kernel still holds, then close the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> LoopbackTap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
