"""Each kind of tampering is detected and located; honest ledgers verify."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlock.evidence import keys
from interlock.evidence.ledger import (
    GENESIS,
    Anchor,
    Checkpoint,
    EntryKind,
    Ledger,
    Problem,
    VerifyReport,
    chain_hash,
)
from tests.evidence import tamper


class StepClock:
    """Injected time: one microsecond-exact step per call, so entries are reproducible."""

    def __init__(self) -> None:
        self.t = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "ledger-ed25519.pem"


def make(tmp_path: Path, key: Path, n: int, every: int = 10) -> Path:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path, key=key, checkpoint_every=every, clock=StepClock()) as led:
        for i in range(n):
            kind = (EntryKind.ALERT, EntryKind.INCIDENT, EntryKind.ANALYST_ACTION)[i % 3]
            led.append(kind, {"i": i, "src": "10.0.0.5", "note": f"entry {i} é"}, actor="detect.test")
    return path


def verify(path: Path, key: Path, anchors: tuple[Anchor, ...] = ()) -> VerifyReport:
    with Ledger(path, key=key, create=False) as led:
        return led.verify(anchors=anchors)


@pytest.fixture
def opened(tmp_path: Path, key: Path) -> Iterator[Ledger]:
    with Ledger(make(tmp_path, key, 25), key=key, create=False) as led:
        yield led


def test_honest_ledger_verifies_and_reads_back(opened: Ledger, key: Path) -> None:
    report = opened.verify()
    assert report.ok, report.findings
    assert (report.entries, report.head_seq) == (25, 25)
    assert report.checkpoints == 2 and report.last_checkpoint and report.last_checkpoint.seq == 20
    assert report.trusted_keys == (keys.key_id(keys.load_public(keys.public_path(key))),)
    assert any("21..25" in n for n in report.notes)  # the unsigned tail is admitted, not hidden
    entries = list(opened)
    assert [e.seq for e in entries] == list(range(1, 26))
    assert entries[0].prev_hash == GENESIS
    for a, b in itertools.pairwise(entries):
        assert b.prev_hash == a.hash
    assert entries[3].body["note"] == "entry 3 é" and entries[3].kind == "alert"
    assert [e.seq for e in opened.tail(3)] == [23, 24, 25] and len(opened) == 25
    assert opened.head() == (25, entries[-1].hash)


def test_stored_bytes_are_what_was_hashed(opened: Ledger) -> None:
    stored = tamper.row(opened.path, 7)
    assert chain_hash(stored[0], stored[2]) == stored[1]
    assert stored[2].startswith(b'{"actor":"detect.test","body":{"i":6,"note":"entry 6 \xc3\xa9"')


@pytest.mark.parametrize("column", ["prev_hash", "hash", "canonical"])
def test_every_byte_of_a_stored_entry_is_covered(tmp_path: Path, key: Path, column: str) -> None:
    path = make(tmp_path, key, 6, every=100)
    size = len(tamper.row(path, 4)[("prev_hash", "hash", "canonical").index(column)])
    with Ledger(path, key=key, create=False) as led:
        for index in range(size):
            tamper.flip(path, 4, column, index)
            report = led.verify()
            assert not report.ok and report.first is not None, (column, index)
            assert (report.first.seq, report.first.what) == (4, Problem.EDITED), (column, index, report.first)
            tamper.flip(path, 4, column, index)  # flip back: the ledger is whole again
        assert led.verify().ok


def test_deleted_entries_are_named(tmp_path: Path, key: Path) -> None:
    path = make(tmp_path, key, 30)
    tamper.sql(path, "DELETE FROM entries WHERE seq = 17")
    report = verify(path, key)
    assert report.first.seq == 17 and report.first.what == Problem.DELETED
    tamper.sql(path, "DELETE FROM entries WHERE seq IN (1, 2)")
    report = verify(path, key)
    assert report.first.seq == 1 and report.first.what == Problem.DELETED
    assert "1..2" in report.first.detail


@pytest.mark.parametrize(("a", "b"), [(8, 12), (8, 9), (24, 25)])
def test_swapped_entries_are_named(tmp_path: Path, key: Path, a: int, b: int) -> None:
    path = make(tmp_path, key, 25)
    tamper.swap(path, a, b)
    report = verify(path, key)
    found = {(f.seq, f.what) for f in report.findings}
    assert report.first.seq == a and report.first.what == Problem.REORDERED
    assert (b, Problem.REORDERED) in found


def test_renumbered_entry_is_found(tmp_path: Path, key: Path) -> None:
    """Moving an entry by its seq column leaves a hole where it was and a stranger where it went."""
    path = make(tmp_path, key, 12)
    tamper.sql(path, "UPDATE entries SET seq = 99 WHERE seq = 5")
    report = verify(path, key)
    found = {(f.seq, f.what) for f in report.findings}
    assert report.first.seq == 5 and (99, Problem.REORDERED) in found


def test_truncation_before_a_checkpoint_is_found_from_either_copy(tmp_path: Path, key: Path) -> None:
    path = make(tmp_path, key, 50)
    side = path.with_name(path.name + ".checkpoints")
    kept = side.read_bytes()
    # The attacker cuts the tail and the database's checkpoints; the side file remembers.
    tamper.sql(path, "DELETE FROM entries WHERE seq > 35")
    tamper.sql(path, "DELETE FROM checkpoints WHERE seq > 35")
    report = verify(path, key)
    assert report.first.seq == 36 and report.first.what == Problem.TRUNCATED
    assert "seq 50" in report.first.detail
    # Or cuts the side file away and leaves the table: the table remembers.
    path2 = make(tmp_path / "b", key, 50)
    path2.with_name(path2.name + ".checkpoints").unlink()
    tamper.sql(path2, "DELETE FROM entries WHERE seq > 35")
    report = verify(path2, key)
    assert report.first.seq == 36 and report.first.what == Problem.TRUNCATED
    assert any("missing" in n for n in report.notes)
    assert kept  # the first ledger did have a side file to lose


def test_truncation_after_the_last_checkpoint_needs_an_anchor(tmp_path: Path, key: Path) -> None:
    path = make(tmp_path, key, 45)
    with Ledger(path, key=key, create=False) as led:
        seq, head = led.head()
    tamper.sql(path, "DELETE FROM entries WHERE seq > 42")
    report = verify(path, key)
    assert report.ok  # documented limit: nothing on this machine vouches for 41..45 any more
    for anchor in (Anchor(head, seq), Anchor.parse(f"{seq}:{head.hex()}")):
        report = verify(path, key, anchors=(anchor,))
        assert report.first.seq == 43 and report.first.what == Problem.TRUNCATED
    report = verify(path, key, anchors=(Anchor.parse(head.hex()),))  # a bare hash cannot be located
    assert report.first.seq is None and report.first.what == Problem.TRUNCATED


def test_checkpoint_anchor_kept_elsewhere(tmp_path: Path, key: Path) -> None:
    path = make(tmp_path, key, 13)
    with Ledger(path, key=key, create=False) as led:
        line = led.checkpoint().to_line()
        assert led.verify(anchors=[Anchor.parse(line)]).ok
    tamper.sql(path, "DELETE FROM entries WHERE seq > 11")
    tamper.sql(path, "DELETE FROM checkpoints WHERE seq > 11")
    path.with_name(path.name + ".checkpoints").unlink()  # both local copies gone
    report = verify(path, key, anchors=(Anchor.parse(line),))
    assert report.first.seq == 12 and report.first.what == Problem.TRUNCATED


def test_rewritten_and_rehashed_entries_are_caught_by_the_signed_checkpoint(
    tmp_path: Path, key: Path
) -> None:
    path = make(tmp_path, key, 30)
    tamper.rewrite_from(path, 15, "nothing happened")
    report = verify(path, key)
    assert report.first.what == Problem.REWRITTEN
    assert report.first.seq == 11 and "11..20" in report.first.detail


def test_resigned_checkpoints_need_the_trusted_key(tmp_path: Path, key: Path) -> None:
    """The attacker rewrites, then signs fresh checkpoints with a key of their own."""
    path = make(tmp_path, key, 30)
    tamper.rewrite_from(path, 15, "nothing happened")
    with Ledger(path, key=key, create=False) as led:
        ledger_id = led.ledger_id
        forged_key = Ed25519PrivateKey.generate()
        forged = [
            Checkpoint.sign(forged_key, ledger=ledger_id, seq=s, hash_=tamper.row(path, s)[1], ts="2024")
            for s in (10, 20, 30)
        ]
        tamper.set_checkpoints(path, forged)
        report = led.verify()  # trusts the real key's .pub.pem
        assert report.first.what == Problem.UNTRUSTED_KEY and report.first.seq == 10
        # Trusting only what the ledger itself carries cannot tell: said so in a note.
        blind = led.verify(trusted_keys=set())
        assert blind.ok and any("no trusted public key" in n for n in blind.notes)
        assert blind.trusted_keys == ()


def test_tampered_signature_is_named(tmp_path: Path, key: Path) -> None:
    path = make(tmp_path, key, 25)
    lines = tamper.checkpoint_lines(path)
    cp = Checkpoint.from_line(lines[1])
    bad = Checkpoint(
        cp.ledger,
        cp.seq,
        cp.hash,
        cp.ts,
        cp.key_id,
        cp.public_key,
        bytes([cp.signature[0] ^ 1]) + cp.signature[1:],
    )
    tamper.sql(path, "UPDATE checkpoints SET line = ? WHERE seq = 20", bad.to_line())
    report = verify(path, key)
    assert (report.first.seq, report.first.what) == (20, Problem.BAD_SIGNATURE)
    assert "database" in report.first.detail
    # The same in the side file only.
    path2 = make(tmp_path / "b", key, 25)
    side = path2.with_name(path2.name + ".checkpoints")
    first, second = side.read_text().splitlines()
    side.write_text(
        first.replace(f'"seq":{Checkpoint.from_line(first).seq}', '"seq":9') + "\n" + second + "\n"
    )
    report = verify(path2, key)
    assert (report.first.seq, report.first.what) == (9, Problem.BAD_SIGNATURE)


def test_replaced_ledger_is_foreign_to_its_checkpoints(tmp_path: Path, key: Path) -> None:
    path = make(tmp_path, key, 12)
    tamper.sql(path, "UPDATE meta SET value = 'another' WHERE key = 'ledger_id'")
    report = verify(path, key)
    assert (report.first.seq, report.first.what) == (10, Problem.FOREIGN)


def test_torn_side_file_line_is_tolerated(tmp_path: Path, key: Path) -> None:
    path = make(tmp_path, key, 12)
    side = path.with_name(path.name + ".checkpoints")
    with side.open("a") as fh:
        fh.write('{"hash":"ab')  # a writer killed mid-line
    with Ledger(path, key=key, checkpoint_every=10, create=False) as led:
        for i in range(10):
            led.append("alert", {"i": i}, actor="t")
        report = led.verify()
    assert report.ok and report.checkpoints == 2
    assert any("line 2 is unreadable" in n for n in report.notes)
    assert Checkpoint.from_line(side.read_text().splitlines()[-1]).seq == 20  # not glued to the torn line


def test_extend_is_one_transaction_and_checkpoints_once(tmp_path: Path, key: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", key=key, checkpoint_every=10) as led:
        out = led.extend([("alert", {"i": i}) for i in range(25)], actor="t")
        assert [e.seq for e in out] == list(range(1, 26))
        assert [c.seq for c in led.checkpoints()] == [25]
        assert led.verify().ok


def test_records_from_the_decoder_are_valid_bodies(tmp_path: Path, key: Path) -> None:
    """Arrow rows carry aware datetimes: stored as ISO 8601 UTC strings."""
    from interlock.capture.decode import decode_records
    from interlock.cli import sample_capture

    rows = decode_records(sample_capture())[:50]
    with Ledger(tmp_path / "l.sqlite", key=key) as led:
        led.extend([("alert", {"record": r}) for r in rows], actor="t")
        first = next(iter(led))
        assert first.body["record"]["ts"].endswith("Z") and led.verify().ok


@pytest.mark.parametrize(
    ("kind", "body", "actor", "words"),
    [
        ("gossip", {}, "a", "unknown entry kind"),
        ("alert", [1], "a", "JSON object"),
        ("alert", {"x": {1, 2}}, "a", "canonical JSON"),
        ("alert", {"x": float("nan")}, "a", "canonical JSON"),
        ("alert", {"t": datetime(2024, 1, 1)}, "a", "timezone"),
        ("alert", {}, "", "actor"),
    ],
)
def test_bad_appends_are_refused_and_leave_nothing(
    tmp_path: Path, key: Path, kind: str, body: object, actor: str, words: str
) -> None:
    with Ledger(tmp_path / "l.sqlite", key=key) as led:
        with pytest.raises(ValueError, match=words):
            led.append(kind, body, actor=actor)
        assert len(led) == 0


def test_key_is_private_and_exported(tmp_path: Path, key: Path) -> None:
    make(tmp_path, key, 10)
    assert key.stat().st_mode & 0o777 == 0o600
    pub = keys.public_path(key)
    assert pub.name == "ledger-ed25519.pub.pem" and b"PUBLIC KEY" in pub.read_bytes()
    assert keys.raw_public(keys.load_or_create(key).public_key()) == keys.load_public(pub)
    key.chmod(0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 600"):
        keys.load_private(key)


def test_default_locations_follow_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert keys.default_ledger_path() == tmp_path / "xdg" / "interlock" / "ledger.sqlite"
    assert keys.default_key_path() == tmp_path / "xdg" / "interlock" / "keys" / "ledger-ed25519.pem"


def test_verify_does_not_create_a_ledger(tmp_path: Path) -> None:
    from interlock.evidence import LedgerError

    with pytest.raises(LedgerError, match="no such ledger"):
        Ledger(tmp_path / "absent.sqlite", create=False)
    assert not (tmp_path / "absent.sqlite").exists()
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.close()
    with pytest.raises(LedgerError, match="not an Interlock ledger"):
        Ledger(other, create=False)
