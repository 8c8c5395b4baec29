"""Tests of the technique library against real peers on loopback."""
