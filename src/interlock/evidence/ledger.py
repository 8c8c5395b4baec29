"""The incident ledger: append-only, hash-chained entries in SQLite, with signed checkpoints.

Each entry is stored as the exact bytes that were hashed (canonical JSON of ``seq, ts, kind,
actor, body``), next to ``prev_hash`` and ``hash = SHA-256(prev_hash || canonical)``; the first
entry chains to 32 zero bytes. Verification recomputes from what is stored and never re-encodes,
so a change to any stored byte shows. A chain alone cannot show that its tail was cut off or that
it was rebuilt from some entry on, so every ``checkpoint_every`` entries (and on demand) the head
``(seq, hash)`` is signed with Ed25519 and kept twice: in the database and in a side file
``<ledger>.checkpoints`` (one JSON line each). A checkpoint printed and kept off the machine is an
*anchor*: the only thing that detects a rollback by someone who can also rewrite both files.

Writers serialize on SQLite's write lock (WAL mode, ``BEGIN IMMEDIATE``): the head is read and the
next entry inserted in one transaction, so two processes never chain to the same head, and a
process killed mid-append leaves either the whole entry or none of it (SQLite's atomic commit).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interlock.evidence import keys

FORMAT = "interlock-ledger/1"
GENESIS = bytes(32)  # prev_hash of entry 1
CHECKPOINT_DOMAIN = b"interlock-ledger-checkpoint/1\n"  # a checkpoint signature means nothing else
SIDE_SUFFIX = ".checkpoints"
ENTRY_FIELDS = frozenset({"seq", "ts", "kind", "actor", "body"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    canonical BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    line TEXT NOT NULL
);
"""


class EntryKind(StrEnum):
    """What an entry records. A closed list, so a typo cannot start a kind nobody queries."""

    ALERT = "alert"
    INCIDENT = "incident"
    DRILL_RESULT = "drill_result"
    ANALYST_ACTION = "analyst_action"
    EVIDENCE = "evidence"  # an evidence bundle's digest
    SYSTEM = "system"  # the ledger's own events, e.g. a key rotation


class Problem(StrEnum):
    """What verification found, worst first where one finding could explain another."""

    EDITED = "edited"  # stored bytes, hash or prev_hash changed
    DELETED = "deleted"  # a sequence number is missing
    REORDERED = "reordered"  # an entry sits at another entry's position
    TRUNCATED = "truncated"  # a checkpoint or anchor vouches for entries that are gone
    REWRITTEN = "rewritten"  # entries changed and re-hashed: only a signed checkpoint shows it
    BAD_SIGNATURE = "bad_signature"
    UNTRUSTED_KEY = "untrusted_key"
    FOREIGN = "foreign"  # a checkpoint of another ledger (the ledger was replaced)


class LedgerError(Exception):
    """The ledger cannot be opened or used; the message names the file and what to do."""


