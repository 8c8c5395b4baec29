"""Interlock's DNP3 session against tshark (the reference decoder) on the shared captures.

Each capture goes through the whole decoder (reader, TCP reassembly, recognition by content,
one :class:`DNP3Session` per connection); each Operation is attributed to the frame whose payload
completed it, which is also where tshark shows a reassembled application fragment. Per frame we
compare: malformed or not, application function codes, sequence numbers, IIN, link addresses
and DIR, link-only functions, object headers (group/variation), ranges and index prefixes, and
the point values tshark decodes (analog inputs and outputs, counters, binaries, CROB fields).

Known, explained differences are listed in ``EXPECTED``; anything else fails the test.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from interlock.protocols.base import Operation, Probe
from interlock.protocols.dnp3 import DNP3Session, probe
from interlock.protocols.dnp3.fields import HEADERS_ONLY_FUNCTIONS, PrimaryFunction, SecondaryFunction
from interlock.protocols.dnp3.objects import Kind, layout
from interlock.protocols.dnp3.session import iin_status
from tests.conformance import agreement
from tests.conformance.pipeline import ops_by_frame
from tests.conformance.tshark import require_tshark, tshark_fields

from ._pcap import SERVER_PORT, tcp_payloads

pytestmark = pytest.mark.conformance

PCAPS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pcaps" / "dnp3"

FIELDS = [
    "_ws.malformed", "dnp3.ctl.dir", "dnp3.ctl.prm", "dnp3.ctl.prifunc", "dnp3.ctl.secfunc",
    "dnp3.src", "dnp3.dst", "dnp3.al.func", "dnp3.al.seq", "dnp3.al.iin", "dnp3.al.obj",
    "dnp3.al.objq.range", "dnp3.al.range.start", "dnp3.al.range.stop", "dnp3.al.range.abs",
    "dnp3.al.range.quantity", "dnp3.al.index", "dnp3.al.ana.int", "dnp3.al.ana.float",
    "dnp3.al.ana.double", "dnp3.al.anaout.int", "dnp3.al.anaout.float", "dnp3.al.anaout.double",
    "dnp3.al.cnt", "dnp3.al.bit", "dnp3.al.2bit", "dnp3.al.biq.b7", "dnp3.al.boq.b7",
    "dnp3.ctl.op", "dnp3.al.count", "dnp3.al.on_time", "dnp3.al.off_time",
    "dnp3.al.ctrlstatus", "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
]
RETRANSMISSION = FIELDS[-3:]
FILTER = "dnp3 or _ws.malformed or " + " or ".join(RETRANSMISSION)

WRAP = ("tshark loses transport reassembly when the transport sequence wraps from 63 to 0: it "
        "shows no fragment, or a stale CONFIRM seq 0, where the bytes hold the fragment we decode")
UNKNOWN = ("OPERATE with an object of unknown size (g255v255, g128v255, g127v128): tshark throws, "
           "we stop decoding with a note, which is not malformed")
STRICT_RANGE = ("g0v0 with stop < start: tshark counts a negative number of items, "
                "we flag BAD_RANGE")
STRICT_QUALIFIER = ("reserved qualifier (0x0B without size prefix, 0xED): tshark reads on, "
                    "we flag BAD_QUALIFIER")
STOP_APPL = ("tshark does not decode the object headers of STOP_APPL; we do (g60v2, then g1v7 "
             "of unknown size)")
AUTH = ("tshark does not decode g120 object headers of AUTHENTICATE_REQ/RESP, nor the IIN of "
        "AUTHENTICATE_RESP")
PORT80 = ("DNP3 sent from port 20000 to port 80 (injection attack): tshark picks HTTP by port, "
          "we find DNP3 by content")

# (capture, frame) -> (aspects that differ or None for any but "malformed", why). All else agrees.
INJECTED = ("ARP-spoofing man in the middle re-sends sequence space with different bytes (a "
            "'retransmission' one byte longer than the original); Interlock delivers every "
            "sequence number once, as the receiving TCP does, so the next segment is cut; "
            "tshark dissects each copy whole")
EXPECTED: dict[tuple[str, int], tuple[set[str] | None, str]] = {
    **{("qut_dnp3_attacks_training_infrequent.pcap", f): (None, INJECTED)
       for f in (711, 725, 739, 753)},
    ("qut_dnp3_injection_training_frequent.pcap", 869): (None, INJECTED),
    **{("DNP3-Malformed.pcap", f): ({"malformed"}, UNKNOWN)
       for f in (78, 91, 97, 111, 134, 148, 176, 190, 198)},
    **{("DNP3-Malformed.pcap", f): ({"malformed"}, STRICT_RANGE) for f in (157, 170)},
    ("DNP3-Malformed.pcap", 160): ({"malformed"}, STRICT_QUALIFIER),
    **{(c, f): ({"malformed"}, STRICT_QUALIFIER)
       for c in ("dnp3.pcap", "dnp3_test_data_part1.pcap") for f in (154, 156)},
    **{(c, f): ({"objects"}, STOP_APPL)
       for c in ("dnp3.pcap", "dnp3_test_data_part1.pcap") for f in (163, 166, 174, 176)},
    ("auth_control_challenge_response.pcap", 2): ({"iin", "objects", "quantity"}, AUTH),
    ("auth_control_challenge_response.pcap", 3): ({"objects", "quantity"}, AUTH),
    **{("dnp3_example.pcap", f): (None, WRAP) for f in (18, 114, 210, 311, 810)},
    **{("dnp3dataset_capture.pcap", f): (None, WRAP) for f in (
        570, 785, 2518, 2728, 3803, 4027, 4238, 4240, 4451, 4454, 4661, 4878, 5102, 5312, 5529,
        6621, 6831, 8135, 8345, 10515, 10739, 10949, 12904, 13121, 14633, 14852, 15069, 15279,
        16154, 16374, 16598, 16814, 16816, 17030, 17033, 17247, 17469, 18943, 19177, 19402,
        21414, 21629, 21851, 22113)},
    ("qut_dnp3_injection_training_frequent.pcap", 1093): (None, PORT80),
    ("qut_dnp3_replay_training_frequent.pcap", 1827): (None, PORT80),
}


def tshark_rows(capture: Path, fields: list[str]) -> dict[int, dict[str, list[str]]]:
    """tshark -T fields rows of DNP3 frames, by frame number."""
    return {int(row["frame.number"][0]): row for row in tshark_fields(capture, fields, FILTER)}


def _captures() -> list[str]:
    if not PCAPS.is_dir():
        return []
    return sorted(p.name for p in PCAPS.iterdir() if p.suffix in {".pcap", ".pcapng"})


def _our_ops(path: Path) -> dict[int, list[Operation]]:
    """Operations per frame number, feeding connections to port 20000 or that probe as DNP3."""
    sessions: dict[int, DNP3Session | None] = {}
    out: dict[int, list[Operation]] = defaultdict(list)
    for frame, conn, from_client, data, ports in tcp_payloads(path):
        if conn not in sessions:
            dnp3 = SERVER_PORT in ports or probe(data, from_client) is Probe.YES
            sessions[conn] = DNP3Session() if dnp3 else None
        session = sessions[conn]
        if session is not None:
            out[frame] += session.feed(data, from_client)
    return out


def _ints(values: list[str]) -> list[int]:
    return [int(v, 0) for v in values]


def _bools(values: list[str]) -> list[int]:
    return [1 if v in ("1", "True") else 0 for v in values]


def _values_by_kind(ops: list[Operation]) -> dict[str, list[Any]]:
    """Our point values regrouped by the tshark field that shows them."""
    kinds: dict[str, list[Any]] = defaultdict(list)
    for op in ops:
        if op.function_code is None or op.function_code in HEADERS_ONLY_FUNCTIONS:
            continue
        values = list(op.values or ())
        for h in (op.detail or {}).get("objects", []):
            g, v = h["group"], h["variation"]
            lay = layout(g, v)
            if lay is None or lay.kind not in (Kind.FIXED, Kind.PACKED) or lay.value < 0:
                continue
            n = (h["stop"] - h["start"] + 1 if "stop" in h else
                 1 if "start" in h else h.get("count", 0))
            if h["qualifier"] & 0x0F == 6:
                n = 0
            mine, values = values[:n], values[n:]
            code = lay.fmt.replace("IH", "T")[lay.value] if lay.kind == Kind.FIXED else ""
            typ = {"i": "int", "h": "int", "f": "float", "d": "double"}.get(code)
            if g in (30, 31, 32, 33) and typ:
                kinds[f"dnp3.al.ana.{typ}"] += mine
            elif g in (40, 41, 42, 43) and typ:
                kinds[f"dnp3.al.anaout.{typ}"] += mine
            elif g in (20, 21, 22, 23):
                kinds["dnp3.al.cnt"] += mine
            elif (g, v) in ((1, 1), (10, 1), (80, 1)):
                kinds["dnp3.al.bit"] += mine
            elif (g, v) == (3, 1):
                kinds["dnp3.al.2bit"] += mine
            elif g in (1, 2):
                kinds["dnp3.al.biq.b7"] += mine
            elif g in (3, 4):
                kinds["dnp3.al.biq.b7"] += [int(x) >> 1 for x in mine]
            elif g in (10, 11):
                kinds["dnp3.al.boq.b7"] += mine
            elif g == 12 and v in (1, 2):
                for code_, count, on, off, status in h["crob"]:
                    kinds["dnp3.ctl.op"].append(code_ & 0x0F)
                    kinds["dnp3.al.count"].append(count)
                    kinds["dnp3.al.on_time"].append(on)
                    kinds["dnp3.al.off_time"].append(off)
                    kinds["dnp3.al.ctrlstatus"].append(status)
    return kinds


def _same_numbers(ours: list[Any], theirs: list[str]) -> bool:
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs, strict=True):
        x = float(b) if b not in ("True", "False") else float(b == "True")
        if not (math.isclose(float(a), x, rel_tol=1e-6, abs_tol=1e-9)
                or (math.isnan(float(a)) and math.isnan(x))):
            return False
    return True


def compare_frame(ops: list[Operation], row: dict[str, list[str]] | None) -> dict[str, Any]:
    """Aspects in which our operations for one frame differ from tshark's row: name -> (us, them)."""
    diff: dict[str, Any] = {}
    row = row or {f: [] for f in FIELDS}
    ours_bad = any(op.malformed for op in ops)
    theirs_bad = bool(row["_ws.malformed"])
    if ours_bad or theirs_bad:
        if ours_bad != theirs_bad:
            diff["malformed"] = ([op.malformed for op in ops if op.malformed], theirs_bad)
        return diff
    app = [op for op in ops if op.function_code is not None]
    link = [op for op in ops if op.function_code is None]
    checks: dict[str, tuple[Any, Any]] = {
        "function": ([op.function_code for op in app], _ints(row["dnp3.al.func"])),
        "seq": ([op.transaction for op in app], _ints(row["dnp3.al.seq"])),
        "iin": ([op.status for op in app if op.function_code >= 129],  # type: ignore[operator]
                [iin_status(int(x, 16)) for x in row["dnp3.al.iin"]]),
    }
    prm = iter(row["dnp3.ctl.prifunc"])
    sec = iter(row["dnp3.ctl.secfunc"])
    theirs_link = []
    for p in _bools(row["dnp3.ctl.prm"]):
        code = int(next(prm if p else sec, "-1"))
        if p and code in (3, 4):
            continue
        theirs_link.append((PrimaryFunction if p else SecondaryFunction)(code).name)
    checks["link"] = ([op.function for op in link], theirs_link)
    triples = set(zip(_ints(row["dnp3.src"]), _ints(row["dnp3.dst"]),
                      _bools(row["dnp3.ctl.dir"]), strict=True))
    missing = [(op.detail or {}).get("link_src") for op in ops
               if ((op.detail or {}).get("link_src"), (op.detail or {}).get("link_dst"),
                   int(op.direction.value == "request")) not in triples]
    checks["addresses"] = (missing, [])
    objs = [h for op in app for h in (op.detail or {}).get("objects", [])]
    # tshark shows the octet-string groups (whose variation is a length) as variation 0
    checks["objects"] = ([h["group"] << 8 | (0 if h["group"] in (110, 111) else h["variation"])
                          for h in objs],
                         _ints(row["dnp3.al.obj"]))
    checks["range"] = (
        [(h["start"], h["stop"]) for h in objs if "stop" in h],
        list(zip(_ints(row["dnp3.al.range.start"]), _ints(row["dnp3.al.range.stop"]),
                 strict=True)))
    checks["address"] = ([h["start"] for h in objs if "start" in h and "stop" not in h],
                         _ints(row["dnp3.al.range.abs"]))
    checks["quantity"] = ([h["count"] for h in objs if "count" in h],
                          _ints(row["dnp3.al.range.quantity"]))
    checks["indexes"] = ([i for h in objs for i in h.get("indexes", [])],
                         _ints(row["dnp3.al.index"]))
    for name, (a, b) in checks.items():
        if a != b:
            diff[name] = (a, b)
    for name, mine in _values_by_kind(app).items():
        if not _same_numbers(mine, row[name]):
            diff[name] = (mine, row[name])
    for name in FIELDS:
        if name.startswith(("dnp3.al.ana", "dnp3.al.cnt", "dnp3.al.bit", "dnp3.al.2bit")) and (
                row[name] and not _values_by_kind(app).get(name)):
            diff[name] = ([], row[name])
    return diff


