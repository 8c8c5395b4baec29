"""Interlock's Modbus decoder against tshark 4.0 on the shared captures, frame by frame.

Each capture goes through the whole decoder (``interlock decode``: reader, TCP reassembly,
recognition by content, :class:`ModbusSession`; an operation lands on the frame that completed
its ADU, as tshark reports reassembled PDUs) and the main fields are compared with
``tshark -T fields``, rendered the way tshark renders them. Every
frame where the two disagree must be listed in ``EXPECTED_DISAGREEMENTS`` with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from interlock.protocols.base import Direction, Operation, Probe
from interlock.protocols.modbus import ExceptionCode, probe
from tests.conformance import agreement
from tests.conformance.pipeline import ops_by_frame
from tests.conformance.tshark import require_tshark
from tests.conformance.tshark import tshark_fields as tshark_rows
from tests.protocols.modbus.pcap_streams import tcp_chunks

CAPTURES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pcaps" / "modbus"

FIELDS = [
    "mbtcp.trans_id", "mbtcp.unit_id", "modbus.func_code", "modbus.exception_code",
    "modbus.reference_num", "modbus.word_cnt", "modbus.bit_cnt", "modbus.regval_uint16",
    "modbus.regnum16", "modbus.bitval", "modbus.bitnum", "modbus.read_reference_num",
    "modbus.read_word_cnt", "modbus.write_reference_num", "modbus.write_word_cnt",
    "modbus.diagnostic_code", "modbus.read_device_id", "modbus.object_str_value",
]

# Captures where tshark itself reports a malformed packet or an error-level expert item.
TSHARK_MALFORMED = {"fuzz-72.pcap", "modbus-encapsulated-transport.pcap"}

# frame -> why we differ from tshark. Anything not listed here fails the test.
EXPECTED_DISAGREEMENTS: dict[str, dict[int, str]] = {
    "modbus-encapsulated-transport.pcap": {
        6: "43/14 response of 4 bytes (an echo of the request): we say INVALID_LENGTH, "
           "tshark shows the first fields and flags it malformed too",
    },
    "modbus_test_data_part1.pcap": {
        32: "43/14 request with a fifth byte: INVALID_LENGTH (spec 6.21: exactly 4 bytes); "
            "tshark ignores the trailing byte",
        34: "same as frame 32",
        91: "exception response of 3 bytes (trailing 00): INVALID_LENGTH, tshark ignores it",
        93: "same as frame 91", 95: "same as frame 91", 97: "same as frame 91",
        99: "same as frame 91", 101: "same as frame 91", 103: "same as frame 91",
        105: "same as frame 91", 107: "same as frame 91", 109: "same as frame 91",
        113: "frame 111 carried 3 bytes past its ADU; with frame 113 they make a header with "
             "protocol id 0x2300 and length 256: INVALID_LENGTH, tshark silently stops",
    },
    "modbusBig.pcap": {
        3150: "the server's Read Coils response was captured after the client's ACK of it; "
              "tshark calls it a spurious retransmission and skips it, we decode it (its "
              "bytes were never seen before)",
    },
}

# frame -> malformed reason we report in captures tshark does not call malformed.
EXPECTED_MALFORMED: dict[str, dict[int, str]] = {
    "modbus_test_data_part1.pcap": {
        # frames 76-82 (MBAP length 34820, then protocol id 16) open a stream that recognition
        # by content refuses, so they make no record: the summary counts the stream as
        # unrecognised on an ICS port, and tshark shows no Modbus there either.
        32: "INVALID_LENGTH", 34: "INVALID_LENGTH",
        **dict.fromkeys(range(91, 110, 2), "INVALID_LENGTH"), 113: "INVALID_LENGTH",
    },
    "modicon_test.pcap": {19: "INVALID_LENGTH", 20: "INVALID_LENGTH"},
}

_REFERENCE = {True: {1, 2, 3, 4, 5, 6, 15, 16, 22, 24}, False: {5, 6, 15, 16, 22}}
_BIT_COUNT = {True: {1, 2, 15}, False: {15}}
_WORD_COUNT = {True: {3, 4, 16}, False: {16, 24}}
_REGISTERS = {True: {16}, False: {3, 4}}
_BITS = {True: set[int](), False: {1, 2}}


def _as_tshark(ops: list[Operation]) -> dict[str, list[str]]:
    """Our operations rendered as the fields tshark shows for the same PDUs."""
    out: dict[str, list[str]] = defaultdict(list)
    for op in ops:
        fc = op.function_code
        out["mbtcp.trans_id"].append(str(op.transaction))
        out["mbtcp.unit_id"].append(str(op.unit))
        out["modbus.func_code"].append(str(fc))
        if op.malformed or fc is None:
            continue
        if op.status is not None and op.status in ExceptionCode.__members__:
            out["modbus.exception_code"].append(str(ExceptionCode[op.status].value))
            continue
        request = op.direction == Direction.REQUEST
        detail = op.detail or {}
        if fc in _REFERENCE[request]:
            out["modbus.reference_num"].append(str(op.address))
        if fc in _BIT_COUNT[request]:
            out["modbus.bit_cnt"].append(str(op.count))
        if fc in _WORD_COUNT[request]:
            out["modbus.word_cnt"].append(str(op.count))
        if fc in _REGISTERS[request] or fc in _BITS[request]:
            # Unpaired responses: tshark numbers items from 0, we know no address.
            base = op.address or 0
            values = op.values or ()
            kind = "reg" if fc in _REGISTERS[request] else "bit"
            out[f"modbus.{kind}num16" if kind == "reg" else "modbus.bitnum"] += [
                str(base + i) for i in range(len(values))]
            out["modbus.regval_uint16" if kind == "reg" else "modbus.bitval"] += [
                str(int(v)) for v in values]
        if fc == 23 and request:
            out["modbus.read_reference_num"].append(str(op.address))
            out["modbus.read_word_cnt"].append(str(op.count))
            out["modbus.write_reference_num"].append(str(detail["write_address"]))
            out["modbus.write_word_cnt"].append(str(detail["write_quantity"]))
        if fc == 8:
            out["modbus.diagnostic_code"].append(str(detail["sub_function"]))
        if fc == 43 and "read_device_id_code" in detail:
            out["modbus.read_device_id"].append(str(detail["read_device_id_code"]))
            out["modbus.object_str_value"] += list(detail.get("objects", {}).values())
    return out



def _captures() -> list[Path]:
    if not CAPTURES.is_dir():
        return []
    return sorted(p for p in CAPTURES.iterdir() if p.suffix in {".pcap", ".pcapng", ".cap"})


@pytest.mark.conformance
@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_agrees_with_tshark(capture: Path) -> None:
    require_tshark()
    ours = ops_by_frame(capture, "modbus")
    theirs = {int(row["frame.number"][0]): row
              for row in tshark_rows(capture, FIELDS, "mbtcp")}
    frames = sorted(set(ours) | set(theirs))
    assert frames, f"{capture.name}: no Modbus frame at all"
    disagree: dict[int, list[str]] = {}
    for frame in frames:
        mine = _as_tshark(ours.get(frame, []))
        row = theirs.get(frame, {})
        diff = [f for f in FIELDS if mine.get(f, []) != row.get(f, [])]
        if diff:
            disagree[frame] = diff
    agreeing = len(frames) - len(disagree)
    agreement.record("modbus", capture.name, len(frames), agreeing, len(disagree))
    print(f"\n{capture.name}: {len(frames)} frames compared, {agreeing} agree"
          + (f", differ: {dict(list(disagree.items())[:8])}" if disagree else ""))
    expected = EXPECTED_DISAGREEMENTS.get(capture.name, {})
    if capture.name == "fuzz-72.pcap":
        # A fuzzer's stream: random sequence numbers, holes never filled, overlaps. We deliver
        # bytes as the endpoint's TCP would (in sequence order, holes waited for), tshark
        # decodes segments as they come; every frame where we differ must be one that tshark
        # itself flags as a TCP anomaly (out of order, previous segment lost, ...).
        anomalies = {int(r["frame.number"][0]) for r in tshark_rows(capture, [], "tcp.analysis.flags")}
        # frame 18 is in order after frame 17, whose missing predecessor we still wait for
        assert set(disagree) <= anomalies | {18}, sorted(set(disagree) - anomalies)
        return
    unexpected = {f: d for f, d in disagree.items() if f not in expected}
    assert not unexpected, f"{capture.name}: unexplained disagreements {unexpected}"
    assert set(expected) <= set(disagree), "listed disagreements no longer happen: update"


@pytest.mark.conformance
@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_malformed_only_where_explained(capture: Path) -> None:
    found = {frame: op.malformed for frame, ops in ops_by_frame(capture, "modbus").items()
             for op in ops if op.malformed}
    if capture.name in TSHARK_MALFORMED:
        return
    assert found == EXPECTED_MALFORMED.get(capture.name, {})


# (capture, first frame of the direction) where a port-502 direction does not start as Modbus.
PROBE_REFUSED = {
    ("fuzz-72.pcap", 1): "6 zero bytes: MBAP length 0",
    ("modbus_test_data_part1.pcap", 76): "MBAP length 34820",
}


@pytest.mark.conformance
@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_probe_finds_modbus_by_content(capture: Path) -> None:
    """Every port-502 direction is recognised from its first bytes; no other stream is."""
    buffers: dict[tuple[int, bool], bytes] = {}
    first_frame: dict[tuple[int, bool], int] = {}
    answers: dict[tuple[int, bool], Probe] = {}
    port_502: dict[int, bool] = {}
    for chunk in tcp_chunks(capture):
        key = (chunk.stream, chunk.from_client)
        port_502[chunk.stream] = chunk.port_502
        if answers.get(key, Probe.NEED_MORE) is not Probe.NEED_MORE:
            continue
        first_frame.setdefault(key, chunk.frame)
        buffers[key] = buffers.get(key, b"") + chunk.data
        answers[key] = probe(buffers[key], chunk.from_client)
    for key, answer in answers.items():
        refused = (capture.name, first_frame[key]) in PROBE_REFUSED
        if port_502[key[0]]:
            assert answer is (Probe.NO if refused else Probe.YES), (key, buffers[key][:16])
        else:
            assert answer is not Probe.YES, (key, buffers[key][:16])


def test_captures_present_or_skip() -> None:
    if not _captures():
        pytest.skip(f"{CAPTURES} is absent: the shared capture set is needed")
    names = {p.name for p in _captures()}
    assert {"modbus_example.pcap", "ModbusTCP.pcap"} <= names
