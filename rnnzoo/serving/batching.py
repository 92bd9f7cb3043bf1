"""Server-side batching of concurrent Predict calls (TF Serving's BatchingParameters), on asyncio.

Concurrent requests to the same signature of the same version are queued, concatenated along
dimension 0 into one batch of at most `max_batch_size` rows (`max_execution_batch_size` with
`enable_large_batch_splitting`, which splits larger requests across batches), run with one
executor call, and split back by resolving each request's future. A batch runs as soon as it is
full or its oldest request has waited `batch_timeout_micros`, while fewer than
`num_batch_threads` batches are running; `allowed_batch_sizes` pads a batch with copies of its
first row up to the next allowed size; `pad_variable_length_inputs` pads dimensions >= 1 so
requests of different lengths share a batch. A queue holding `max_enqueued_batches` batches
refuses new work with UNAVAILABLE, as TF Serving.

Everything but `stop` and `queued_rows` runs on the serving loop; no lock is needed.
"""

import collections

import grpc
import numpy as np

from rnnzoo.serving import errors


class _Task:
    __slots__ = ("inputs", "size", "enqueued", "future")

    def __init__(self, inputs: dict, size: int, enqueued: float, future):
        self.inputs = inputs
        self.size = size
        self.enqueued = enqueued
        self.future = future


class _Queue:
    def __init__(self, signature_name: str):
        self.signature_name = signature_name
        self.tasks = collections.deque()
        self.rows = 0


def _batchable(signature) -> bool:
    """A signature batches when every input and output has a known rank >= 1."""
    infos = list(signature.inputs.values()) + list(signature.outputs.values())
    return bool(signature.inputs) and all(
        not info.tensor_shape.unknown_rank and len(info.tensor_shape.dim) >= 1 for info in infos
    )


def _pad_to(array: np.ndarray, shape: tuple) -> np.ndarray:
    """Pad dims >= 1 of `array` up to `shape` with its first element (TF Serving's padding value)."""
    if array.shape[1:] == tuple(shape):
        return array
    fill = array.flat[0] if array.size else (b"" if array.dtype == object else 0)
    out = np.full((array.shape[0],) + tuple(shape), fill, dtype=array.dtype)
    out[tuple(slice(0, n) for n in array.shape)] = array
    return out


def _split_rows(inputs: dict, size: int, limit: int) -> list:
    """`inputs` cut along dimension 0 into pieces of at most `limit` rows."""
    return [{alias: value[start:start + limit] for alias, value in inputs.items()} for start in range(0, size, limit)]


