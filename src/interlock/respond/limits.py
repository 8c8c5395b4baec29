"""Connection limits shared by the Modbus and DNP3 proxies: total and per client host.

A PLC serves a handful of masters; a flood of connections (or one host opening hundreds) is
Denial of Service (T0814) against the proxy and, behind it, the PLC's few TCP slots. Connections
over a limit are refused at once with a TCP reset, before any byte is read, so the ones already
admitted keep their service.

>>> lim = ConnectionLimits(total=2, per_host=1)
>>> lim.admit("10.0.0.1"), lim.admit("10.0.0.1"), lim.admit("10.0.0.2"), lim.admit("10.0.0.3")
(None, 'host 10.0.0.1 already has 1 connection (--max-clients-per-host 1)', None, \
'2 connections open (--max-connections 2)')
>>> lim.release("10.0.0.1"); lim.admit("10.0.0.3") is None
True
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter


class ConnectionLimits:
    """Counts open connections; ``admit`` says why one is refused (None: admitted)."""

    def __init__(self, total: int | None = None, per_host: int | None = None) -> None:
        self.total, self.per_host = total, per_host
        self.open: Counter[str] = Counter()
        self.refused = 0
        self._last_alert: dict[str, float] = {}

    def admit(self, host: str) -> str | None:
        n = sum(self.open.values())
        if self.total is not None and n >= self.total:
            reason = f"{n} connections open (--max-connections {self.total})"
        elif self.per_host is not None and self.open[host] >= self.per_host:
            have = self.open[host]
            reason = (f"host {host} already has {have} connection{'s' if have != 1 else ''} "
                      f"(--max-clients-per-host {self.per_host})")
        else:
            self.open[host] += 1
            return None
        self.refused += 1
        return reason

    def release(self, host: str) -> None:
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]

    def should_alert(self, host: str, now: float, every: float = 10.0) -> bool:
        """One alert per host per ``every`` seconds: a flood of refusals is one story, and
        writing an alert per refused connection would let the flood fill the disk."""
        last = self._last_alert.get(host)
        if last is not None and now - last < every:
            return False
        self._last_alert[host] = now
        return True


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a firewall's reject-with-reset does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
