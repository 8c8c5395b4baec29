"""The alert: what any detector reports, and the three ways Interlock writes it.

An :class:`Alert` is a frozen value. ``src`` and ``dst`` name the initiator (the master, client or
scanner: who asked) and the target (who was asked); the :class:`FlowRef` evidence keeps the flow of
the frame exactly as captured. ``asset`` is the target unit ``dst:port/unit`` (``/unit`` left out
for protocols without one), so an analyst sees at once which PLC or RTU was touched.

Writers, each one line per alert:

- :class:`JsonlAlertWriter`: the contract (``ts`` epoch seconds float, ``technique``, ``severity``,
  ``src``, ``dst``, ``rule``, ``frames``) plus every other field;
- :class:`EveAlertWriter`: Suricata eve-compatible ``event_type: alert`` records, so existing
  eve pipelines (Filebeat's Suricata module, Splunk, Wazuh) ingest Interlock alerts unchanged;
- :class:`CefAlertWriter`: ArcSight CEF lines; :class:`SyslogSender` sends the same lines as
  RFC 5424 messages over UDP (RFC 5426), which is how most SIEMs take CEF.

Clocks are injected (``SyslogSender(clock=...)``): the syslog header carries the time of sending,
the CEF body the capture time of the alert.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal, Protocol

from interlock import __version__

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}

# Suricata's priorities: 1 is the most urgent. Four levels onto three keeps critical and high
# at the top, where a SOC's eve dashboards filter.
EVE_SEVERITY = {"critical": 1, "high": 1, "medium": 2, "low": 3}
# CEF severity is 0..10; 3/5/8/10 are the values ArcSight maps back to Low/Medium/High/Very-High.
CEF_SEVERITY = {"low": 3, "medium": 5, "high": 8, "critical": 10}
# RFC 5424 severities: notice, warning, error, critical.
SYSLOG_SEVERITY = {"low": 5, "medium": 4, "high": 3, "critical": 2}
SYSLOG_FACILITY = 4  # security/authorization messages (RFC 5424 table 1)
CEF_MAX_FRAMES = 20  # frames listed in a CEF line: a syslog datagram should stay under ~2 KB


@dataclass(frozen=True, slots=True)
class FlowRef:
    """The flow of the evidence frame, as captured (sender first)."""

    src: str
    sport: int
    dst: str
    dport: int
    protocol: str  # modbus, dnp3, s7comm, iec104, ...
    transport: str = "tcp"


@dataclass(frozen=True, slots=True)
class Alert:
    """One finding of a detector, with what an analyst needs to check it in the capture."""

    ts: float  # capture time (epoch seconds) of the frame that made the finding
    technique: str  # ATT&CK for ICS technique ID, T0xxx
    technique_name: str
    tactics: tuple[str, ...]  # tactic names of the technique, e.g. ("Inhibit Response Function",)
    severity: Severity
    src: str  # initiator: the host that sent the request or command
    dst: str  # target: the host that was asked
    asset: str  # target unit: "dst:port/unit"
    rule: str  # rule id (UUID) or detector model name
    title: str
    explanation: str  # one sentence with the values involved
    frames: tuple[int, ...]  # evidence frame numbers, in capture order
    flow: FlowRef
    count: int = 1  # operations behind the alert (more than the frames listed if capped)
    capture: str | None = None  # the capture file the frame numbers refer to

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the contract keys first, then the rest; ``id`` is the digest."""
        d = asdict(self)
        d["tactics"] = list(self.tactics)
        d["frames"] = list(self.frames)
        out = {k: d.pop(k) for k in ("ts", "technique", "severity", "src", "dst", "rule", "frames")}
        out.update(d)
        out["id"] = self.digest()
        if out["capture"] is None:
            del out["capture"]
        return out

    def canonical(self) -> bytes:
        """One canonical encoding (sorted keys, no spaces, UTF-8): what the digest hashes."""
        d = asdict(self)
        return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def digest(self) -> str:
        """SHA-256 of :meth:`canonical`, first 32 hex digits: a stable alert id."""
        return hashlib.sha256(self.canonical()).hexdigest()[:32]


class AlertWriter(Protocol):
    def write(self, alert: Alert) -> None: ...
    def close(self) -> None: ...


