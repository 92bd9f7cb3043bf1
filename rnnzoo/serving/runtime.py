"""The serving event loop: one asyncio loop in its own thread plus the pool that runs models.

Both front ends (grpc.aio and aiohttp) and the batchers live on this loop; requests are decoded,
checked and encoded on it, and only signature calls leave it, one executor call per request (or
per batch when batching). Other threads (the manager loading versions, `ModelServer.stop`) hand
work to the loop with `run`.
"""

import asyncio
import concurrent.futures
import threading


class ServingRuntime:
    """An asyncio loop running in a daemon thread and a thread pool for signature calls.

    Args:
      model_threads: threads running signature calls at once (unbatched requests and batches).
    """

    def __init__(self, model_threads: int):
        self.loop = asyncio.new_event_loop()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=model_threads, thread_name_prefix="model")
        self._thread = threading.Thread(target=self._run, name="serving-loop", daemon=True)
        self._thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def run(self, coroutine, timeout: float | None = None):
        """Run `coroutine` on the loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def call(self, function, *args):
        """Run the blocking `function(*args)` on the model pool without blocking the loop."""
        return await self.loop.run_in_executor(self.executor, function, *args)

    def close(self) -> None:
        """Stop the loop and the pool (after the front ends and batchers have stopped)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
        self.executor.shutdown(wait=True)