class Batcher:
    """Batches the Predict calls of one servable (one model version).

    Args:
      servable: the `Servable` whose signatures run.
      options: `config.BatchingOptions`.
      runtime: the `runtime.ServingRuntime` whose loop queues and whose pool runs batches.
      metrics: `metrics.ServingMetrics` (records processed batch sizes).
    """

    def __init__(self, servable, options, runtime, metrics=None):
        self._servable = servable
        self._options = options
        self._runtime = runtime
        self._metrics = metrics
        self._queues = {}
        self._running = 0
        self._timer = None
        self._stopping = False
        self._idle = None  # set by stop(): resolved once nothing is queued or running
        self._batchable = {name: _batchable(sig) for name, sig in servable.signature_defs.items()}

    def batches(self, signature_name: str) -> bool:
        return self._batchable.get(signature_name, False)

    async def submit(self, signature_name: str, inputs: dict, deadline: float | None = None) -> dict:
        """Queue one request and wait until its batch ran; returns its slice of the outputs."""
        rows = [array.shape[0] if array.ndim else None for array in inputs.values()]
        size = rows[0] if rows else None
        if size is None or rows.count(size) != len(rows):
            sizes = dict(zip(inputs, rows))
            raise errors.invalid_argument(
                f"batching needs every input to share its 0th dimension, got {sizes}; send inputs "
                f"with the same number of rows"
            )
        if size > self._options.max_batch_size:
            raise errors.invalid_argument(
                f"Task size {size} is larger than maximum batch size {self._options.max_batch_size}; "
                f"split the request or raise max_batch_size in --batching_parameters_file"
            )
        if size == 0 or self._stopping:  # a version being unloaded finishes its stragglers unbatched
            return await self._runtime.call(self._servable.run, signature_name, inputs)
        limit = self._options.execution_batch_size
        pieces = _split_rows(inputs, size, limit) if size > limit else [inputs]
        futures = self._enqueue(signature_name, pieces, size)
        timer = None if deadline is None else self._runtime.loop.call_at(deadline, self._expire, futures)
        try:
            if len(futures) == 1:
                return await futures[0]
            done = [await future for future in futures]
        except BaseException:
            # after an error or a cancellation (a REST deadline cancels the awaited future with the
            # handler) the request's queued pieces leave the queue now, not when a batch forms
            for future in futures:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # marks a failed piece's error as seen
            self._discard_finished()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return {alias: np.concatenate([part[alias] for part in done], axis=0) for alias in done[0]}

    def _enqueue(self, signature_name: str, pieces: list, rows: int) -> list:
        key = signature_name
        if not self._options.pad_variable_length_inputs:
            key = (signature_name,) + tuple(sorted((a, v.shape[1:]) for a, v in pieces[0].items()))
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(signature_name)
        limit = self._options.execution_batch_size
        if -(-(queue.rows + rows) // limit) > self._options.max_enqueued_batches:
            raise errors.unavailable(
                "The batch scheduling queue to which this task was submitted is full; "
                "retry later or raise max_enqueued_batches"
            )
        loop, futures = self._runtime.loop, []
        for piece in pieces:
            size = next(iter(piece.values())).shape[0]
            task = _Task(piece, size, loop.time(), loop.create_future())
            queue.tasks.append(task)
            queue.rows += size
            futures.append(task.future)
        self._pump()
        return futures

    def _expire(self, futures: list) -> None:
        """A request's deadline passed: its pieces fail and leave the queue (running ones finish unseen)."""
        for future in futures:
            if not future.done():
                future.set_exception(errors.ServingError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline exceeded while waiting in the batch queue"))
        self._discard_finished()

    def _discard_finished(self) -> None:
        """Drop queued tasks whose caller has gone (deadline, cancellation): they fill no batch."""
        for queue in self._queues.values():
            if any(task.future.done() for task in queue.tasks):
                queue.tasks = collections.deque(task for task in queue.tasks if not task.future.done())
                queue.rows = sum(task.size for task in queue.tasks)
        self._pump()

    def queued_rows(self, signature_name: str | None = None) -> int:
        """Rows waiting in the queues (of one signature, or all)."""
        return sum(q.rows for q in list(self._queues.values()) if signature_name in (None, q.signature_name))

    def stop(self) -> None:
        """Run what is queued, then return (called from outside the loop when a version unloads)."""
        async def drain():
            self._stopping = True
            self._idle = self._runtime.loop.create_future()
            self._pump()
            await self._idle

        self._runtime.run(drain())

    # ---- scheduling (on the loop) -------------------------------------------------------------
    def _pump(self) -> None:
        """Start every batch that is ready while batch threads are free; a timer wakes the rest."""
        timeout_s = self._options.batch_timeout_micros / 1e6
        limit = self._options.execution_batch_size
        now = self._runtime.loop.time()
        wake = None
        for queue in self._queues.values():
            while queue.tasks and self._running < self._options.num_batch_threads:
                ready_at = queue.tasks[0].enqueued + timeout_s
                if not (queue.rows >= limit or now >= ready_at or self._stopping):
                    wake = ready_at if wake is None else min(wake, ready_at)
                    break
                batch, rows = [], 0
                while queue.tasks and rows + queue.tasks[0].size <= limit:
                    task = queue.tasks.popleft()
                    queue.rows -= task.size
                    if not task.future.done():  # a caller whose deadline passed is dropped
                        batch.append(task)
                        rows += task.size
                if batch:
                    self._running += 1
                    self._runtime.loop.create_task(self._run(queue.signature_name, batch))
        # an armed timer due no later than `wake` is kept (it re-pumps and re-arms): under load this
        # spares a cancelled and a new timer handle per request
        if wake is not None and (self._timer is None or self._timer.when() > wake):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._runtime.loop.call_at(wake, self._on_timer)
        if self._idle is not None and not self._running and not any(q.tasks for q in self._queues.values()):
            if not self._idle.done():
                self._idle.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    async def _run(self, signature_name: str, batch: list):
        try:
            outputs, padded = await self._runtime.call(self._run_batch, signature_name, [t.inputs for t in batch])
            if self._metrics is not None:
                self._metrics.processed_batch_size.increment(self._servable.name, signature_name, str(padded))
            start = 0
            for task in batch:
                if not task.future.done():
                    task.future.set_result({alias: value[start:start + task.size] for alias, value in outputs.items()})
                start += task.size
        except Exception as error:  # every task of the batch gets the error
            failure = errors.from_exception(error)
            for task in batch:
                if not task.future.done():
                    task.future.set_exception(failure)
        finally:
            self._running -= 1
            self._pump()

    def _run_batch(self, signature_name: str, parts_by_task: list) -> tuple:
        """Concatenate, pad, run and check one batch (on a model thread)."""
        rows = sum(next(iter(parts.values())).shape[0] for parts in parts_by_task)
        padded = next((allowed for allowed in self._options.allowed_batch_sizes if allowed >= rows), rows)
        inputs = {}
        for alias in parts_by_task[0]:
            parts = [task_inputs[alias] for task_inputs in parts_by_task]
            if self._options.pad_variable_length_inputs:
                inner = tuple(np.max([p.shape[1:] for p in parts], axis=0)) if parts[0].ndim > 1 else ()
                parts = [_pad_to(p, inner) for p in parts]
            if padded > rows:
                parts.append(np.repeat(parts[0][:1], padded - rows, axis=0))
            inputs[alias] = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        outputs = self._servable.run(signature_name, inputs)
        for alias, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != padded:
                raise errors.ServingError(
                    grpc.StatusCode.INTERNAL,
                    f"batched output '{alias}' has shape {list(value.shape)}, expected 0th dimension "
                    f"{padded}; this signature cannot be batched",
                )
        return outputs, padded
