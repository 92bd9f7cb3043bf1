"""The serving loop's model pool: results and errors reach the awaiting request, threads are reused."""

import asyncio
import threading

import pytest

from rnnzoo.serving import errors
from rnnzoo.serving.runtime import ServingRuntime


def test_calls_return_results_and_raise_errors_of_the_pool_thread():
    runtime = ServingRuntime(model_threads=2)
    try:
        async def both():
            names = await asyncio.gather(*(runtime.call(lambda: threading.current_thread().name) for _ in range(5)))
            with pytest.raises(errors.ServingError, match="bad row 3"):
                await runtime.call(lambda: (_ for _ in ()).throw(errors.invalid_argument("bad row 3")))
            return names, await runtime.call(sum, [1, 2, 3])

        names, total = runtime.run(both())
        assert total == 6
        assert all(name.startswith("model-") for name in names)
        assert len(set(names)) <= 2  # never more threads than model_threads
    finally:
        runtime.close()


def test_sequential_calls_reuse_one_idle_thread():
    runtime = ServingRuntime(model_threads=8)
    try:
        async def one_by_one():
            return [await runtime.call(lambda: threading.current_thread().name) for _ in range(20)]

        assert set(runtime.run(one_by_one())) == {"model-0"}
    finally:
        runtime.close()


def test_a_cancelled_call_leaves_the_pool_usable():
    runtime = ServingRuntime(model_threads=1)
    release = threading.Event()
    try:
        async def cancel_then_call():
            blocked = asyncio.ensure_future(runtime.call(release.wait, 60))
            await asyncio.sleep(0)  # let the call reach the pool
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked
            release.set()
            return await runtime.call(lambda: "served")

        assert runtime.run(cancel_then_call(), timeout=60) == "served"
    finally:
        release.set()
        runtime.close()
