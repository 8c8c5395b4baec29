"""Case files: one incident's evidence in a signed zip that can be checked on another machine.

A case file holds (paths inside the zip):

- ``capture/slice.pcapng``: the frames of the incident's flows within its time window (first
  alert - margin .. last alert + margin), each commented with its frame number in the original
  capture and, for evidence frames, the alerts that cite it;
- ``records.jsonl``: the decoded records of those frames (docs/records.md);
- ``alerts.jsonl``: the incident's alerts as ``interlock detect`` wrote them;
- ``incident.stix.json``: the STIX 2.1 bundle (stix.py);
- ``summary.html``: a readable summary with the timeline;
- ``ledger/excerpt.json``: the ledger entries from the first one naming an alert of the incident
  (or the export entry) to a signed checkpoint taken just after the export was recorded;
- ``custody.jsonl``: who exported what and when, with the files' hashes and the ledger entry;
- ``manifest.json``: SHA-256 of every file above, the signer's public key; ``manifest.sig``: its
  Ed25519 signature with the ledger's key.

The ledger's export entry names the SHA-256 of the evidence files (all but the excerpt, custody
log and manifest, which are made after it), so the ledger, kept on the sensor, vouches for the case
file, and the excerpt's checkpoint lets a verifier without the ledger check that entry.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import socket
import sqlite3
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interlock import __version__
from interlock.capture.decode import decode_path
from interlock.capture.packet import TCP, UDP, dissect
from interlock.capture.pcap import CaptureError, read_frames
from interlock.detect.alerts import Alert, FlowRef, iso_time
from interlock.detect.incidents import DEFAULT_GAP_S, Incident, group_incidents
from interlock.evidence import keys, stix
from interlock.evidence.ledger import Checkpoint, Ledger, LedgerError, canonical, chain_hash
from interlock.evidence.pcapng import PcapngWriter

FORMAT = "interlock-case/1"
MANIFEST_DOMAIN = b"interlock-case-manifest/1\n"  # a manifest signature means nothing else
EXCERPT_FORMAT = "interlock-ledger-excerpt/1"
MAX_EXCERPT = 10_000  # entries; an excerpt longer than this starts at the export entry
DEFAULT_MARGIN_S = 60.0

SLICE = "capture/slice.pcapng"
RECORDS = "records.jsonl"
ALERTS = "alerts.jsonl"
STIX = "incident.stix.json"
SUMMARY = "summary.html"
EXCERPT = "ledger/excerpt.json"
CUSTODY = "custody.jsonl"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
EVIDENCE_FILES = (SLICE, RECORDS, ALERTS, STIX, SUMMARY)  # what the ledger entry vouches for


class CaseError(Exception):
    """Bad input to bundle or verify; the message names the file or field and what to do."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- input --------------------------------------------------------------------------------------


