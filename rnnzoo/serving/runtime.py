"""The serving event loop: one asyncio loop in its own thread plus the pool that runs models.

Both front ends (grpc.aio and aiohttp) and the batchers live on this loop; requests are decoded,
checked and encoded on it, and only signature calls leave it, one pool call per request (or per
batch when batching). Other threads (the manager loading versions, `ModelServer.stop`) hand
work to the loop with `run`.

The pool is the loop's own: `call` puts (function, args, future) on a `queue.SimpleQueue` and a
worker resolves the asyncio future with `call_soon_threadsafe`. Compared with
`loop.run_in_executor` on a `ThreadPoolExecutor` this skips the concurrent.futures.Future, the
future chaining and the executor's locks and idle semaphore (about a fifth of the loop's time
under load, by py-spy). Workers start on demand up to `model_threads`; the count of idle ones is
kept on the loop thread, so no lock is taken per call.
"""

import asyncio
import queue
import threading

_STOP = object()


class ServingRuntime:
    """An asyncio loop running in a daemon thread and a thread pool for signature calls.

    Args:
      model_threads: threads running signature calls at once (unbatched requests and batches).
    """

    def __init__(self, model_threads: int):
        self.loop = asyncio.new_event_loop()
        self._max_workers = model_threads
        self._work = queue.SimpleQueue()
        self._workers = []
        self._idle = 0  # workers waiting for work; read and written on the loop thread only
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
        """Run the blocking `function(*args)` on the model pool without blocking the loop (call on the loop)."""
        future = self.loop.create_future()
        if self._idle:
            self._idle -= 1
        elif len(self._workers) < self._max_workers:
            worker = threading.Thread(target=self._worker, name=f"model-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()
        self._work.put((function, args, future))
        return await future

    def _worker(self):
        while True:
            item = self._work.get()
            if item is _STOP:
                return
            function, args, future = item
            try:
                result, error = function(*args), None
            except BaseException as exception:  # handed to the awaiting request
                result, error = None, exception
            try:
                self.loop.call_soon_threadsafe(self._resolve, future, result, error)
            except RuntimeError:  # the loop has closed: nobody awaits the result any more
                pass
            del item, function, args, future, result, error

    def _resolve(self, future, result, error):
        self._idle += 1
        if future.done():  # the caller was cancelled (deadline, disconnect)
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def close(self) -> None:
        """Stop the loop and the pool (after the front ends and batchers have stopped)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
        for _ in self._workers:
            self._work.put(_STOP)
        for worker in self._workers:
            worker.join()
