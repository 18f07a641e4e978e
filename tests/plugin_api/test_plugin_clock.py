"""The runtime clock, public for plugins (``s3db_async.plugin``): ``clock_time``,
``clock_sleep`` and ``clock_monotonic`` follow a ``ManualClock`` swapped in by ``use_clock``.
"""

from __future__ import annotations

import asyncio
import time

from s3db_async.plugin import (
    Clock,
    ManualClock,
    clock_monotonic,
    clock_sleep,
    clock_time,
    use_clock,
)


def test_the_system_clock_by_default() -> None:
    assert abs(clock_time() - time.time()) < 5
    assert isinstance(ManualClock(), Clock)


async def test_a_manual_clock_drives_plugin_time() -> None:
    with use_clock(ManualClock(1000.0)) as clock:
        assert isinstance(clock, ManualClock)
        assert clock_time() == 1000.0
        before = clock_monotonic()
        sleeper = asyncio.ensure_future(clock_sleep(3600))
        await asyncio.sleep(0.01)
        assert not sleeper.done()
        clock.advance(3600)  # an hour passes at once and wakes the sleeper
        await asyncio.wait_for(sleeper, 5)
        assert clock_time() == 4600.0 and clock_monotonic() - before >= 3600
    assert clock_time() != 4600.0