def load_alerts(path: Path) -> list[Alert]:
    """Alerts from the JSON lines of ``interlock detect -o`` (``--format jsonl``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CaseError(
            f"{path}: cannot read ({exc.strerror}); pass the file of `interlock detect -o`"
        ) from None
    except UnicodeDecodeError:
        raise CaseError(f"{path}: not UTF-8 text; pass the JSON lines of `interlock detect -o`") from None
    alerts = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            alerts.append(_alert(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            what = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise CaseError(
                f"{path}:{n}: not an Interlock alert ({what}); use `interlock detect --format jsonl`"
            ) from None
    if not alerts:
        raise CaseError(f"{path}: no alerts; nothing to bundle")
    return alerts


def _alert(d: Any) -> Alert:
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    f = d["flow"]
    flow = FlowRef(
        str(f["src"]),
        int(f["sport"]),
        str(f["dst"]),
        int(f["dport"]),
        str(f["protocol"]),
        str(f.get("transport", "tcp")),
    )
    alert = Alert(
        float(d["ts"]),
        str(d["technique"]),
        str(d["technique_name"]),
        tuple(d["tactics"]),
        d["severity"],
        str(d["src"]),
        str(d["dst"]),
        str(d["asset"]),
        str(d["rule"]),
        str(d["title"]),
        str(d["explanation"]),
        tuple(int(x) for x in d["frames"]),
        flow,
        int(d.get("count", 1)),
        d.get("capture"),
    )
    if "id" in d and d["id"] != alert.digest():
        raise ValueError(f"id {d['id']} does not match its content (edited?)")
    return alert


def incident_from_ledger(ledger: Path, number: int) -> Incident:
    """Incident ``number`` of the latest ``interlock detect`` run recorded in the ledger: its
    ``incident`` entry names its alerts by id, and the ``alert`` entries before it hold them."""
    try:
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT seq, canonical FROM entries ORDER BY seq DESC").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CaseError(f"{ledger}: cannot read the ledger ({exc}); check --ledger") from None
    wanted: list[str] | None = None
    found: dict[str, Alert] = {}
    for _seq, stored in rows:  # newest first
        entry = json.loads(bytes(stored))
        body = entry.get("body", {})
        if wanted is None:
            if entry.get("kind") == "incident" and body.get("number") == number:
                wanted = [str(a) for a in body.get("alerts", [])]
            continue
        if entry.get("kind") == "alert" and body.get("id") in wanted:
            found[body["id"]] = _alert(body)
            if len(found) == len(wanted):
                break
    if wanted is None:
        raise CaseError(
            f"{ledger}: no incident {number} recorded; run `interlock detect CAPTURE --ledger "
            f"{ledger}` first, or pass --alerts FILE"
        )
    if len(found) != len(wanted):
        raise CaseError(f"{ledger}: incident {number} names alerts the ledger does not hold")
    alerts = tuple(sorted(found.values(), key=lambda a: a.ts))
    first = alerts[0]
    return Incident(number, first.src, first.dst, first.ts, alerts[-1].ts, alerts)


def find_incident(alerts: Iterable[Alert], number: int, gap_s: float = DEFAULT_GAP_S) -> Incident:
    """Incident ``number`` as ``interlock detect`` numbers them (same grouping, same gap)."""
    incidents = group_incidents(alerts, gap_s)
    if not 1 <= number <= len(incidents):
        raise CaseError(f"--incident {number}: the alerts form incidents 1..{len(incidents)}")
    return incidents[number - 1]


# -- the capture slice --------------------------------------------------------------------------


FlowKey = tuple[str, frozenset[tuple[str, int]]]  # transport, {(host, port), (host, port)}
TRANSPORTS = {TCP: "tcp", UDP: "udp"}


def _flow_key(f: FlowRef) -> FlowKey:
    return f.transport, frozenset({(f.src, f.sport), (f.dst, f.dport)})


@dataclass(frozen=True, slots=True)
class Slice:
    pcapng: bytes
    frames: tuple[int, ...]  # original frame numbers kept
    start: float
    end: float


def slice_capture(capture: Path, incident: Incident, margin_s: float) -> Slice:
    """The frames of the incident's flows (both directions) within its window, and every frame an
    alert cites, with comments."""
    flows = {_flow_key(a.flow) for a in incident.alerts}
    cited: dict[int, list[str]] = {}
    for a in incident.alerts:
        for frame in a.frames:
            cited.setdefault(frame, []).append(f"{a.technique} {a.title} (alert {a.digest()})")
    start, end = incident.first_ts - margin_s, incident.last_ts + margin_s
    out = io.BytesIO()
    writer = PcapngWriter(out, application=f"Interlock {__version__} case file")
    kept = []
    try:
        with capture.open("rb") as fh:
            for number, ts, linktype, data in read_frames(fh, str(capture)):
                if not start <= ts <= end and number not in cited:
                    continue
                packet = dissect(linktype, data)
                if isinstance(packet, str):
                    continue
                src, dst, sport, dport, proto = packet[:5]
                key = (TRANSPORTS.get(proto, str(proto)), frozenset({(src, sport), (dst, dport)}))
                if key not in flows and number not in cited:
                    continue  # cited frames stay: a scan alert's evidence spans many flows
                comment = f"frame {number} of {capture.name}"
                if number in cited:
                    comment += "; evidence for " + "; ".join(cited[number])
                writer.write(ts, linktype, data, comment)
                kept.append(number)
    except OSError as exc:
        raise CaseError(f"{capture}: cannot read ({exc.strerror}); check --capture") from None
    except CaptureError as exc:
        raise CaseError(f"{exc}; check --capture") from None
    missing = sorted({f for a in incident.alerts for f in a.frames} - set(kept))
    if missing:
        raise CaseError(
            f"{capture}: evidence frames {missing[:5]} are not in this capture's incident flows; "
            "pass the capture the alerts were made from (--capture)"
        )
    return Slice(out.getvalue(), tuple(kept), start, end)


def _records(capture: Path, frames: tuple[int, ...]) -> bytes:
    wanted = pa.array(sorted(frames), type=pa.int64())
    rows: list[dict[str, Any]] = []
    try:
        batches, _ = decode_path(capture)
        for batch in batches:  # batch by batch: memory stays flat on a large capture
            column = batch.column("frame").cast(pa.int64())
            rows.extend(batch.filter(pc.is_in(column, value_set=wanted)).to_pylist())
    except CaptureError as exc:
        raise CaseError(f"{exc}; check --capture") from None
    return b"".join(canonical(r) + b"\n" for r in rows)


# -- making a case file -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseSummary:
    path: Path
    incident: Incident
    frames: int
    records: int
    ledger_seq: int
    checkpoint_seq: int
    key_id: str
    files: Mapping[str, str]  # path in the zip -> SHA-256


def make_case(
    output: Path,
    incident: Incident,
    capture: Path,
    *,
    ledger: Path,
    key: Path | None,
    actor: str,
    margin_s: float = DEFAULT_MARGIN_S,
    sensor: str | None = None,
    now: datetime | None = None,
) -> CaseSummary:
    """Write the case file for ``incident`` and record its export in ``ledger``."""
    now = now or datetime.now(UTC)
    sensor = sensor or socket.gethostname() or "interlock-sensor"
    cut = slice_capture(capture, incident, margin_s)
    records = _records(capture, cut.frames)
    alerts = b"".join(json.dumps(a.to_dict(), ensure_ascii=False).encode() + b"\n" for a in incident.alerts)
    bundle = stix.incident_bundle(incident, sensor=sensor, created=now, capture=capture.name)
    stix_text = bundle.serialize(pretty=True).encode("utf-8")
    files: dict[str, bytes] = {SLICE: cut.pcapng, RECORDS: records, ALERTS: alerts, STIX: stix_text}
    files[SUMMARY] = _summary_html(incident, capture, cut, records.count(b"\n"), files, now)
    hashes = {name: sha256(data) for name, data in files.items()}
    capture_hash = _file_sha256(capture)
    body = {
        "action": "case_exported",
        "case": output.name,
        "incident": incident.number,
        "src": incident.src,
        "dst": incident.dst,
        "first_ts": incident.first_ts,
        "last_ts": incident.last_ts,
        "alerts": [a.digest() for a in incident.alerts],
        "capture": {"name": capture.name, "sha256": capture_hash},
        "files": hashes,
    }
    try:
        with Ledger(ledger, key=key) as led:
            entry = led.append("evidence", body, actor=actor)
            cp = led.checkpoint()
            signing = keys.load_or_create(led.key_path)  # the checkpoint's key signs the manifest
    except (LedgerError, keys.KeyFileError) as exc:
        raise CaseError(str(exc)) from None
    excerpt = _excerpt(ledger, cp, entry.seq, [a.digest() for a in incident.alerts])
    files[EXCERPT] = excerpt
    custody = {
        "ts": iso_time(now.timestamp()),
        "actor": actor,
        "host": sensor,
        "action": "exported",
        "incident": incident.number,
        "case": output.name,
        "capture": body["capture"],
        "files": hashes,
        "ledger": {"id": cp.ledger, "seq": entry.seq, "hash": entry.hash.hex()},
        "tool": f"interlock {__version__}",
    }
    files[CUSTODY] = canonical(custody) + b"\n"
    manifest, signature = _sign(files, signing, now)
    _write_zip(output, {**files, MANIFEST: manifest, SIGNATURE: signature}, now)
    return CaseSummary(
        output,
        incident,
        len(cut.frames),
        records.count(b"\n"),
        entry.seq,
        cp.seq,
        cp.key_id,
        {n: sha256(d) for n, d in files.items()},
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise CaseError(f"{path}: cannot read ({exc.strerror}); check --capture") from None
    return digest.hexdigest()


def _excerpt(ledger: Path, cp: Checkpoint, export_seq: int, alert_ids: list[str]) -> bytes:
    """Entries (exact stored bytes) from the first naming an alert of the incident to ``cp``."""
    try:
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            start = export_seq
            needles = [a.encode() for a in alert_ids]
            for seq, stored in db.execute("SELECT seq, canonical FROM entries WHERE seq < ?", (export_seq,)):
                if any(n in bytes(stored) for n in needles):
                    start = seq
                    break
            if cp.seq - start >= MAX_EXCERPT:
                start = export_seq
            rows = db.execute(
                "SELECT seq, prev_hash, hash, canonical FROM entries WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (start, cp.seq),
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CaseError(f"{ledger}: cannot read the ledger excerpt ({exc})") from None
    entries = [
        {"seq": s, "prev_hash": bytes(p).hex(), "hash": bytes(h).hex(), "canonical": bytes(c).decode("utf-8")}
        for s, p, h, c in rows
    ]
    doc = {
        "format": EXCERPT_FORMAT,
        "ledger": cp.ledger,
        "export_seq": export_seq,
        "entries": entries,
        "checkpoint": json.loads(cp.to_line()),
    }
    return json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"


def _sign(files: Mapping[str, bytes], key: Ed25519PrivateKey, now: datetime) -> tuple[bytes, bytes]:
    public = keys.raw_public(key.public_key())
    manifest = {
        "format": FORMAT,
        "created": iso_time(now.timestamp()),
        "tool": f"interlock {__version__}",
        "public_key": public.hex(),
        "key_id": keys.key_id(public),
        "files": {name: {"sha256": sha256(data), "size": len(data)} for name, data in sorted(files.items())},
    }
    text = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    signature = {"key_id": keys.key_id(public), "signature": key.sign(MANIFEST_DOMAIN + text).hex()}
    return text, canonical(signature) + b"\n"


def _write_zip(output: Path, files: Mapping[str, bytes], now: datetime) -> None:
    stamp = now.astimezone(UTC).timetuple()[:6]
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CaseError(f"{output}: cannot write ({exc.strerror}); choose another -o") from None


def _summary_html(
    incident: Incident,
    capture: Path,
    cut: Slice,
    n_records: int,
    files: Mapping[str, bytes],
    now: datetime,
) -> bytes:
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{e(iso_time(a.ts))}</td><td class=sev-{a.severity}>{e(a.severity)}</td>"
        f"<td>{e(a.technique)} {e(a.technique_name)}</td><td>{e(a.title)}</td>"
        f"<td>{e(a.explanation)}</td><td>{e(', '.join(map(str, a.frames[:20])))}</td></tr>"
        for a in incident.alerts
    )
    listed = "\n".join(f"<tr><td>{e(n)}</td><td><code>{sha256(d)}</code></td></tr>" for n, d in files.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Incident {incident.number}: {e(incident.src)} to {e(incident.dst)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
.sev-critical,.sev-high{{color:#b00;font-weight:bold}}.sev-medium{{color:#a60}}</style></head><body>
<h1>Incident {incident.number}: {e(incident.severity)}</h1>
<table>
<tr><th>attacker (initiator)</th><td>{e(incident.src)}</td></tr>
<tr><th>target</th><td>{e(", ".join(incident.assets))}</td></tr>
<tr><th>first alert</th><td>{e(iso_time(incident.first_ts))}</td></tr>
<tr><th>last alert</th><td>{e(iso_time(incident.last_ts))}</td></tr>
<tr><th>techniques (ATT&amp;CK for ICS)</th><td>{e(", ".join(incident.techniques))}</td></tr>
<tr><th>capture</th><td>{e(capture.name)}: {len(cut.frames)} frames of the incident's flows from
{e(iso_time(cut.start))} to {e(iso_time(cut.end))} in {SLICE}, {n_records} decoded records</td></tr>
<tr><th>exported</th><td>{e(iso_time(now.timestamp()))} by Interlock {e(__version__)}</td></tr>
</table>
<h2>Timeline</h2>
<table><tr><th>time (UTC)</th><th>severity</th><th>technique</th><th>alert</th><th>what</th>
<th>frames</th></tr>
{rows}
</table>
<h2>Files</h2>
<p>Check with <code>interlock evidence verify CASE.zip</code>; the manifest and ledger excerpt carry
the hashes of the files below and of this page.</p>
<table><tr><th>file</th><th>SHA-256</th></tr>
{listed}
</table>
</body></html>
"""
    return page.encode("utf-8")


