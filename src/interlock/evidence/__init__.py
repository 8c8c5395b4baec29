"""Prove: the tamper-evident incident ledger (hash chain in SQLite, Ed25519-signed checkpoints)."""

from interlock.evidence.ledger import (
    Anchor,
    Checkpoint,
    Entry,
    EntryKind,
    Finding,
    Ledger,
    LedgerError,
    Problem,
    VerifyReport,
)

__all__ = [
    "Anchor",
    "Checkpoint",
    "Entry",
    "EntryKind",
    "Finding",
    "Ledger",
    "LedgerError",
    "Problem",
    "VerifyReport",
]
