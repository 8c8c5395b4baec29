"""Run an asyncio server of a peer library in a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A daemon thread running an event loop; coroutines are submitted from the test thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return self.submit(coro).result(timeout)

    def close(self, shutdown: Callable[[], Awaitable[Any]] | None = None, timeout: float = 5.0) -> None:
        """Run ``shutdown`` in the loop (if given), cancel what is left, stop the loop and join."""
        if not self.loop.is_closed() and self.loop.is_running():
            if shutdown is not None:

                async def _shutdown() -> None:
                    await shutdown()

                # the server may already be gone; the loop is stopped all the same
                with contextlib.suppress(Exception):
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
