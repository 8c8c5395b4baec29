"""Frame-level precision and recall on the CSET'16 labeled Modbus captures (Lemay & Fernandez).

Each ``*_labeled.csv`` gives ``frame;label`` for every frame (1 = attack). A frame counts as
detected when it is evidence (``Alert.frames``) of any alert of the shipped rules. The rules'
thresholds were set from the protocol and from benign captures, never from these labels.

Run ``python -m pytest tests/detect/test_labeled.py -q`` to see the table (docs/detection.md
quotes it). Two figures per capture: over all frames, and over the frames that carry a Modbus
operation (TCP handshakes, ARP and the like are labelled too, but no record-level detector can
see them).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from interlock.capture.decode import decode_path
from interlock.capture.records import ics_only
from interlock.detect.network.rules import Rule, run_rules

from .conftest import shared

CAPTURES = (
    "characterization_modbus_6RTU_with_operate",
    "send_a_fake_command_modbus_6RTU_with_operate",
    "moving_two_files_modbus_6RTU",
)


@dataclass(frozen=True)
class Score:
    name: str
    frames: int
    attack: int
    tp: int
    fp: int
    fn: int
    attack_with_record: int
    tp_with_record: int
    decoded_frames: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float:
        return self.tp / self.attack if self.attack else 0.0

    @property
    def recall_with_record(self) -> float:
        return self.tp_with_record / self.attack_with_record if self.attack_with_record else 0.0


def score(rules: tuple[Rule, ...], name: str) -> Score:
    pcap = shared(f"modbus/{name}.pcap")
    labels = {}
    for line in pcap.with_name(f"{name}_labeled.csv").read_text().split():
        frame, label = line.split(";")
        labels[int(frame)] = int(label)
    stream, decoder = decode_path(pcap)
    batches = list(stream)
    # frames with an ICS record: the decoder's connection records (SYN, RST) are not operations
    with_record = {f for b in batches for f in ics_only(b).column("frame").to_pylist()}
    detected = {f for a in run_rules(rules, batches) for f in a.frames}
    attack = {f for f, label in labels.items() if label == 1}
    return Score(name, len(labels), len(attack), len(detected & attack), len(detected - attack),
                 len(attack - detected), len(attack & with_record), len(detected & attack & with_record),
                 decoder.stats.frames)


@pytest.fixture(scope="module")
def scores(rules: tuple[Rule, ...]) -> dict[str, Score]:
    return {name: score(rules, name) for name in CAPTURES}


def test_print_precision_recall(scores: dict[str, Score], capsys: pytest.CaptureFixture[str]) -> None:
    rows = ["capture | frames | attack frames | TP | FP | FN | precision | recall | recall (frames with "
            "a Modbus record)", "---|---|---|---|---|---|---|---|---"]
    for s in scores.values():
        p = "n/a (no alert)" if s.precision is None else f"{s.precision:.3f}"
        rows.append(f"{s.name} | {s.frames} | {s.attack} | {s.tp} | {s.fp} | {s.fn} | {p} | {s.recall:.3f} | "
                    f"{s.recall_with_record:.3f} ({s.tp_with_record}/{s.attack_with_record})")
    with capsys.disabled():
        print("\nCSET'16 labeled Modbus captures, frame level:\n" + "\n".join(rows))


def test_no_benign_frame_is_flagged(scores: dict[str, Score]) -> None:
    assert {s.name: s.fp for s in scores.values()} == dict.fromkeys(CAPTURES, 0)


def test_the_reconnaissance_is_found_frame_by_frame(scores: dict[str, Score]) -> None:
    s = scores["characterization_modbus_6RTU_with_operate"]
    assert s.precision is not None and s.precision >= 0.99
    assert s.recall_with_record >= 0.95


def test_what_rules_cannot_see_is_reported_as_missed(scores: dict[str, Score]) -> None:
    """A single FC5 write from a host that also polls (needs a baseline of who writes), and a
    covert file transfer whose frames carry no Modbus record: both missed, by design."""
    assert scores["send_a_fake_command_modbus_6RTU_with_operate"].tp == 0
    assert scores["moving_two_files_modbus_6RTU"].attack_with_record == 0


def test_labels_cover_every_frame(scores: dict[str, Score]) -> None:
    """Frame numbers of labels and decoder agree: one label per frame, numbered from 1."""
    assert all(s.frames == s.decoded_frames > 0 for s in scores.values())
