"""The safety boundary: attacks and servers of the range only touch what this run started.

Every server the range starts registers its endpoint here; every drill technique asks ``check``
before it opens a socket. An address is allowed only when it is a loopback address (127.0.0.0/8,
::1) *and* this run registered it, or when it lives in a network namespace this run created
(registered the same way, by the code that created the namespace). Anything else is refused with
``TargetRefused``, whose message names the target and says what to do.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass


class TargetRefused(ValueError):
    """A technique or server was pointed at something the range did not start."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    name: str = ""
    namespace: str | None = None  # the network namespace this run created, if any

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Boundary:
    """The endpoints this run started; thread-safe since servers start in their own loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[tuple[str, int], Endpoint] = {}

    def register(self, host: str, port: int, name: str = "", *, namespace: str | None = None) -> Endpoint:
        """Record an endpoint this run is starting; refuse a non-loopback one outside a namespace."""
        if namespace is None and not is_loopback(host):
            raise TargetRefused(
                f"{host}:{port}: the range serves only on loopback (127.0.0.0/8) or inside a network "
                "namespace it created; pick a 127.0.0.x address"
            )
        endpoint = Endpoint(host, port, name, namespace)
        with self._lock:
            self._endpoints[(host, port)] = endpoint
        return endpoint

    def unregister(self, host: str, port: int) -> None:
        with self._lock:
            self._endpoints.pop((host, port), None)

    def check(self, host: str, port: int) -> Endpoint:
        """The registered endpoint at ``host:port``, or ``TargetRefused`` naming why not."""
        with self._lock:
            endpoint = self._endpoints.get((host, port))
        if endpoint is not None:
            return endpoint
        if not is_loopback(host):
            raise TargetRefused(
                f"refusing target {host}:{port}: drill techniques only attack hosts the range started "
                "(loopback or its own network namespaces); point the scenario at a range device"
            )
        raise TargetRefused(
            f"refusing target {host}:{port}: no server of this range run listens there; "
            "start the range first or name one of its devices"
        )

    def endpoints(self) -> tuple[Endpoint, ...]:
        with self._lock:
            return tuple(self._endpoints.values())
