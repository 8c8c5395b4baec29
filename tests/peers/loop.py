"""The peers' event-loop thread: the package's own (one class for the range's devices and the tests)."""

from interlock.range.devices._loop import LoopThread

__all__ = ["LoopThread"]
