"""Tests of the tamper-evident incident ledger."""
