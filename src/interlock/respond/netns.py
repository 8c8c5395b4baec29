"""Network namespaces that Interlock creates, and the marker that proves it did.

A playbook's ``quarantine`` step changes firewall rules inside a namespace; it must never touch
the host's own network or a namespace someone else made. So a namespace is Interlock's only when
its name starts with ``ilk-`` *and* a marker file ``/run/interlock/netns/NAME`` exists, written
by :func:`create_namespace` right after ``ip netns add`` (a JSON object: creator, pid, time).
Both live under ``/run``, a tmpfs: a reboot removes the namespaces and their markers together.
Needs root (CAP_SYS_ADMIN) and iproute2.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

NAME_PREFIX = "ilk-"
MARKER_DIR = Path("/run/interlock/netns")
NETNS_DIR = Path("/run/netns")  # where ``ip netns add`` mounts named namespaces


class NamespaceError(RuntimeError):
    """A namespace could not be created or deleted; the message says why."""


def namespace_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _ip(*args: str) -> None:
    try:
        r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                           check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NamespaceError(f"ip {' '.join(args)}: {e}; install iproute2") from None
    if r.returncode:
        raise NamespaceError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def create_namespace(name: str) -> Path:
    """``ip netns add NAME`` and write the marker; returns the marker's path."""
    if not name.startswith(NAME_PREFIX) or "/" in name:
        raise NamespaceError(f"namespace {name!r}: Interlock namespaces are named "
                             f"{NAME_PREFIX}NAME")
    _ip("netns", "add", name)
    try:
        MARKER_DIR.mkdir(parents=True, exist_ok=True)
        marker = MARKER_DIR / name
        marker.write_text(json.dumps({"created_by": "interlock", "pid": os.getpid(),
                                      "ts": time.time()}) + "\n", encoding="utf-8")
    except OSError as e:
        _ip("netns", "delete", name)
        raise NamespaceError(f"{MARKER_DIR / name}: cannot write the marker: {e.strerror}") \
            from None
    _ip("-n", name, "link", "set", "lo", "up")
    return marker


def delete_namespace(name: str) -> None:
    """Delete a namespace Interlock created (refuses others) and its marker."""
    if not name.startswith(NAME_PREFIX) or not (MARKER_DIR / name).is_file():
        raise NamespaceError(f"refusing to delete namespace {name!r}: not created by Interlock")
    if namespace_exists(name):
        _ip("netns", "delete", name)
    (MARKER_DIR / name).unlink(missing_ok=True)