def _encode_extra(value: object) -> str:
    """Aware datetimes (a record's ``ts`` from Arrow) become ISO 8601 UTC strings; nothing else."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime without a timezone is ambiguous; give it one")
        return _iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def canonical(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: one byte string per value, on any machine."""
    try:
        return json.dumps(
            obj,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_encode_extra,
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not encodable as canonical JSON: {exc}") from None


def chain_hash(prev_hash: bytes, canonical_bytes: bytes) -> bytes:
    return hashlib.sha256(prev_hash + canonical_bytes).digest()


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    ts: str  # ISO 8601 UTC, microseconds
    kind: str
    actor: str
    body: Mapping[str, Any]
    prev_hash: bytes
    hash: bytes

    @classmethod
    def from_row(cls, prev_hash: bytes, hash_: bytes, stored: bytes) -> Entry:
        """Parse stored canonical bytes; ``ValueError`` when they are not a ledger entry."""
        obj = json.loads(stored)
        if not isinstance(obj, dict) or set(obj) != ENTRY_FIELDS:
            raise ValueError("fields are not seq, ts, kind, actor, body")
        seq, ts, kind, actor, body = (obj[k] for k in ("seq", "ts", "kind", "actor", "body"))
        if not (isinstance(seq, int) and isinstance(body, dict)):
            raise ValueError("seq is not an integer or body is not an object")
        if not all(isinstance(v, str) for v in (ts, kind, actor)):
            raise ValueError("ts, kind or actor is not a string")
        return cls(seq, ts, kind, actor, MappingProxyType(body), bytes(prev_hash), bytes(hash_))

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "actor": self.actor,
            "body": dict(self.body),
            "prev_hash": self.prev_hash.hex(),
            "hash": self.hash.hex(),
        }


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: ledger ``ledger`` had entry ``seq`` with hash ``hash`` at ``ts``."""

    ledger: str
    seq: int
    hash: str  # hex
    ts: str
    key_id: str
    public_key: bytes  # raw Ed25519, 32 bytes
    signature: bytes

    def payload(self) -> bytes:
        """What is signed. The public key is outside it: trust comes from the verifier's key list."""
        fields = {
            "ledger": self.ledger,
            "seq": self.seq,
            "hash": self.hash,
            "ts": self.ts,
            "key_id": self.key_id,
        }
        return CHECKPOINT_DOMAIN + canonical(fields)

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, *, ledger: str, seq: int, hash_: bytes, ts: str) -> Checkpoint:
        public = keys.raw_public(key.public_key())
        unsigned = cls(ledger, seq, hash_.hex(), ts, keys.key_id(public), public, b"")
        return cls(ledger, seq, hash_.hex(), ts, unsigned.key_id, public, key.sign(unsigned.payload()))

    def signature_ok(self) -> bool:
        if keys.key_id(self.public_key) != self.key_id:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(self.signature, self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_line(self) -> str:
        """One JSON line: the side file's record and the anchor a user keeps elsewhere."""
        return canonical(
            {
                "ledger": self.ledger,
                "seq": self.seq,
                "hash": self.hash,
                "ts": self.ts,
                "key_id": self.key_id,
                "public_key": self.public_key.hex(),
                "signature": self.signature.hex(),
            }
        ).decode("utf-8")

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        """``ValueError`` unless ``line`` is a checkpoint's JSON line."""
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        try:
            seq = obj["seq"]
            strs = [obj[k] for k in ("ledger", "hash", "ts", "key_id", "public_key", "signature")]
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]} field") from None
        if not isinstance(seq, int) or not all(isinstance(s, str) for s in strs):
            raise ValueError("a field has the wrong type")
        ledger, hash_, ts, kid, public, signature = strs
        bytes.fromhex(hash_)
        return cls(ledger, seq, hash_, ts, kid, bytes.fromhex(public), bytes.fromhex(signature))


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head kept elsewhere: a hash, optionally with its seq, or a whole checkpoint line."""

    hash: bytes
    seq: int | None = None
    checkpoint: Checkpoint | None = None

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``HASH``, ``SEQ:HASH`` or a checkpoint JSON line; ``ValueError`` otherwise."""
        text = text.strip()
        if text.startswith("{"):
            cp = Checkpoint.from_line(text)
            return cls(bytes.fromhex(cp.hash), cp.seq, cp)
        seq_text, _, hex_hash = text.rpartition(":")
        digest = bytes.fromhex(hex_hash)
        if len(digest) != 32:
            raise ValueError("a hash is 64 hex digits")
        return cls(digest, int(seq_text) if seq_text else None)


@dataclass(frozen=True, slots=True)
class Finding:
    seq: int | None  # the first entry concerned, when it can be located
    what: Problem
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "unlocated"
        return f"{where}: {self.what}: {self.detail}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    path: Path
    ledger_id: str
    entries: int
    head_seq: int
    head_hash: bytes
    checkpoints: int  # distinct checkpoints whose signature verified and that match the chain
    last_checkpoint: Checkpoint | None
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    trusted_keys: tuple[str, ...] = field(default=())  # key ids the signatures were checked against

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The first bad entry: lowest seq; unlocated findings last."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.seq is None, f.seq or 0))