# -- verification -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseReport:
    path: Path
    failures: tuple[str, ...]  # "FILE: what is wrong"
    notes: tuple[str, ...] = field(default=())
    checked: tuple[str, ...] = field(default=())  # what passed, one line each

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_case(path: Path, trusted: set[bytes] | None = None) -> CaseReport:
    """Check every hash and signature in a case file; ``CaseError`` if it is not one at all."""
    try:
        with zipfile.ZipFile(path) as zf:
            contents: dict[str, bytes | None] = {}
            for info in zf.infolist():
                try:
                    contents[info.filename] = zf.read(info)
                except (
                    zipfile.BadZipFile,
                    zlib.error,
                    OSError,
                    ValueError,
                    EOFError,
                    RuntimeError,
                    NotImplementedError,
                ):
                    contents[info.filename] = None  # damaged (CRC fails): name it, check the rest
    except FileNotFoundError:
        raise CaseError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise CaseError(
            f"{path}: not a readable zip ({exc}); pass a case file from `interlock evidence bundle`"
        ) from None
    return _verify_contents(path, contents, trusted)


def _verify_contents(path: Path, contents: dict[str, bytes | None], trusted: set[bytes] | None) -> CaseReport:
    failures: list[str] = []
    notes: list[str] = []
    checked: list[str] = []
    damaged = sorted(n for n, d in contents.items() if d is None)
    failures.extend(f"{n}: damaged in the zip (CRC or compressed data does not match)" for n in damaged)
    data = {n: d for n, d in contents.items() if d is not None}
    manifest_bytes, sig_bytes = data.get(MANIFEST), data.get(SIGNATURE)
    if manifest_bytes is None or sig_bytes is None:
        if MANIFEST in damaged or SIGNATURE in damaged:
            return CaseReport(path, tuple(failures))
        raise CaseError(
            f"{path}: no {MANIFEST} or {SIGNATURE}; not a case file from `interlock evidence bundle`"
        )
    try:
        manifest = json.loads(manifest_bytes)
        listed: dict[str, Any] = manifest["files"]
        public = bytes.fromhex(manifest["public_key"])
        sig = json.loads(sig_bytes)
        signature = bytes.fromhex(sig["signature"])
        Ed25519PublicKey.from_public_bytes(public).verify(signature, MANIFEST_DOMAIN + manifest_bytes)
        checked.append(f"{MANIFEST}: signature by key {keys.key_id(public)} verifies")
    except (ValueError, KeyError, TypeError, InvalidSignature):
        failures.append(
            f"{MANIFEST}: signature does not verify ({SIGNATURE}); the manifest or signature was changed"
        )
        try:
            manifest = json.loads(manifest_bytes)
            listed = dict(manifest["files"])
            public = bytes.fromhex(manifest["public_key"])
        except (ValueError, KeyError, TypeError):
            return CaseReport(path, tuple(failures), tuple(notes), tuple(checked))
    if trusted is None:
        notes.append(
            f"signer key {keys.key_id(public)} is the one the manifest carries; pass --pubkey "
            "with a copy of the sensor's .pub.pem to check who signed"
        )
    elif public not in trusted:
        failures.append(f"{MANIFEST}: signed by key {keys.key_id(public)}, not a trusted --pubkey")
    ok_files = set()
    for name in sorted(listed):
        want = listed[name].get("sha256") if isinstance(listed[name], dict) else None
        if name not in contents:
            failures.append(f"{name}: missing from the zip")
        elif name in data and sha256(data[name]) != want:
            failures.append(f"{name}: SHA-256 does not match the manifest (changed)")
        elif name in data:
            ok_files.add(name)
    extra = sorted(set(contents) - set(listed) - {MANIFEST, SIGNATURE})
    failures.extend(f"{n}: not in the manifest (added)" for n in extra)
    if ok_files == set(listed):
        checked.append(f"{len(listed)} files: SHA-256 match the manifest")
    if EXCERPT in data:
        _verify_excerpt(data, public, trusted, failures, checked)
    if STIX in data:
        try:
            n = stix.check(data[STIX].decode("utf-8"))
            checked.append(f"{STIX}: STIX 2.1 bundle of {n} objects parses with stix2")
        except (ValueError, UnicodeDecodeError) as exc:
            failures.append(f"{STIX}: not a valid STIX 2.1 bundle ({exc})")
    if CUSTODY in data:
        _verify_custody(data, failures, checked)
    return CaseReport(path, tuple(failures), tuple(notes), tuple(checked))


