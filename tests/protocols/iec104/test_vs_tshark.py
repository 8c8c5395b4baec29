"""Conformance: Interlock's IEC-104 decoding of the shared captures against tshark's.

Streams are recognised by content (``probe``), not by port; the set of streams found must be the
set tshark dissects as ``iec60870_104``. Per frame, the APCI (format, U function, N(S), N(R)),
the data unit identifier (type, cause, P/N, T, originator, common address, SQ, count), every IOA
and every value are compared. Known disagreements are documented where they are tolerated.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from interlock.protocols.base import Operation
from interlock.protocols.iec104 import Iec104Session, probe
from interlock.protocols.iec104.fields import UFunction
from tests.conformance import agreement
from tests.conformance.pipeline import ops_by_frame
from tests.conformance.tshark import require_tshark, tshark_fields
from tests.protocols.iec104.pcap_streams import Segment, tcp_segments

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pcaps" / "iec104"


def _captures() -> list[Path]:
    if not ROOT.is_dir():
        return []
    return sorted(p for p in ROOT.iterdir() if p.suffix in {".pcap", ".pcapng", ".cap"})


APCI = ["iec60870_104.type", "iec60870_104.utype", "iec60870_104.tx", "iec60870_104.rx"]
DUI = ["iec60870_asdu.typeid", "iec60870_asdu.causetx", "iec60870_asdu.nega",
       "iec60870_asdu.test", "iec60870_asdu.oa", "iec60870_asdu.addr", "iec60870_asdu.sq",
       "iec60870_asdu.numix"]
# tshark value field of each type id (its value is our Operation.values)
VALUE_FIELD: dict[int, str] = {}
for _types, _field in (
    ((1, 2, 30), "iec60870_asdu.siq.spi"),
    ((3, 4, 31), "iec60870_asdu.diq.dpi"),
    ((5, 6, 32), "iec60870_asdu.vti.v"),
    ((7, 8, 33, 51, 64), "iec60870_asdu.bitstring"),
    ((9, 10, 34, 21, 48, 61, 110), "iec60870_asdu.normval"),
    ((11, 12, 35, 49, 62, 111), "iec60870_asdu.scalval"),
    ((13, 14, 36, 50, 63, 112), "iec60870_asdu.float"),
    ((15, 16, 37), "iec60870_asdu.bcr.count"),
    ((45, 58), "iec60870_asdu.sco.on"),
    ((46, 59), "iec60870_asdu.dco.on"),
    ((47, 60), "iec60870_asdu.rco.up"),
):
    for _t in _types:
        VALUE_FIELD[_t] = _field
VALUES = sorted(set(VALUE_FIELD.values()))
FIELDS = [*APCI, *DUI, "iec60870_asdu.ioa", *VALUES, "_ws.col.Info", "_ws.expert"]



def _bswap32(v: float) -> float:
    """tshark reads BSI big-endian (proto_tree_add_bits_item); 60870-5-4 sends octets LSB first."""
    return float(int.from_bytes(int(v).to_bytes(4, "little"), "big"))


def _expected(ops: list[Operation]) -> dict[str, list[float]]:
    """Our operations of one frame laid out as tshark's aggregated fields."""
    out: dict[str, list[float]] = defaultdict(list)
    u_code = {u.name: int(u) >> 2 for u in UFunction}
    for op in ops:
        if op.detail and "skipped" in op.detail:
            continue  # octets skipped to regain framing: tshark shows them as "<ERR prefix>"
        if op.function == "S":
            out["iec60870_104.type"].append(1)
            out["iec60870_104.rx"].append(op.detail["recv_seq"] if op.detail else -1)
        elif op.function in u_code:
            out["iec60870_104.type"].append(3)
            out["iec60870_104.utype"].append(u_code[op.function])
        else:
            d = op.detail or {}
            out["iec60870_104.type"].append(0)
            out["iec60870_104.tx"].append(op.transaction if op.transaction is not None else -1)
            out["iec60870_104.rx"].append(d.get("recv_seq", -1))
            t = op.function_code if op.function_code is not None else -1
            out["iec60870_asdu.typeid"].append(t)
            out["iec60870_asdu.causetx"].append(d.get("cot", -1))
            out["iec60870_asdu.nega"].append(int("negative" in (op.status or "")))
            out["iec60870_asdu.test"].append(int("test" in (op.status or "")))
            out["iec60870_asdu.oa"].append(d.get("originator", -1))
            out["iec60870_asdu.addr"].append(op.unit if op.unit is not None else -1)
            out["iec60870_asdu.sq"].append(int(d.get("sq", -1)))
            out["iec60870_asdu.numix"].append(op.count or 0)
            out["iec60870_asdu.ioa"].extend(d.get("ioas", [op.address] if op.count else []))
            vf = VALUE_FIELD.get(t)
            if vf is not None and op.values is not None:
                vals = list(op.values)
                if vf == "iec60870_asdu.bitstring":
                    vals = [_bswap32(v) for v in vals]
                out[vf].extend(vals)
    return out


