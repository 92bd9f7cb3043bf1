"""Server-side batching of concurrent Predict calls (TF Serving's BatchingParameters).

Concurrent requests to the same signature of the same version are queued, concatenated along
dimension 0 into one batch of at most `max_batch_size` rows, run once, and split back. A batch
runs as soon as it is full or its oldest request has waited `batch_timeout_micros`;
`allowed_batch_sizes` pads a batch with copies of its first row up to the next allowed size;
`pad_variable_length_inputs` pads dimensions >= 1 so requests of different lengths share a batch.
A queue holding `max_enqueued_batches` batches refuses new work with UNAVAILABLE, as TF Serving.
"""

import collections
import threading
import time

import grpc
import numpy as np

from rnnzoo.serving import errors


class _Task:
    __slots__ = ("inputs", "size", "enqueued", "done", "outputs", "error", "abandoned")

    def __init__(self, inputs: dict, size: int):
        self.inputs = inputs
        self.size = size
        self.enqueued = time.monotonic()
        self.done = threading.Event()
        self.outputs = None
        self.error = None
        self.abandoned = False


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


class Batcher:
    """Batches the calls of one servable (one model version).

    Args:
      servable: the `Servable` whose signatures run.
      options: `config.BatchingOptions`.
      metrics: `metrics.ServingMetrics` (records processed batch sizes).
    """

    def __init__(self, servable, options, metrics=None):
        self._servable = servable
        self._options = options
        self._metrics = metrics
        self._queues = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._batchable = {name: _batchable(sig) for name, sig in servable.signature_defs.items()}
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{servable.name}-{servable.version}-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def batches(self, signature_name: str) -> bool:
        return self._batchable.get(signature_name, False)

    def submit(self, signature_name: str, inputs: dict, deadline: float | None = None) -> dict:
        """Queue one request and block until its batch ran; returns its slice of the outputs."""
        sizes = {alias: (array.shape[0] if array.ndim else None) for alias, array in inputs.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise errors.invalid_argument(
                f"batching needs every input to share its 0th dimension, got {sizes}; send inputs "
                f"with the same number of rows"
            )
        size = next(iter(sizes.values()))
        if size > self._options.max_batch_size:
            raise errors.invalid_argument(
                f"Task size {size} is larger than maximum batch size {self._options.max_batch_size}; "
                f"split the request or raise max_batch_size in --batching_parameters_file"
            )
        if size == 0:
            return self._servable.run_unbatched(signature_name, inputs)
        key = signature_name
        if not self._options.pad_variable_length_inputs:
            key = (signature_name,) + tuple(sorted((a, v.shape[1:]) for a, v in inputs.items()))
        task = _Task(inputs, size)
        with self._cond:
            if self._stopping:
                stopped = True
            else:
                stopped = False
                queue = self._queues.get(key)
                if queue is None:
                    queue = self._queues[key] = _Queue(signature_name)
                batches_needed = -(-(queue.rows + size) // self._options.max_batch_size)
                if batches_needed > self._options.max_enqueued_batches:
                    raise errors.unavailable(
                        "The batch scheduling queue to which this task was submitted is full; "
                        "retry later or raise max_enqueued_batches"
                    )
                queue.tasks.append(task)
                queue.rows += size
                self._cond.notify()
        if stopped:  # a version being unloaded finishes its stragglers unbatched
            return self._servable.run_unbatched(signature_name, inputs)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not task.done.wait(timeout):
            task.abandoned = True
            raise errors.ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline exceeded while waiting in the batch queue")
        if task.error is not None:
            raise task.error
        return task.outputs

    def queued_rows(self, signature_name: str | None = None) -> int:
        """Rows waiting in the queues (of one signature, or all)."""
        with self._cond:
            return sum(q.rows for q in self._queues.values() if signature_name in (None, q.signature_name))

    def stop(self) -> None:
        """Run what is queued, then end the batch threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def _next_batch(self):
        timeout_s = self._options.batch_timeout_micros / 1e6
        max_rows = self._options.max_batch_size
        with self._cond:
            while True:
                now = time.monotonic()
                wake = None
                for queue in self._queues.values():
                    if not queue.tasks:
                        continue
                    ready_at = queue.tasks[0].enqueued + timeout_s
                    if queue.rows >= max_rows or now >= ready_at or self._stopping:
                        batch, rows = [], 0
                        while queue.tasks and rows + queue.tasks[0].size <= max_rows:
                            task = queue.tasks.popleft()
                            queue.rows -= task.size
                            if not task.abandoned:
                                batch.append(task)
                                rows += task.size
                        if batch:
                            return queue.signature_name, batch
                        continue
                    wake = ready_at if wake is None else min(wake, ready_at)
                if self._stopping:
                    return None
                self._cond.wait(None if wake is None else max(0.0, wake - now))

    def _work(self):
        while True:
            item = self._next_batch()
            if item is None:
                return
            self._run(*item)

    def _run(self, signature_name: str, batch: list):
        try:
            rows = sum(task.size for task in batch)
            padded = rows
            for allowed in self._options.allowed_batch_sizes:
                if allowed >= rows:
                    padded = allowed
                    break
            inputs = {}
            for alias in batch[0].inputs:
                parts = [task.inputs[alias] for task in batch]
                if self._options.pad_variable_length_inputs:
                    inner = tuple(np.max([p.shape[1:] for p in parts], axis=0)) if parts[0].ndim > 1 else ()
                    parts = [_pad_to(p, inner) for p in parts]
                if padded > rows:
                    parts.append(np.repeat(parts[0][:1], padded - rows, axis=0))
                inputs[alias] = np.concatenate(parts, axis=0)
            outputs = self._servable.run_unbatched(signature_name, inputs)
            for alias, value in outputs.items():
                if value.ndim == 0 or value.shape[0] != padded:
                    raise errors.ServingError(
                        grpc.StatusCode.INTERNAL,
                        f"batched output '{alias}' has shape {list(value.shape)}, expected 0th dimension "
                        f"{padded}; this signature cannot be batched",
                    )
            if self._metrics is not None:
                self._metrics.processed_batch_size.increment(self._servable.name, signature_name, str(padded))
            start = 0
            for task in batch:
                task.outputs = {alias: value[start:start + task.size] for alias, value in outputs.items()}
                start += task.size
        except Exception as error:  # every task of the batch gets the error
            failure = errors.from_exception(error)
            for task in batch:
                task.error = failure
        for task in batch:
            task.done.set()
