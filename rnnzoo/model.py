"""`rnnzoo.Model`: a `keras.Model` whose `fit` also runs optimizers that take their own steps."""

import keras
import tensorflow as tf
from keras import tree


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
        if not own_step or not _distributed(self.distribute_strategy):
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


def _distributed(strategy):
    with strategy.scope():
        return tf.distribute.has_strategy()
