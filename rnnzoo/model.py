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
        # Optimizer variables created while tracing would make TensorFlow trace twice.
        if getattr(self.optimizer, "runs_own_step", False) and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        return super().make_train_function(force=force)

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
