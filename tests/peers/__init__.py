"""Conformance of the decoder against real protocol peers on loopback, captured with dumpcap."""
