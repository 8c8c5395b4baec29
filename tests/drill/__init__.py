"""Tests of the drill: techniques and scenarios against the range."""
