"""`tf.distribute` strategies for the shared training loop: one machine's devices or several hosts.

`rnnzoo-train --distribution_strategy=mirrored` trains on every local GPU (or the listed
`--devices`); `multi_worker_mirrored` on several hosts (or processes), each reading `TF_CONFIG`
as TensorFlow documents it. The model, its optimizer and its metrics are built under the
strategy's scope; each step's global batch (`--batch_size`) is the one the run would train on
alone, cut into equal contiguous shards, one per replica in replica order, so a distributed run
sees the same data at every step as a single-device run (`distribute_train_dataset`).
"""

import json
import os

import tensorflow as tf

from rnnzoo.model import is_distributed  # noqa: F401 (part of this module's interface)

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


def use_logical_cpu_devices(count):
    """Splits the CPU into `count` logical devices (`/cpu:0` ... ), e.g. to try `mirrored` on a
    machine without GPUs; must run before TensorFlow initialises its devices."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"logical CPU devices must be a positive integer, got {count!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        raise ValueError(
            "logical CPU devices can only be set before TensorFlow has initialised its devices; "
            "pass --logical_cpu_devices to rnnzoo-train (it sets them first)."
        ) from None


def make_strategy(name, devices=()):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

    Args:
        name: `default` (no distribution: the current device), `mirrored` (synchronous
            replicas on one machine's `devices`; none given: every GPU, else the CPU) or
            `multi_worker_mirrored` (synchronous replicas on the hosts of `TF_CONFIG`, each
            using its GPUs or its CPU).
        devices: device names for `mirrored`, e.g. `("/gpu:0", "/gpu:1")`.
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown distribution strategy {name!r}; choose one of: {', '.join(STRATEGIES)}."
        )
    devices = tuple(devices)
    if devices and name != "mirrored":
        raise ValueError(
            f"devices={list(devices)} apply to --distribution_strategy=mirrored only, not {name!r}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        known = {device.name.lower().replace("/device:", "/") for device in tf.config.list_logical_devices()}
        unknown = [d for d in devices if d.lower().replace("/device:", "/").split("/job")[0] not in known
                   and _canonical(d) not in known]
        if unknown:
            raise ValueError(
                f"devices {unknown} do not exist here; this process has {sorted(known)} "
                "(on a CPU, --logical_cpu_devices=N makes N CPU devices)."
            )
        # One strategy per device set and process: a second MirroredStrategy would number its
        # collectives from the same keys, and TensorFlow's collective executor would mix the two.
        if devices not in _mirrored:
            _mirrored[devices] = tf.distribute.MirroredStrategy(list(devices) or None)
        return _mirrored[devices]
    global _multi_worker
    if _multi_worker is None:  # TensorFlow's collectives take one such strategy per process
        _check_tf_config()
        _multi_worker = _MultiWorkerMirroredStrategy()
    return _multi_worker


_multi_worker = None
_mirrored = {}


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3's `fit` gives it.

    Keras 3 (keras-team/keras#20585) reduces a whole distributed data batch (a nested
    structure) in one call, which the collective strategy refuses, and reduces scalar
    logs along `axis=0`, which does not exist; here nested values are reduced leaf by
    leaf and a scalar's reduction runs over the replicas only.
    """

    def reduce(self, reduce_op, value, axis):
        base = super()

        def leaf(tensor):
            local = self.experimental_local_results(tensor)[0]
            rank = getattr(local, "shape", tf.TensorShape(None)).rank
            return base.reduce(reduce_op, tensor, None if rank == 0 else axis)

        return tf.nest.map_structure(leaf, value)


def _canonical(device):
    kind, _, index = device.strip("/").lower().partition(":")
    return f"/job:localhost/replica:0/task:0/{kind}:{index or 0}"


def _check_tf_config():
    text = os.environ.get("TF_CONFIG")
    if not text:
        return  # one worker: the strategy runs locally
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if task["type"] not in ("worker", "chief") or not 0 <= int(task["index"]) < len(
            config["cluster"].get(task["type"], [])
        ):
            raise ValueError
        if not workers or not all(isinstance(w, str) and ":" in w for w in workers):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"TF_CONFIG={text!r} is not a multi-worker configuration; set it as TensorFlow documents, "
            'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
            '"index": 0}}.'
        ) from None


def is_chief(strategy):
    """Whether this process writes checkpoints, metrics and summaries (worker 0, or the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def barrier(strategy):
    """Returns once every replica of `strategy` has called it (a collective sum)."""
    strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


def distribute_train_dataset(strategy, dataset, batch_size=None):
    """`dataset` of global batches as a distributed dataset: replica r of step k gets rows
    `[r b, (r + 1) b)` of global batch k, `b` = the global batch's rows / replicas.

    `batch_size`, the rows of a global batch when `dataset` does not declare them (e.g. the
    run's `--batch_size`), is checked against the replicas now.

    Every worker reads the whole (seeded) stream and keeps its replicas' rows, so each step
    trains on exactly the global batch a single-device run trains on.
    """
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return replica_batches(
            dataset, replicas, context.input_pipeline_id * local, local
        ).with_options(options)

    replica_batches(dataset, replicas, 0, 1, batch_size)  # checks the batch size now
    return strategy.distribute_datasets_from_function(dataset_fn)


def replica_batches(dataset, replicas, first_replica, local_replicas, batch_size=None):
    """The replica batches one worker feeds, in the order its replicas take them: for each
    global batch of `dataset`, the shards of replicas `first_replica ... + local_replicas - 1`.

    A global batch whose rows do not split into `replicas` equal shards is refused: now when
    `dataset` declares its rows (else `batch_size`, when given), and when the batch arrives.
    """
    leading = {spec.shape[0] for spec in tf.nest.flatten(dataset.element_spec) if spec.shape.rank}
    declared = next(iter(leading)) if len(leading) == 1 and None not in leading else batch_size
    if declared is not None and declared % replicas:
        raise ValueError(
            f"batch_size={declared} does not split into {replicas} equal replica batches; "
            f"choose a multiple of {replicas}."
        )

    def shards(*batch):
        count = tf.shape(tf.nest.flatten(batch)[0])[0]
        check = tf.debugging.assert_equal(count % replicas, 0, message=(
            f"a global batch does not split into {replicas} equal replica batches; choose a "
            f"batch size that is a multiple of {replicas}."
        ))
        with tf.control_dependencies([check]):
            size = count // replicas

        def rows(replica):
            start = (first_replica + replica) * size
            return tf.nest.map_structure(lambda t: t[start:start + size], batch)

        pieces = [rows(replica) for replica in range(local_replicas)]
        return tf.data.Dataset.from_tensor_slices(
            tf.nest.map_structure(lambda *parts: tf.stack(parts), *pieces)
        )

    return dataset.flat_map(shards)
