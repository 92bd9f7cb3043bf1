"""`RestDeadlines`: one timer per server expires the REST requests past --rest_api_timeout_in_ms."""

import asyncio

from rnnzoo.serving.rest_deadlines import RestDeadlines


def run(coroutine):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def request(deadlines, wait: asyncio.Future, log: list, name: str):
    """A request as `RestFrontEnd._handle` runs it: waits on `wait`, answers 504 past its deadline."""
    deadline = deadlines.start()
    try:
        await wait
        log.append((name, "answered"))
    except asyncio.CancelledError:
        if not deadline.expired():
            raise
        log.append((name, "504"))
    finally:
        deadline.finish()


def test_requests_past_their_deadline_expire_and_answered_ones_do_not():
    async def main():
        loop = asyncio.get_running_loop()
        deadlines, log = RestDeadlines(loop, 0.05), []
        quick, slow = loop.create_future(), loop.create_future()
        first = loop.create_task(request(deadlines, quick, log, "quick"))
        second = loop.create_task(request(deadlines, slow, log, "slow"))
        await asyncio.sleep(0)
        quick.set_result(None)
        await first
        start = loop.time()
        await second
        elapsed = loop.time() - start
        assert log == [("quick", "answered"), ("slow", "504")]
        assert slow.cancelled() and not second.cancelled() and second.cancelling() == 0
        assert 0.02 < elapsed < 1.0  # the slow request's own 50 ms, not sooner
        return deadlines.pending()

    assert run(main()) == 0  # nothing is held once every request has left


def test_the_timer_rearms_for_requests_started_later():
    async def main():
        loop = asyncio.get_running_loop()
        deadlines, log = RestDeadlines(loop, 0.05), []
        never = [loop.create_future() for _ in range(3)]
        tasks = []
        for i in range(3):  # started 30 ms apart: each expires 50 ms after its own start
            tasks.append(loop.create_task(request(deadlines, never[i], log, i)))
            await asyncio.sleep(0.03)
        await asyncio.gather(*tasks)
        return log

    assert run(main()) == [(0, "504"), (1, "504"), (2, "504")]


def test_a_cancellation_from_elsewhere_is_not_taken_for_the_deadline():
    async def main():
        loop = asyncio.get_running_loop()
        deadlines, log = RestDeadlines(loop, 60.0), []
        task = loop.create_task(request(deadlines, loop.create_future(), log, "r"))
        await asyncio.sleep(0)
        task.cancel()  # e.g. the server shutting down
        try:
            await task
        except asyncio.CancelledError:
            return log, deadlines.pending()
        raise AssertionError("the cancellation was swallowed")

    assert run(main()) == ([], 1)  # re-raised, not answered 504; its entry leaves at the next start or sweep


def test_many_answered_requests_hold_no_memory():
    async def main():
        loop = asyncio.get_running_loop()
        deadlines, log = RestDeadlines(loop, 60.0), []
        for i in range(1000):
            done = loop.create_future()
            done.set_result(None)
            await request(deadlines, done, log, i)
        return deadlines.pending(), len(log)

    assert run(main()) == (1, 1000)  # only the last answered request is still in the deque