def iso_time(ts: float, *, suricata: bool = False) -> str:
    """UTC ISO 8601 with microseconds; Suricata's form ends in ``+0000``."""
    dt = datetime.fromtimestamp(ts, UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text + ("+0000" if suricata else "Z")


def signature_id(rule: str) -> int:
    """A Suricata signature id from a rule id: the UUID's first 31 bits, stable across runs.

    Suricata sids are 32-bit; rules named by a model (not a UUID) hash their name instead.
    """
    hexdigits = rule.replace("-", "")
    try:
        return int(hexdigits[:8], 16) & 0x7FFFFFFF
    except ValueError:
        return int(hashlib.sha256(rule.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def to_eve(alert: Alert) -> dict[str, Any]:
    """A Suricata eve ``alert`` record; Interlock's own fields sit under ``alert.metadata``."""
    f = alert.flow
    return {
        "timestamp": iso_time(alert.ts, suricata=True),
        "event_type": "alert",
        "src_ip": f.src,
        "src_port": f.sport,
        "dest_ip": f.dst,
        "dest_port": f.dport,
        "proto": f.transport.upper(),
        "app_proto": f.protocol,
        "alert": {
            "action": "allowed",  # a passive sensor blocks nothing
            "gid": 1,
            "signature_id": signature_id(alert.rule),
            "rev": 1,
            "signature": alert.title,
            "category": ", ".join(alert.tactics),
            "severity": EVE_SEVERITY[alert.severity],
            "metadata": {
                "mitre_technique_id": [alert.technique],
                "mitre_technique_name": [alert.technique_name],
                "mitre_tactic_name": list(alert.tactics),
                "interlock_rule": [alert.rule],
                "interlock_severity": [alert.severity],
                "asset": [alert.asset],
                "initiator": [alert.src],
                "target": [alert.dst],
            },
        },
        "interlock": {
            "explanation": alert.explanation,
            "frames": list(alert.frames),
            "count": alert.count,
            **({"capture": alert.capture} if alert.capture else {}),
        },
    }


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _cef_value(value: object) -> str:
    text = str(value)
    return (text.replace("\\", "\\\\").replace("=", "\\=")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r"))


def to_cef(alert: Alert) -> str:
    """``CEF:0|Interlock|Interlock|<version>|<rule>|<title>|<0-10>|key=value ...``.

    Extension keys from the CEF dictionary (``rt``, ``src``, ``dst``, ``spt``, ``dpt``,
    ``proto``, ``app``, ``msg``, ``cnt``) and labelled custom strings for the technique, its
    tactics, the asset and the first frames.
    """
    f = alert.flow
    frames = ",".join(map(str, alert.frames[:CEF_MAX_FRAMES]))
    if len(alert.frames) > CEF_MAX_FRAMES:
        frames += ",..."
    ext = [
        ("rt", int(alert.ts * 1000)),
        ("src", f.src), ("spt", f.sport), ("dst", f.dst), ("dpt", f.dport),
        ("proto", f.transport.upper()), ("app", f.protocol),
        ("cnt", alert.count),
        ("msg", alert.explanation),
        ("cs1Label", "technique"), ("cs1", f"{alert.technique} {alert.technique_name}"),
        ("cs2Label", "tactics"), ("cs2", ", ".join(alert.tactics)),
        ("cs3Label", "asset"), ("cs3", alert.asset),
        ("cs4Label", "frames"), ("cs4", frames),
        ("cs5Label", "initiator"), ("cs5", alert.src),
        ("cs6Label", "target"), ("cs6", alert.dst),
    ]
    if alert.capture:
        ext.append(("fname", alert.capture))
    head = "|".join(
        _cef_header(v)
        for v in ("CEF:0", "Interlock", "Interlock", __version__, alert.rule, alert.title,
                  str(CEF_SEVERITY[alert.severity]))
    )
    return head + "|" + " ".join(f"{k}={_cef_value(v)}" for k, v in ext)


def to_syslog(alert: Alert, now: float, hostname: str, procid: int) -> bytes:
    """An RFC 5424 message carrying the CEF line: ``<PRI>1 TIME HOST interlock PID alert - CEF...``."""
    pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY[alert.severity]
    host = (hostname or "-")[:255].replace(" ", "_")
    return f"<{pri}>1 {iso_time(now)} {host} interlock {procid} alert - {to_cef(alert)}".encode()


class JsonlAlertWriter:
    """One JSON object per line (see :meth:`Alert.to_dict`)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, alert: Alert) -> None:
        self.out.write(json.dumps(alert.to_dict(), ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.out.flush()


class EveAlertWriter(JsonlAlertWriter):
    """Suricata eve JSON lines."""

    def write(self, alert: Alert) -> None:
        self.out.write(json.dumps(to_eve(alert), ensure_ascii=False) + "\n")


class CefAlertWriter(JsonlAlertWriter):
    """CEF lines."""

    def write(self, alert: Alert) -> None:
        self.out.write(to_cef(alert) + "\n")


class SyslogSender:
    """Sends each alert as an RFC 5424 / CEF datagram to ``host:port`` over UDP."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        clock: Callable[[], float] = time.time,
        hostname: str | None = None,
    ) -> None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)  # raises socket.gaierror
        family, _, _, _, address = infos[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.address = address
        self.clock = clock
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.procid = os.getpid()

    def write(self, alert: Alert) -> None:
        self.sock.sendto(to_syslog(alert, self.clock(), self.hostname, self.procid), self.address)

    def close(self) -> None:
        self.sock.close()


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); ``ValueError`` naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (port 1-65535), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address needs brackets, as in [::1]:514, got {text!r}")
    return host, int(port)
