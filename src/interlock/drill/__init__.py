"""Drills: attack techniques and scenarios run against the range, with ground truth."""
