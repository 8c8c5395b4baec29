"""The live sensor: dumpcap on one interface, piped through the decoder and the detectors.

``interlock detect`` reads files; the sensor reads the pcapng stream ``dumpcap -w -`` writes to a
pipe, frame by frame, so the same records reach the same detectors while the traffic happens.
Capturing is passive (nothing is sent), but a sensor is still only opened where the range is
allowed to look: on loopback, or inside a network namespace made with ``ip netns add`` (the
range's), unless the operator says otherwise (``allow_any``).

A thread reads frames off the pipe; the pipeline takes them as they come and, whenever no frame is
waiting, judges the records decoded so far: one operation at a time on a quiet link, batches of up
to ``BATCH_SIZE`` under load (single-record batches cost the rules about 1.5 ms each, so a busy
link would otherwise outrun them). Latency is dumpcap's: libpcap hands packets over on its
250 ms read timeout (dumpcap 4.0 has no immediate mode). Rules that aggregate
(scans, floods) still report a behaviour when it ends: one quiet window after it, when later
traffic moves capture time past it, or when the sensor stops.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Protocol

import pyarrow as pa

from interlock.capture.decode import Decoder
from interlock.capture.pcap import CaptureError, Frame, read_frames
from interlock.capture.records import ics_only
from interlock.detect.alerts import Alert

BATCH_SIZE = 4096  # records per batch at most, when frames arrive faster than they are judged
NETNS_DIR = Path("/var/run/netns")  # where ``ip netns add`` pins the namespaces it names
IFF_LOOPBACK = 0x8
TICK_S = 1.0  # how often a quiet sensor checks for windows that closed
START_TIMEOUT_S = 10.0


class SensorError(Exception):
    """The sensor cannot run: no dumpcap, unknown or refused interface, no permission."""


class Detector(Protocol):
    """The shared detector shape (``RuleEngine``, ``BaselineDetector``)."""

    def process(self, batch: pa.RecordBatch) -> list[Alert]: ...
    def finish(self) -> list[Alert]: ...


def is_loopback(iface: str, sys_net: Path = Path("/sys/class/net")) -> bool:
    """The kernel's IFF_LOOPBACK flag of ``iface`` (the name alone does not make ``lo``)."""
    try:
        flags = int((sys_net / iface / "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return False
    return bool(flags & IFF_LOOPBACK)


def named_netns(netns_dir: Path = NETNS_DIR, own: Path = Path("/proc/self/ns/net")) -> str | None:
    """The name ``ip netns identify`` would print for this process's network namespace."""
    try:
        me = own.stat()
        entries = sorted(netns_dir.iterdir())
    except OSError:
        return None
    for entry in entries:
        try:
            st = entry.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
            return entry.name
    return None


def check_interface(iface: str, allow_any: bool, sys_net: Path = Path("/sys/class/net"),
                    netns_dir: Path = NETNS_DIR) -> None:
    """Raise ``SensorError`` unless the sensor may open ``iface``."""
    if not iface or "/" in iface or iface.startswith(".") or not (sys_net / iface).exists():
        known = sorted(p.name for p in sys_net.iterdir()) if sys_net.is_dir() else []
        raise SensorError(f"--interface {iface}: no such interface here "
                          f"(have: {', '.join(known) or 'none'})")
    if allow_any or is_loopback(iface, sys_net) or named_netns(netns_dir) is not None:
        return
    raise SensorError(f"--interface {iface}: neither loopback nor inside a range network namespace; "
                      "run the sensor in the range's namespace (ip netns exec NAME ...) or pass "
                      "--allow-any-interface")


def dumpcap_command(iface: str, bpf: str | None, count: int | None) -> list[str]:
    """dumpcap writing pcapng to stdout; ``-c`` lets dumpcap itself stop after ``count`` frames."""
    exe = shutil.which("dumpcap") or ("/usr/bin/dumpcap" if Path("/usr/bin/dumpcap").exists() else None)
    if exe is None:
        raise SensorError("dumpcap is not installed (apt-get install tshark, or wireshark-common)")
    cmd = [exe, "-i", iface, "-w", "-", "-q"]
    if bpf:
        cmd += ["-f", bpf]
    if count is not None:
        cmd += ["-c", str(count)]
    return cmd


class _FirstRead:
    """Wraps the pipe to notice dumpcap's first bytes: the interface is open and filtered."""

    def __init__(self, read: Callable[[int], bytes], on_first: Callable[[], None]) -> None:
        self._read, self._on_first = read, on_first
        self.started = False

    def read(self, n: int = -1) -> bytes:
        data = self._read(n)
        if data and not self.started:
            self.started = True
            self._on_first()
        return data


@dataclass
class SensorStats:
    frames: int = 0
    operations: int = 0


class Sensor:
    """One dumpcap process and the pipeline behind it; ``stop()`` may come from any thread or a
    signal handler: dumpcap ends its file, the pipe reaches its end, the detectors finish."""

    def __init__(self, cmd: list[str], detectors: Iterable[Detector], emit: Callable[[list[Alert]], None],
                 on_start: Callable[[], None] = lambda: None, batch_size: int = BATCH_SIZE) -> None:
        self.cmd = cmd
        self.detectors = tuple(detectors)
        self.emit = emit
        self.on_start = on_start
        self.decoder = Decoder(batch_size=batch_size)
        self.stats = SensorStats()
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self.timed_out = False

    def stop(self) -> None:
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # dumpcap's clean stop: the last block is written

    def run(self, duration: float | None = None) -> SensorStats:
        try:
            # bufsize=0: a read returns what the pipe holds instead of waiting for a full buffer
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, bufsize=0, start_new_session=True)
        except OSError as exc:
            raise SensorError(f"cannot start {self.cmd[0]}: {exc.strerror}") from None
        proc = self.proc
        assert proc.stdout is not None and proc.stderr is not None
        timer = threading.Timer(duration, self.stop) if duration is not None else None
        stderr_lines: list[bytes] = []
        drain = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr or []), daemon=True)
        drain.start()  # dumpcap must never block on a full stderr pipe
        watchdog = threading.Timer(START_TIMEOUT_S, self._start_timeout)
        watchdog.start()

        def started() -> None:
            watchdog.cancel()
            if timer is not None:
                timer.start()
            self.on_start()

        if self._stopping.is_set():
            self.stop()
        source = _FirstRead(proc.stdout.read, started)
        queue: SimpleQueue[Frame | CaptureError | None] = SimpleQueue()

        def read() -> None:
            try:
                for frame in read_frames(source, "dumpcap"):  # type: ignore[arg-type]
                    queue.put(frame)
                queue.put(None)
            except CaptureError as exc:
                queue.put(exc)

        threading.Thread(target=read, name="dumpcap-reader", daemon=True).start()
        try:
            for batch in self.decoder.frames(self._frames(queue)):
                self._judge(batch)
        except CaptureError as exc:
            if source.started:  # dumpcap died mid-block: judge what arrived, then report it
                self._finish()
            self.stop()
            proc.wait()
            raise SensorError(self._why(proc, stderr_lines, drain) or str(exc)) from None
        finally:
            watchdog.cancel()
            if timer is not None:
                timer.cancel()
        asked = self._stopping.is_set()
        self.stop()
        rc = proc.wait()
        self.stats.frames = self.decoder.stats.frames
        if not source.started:
            if self.timed_out:
                raise SensorError(f"dumpcap did not start capturing within {START_TIMEOUT_S:g} s")
            raise SensorError(self._why(proc, stderr_lines, drain) or f"dumpcap ended (exit {rc}) "
                              "before capturing")
        self._finish()
        if rc and not asked:  # killed, or the interface went away
            raise SensorError(self._why(proc, stderr_lines, drain) or f"dumpcap ended (exit {rc})")
        return self.stats

    def _frames(self, queue: SimpleQueue[Frame | CaptureError | None]) -> Iterator[Frame]:
        """The frames as the reader thread gets them; while none is waiting, what the decoder
        holds is judged now rather than when a batch fills."""
        while True:
            try:
                item = queue.get_nowait()
            except Empty:
                batch = self.decoder.builder.flush()
                if batch is not None:
                    self._judge(batch)
                item = self._wait(queue)
            if item is None:
                return
            if isinstance(item, CaptureError):
                raise item
            yield item

    def _wait(self, queue: SimpleQueue[Frame | CaptureError | None]) -> Frame | CaptureError | None:
        """The next frame; every second without one, windows that closed are reported."""
        while True:
            try:
                return queue.get(timeout=TICK_S)
            except Empty:
                now = time.time()  # live capture: frame times are this host's clock
                for det in self.detectors:
                    tick = getattr(det, "tick", None)
                    if tick is not None:
                        self.emit(tick(now))

    def _judge(self, batch: pa.RecordBatch) -> None:
        self.stats.operations += ics_only(batch).num_rows  # connection records are no operation
        for det in self.detectors:
            self.emit(det.process(batch))

    def _finish(self) -> None:
        self.stats.frames = self.decoder.stats.frames
        for det in self.detectors:
            self.emit(det.finish())

    def _start_timeout(self) -> None:
        self.timed_out = True
        self.stop()

    @staticmethod
    def _why(proc: subprocess.Popen[bytes], lines: list[bytes], drain: threading.Thread) -> str:
        drain.join(timeout=2)
        text = [ln.decode(errors="replace").strip() for ln in lines]
        text = [t for t in text if t and not t.startswith(("Capturing on", "See the User"))]
        if not text or not proc.returncode:
            return ""
        # dumpcap says what failed on a "dumpcap:" line and why on the next one
        at = next((i for i, t in enumerate(text) if t.startswith("dumpcap:")), len(text) - 1)
        return " ".join(text[at:at + 2]).removeprefix("dumpcap: ").join(("dumpcap: ", ""))