def _number(text: str) -> float:
    if text in ("True", "False"):
        return float(text == "True")
    return float(int(text, 0)) if text.startswith("0x") else float(text)


def _agree(ours: list[float], theirs: list[str]) -> bool:
    if len(ours) != len(theirs):
        return False
    return all(math.isclose(a, _number(b), rel_tol=1e-5, abs_tol=1e-9)  # tshark prints %g
               for a, b in zip(ours, theirs, strict=True))


@dataclass
class Result:
    compared: int = 0
    agreeing: int = 0
    disagreements: list[str] = field(default_factory=list)
    ours_only: list[int] = field(default_factory=list)  # frames we decode that tshark does not
    malformed: list[tuple[int, str]] = field(default_factory=list)


def _decode(segments: list[Segment]) -> tuple[dict[int, list[Operation]], set[tuple[str, int]]]:
    """Ops per frame of the streams our probe recognises; the server endpoints recognised."""
    by_stream: dict[tuple[str, int, str, int], list[Segment]] = defaultdict(list)
    for seg in segments:
        by_stream[seg.stream].append(seg)
    ops: dict[int, list[Operation]] = defaultdict(list)
    found: set[tuple[str, int]] = set()
    for stream, segs in by_stream.items():
        heads = {True: b"", False: b""}
        for seg in segs:
            if len(heads[seg.from_client]) < 300:
                heads[seg.from_client] += seg.payload
        answers = {probe(h, fc).value for fc, h in heads.items() if h}
        if "yes" not in answers:
            continue
        assert "no" not in answers, f"{stream}: one direction looks like 104, the other not"
        found.add((stream[2], stream[3]))
        session = Iec104Session()
        for seg in segs:
            ops[seg.frame].extend(session.feed(seg.payload, seg.from_client))
    return ops, found


def compare(capture: Path) -> Result:
    segments = tcp_segments(capture)
    _, found = _decode(segments)  # which servers the probe recognises, stream by stream
    ours = ops_by_frame(capture, "iec104")  # what the whole decoder writes
    rows = tshark_fields(capture, FIELDS, "iec60870_104")
    res = Result()
    theirs_servers: set[tuple[str, int]] = set()
    tshark_frames: set[int] = set()
    errors: set[int] = set()
    for row in rows:
        frame = int(row["frame.number"][0])
        info = " ".join(row["_ws.col.Info"])
        if not row["iec60870_104.type"]:
            continue
        tshark_frames.add(frame)
        if "<ERR" in info or row["_ws.expert"]:
            errors.add(frame)
        res.compared += 1
        expected = _expected(ours.get(frame, []))
        bad = [f for f in [*APCI, *DUI, "iec60870_asdu.ioa", *VALUES]
               if not _agree(expected.get(f, []), row[f])]
        if bad:
            res.disagreements.append(
                f"frame {frame}: " + "; ".join(f"{f} ours={expected.get(f, [])} "
                                               f"tshark={row[f]}" for f in bad))
        else:
            res.agreeing += 1
    for frame, frame_ops in sorted(ours.items()):
        if frame_ops and frame not in tshark_frames:
            res.ours_only.append(frame)
        res.malformed += [(frame, str(op.malformed)) for op in frame_ops if op.malformed]
    # which servers tshark saw speaking 104
    for seg in segments:
        if seg.frame in tshark_frames:
            theirs_servers.add((seg.stream[2], seg.stream[3]))
    assert found == theirs_servers, f"probe found {found}, tshark dissects {theirs_servers}"
    for frame, reason in res.malformed:
        assert frame in errors, f"frame {frame}: {reason} but tshark reports no error there"
    return res


@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_agrees_with_tshark(capture: Path) -> None:
    require_tshark()
    res = compare(capture)
    agreement.record("iec104", capture.name, res.compared, res.agreeing,
                     res.compared - res.agreeing)
    print(f"\n{capture.name}: {res.compared} frames compared, {res.agreeing} agree, "
          f"{len(res.ours_only)} decoded by Interlock only, malformed {res.malformed}")
    for line in res.disagreements:
        print("  ", line)
    assert res.compared > 0
    assert res.agreeing == res.compared, res.disagreements[:5]


def test_shared_captures_present() -> None:
    if not ROOT.is_dir():
        pytest.skip(f"{ROOT} is absent: the shared capture set is needed for conformance tests")
    assert _captures(), f"no capture under {ROOT}"
