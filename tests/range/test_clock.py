import time

import pytest

from interlock.range.clock import Clock, VirtualClock, WallClock


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock(start_epoch_s=1_700_000_000.0)
    assert clock.monotonic() == 0.0
    assert clock.monotonic() == 0.0  # reading does not advance it
    started = time.perf_counter()
    clock.sleep(3600.0)
    assert time.perf_counter() - started < 0.5  # a virtual hour is not waited for
    clock.advance(0.5)
    assert clock.monotonic() == 3600.5
    assert clock.now() == 1_700_003_600.5


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_virtual_clock_refuses_to_run_backwards(bad: float) -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match="non-negative"):
        clock.advance(bad)
    assert clock.monotonic() == 0.0


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(VirtualClock(), Clock)
    wall = WallClock()
    assert isinstance(wall, Clock)
    first = wall.monotonic()
    wall.sleep(0.01)
    assert wall.monotonic() - first >= 0.009
    assert abs(wall.now() - time.time()) < 1.0
