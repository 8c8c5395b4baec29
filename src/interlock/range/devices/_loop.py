"""An asyncio event loop in a daemon thread, for devices whose library serves on asyncio.

The tests' peers (``tests.peers.loop``) use this class too.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A daemon thread running its own event loop; coroutines are submitted from other threads."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, shutdown: Callable[[], Awaitable[Any]] | None = None, timeout: float = 5.0) -> None:
        """Run ``shutdown`` in the loop, cancel every task left, stop the loop and join the thread."""
        if self.loop.is_running():
            if shutdown is not None:

                async def _shutdown() -> None:
                    await shutdown()

                with contextlib.suppress(Exception):  # the server may already be gone
                    self.call(_shutdown(), timeout)

            async def _cancel_rest() -> None:
                me = asyncio.current_task()
                rest = [t for t in asyncio.all_tasks() if t is not me]
                for t in rest:
                    t.cancel()
                await asyncio.gather(*rest, return_exceptions=True)

            with contextlib.suppress(Exception):
                self.call(_cancel_rest(), timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive() and not self.loop.is_closed():
            self.loop.close()