class Ledger:
    """An incident ledger in one SQLite file (created on first use unless ``create=False``).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with Ledger(d / "l.sqlite", key=d / "k.pem") as led:
    ...     e = led.append("analyst_action", {"note": "isolated PLC-3"}, actor="alice")
    ...     cp = led.checkpoint()
    ...     (e.seq, cp.seq, led.verify().ok)
    (1, 1, True)
    """

    def __init__(
        self,
        path: Path | str,
        *,
        key: Path | None = None,
        checkpoint_every: int = 100,
        clock: Callable[[], datetime] = utc_now,
        create: bool = True,
        timeout_s: float = 30.0,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self.path = Path(path)
        self.side_path = self.path.with_name(self.path.name + SIDE_SUFFIX)
        self.key_path = key or keys.default_key_path()
        self.checkpoint_every = checkpoint_every
        self.clock = clock
        self._key: Ed25519PrivateKey | None = None
        if not create and not self.path.exists():
            raise LedgerError(f"{self.path}: no such ledger; check --ledger")
        if self.path.is_dir():
            raise LedgerError(f"{self.path}: a folder, not a ledger file; check --ledger")
        try:
            if create and not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._create_file()
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot create ({exc.strerror})") from None
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot open ({exc})") from None
        try:
            with self._guard():
                self._open()
        except BaseException:
            self._db.close()
            raise

    # -- opening --------------------------------------------------------------------------------

    def _create_file(self) -> None:
        """Build a complete empty ledger aside and hard-link it into place.

        Two processes creating the same ledger at once would otherwise race on switching the
        new file to WAL, which SQLite answers with "locked" at once rather than waiting; a link
        either wins whole or finds the other's finished ledger.
        """
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                # WAL lets readers (verify, show) run while a writer appends; persistent in the file.
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("BEGIN")
                for statement in filter(str.strip, SCHEMA.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
                db.execute("INSERT INTO meta VALUES ('ledger_id', ?)", (str(uuid.uuid4()),))
                db.execute("INSERT INTO meta VALUES ('created', ?)", (_iso(self.clock()),))
                db.execute("COMMIT")
            finally:
                db.close()  # the last connection folds the WAL back into the file
            with contextlib.suppress(FileExistsError):  # another process won: use its ledger
                os.link(tmp, self.path)
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def _open(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        self._db.execute("PRAGMA synchronous=FULL")  # evidence: an acknowledged append survives power loss
        if not tables:
            # An existing empty file (e.g. made by touch) is not created by us: refuse, not guess.
            raise LedgerError(
                f"{self.path}: empty database, not an Interlock ledger; remove it or pick another"
            )
        if not {"meta", "entries", "checkpoints"} <= tables:
            raise LedgerError(f"{self.path}: an SQLite database but not an Interlock ledger")
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise LedgerError(f"{self.path}: ledger format {meta.get('format')!r}, expected {FORMAT!r}")
        self.ledger_id: str = meta.get("ledger_id", "")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite errors become one clear ``LedgerError`` naming the file."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise LedgerError(f"{self.path}: ledger busy (another writer held it too long)") from None
            raise LedgerError(f"{self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"{self.path}: not a readable ledger ({exc}); "
                "restore it from a copy or point --ledger elsewhere"
            ) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction. IMMEDIATE takes the write lock before the head is read."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the first error is the one worth reporting
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------

    def append(self, kind: EntryKind | str, body: Mapping[str, Any], *, actor: str) -> Entry:
        """Add one entry at the head; a checkpoint follows when ``seq`` is a multiple of N."""
        return self.extend([(kind, body)], actor=actor)[0]

    def extend(
        self, items: Iterable[tuple[EntryKind | str, Mapping[str, Any]]], *, actor: str
    ) -> list[Entry]:
        """Add entries in one transaction (one fsync), all or none."""
        if not isinstance(actor, str) or not actor:
            raise ValueError("actor must be a non-empty string: who or what records the entry")
        prepared = [(_kind(k), _body(b)) for k, b in items]
        if not prepared:
            return []
        out: list[Entry] = []
        with self._guard():
            with self._write():
                seq, prev = self._head()
                start = seq
                for kind, body in prepared:
                    seq += 1
                    ts = _iso(self.clock())
                    fields = {
                        "seq": seq,
                        "ts": ts,
                        "kind": kind,
                        "actor": actor,
                        "body": body,
                    }
                    stored = canonical(fields)
                    digest = chain_hash(prev, stored)
                    self._db.execute("INSERT INTO entries VALUES (?, ?, ?, ?)", (seq, prev, digest, stored))
                    out.append(Entry(seq, ts, kind, actor, MappingProxyType(body), prev, digest))
                    prev = digest
            # After the commit, so a checkpoint never names an entry that a crash could still undo.
            if seq // self.checkpoint_every > start // self.checkpoint_every:
                try:
                    self._checkpoint(seq)
                except LedgerError as exc:
                    raise LedgerError(
                        f"entries up to seq {seq} were recorded, but not checkpointed: {exc}"
                    ) from None
        return out

    def checkpoint(self) -> Checkpoint:
        """Sign the current head now (loading or creating the key). Returns the anchor to keep."""
        with self._guard():
            return self._checkpoint(None)

    def _checkpoint(self, seq: int | None) -> Checkpoint:
        key = self._signing_key()
        with self._write():
            if seq is None:
                seq, digest = self._head()
                if seq == 0:
                    raise LedgerError(f"{self.path}: empty ledger, nothing to checkpoint")
            else:
                row = self._db.execute("SELECT hash FROM entries WHERE seq = ?", (seq,)).fetchone()
                digest = bytes(row[0])
            cp = Checkpoint.sign(key, ledger=self.ledger_id, seq=seq, hash_=digest, ts=_iso(self.clock()))
            line = cp.to_line()
            # The side file is written under the database's write lock, so lines never interleave,
            # and before the row commits: a crash leaves at most a valid line the table lacks.
            self._append_side(line)
            self._db.execute("INSERT INTO checkpoints (seq, line) VALUES (?, ?)", (seq, line))
        return cp

    def _append_side(self, line: str) -> None:
        try:
            fd = os.open(self.side_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                size = os.fstat(fd).st_size
                # A torn last line (a writer killed mid-line) must not swallow this one.
                torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
                os.write(fd, (b"\n" if torn else b"") + line.encode("utf-8") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise LedgerError(f"{self.side_path}: cannot write the checkpoint ({exc.strerror})") from None

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._key is None:
            try:
                self._key = keys.load_or_create(self.key_path)
            except keys.KeyFileError as exc:
                raise LedgerError(str(exc)) from None
        return self._key

    def _head(self) -> tuple[int, bytes]:
        row = self._db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))

    # -- reading --------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Entry]:
        """Entries in seq order, parsed as stored; unreadable rows are skipped (``verify`` names them)."""
        with self._guard():
            rows = self._db.execute("SELECT prev_hash, hash, canonical FROM entries ORDER BY seq")
            for prev, digest, stored in rows:
                with contextlib.suppress(ValueError):
                    yield Entry.from_row(prev, digest, stored)

    def tail(self, n: int) -> list[Entry]:
        with self._guard():
            rows = self._db.execute(
                "SELECT prev_hash, hash, canonical FROM entries ORDER BY seq DESC LIMIT ?", (n,)
            ).fetchall()
        out = []
        for prev, digest, stored in reversed(rows):
            with contextlib.suppress(ValueError):
                out.append(Entry.from_row(prev, digest, stored))
        return out

    def __len__(self) -> int:
        with self._guard():
            return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def head(self) -> tuple[int, bytes]:
        with self._guard():
            return self._head()

    def checkpoints(self) -> list[Checkpoint]:
        with self._guard():
            lines = [r[0] for r in self._db.execute("SELECT line FROM checkpoints ORDER BY id")]
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(Checkpoint.from_line(line))
        return out

    # -- verifying ------------------------------------------------------------------------------

    def verify(
        self, *, trusted_keys: Collection[bytes] | None = None, anchors: Iterable[Anchor] = ()
    ) -> VerifyReport:
        """Recompute the chain and check every checkpoint and anchor; locate what is wrong.

        ``trusted_keys``: raw public keys a checkpoint may be signed with. ``None``: the public
        half of this ledger's key file if it exists, else only the keys stored with the checkpoints
        (which proves integrity against accidents, not against someone who can re-sign).
        """
        notes: list[str] = []
        trusted = set(self._default_trust() if trusted_keys is None else trusted_keys)
        if not trusted:
            notes.append(
                "no trusted public key given: signatures were checked against the keys stored with the "
                "checkpoints; pass --pubkey with a copy kept elsewhere to rule out re-signing"
            )
        # The side file is read before the database snapshot: every line in it was written after
        # the entry it names had committed, so a concurrent writer cannot make it look truncated.
        side_lines = self._read_side(notes)
        with self._guard():
            return self._verify(trusted, list(anchors), side_lines, notes)

    def _default_trust(self) -> set[bytes]:
        pub = keys.public_path(self.key_path)
        for candidate in (pub, self.key_path):
            if candidate.exists():
                try:
                    return {keys.load_public(candidate)}
                except keys.KeyFileError as exc:
                    raise LedgerError(str(exc)) from None
        return set()

    def _read_side(self, notes: list[str]) -> list[tuple[int, str]]:
        try:
            text = self.side_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LedgerError(f"{self.side_path}: cannot read ({exc.strerror})") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [(i, line) for i, line in enumerate(lines, 1) if line.strip()]

    def _verify(
        self, trusted: set[bytes], anchors: list[Anchor], side_lines: list[tuple[int, str]], notes: list[str]
    ) -> VerifyReport:
        findings: list[Finding] = []
        db = self._db
        db.execute("BEGIN")  # one snapshot for entries and checkpoints
        try:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise LedgerError(f"{self.path}: database file damaged ({check}); restore it from a copy")
            db_lines = [r[0] for r in db.execute("SELECT line FROM checkpoints ORDER BY id")]
            cps, cp_sources = self._collect_checkpoints(db_lines, side_lines, notes)
            wanted = {cp.seq for cp in cps} | {a.seq for a in anchors if a.seq is not None}
            anchor_hashes = {a.hash for a in anchors if a.seq is None}
            stored_at: dict[int, bytes] = {}
            hashes_seen: set[bytes] = set()
            flagged: list[int] = []  # seqs with an entry-level finding, ascending
            n = 0
            last_pos, last_hash, last_flagged = 0, GENESIS, False
            rows = db.execute("SELECT seq, prev_hash, hash, canonical FROM entries ORDER BY seq")
            for pos, prev_v, digest_v, stored_v in rows:
                n += 1
                prev, digest, stored = _as_bytes(prev_v), _as_bytes(digest_v), _as_bytes(stored_v)
                gap = pos != last_pos + 1
                if gap:
                    missing = (
                        f"entry {last_pos + 1} is"
                        if pos == last_pos + 2
                        else f"entries {last_pos + 1}..{pos - 1} are"
                    )
                    findings.append(Finding(last_pos + 1, Problem.DELETED, f"{missing} missing"))
                    flagged.append(last_pos + 1)
                bad = self._check_entry(pos, prev, digest, stored)
                if bad is not None:
                    findings.append(bad)
                    flagged.append(pos)
                elif prev != last_hash and not gap and not last_flagged:
                    findings.append(
                        Finding(
                            last_pos,
                            Problem.EDITED,
                            f"its hash changed after entry {pos} was chained to it "
                            "(entry replaced and re-hashed)",
                        )
                    )
                    flagged.append(last_pos)
                last_flagged = bad is not None
                if pos in wanted:
                    stored_at[pos] = digest
                if digest in anchor_hashes:
                    hashes_seen.add(digest)
                last_pos, last_hash = pos, digest
            verified = self._check_checkpoints(
                cps, cp_sources, trusted, stored_at, last_pos, flagged, findings
            )
            self._check_anchors(anchors, trusted, stored_at, hashes_seen, last_pos, findings)
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")  # read-only: nothing to keep
        last_cp = max(verified, key=lambda c: c.seq, default=None)
        if n and (last_cp is None or last_cp.seq < last_pos):
            start = 1 if last_cp is None else last_cp.seq + 1
            notes.append(
                f"entries {start}..{last_pos} are after the last signed checkpoint: removing them would "
                "not show; run `interlock evidence checkpoint` and keep the anchor elsewhere"
            )
        return VerifyReport(
            self.path,
            self.ledger_id,
            n,
            last_pos,
            last_hash,
            len({(c.seq, c.key_id) for c in verified}),
            last_cp,
            tuple(findings),
            tuple(notes),
            tuple(sorted(keys.key_id(k) for k in trusted)),
        )

    @staticmethod
    def _check_entry(pos: int, prev: bytes, digest: bytes, stored: bytes) -> Finding | None:
        if chain_hash(prev, stored) != digest:
            return Finding(pos, Problem.EDITED, "stored bytes do not hash to the stored hash")
        try:
            entry = Entry.from_row(prev, digest, stored)
        except ValueError as exc:  # hashes fine, yet not an entry: written by something else
            return Finding(pos, Problem.EDITED, f"stored bytes are not a ledger entry ({exc})")
        if entry.seq != pos:
            return Finding(pos, Problem.REORDERED, f"position {pos} holds entry {entry.seq}")
        return None

    def _collect_checkpoints(
        self, db_lines: list[str], side_lines: list[tuple[int, str]], notes: list[str]
    ) -> tuple[list[Checkpoint], dict[Checkpoint, str]]:
        """Both copies, merged. A copy missing from one place is a note: the other still counts."""
        sources: dict[Checkpoint, str] = {}
        in_db: set[Checkpoint] = set()
        for line in db_lines:
            try:
                cp = Checkpoint.from_line(line)
            except ValueError as exc:
                notes.append(f"a checkpoint row in the database is unreadable ({exc}); ignored")
                continue
            in_db.add(cp)
            sources[cp] = "database"
        in_side: set[Checkpoint] = set()
        for number, line in side_lines:
            try:
                cp = Checkpoint.from_line(line)
            except ValueError:
                notes.append(
                    f"{self.side_path.name} line {number} is unreadable (an interrupted write?); ignored"
                )
                continue
            in_side.add(cp)
            sources[cp] = "both" if cp in in_db else f"{self.side_path.name} line {number}"
        if in_db and not self.side_path.exists():
            notes.append(
                f"{self.side_path.name} is missing: truncation is checked against the database's "
                "own checkpoints only"
            )
        elif in_db - in_side:
            notes.append(
                f"{len(in_db - in_side)} checkpoint(s) in the database are not in {self.side_path.name}"
            )
        return sorted(sources, key=lambda c: c.seq), sources

    def _check_checkpoints(
        self,
        cps: list[Checkpoint],
        sources: dict[Checkpoint, str],
        trusted: set[bytes],
        stored_at: dict[int, bytes],
        last_pos: int,
        flagged: list[int],
        findings: list[Finding],
    ) -> list[Checkpoint]:
        verified: list[Checkpoint] = []
        beyond: Checkpoint | None = None  # the furthest checkpoint past the end: one finding, not many
        good_below = 0  # seq of the last checkpoint that matched: entries up to it are vouched for
        for cp in cps:
            where = f"checkpoint at seq {cp.seq} ({sources[cp]})"
            if cp.ledger != self.ledger_id:
                findings.append(
                    Finding(
                        cp.seq,
                        Problem.FOREIGN,
                        f"{where} belongs to ledger {cp.ledger}, not {self.ledger_id}: "
                        "the ledger was replaced, or the checkpoint file is another's",
                    )
                )
                continue
            if not cp.signature_ok():
                findings.append(Finding(cp.seq, Problem.BAD_SIGNATURE, f"{where}: signature does not verify"))
                continue
            if trusted and cp.public_key not in trusted:
                findings.append(
                    Finding(
                        cp.seq,
                        Problem.UNTRUSTED_KEY,
                        f"{where} is signed by key {cp.key_id}, which is not trusted",
                    )
                )
                continue
            if cp.seq > last_pos:
                beyond = cp if beyond is None or cp.seq > beyond.seq else beyond
                continue
            if cp.seq not in stored_at:  # a deleted entry: already reported as DELETED
                continue
            if stored_at[cp.seq] != bytes.fromhex(cp.hash):
                if not any(good_below < s <= cp.seq for s in flagged):
                    findings.append(
                        Finding(
                            good_below + 1,
                            Problem.REWRITTEN,
                            f"entries {good_below + 1}..{cp.seq} were changed and re-hashed: "
                            f"the {where} no longer matches",
                        )
                    )
                continue
            verified.append(cp)
            good_below = max(good_below, cp.seq)
        if beyond is not None:
            findings.append(
                Finding(
                    last_pos + 1,
                    Problem.TRUNCATED,
                    f"the ledger ends at seq {last_pos} but the checkpoint at seq {beyond.seq} "
                    f"({sources[beyond]}) was signed",
                )
            )
        return verified

    def _check_anchors(
        self,
        anchors: list[Anchor],
        trusted: set[bytes],
        stored_at: dict[int, bytes],
        hashes_seen: set[bytes],
        last_pos: int,
        findings: list[Finding],
    ) -> None:
        for a in anchors:
            if a.checkpoint is not None:
                if a.checkpoint.ledger != self.ledger_id:
                    findings.append(
                        Finding(a.seq, Problem.FOREIGN, f"the anchor belongs to ledger {a.checkpoint.ledger}")
                    )
                    continue
                if not a.checkpoint.signature_ok():
                    findings.append(
                        Finding(a.seq, Problem.BAD_SIGNATURE, "the anchor's signature does not verify")
                    )
            if a.seq is None:
                if a.hash not in hashes_seen:
                    findings.append(
                        Finding(
                            None,
                            Problem.TRUNCATED,
                            f"anchor hash {a.hash.hex()[:16]}... is not in the ledger: "
                            "truncated or rewritten before it",
                        )
                    )
            elif a.seq > last_pos:
                findings.append(
                    Finding(
                        last_pos + 1,
                        Problem.TRUNCATED,
                        f"the ledger ends at seq {last_pos} but the anchor is at seq {a.seq}",
                    )
                )
            elif a.seq in stored_at and stored_at[a.seq] != a.hash:
                findings.append(
                    Finding(
                        a.seq,
                        Problem.REWRITTEN,
                        f"entry {a.seq} does not have the anchor's hash: entries up to it "
                        "were changed and re-hashed",
                    )
                )


def _as_bytes(value: object) -> bytes:
    """A stored column as bytes, whatever type someone wrote into it (SQLite columns are untyped)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def _kind(kind: EntryKind | str) -> str:
    try:
        return EntryKind(kind).value
    except ValueError:
        raise ValueError(f"unknown entry kind {kind!r}; one of {', '.join(EntryKind)}") from None


def _body(body: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(body, Mapping) or not all(isinstance(k, str) for k in body):
        raise ValueError("body must be a JSON object (a mapping with string keys)")
    plain = json.loads(canonical(dict(body)))  # the stored form: tuples become lists, etc.
    assert isinstance(plain, dict)
    return plain
