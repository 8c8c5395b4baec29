"""A PID block as PLCs run it: positional form, output clamped, anti-windup, bumpless transfer.

Written here because the range needs a controller that runs inside the scan on plant time, with
its setpoint, gains and mode in registers an attacker can write; control libraries (python-control,
simple-pid) either simulate continuous systems or read the wall clock themselves.

The error is ``sp - pv``, negated when ``direct`` is set (a level loop that opens its draw valve as
the level rises). In manual the block follows the manual output and keeps its integral there, so
switching back to auto does not bump the valve.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Pid:
    kp: float
    ti_s: float
    out_low: float
    out_high: float
    direct: bool = False
    td_s: float = 0.0
    integral: float = 0.0  # in output units
    output: float = 0.0
    _last_error: float | None = None

    def track(self, output: float) -> None:
        """Start (or hold) at ``output`` without a bump."""
        self.output = min(self.out_high, max(self.out_low, output))
        self.integral = self.output
        self._last_error = None

    def update(self, sp: float, pv: float, dt_s: float, *, auto: bool = True, manual: float = 0.0) -> float:
        if not auto:
            self.track(manual)
            return self.output
        error = (pv - sp) if self.direct else (sp - pv)
        derivative = 0.0
        if self.td_s > 0 and self._last_error is not None and dt_s > 0:
            derivative = self.kp * self.td_s * (error - self._last_error) / dt_s
        self._last_error = error
        candidate = self.integral + (self.kp * error * dt_s / self.ti_s if self.ti_s > 0 else 0.0)
        unclamped = candidate + self.kp * error + derivative
        # Conditional integration: the integral stops growing while the output is saturated.
        if self.out_low <= unclamped <= self.out_high:
            self.integral = candidate
        self.output = min(self.out_high, max(self.out_low, self.integral + self.kp * error + derivative))
        return self.output
