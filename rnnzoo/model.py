"""`rnnzoo.Model`: a `keras.Model` whose `fit` also runs optimizers that take their own steps."""

import keras
import tensorflow as tf
from keras import tree
from keras.src.losses.loss import unscale_loss_for_distribution


@keras.saving.register_keras_serializable(package="rnnzoo")
class Model(keras.Model):
    """A `keras.Model` that lets an optimizer needing the loss and the batch run its step.

    With an ordinary Keras optimizer it trains exactly like `keras.Model`.
    With an optimizer that sets `runs_own_step = True`, such as
    `rnnzoo.optimizers.HessianFree`, each `fit` step hands the batch to
    `optimizer.run_step(model, x, y, sample_weight)`; for Hessian-free that is
    one HF iteration (gradient, CG, backtracking, damping update, line search)
    on the batch. Callbacks, `History`, the progress bar, metrics and
    checkpoints work as usual; the optimizer's own statistics (e.g. `damping`,
    `rho`, `cg_steps`, `step_size`) are added to the logs, and the reported
    `loss` and metrics are those of the batch before the step, as in Keras.

    Build it like a functional model, or subclass it:

        inputs = keras.Input((T, features))
        outputs = keras.layers.Dense(1)(keras.layers.SimpleRNN(100)(inputs))
        model = rnnzoo.Model(inputs, outputs)
        model.compile(optimizer=rnnzoo.optimizers.HessianFree(), loss="mse")
        model.fit(x, y, batch_size=1000, epochs=10)
    """

    def make_train_function(self, force=False):
        own_step = getattr(self.optimizer, "runs_own_step", False)
        # Optimizer variables created while tracing would make TensorFlow trace twice.
        if own_step and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
        if not own_step or not is_distributed(self.distribute_strategy):
            return super().make_train_function(force=force)
        if not hasattr(self.optimizer, "run_replicated_step"):
            raise ValueError(
                f"{type(self.optimizer).__name__} has no replicated step and cannot train under a "
                "tf.distribute strategy; train it on one device (--distribution_strategy=default) "
                "or use HessianFree or a first-order optimizer."
            )
        if self.train_function is not None and not force:
            return self.train_function
        step = tf.function(self._replicated_train_step, reduce_retracing=True)

        def train_function(iterator):
            if not isinstance(iterator, tf.distribute.DistributedIterator):
                raise ValueError(
                    f"{type(self.optimizer).__name__} under a tf.distribute strategy trains from "
                    "model.fit on a dataset (which the strategy distributes), not from "
                    "train_on_batch or a Python iterator."
                )
            data = iterator.get_next_as_optional()
            if not data.has_value():
                raise StopIteration
            return step(data.get_value())

        self.train_function = train_function
        return train_function

    def train_step(self, data):
        if not getattr(self.optimizer, "runs_own_step", False):
            if _clips_per_replica(self.optimizer):
                return self._globally_clipped_train_step(data)
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        logs = dict(self.optimizer.run_step(self, x, y, sample_weight))
        loss = logs.pop("loss")
        y_pred = logs.pop("y_pred")
        batch = tf.shape(next(t for t in tree.flatten(x) if t is not None))[0]
        self._loss_tracker.update_state(loss, sample_weight=batch)
        return {**self.compute_metrics(x, y, y_pred, sample_weight=sample_weight), **logs}

    def _replicated_train_step(self, data):
        """`train_step` of an own-step optimizer under a strategy, in cross-replica context:
        the optimizer runs its replicated step (`run_replicated_step`) on the per-replica
        shards; each replica then updates the metrics with its shard."""
        strategy = self.distribute_strategy
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        logs = dict(self.optimizer.run_replicated_step(self, strategy, x, y, sample_weight))
        loss = logs.pop("loss")
        y_pred = logs.pop("y_pred")

        def update_metrics(x, y, y_pred, sample_weight):
            batch = tf.shape(next(t for t in tree.flatten(x) if t is not None))[0]
            self._loss_tracker.update_state(loss, sample_weight=batch)
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

        strategy.run(update_metrics, args=(x, y, y_pred, sample_weight))
        return {**self.get_metrics_result(), **logs}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        return super()._maybe_symbolic_build(**symbolic_build_from_spec(iterator, data_batch))

    def _globally_clipped_train_step(self, data):
        """Keras's `train_step` with gradient clipping applied to the global batch's gradient.

        Under a strategy a Keras optimizer clips each replica's partial gradient before it sums
        them (keras/src/optimizers/base_optimizer.py), which is not the single-device step.
        Here each replica hands the optimizer its share of the gradient the single-device step
        would clip (`_shares_of_clipped_gradient`); the optimizer's own sum restores it, and its
        per-replica clipping leaves the shares, already within the bound, unchanged.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True) if self._call_has_training_arg else self(x)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                      training=True)
            batch = tf.shape(next(t for t in tree.flatten(x) if t is not None))[0]
            self._loss_tracker.update_state(unscale_loss_for_distribution(loss), sample_weight=batch)
        weights = self.trainable_weights
        gradients = _shares_of_clipped_gradient(self.optimizer, tape.gradient(loss, weights))
        self.optimizer.apply_gradients(zip(gradients, weights))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _shares_of_clipped_gradient(optimizer, gradients):
    """This replica's shares of the global gradient clipped as `optimizer` clips on one device.

    Each replica's loss is scaled by 1 / replicas, so the sum of the replicas' `gradients` is
    the global batch's. Dense gradients are summed, clipped, and shared equally. An
    embedding's `tf.IndexedSlices` stays this replica's own rows: Keras measures its norm over
    the rows as they are (one per occurrence, not summed per index), which the replicas' rows
    together reproduce, so only their squared sums are summed.
    """
    context = tf.distribute.get_replica_context()
    share = 1.0 / context.num_replicas_in_sync
    dense = [i for i, g in enumerate(gradients) if g is not None and not isinstance(g, tf.IndexedSlices)]
    sparse = [i for i, g in enumerate(gradients) if isinstance(g, tf.IndexedSlices)]
    gradients = list(gradients)
    if dense:
        for i, total in zip(dense, context.all_reduce(tf.distribute.ReduceOp.SUM, [gradients[i] for i in dense])):
            gradients[i] = total
    squares = {i: tf.reduce_sum(tf.square(gradients[i])) for i in dense}
    if sparse:
        sums = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                  [tf.reduce_sum(tf.square(gradients[i].values)) for i in sparse])
        squares.update(zip(sparse, sums))
    if optimizer.clipnorm:
        factors = {i: optimizer.clipnorm / tf.maximum(tf.sqrt(square), optimizer.clipnorm)
                   for i, square in squares.items()}
    elif optimizer.global_clipnorm:
        norm = tf.sqrt(tf.add_n(list(squares.values())))
        factor = optimizer.global_clipnorm / tf.maximum(norm, optimizer.global_clipnorm)
        factors = {i: factor for i in squares}
    else:  # clipvalue: element by element, as the rows of sparse gradients already are
        factors = {i: 1.0 for i in squares}
        for i in dense:
            gradients[i] = tf.clip_by_value(gradients[i], -optimizer.clipvalue, optimizer.clipvalue)
    for i in dense:
        gradients[i] = gradients[i] * (factors[i] * share)
    for i in sparse:
        g = gradients[i]
        gradients[i] = tf.IndexedSlices(g.values * factors[i], g.indices, g.dense_shape)
    return gradients


def symbolic_build_from_spec(iterator, data_batch):
    """The arguments of Keras's `_maybe_symbolic_build` that build a model under a strategy
    from its data's element spec instead of a first batch.

    Keras (keras/src/backend/tensorflow/trainer.py) takes the first batch of a fresh
    iterator over the dataset to build the model's state before `fit`, and training then
    starts a second pass: a dataset reshuffled on every pass would train on another order
    than on one device. The shapes and dtypes it needs are in the dataset's element spec.
    """
    dataset = getattr(iterator, "_distributed_dataset", None)
    if data_batch is None and dataset is not None:
        return {"iterator": None, "data_batch": tree.map_structure(_replica_spec, dataset.element_spec)}
    return {"iterator": iterator, "data_batch": data_batch}


def _replica_spec(spec):
    """One replica's `tf.TensorSpec` of a distributed dataset's element spec."""
    if isinstance(spec, tf.TensorSpec):
        return spec
    return tf.nest.flatten(spec, expand_composites=True)[0]  # a PerReplicaSpec's first replica


def _clips_per_replica(optimizer):
    """Whether `optimizer` clips gradients and runs in a replica context of several replicas."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    clipping = any(getattr(inner, name, None) for name in ("clipnorm", "global_clipnorm", "clipvalue"))
    context = tf.distribute.get_replica_context()
    if not clipping or context is None or context.num_replicas_in_sync == 1:
        return False
    if inner is not optimizer or getattr(optimizer, "loss_scale_factor", None):
        raise ValueError(
            "gradient clipping with loss scaling (mixed precision) under a tf.distribute strategy "
            "would clip each replica's scaled partial gradient; drop --clip_norm or "
            "--mixed_precision, or train on one device (--distribution_strategy=default)."
        )
    return True


def is_distributed(strategy):
    """Whether `strategy` is a `tf.distribute` strategy other than TensorFlow's default one."""
    with strategy.scope():
        return tf.distribute.has_strategy()
