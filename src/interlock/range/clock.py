"""Injected time for the range and for tests.

Everything that waits or timestamps in the range takes a ``Clock``; nothing calls ``time`` itself.
``VirtualClock`` only moves when told, so a plant-hour costs only the arithmetic of its steps and
two runs with the same seed see the same instants. ``WallClock`` is the live clock.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What the range needs from time: a calendar instant, a monotonic reading and a wait."""

    def now(self) -> float:
        """Seconds since the Unix epoch (UTC), for timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go backwards, for intervals."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a virtual clock advances instead of waiting)."""
        ...


class VirtualClock:
    """A clock that advances only when told (``advance`` or ``sleep``).

    >>> clock = VirtualClock(start_epoch_s=1_700_000_000.0)
    >>> clock.sleep(3600.0)
    >>> clock.monotonic(), clock.now()
    (3600.0, 1700003600.0)
    """

    def __init__(self, *, start_epoch_s: float = 0.0) -> None:
        self.start_epoch_s = start_epoch_s
        self._elapsed_s = 0.0

    def now(self) -> float:
        return self.start_epoch_s + self._elapsed_s

    def monotonic(self) -> float:
        return self._elapsed_s

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        # Negative or NaN steps would let plant time run backwards and break replay.
        if not seconds >= 0.0:
            raise ValueError(f"a clock advances by a finite non-negative step, not {seconds!r}")
        self._elapsed_s += seconds


class WallClock:
    """The live clock: real time, real waiting."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))
