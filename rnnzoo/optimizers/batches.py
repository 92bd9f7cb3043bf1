"""The batch of a Hessian-free or AHF iteration: its loss, gradient and Gauss-Newton products.

The loss is the compiled matching loss (`matching_losses`) plus the model's own losses, in
the dtype of the model's variables, with the model in inference mode. The Gauss-Newton
products (`gauss_newton_operator`) are taken on the curvature batch, the first
`curvature_fraction` of the batch (thesis §4.5 uses 1/10). `LocalBatch` computes all of it on
one device; `ReplicatedBatch` on each replica's shard of a `tf.distribute` strategy, averaged
over the replicas. Gradients and products are flat vectors (`second_order.flatten`).
"""

import tensorflow as tf
from keras import tree

from rnnzoo.optimizers.gauss_newton import gauss_newton_operator, trainable_variables
from rnnzoo.optimizers.matching_losses import matching_loss
from rnnzoo.optimizers.second_order import flatten, unflatten


class LocalBatch:
    """The batch's loss, gradient and Gauss-Newton products on one device."""

    def __init__(self, curvature_fraction, model, x, y, sample_weight):
        self.curvature_fraction = curvature_fraction
        self.model = model
        self.batch = (x, y, sample_weight)
        self.matching = matching_loss(model.loss)
        self.variables = trainable_variables(model)
        self.dtype = self.variables[0].dtype

    def objective(self, x, y, sample_weight):
        """`(loss at the current weights, predictions)` on one batch, in the variables' dtype."""
        y_pred = self.model(x, training=False)
        outputs = tf.cast(self.matching.linear_outputs(y_pred), self.dtype)
        value = self.matching.value(y, outputs, sample_weight=sample_weight)
        if self.model.losses:
            value = value + tf.cast(tf.add_n(self.model.losses), self.dtype)
        return value, y_pred

    def loss(self):
        return self.objective(*self.batch)[0]

    def curvature_loss(self):
        """The loss on the curvature batch."""
        return self.objective(*self.curvature_head(*self.batch))[0]

    def loss_and_gradient(self):
        return self.shard_loss_and_gradient(*self.batch)

    def shard_loss_and_gradient(self, x, y, sample_weight):
        with tf.GradientTape() as tape:
            value, y_pred = self.objective(x, y, sample_weight)
        gradient = tape.gradient(value, self.variables, unconnected_gradients="zero")
        return value, flatten(gradient), y_pred

    def curvature_head(self, x, y, sample_weight):
        """The curvature batch: the first `curvature_fraction` of `(x, y, sample_weight)`."""
        size = tf.shape(tree.flatten(x)[0])[0]
        curvature_size = tf.maximum(1, tf.cast(
            tf.math.ceil(self.curvature_fraction * tf.cast(size, tf.float32)), tf.int32
        ))

        def head(tensor):
            return None if tensor is None else tensor[:curvature_size]

        return tuple(tree.map_structure(head, t) for t in (x, y, sample_weight))

    def shard_operator(self, x, y, sample_weight, structural):
        """`G v` (flat) on the curvature batch: the first `curvature_fraction` of this batch."""
        x_c, y_c, weight_c = self.curvature_head(x, y, sample_weight)
        product = gauss_newton_operator(
            self.model, self.matching, x_c, structural, y=y_c, sample_weight=weight_c
        )
        return lambda vector: flatten(product(unflatten(vector, self.variables)))

    def curvature(self, structural):
        return self.shard_operator(*self.batch, structural)


class ReplicatedBatch(LocalBatch):
    """The same quantities, each replica's on its shard, averaged over the replicas.

    Keras divides a loss by the replicas in sync when it is computed in a replica
    context (`matching_losses` undoes that), so each replica's value is its shard's
    mean and the replicas' mean is the global batch's.
    """

    def __init__(self, curvature_fraction, model, strategy, x, y, sample_weight):
        super().__init__(curvature_fraction, model, x, y, sample_weight)
        self.strategy = strategy

    def _mean(self, per_replica):
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    def loss(self):
        return self._mean(self.strategy.run(lambda *b: self.objective(*b)[0], args=self.batch))

    def curvature_loss(self):
        return self._mean(self.strategy.run(
            lambda *b: self.objective(*self.curvature_head(*b))[0], args=self.batch
        ))

    def loss_and_gradient(self):
        value, gradient, y_pred = self.strategy.run(self.shard_loss_and_gradient, args=self.batch)
        return self._mean(value), self._mean(gradient), y_pred

    def curvature(self, structural):
        operators = {}  # replica id -> that replica's operator over its recorded forward pass

        def build(x, y, sample_weight):
            operators[_replica_id()] = self.shard_operator(x, y, sample_weight, structural)

        self.strategy.run(build, args=self.batch)
        return lambda vector: self._mean(
            self.strategy.run(lambda v: operators[_replica_id()](v), args=(vector,))
        )


def _replica_id():
    replica = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
    return int(replica)