def _verify_excerpt(
    data: Mapping[str, bytes],
    public: bytes,
    trusted: set[bytes] | None,
    failures: list[str],
    checked: list[str],
) -> None:
    try:
        doc = json.loads(data[EXCERPT])
        entries = doc["entries"]
        cp = Checkpoint.from_line(json.dumps(doc["checkpoint"]))
        export_seq = int(doc["export_seq"])
    except (ValueError, KeyError, TypeError) as exc:
        failures.append(f"{EXCERPT}: not a ledger excerpt ({exc})")
        return
    prev: bytes | None = None
    export: dict[str, Any] | None = None
    for e in entries:
        try:
            seq, stored = int(e["seq"]), e["canonical"].encode("utf-8")
            prev_hash, digest = bytes.fromhex(e["prev_hash"]), bytes.fromhex(e["hash"])
            obj = json.loads(stored)
        except (ValueError, KeyError, TypeError, AttributeError):
            failures.append(f"{EXCERPT}: an entry is not readable")
            return
        if chain_hash(prev_hash, stored) != digest or obj.get("seq") != seq:
            failures.append(f"{EXCERPT}: entry seq {seq}: stored bytes do not hash to its hash (edited)")
            return
        if prev is not None and prev_hash != prev:
            failures.append(f"{EXCERPT}: entry seq {seq} does not chain to the entry before it")
            return
        prev = digest
        if seq == export_seq:
            export = obj
    last = entries[-1] if entries else None
    if last is None or cp.seq != last["seq"] or cp.hash != last["hash"]:
        failures.append(f"{EXCERPT}: the checkpoint does not name the excerpt's last entry")
        return
    if not cp.signature_ok():
        failures.append(f"{EXCERPT}: checkpoint at seq {cp.seq}: signature does not verify")
        return
    if cp.public_key != public and (trusted is None or cp.public_key not in trusted):
        failures.append(
            f"{EXCERPT}: checkpoint signed by key {cp.key_id}, not the manifest's or a trusted key"
        )
        return
    checked.append(
        f"{EXCERPT}: {len(entries)} entries chain to the checkpoint at seq {cp.seq} "
        f"(ledger {cp.ledger}), signature verifies"
    )
    if export is None or export.get("kind") != "evidence":
        failures.append(f"{EXCERPT}: no export entry at seq {export_seq}")
        return
    vouched = export["body"].get("files", {})
    wrong = [n for n in EVIDENCE_FILES if n in data and vouched.get(n) != sha256(data[n])]
    failures.extend(f"{n}: SHA-256 differs from the ledger's export entry seq {export_seq}" for n in wrong)
    if not wrong:
        checked.append(f"ledger entry seq {export_seq} vouches for the evidence files' SHA-256")


def _verify_custody(data: Mapping[str, bytes], failures: list[str], checked: list[str]) -> None:
    try:
        lines = [json.loads(ln) for ln in data[CUSTODY].splitlines() if ln.strip()]
        files = lines[-1]["files"]
    except (ValueError, KeyError, TypeError, IndexError):
        failures.append(f"{CUSTODY}: not a custody log")
        return
    wrong = [n for n, h in files.items() if n in data and sha256(data[n]) != h]
    failures.extend(f"{n}: SHA-256 differs from the custody log" for n in wrong)
    if not wrong:
        checked.append(f"{CUSTODY}: {len(lines)} record(s); hashes match")
