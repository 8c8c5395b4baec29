"""Drills: attack techniques and scenarios run against the range, with ground truth.

``model`` (the shared dataclasses), ``scenario`` (YAML scenarios and their schema),
``techniques`` (the ATT&CK for ICS technique library), ``runner`` (one run on a fresh range),
``score`` (alerts matched to ground truth, physical impact, the score), ``report`` (the HSEEP
after-action report), ``programme`` (the drill history in SQLite) and ``cli``
(``interlock drill``). See docs/drill.md and docs/scoring.md.
"""
