"""Capture loopback traffic with dumpcap while real protocol peers talk to each other.

Only interface ``lo`` is ever opened, always with a capture filter naming the peers' own
127.0.0.0/8 address and port, so nothing but the test's own conversation lands in the file.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

CAPTURE_DIR = Path(os.environ.get("INTERLOCK_PEER_CAPTURES", "/tmp/peer-captures"))


class CaptureUnavailable(RuntimeError):
    """dumpcap is missing or cannot open ``lo`` (not root, no capture capability)."""


def loopback_filter(endpoints: Iterable[tuple[str, int]]) -> str:
    """A BPF filter for the TCP conversations of these loopback endpoints only."""
    parts = []
    for host, port in endpoints:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"peers run on loopback only, not on {host}")
        parts.append(f"(host {host} and tcp port {int(port)})")
    if not parts:
        raise ValueError("no endpoint to capture")
    return " or ".join(parts)


class Dumpcap:
    """``dumpcap -i lo -f FILTER -w FILE -q``, started and stopped (SIGINT) around traffic."""

    def __init__(self, path: Path, endpoints: Iterable[tuple[str, int]], pcapng: bool = True) -> None:
        self.path = path
        self.filter = loopback_filter(endpoints)
        self.pcapng = pcapng
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = b""

    def start(self, timeout: float = 5.0) -> Dumpcap:
        exe = shutil.which("dumpcap") or ("/usr/bin/dumpcap" if Path("/usr/bin/dumpcap").exists() else None)
        if exe is None:
            raise CaptureUnavailable("dumpcap is not installed (apt-get install wireshark-common)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        cmd = [exe, "-i", "lo", "-f", self.filter, "-w", str(self.path), "-q"]
        if not self.pcapng:
            cmd.insert(1, "-P")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                if "capture filter" in err:  # our mistake, not the machine's: fail, do not skip
                    raise ValueError(f"dumpcap refused the filter {self.filter!r}: {err.strip()[-400:]}")
                raise CaptureUnavailable(f"dumpcap cannot capture on lo: {err.strip()[-400:]}")
            # dumpcap writes the file header only once the interface is open and filtered
            if self.path.exists() and self.path.stat().st_size >= 24:
                time.sleep(0.3)
                return self
            time.sleep(0.05)
        self.stop()
        raise CaptureUnavailable(f"dumpcap did not start capturing within {timeout} s")

    def stop(self, settle: float = 0.5) -> Path:
        """Let the last segments arrive, then SIGINT so dumpcap completes the file."""
        proc = self.proc
        if proc is None:
            return self.path
        self.proc = None
        if proc.poll() is None:
            time.sleep(settle)
            proc.send_signal(signal.SIGINT)
            try:
                _, self.stderr = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, self.stderr = proc.communicate()
        if self.path.exists():
            self.path.chmod(0o644)  # dumpcap writes 0600; let anyone open it in Wireshark
        return self.path

    def __enter__(self) -> Dumpcap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_port(host: str, port: int, timeout: float = 5.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