@pytest.mark.parametrize("capture", _captures())
def test_vs_tshark(capture: str) -> None:
    require_tshark()
    path = PCAPS / capture
    rows = tshark_rows(path, FIELDS)
    ours = ops_by_frame(path, "dnp3")
    frames = sorted(set(rows) | set(ours))
    compared = agreeing = skipped = 0
    unexpected: list[str] = []
    for frame in frames:
        ops = ours.get(frame, [])
        row = rows.get(frame)
        if row is not None and any(row[f] for f in RETRANSMISSION):
            skipped += 1  # TCP's business: the capture layer decides what a retransmission adds
            continue
        if not ops and (row is None or not (row["dnp3.al.func"] or row["_ws.malformed"]
                                            or row["dnp3.ctl.secfunc"]
                                            or any(f not in ("3", "4")
                                                   for f in row["dnp3.ctl.prifunc"]))):
            continue  # a segment of a longer fragment: nothing to show yet on either side
        compared += 1
        diff = compare_frame(ops, row)
        expected = EXPECTED.get((capture, frame))
        if not diff:
            agreeing += 1
            assert expected is None, f"{capture} #{frame} now agrees: drop it from EXPECTED"
        elif expected is None or (set(diff) != expected[0] if expected[0] is not None
                                  else "malformed" in diff):
            unexpected.append(f"#{frame}: {diff}")
    agreement.record("dnp3", capture, compared, agreeing, compared - agreeing - len(unexpected))
    print(f"\n{capture}: {compared} frames compared, {agreeing} agree, {skipped} TCP "
          "retransmissions skipped")
    assert not unexpected, f"{capture}: {len(unexpected)} unexplained differences:\n" + "\n".join(
        unexpected[:20])


@pytest.mark.parametrize("capture", ["dnp3.pcap", "opendnp3_conformance_6.1.2.pcap"])
def test_capture_streams_byte_by_byte(capture: str) -> None:
    """Each direction of each connection, fed whole and byte by byte: same operations."""
    path = PCAPS / capture
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    streams: dict[tuple[int, bool], bytearray] = defaultdict(bytearray)
    for _, conn, from_client, data, _ in tcp_payloads(path):
        streams[conn, from_client] += data
    total = 0
    for (_, from_client), stream in streams.items():
        whole = DNP3Session().feed(bytes(stream), from_client)
        s = DNP3Session()
        bytewise = [op for i in range(len(stream))
                    for op in s.feed(bytes(stream[i : i + 1]), from_client)]
        assert bytewise == whole
        total += len(whole)
    assert total > 30
