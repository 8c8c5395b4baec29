"""The range: simulated energy facilities on one injected clock (issue 4).

Part 1 only: plant physics (``interlock.range.plants``) and the clock (``interlock.range.clock``).
PLC runtime, protocol servers and the HMI poller come later and build on these.
"""

from interlock.range.clock import Clock, VirtualClock, WallClock

__all__ = ["Clock", "VirtualClock", "WallClock"]
