"""Losses whose Gauss-Newton matrix is positive semi-definite (thesis §4.2.2).

The Gauss-Newton matrix `J^T (L o g)'' J` is PSD when the loss `L` matches
the output nonlinearity `g`, i.e. `L o g` is convex in the linear outputs
`o` (eq. 4.4-4.5). rnnzoo differentiates the Keras loss itself, so the
curvature is that of the same scalar loss `model.compile(loss=...)`
minimises:

- mean squared error on linear outputs (`"mse"`, `MeanSquaredError()`);
- sigmoid + binary cross-entropy: a model ending in a Keras sigmoid with
  `"binary_crossentropy"`, or linear outputs with
  `BinaryCrossentropy(from_logits=True)`;
- softmax + (sparse) categorical cross-entropy: a model ending in a Keras
  softmax with `"categorical_crossentropy"` / `"sparse_categorical_crossentropy"`,
  or linear outputs with `from_logits=True`.

As Keras does, a cross-entropy of probabilities takes the logits behind the
model's final sigmoid or softmax, and the matching loss is built on them:
`o` are the pre-activation outputs. Losses are computed in the dtype of the
outputs they are given (the model's variables' dtype in Hessian-free), not
in `keras.config.floatx()`.
"""

import keras
import tensorflow as tf
from keras.src.losses.losses import LossFunctionWrapper

_CROSS_ENTROPIES = {  # loss function -> (Keras class, the activation Keras recovers logits of)
    keras.losses.binary_crossentropy: (keras.losses.BinaryCrossentropy, "Sigmoid"),
    keras.losses.sparse_categorical_crossentropy: (
        keras.losses.SparseCategoricalCrossentropy, "Softmax"
    ),
    keras.losses.categorical_crossentropy: (keras.losses.CategoricalCrossentropy, "Softmax"),
}
_SUPPORTED = (
    "'mse' / keras.losses.MeanSquaredError() on linear outputs; 'binary_crossentropy' after "
    "a final sigmoid or BinaryCrossentropy(from_logits=True) on logits; "
    "'(sparse_)categorical_crossentropy' after a final softmax or "
    "(Sparse)CategoricalCrossentropy(from_logits=True) on logits"
)


class MatchingLoss:
    """A compiled Keras loss as a matching loss on the model's linear outputs `o`.

    Use `linear_outputs(y_pred)` to get `o` from the model's outputs (the
    logits behind a final sigmoid/softmax for cross-entropies of
    probabilities), then `value`, `hessian_operator` (`hessian_product`) and
    `placeholder_targets` on `o`.

    Attributes:
        name: the loss as the user passed it (for messages).
        from_probabilities: whether `y_pred` are probabilities (a
            cross-entropy without `from_logits`).
    """

    def __init__(self, name, loss_class, arguments, activation=None):
        self.name = name
        self.loss_class = loss_class
        self.arguments = arguments
        self.activation = activation
        self.from_probabilities = activation is not None
        self._losses = {}

    def loss(self, dtype):
        """The Keras loss on linear outputs, computing in `dtype`."""
        dtype = tf.as_dtype(dtype).name
        if dtype not in self._losses:
            self._losses[dtype] = self.loss_class(**self.arguments, dtype=dtype)
        return self._losses[dtype]

    def linear_outputs(self, y_pred):
        """`o`: `y_pred`, or the logits of a final Keras sigmoid/softmax (as Keras recovers them).

        Raises:
            ValueError: for probabilities whose logits cannot be recovered.
        """
        if not self.from_probabilities:
            return y_pred
        logits = getattr(y_pred, "_keras_logits", None)
        op = None if tf.executing_eagerly() else getattr(y_pred, "op", None)
        if logits is None and op is not None and op.type == self.activation:
            logits = op.inputs[0]
        if logits is None:
            raise ValueError(
                f"Loss {self.name!r} takes probabilities, but the model's outputs are not a "
                f"Keras {self.activation.lower()} whose logits can be recovered, so the "
                "Gauss-Newton matrix cannot be matched to them (thesis §4.2.2). End the model "
                f"in a layer with activation='{self.activation.lower()}' (e.g. Dense), or give "
                f"it linear outputs and pass keras.losses.{self.loss_class.__name__}"
                "(from_logits=True)."
            )
        return logits

    def value(self, y_true, outputs, sample_weight=None):
        """The loss at the linear outputs `outputs`, in their dtype: the mean over the batch
        given, also in a replica context of a `tf.distribute` strategy (where a Keras loss
        is divided by the replicas in sync, which is undone here)."""
        value = self.loss(outputs.dtype)(y_true, outputs, sample_weight=sample_weight)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return value * replicas if replicas > 1 else value

    def placeholder_targets(self, outputs):
        """Targets for evaluating the output Hessian when none are given.

        The output Hessians of matching losses do not depend on the targets
        (for categorical cross-entropy: given that each target sums to 1).
        """
        if self.loss_class is keras.losses.SparseCategoricalCrossentropy:
            return tf.zeros(tf.shape(outputs)[:-1], dtype="int32")
        if self.loss_class is keras.losses.CategoricalCrossentropy:
            return tf.one_hot(
                tf.zeros(tf.shape(outputs)[:-1], "int32"), tf.shape(outputs)[-1], dtype=outputs.dtype
            )
        return tf.zeros_like(outputs)

    def hessian_operator(self, y_true, outputs, sample_weight=None):
        """`vector -> (L o g)'' vector`, the loss's Hessian w.r.t. the linear outputs `outputs`.

        The loss's gradient at `outputs` is computed once, on a tape; each
        product is the backward pass of that gradient (reverse over reverse:
        the Hessian is symmetric), which reuses its values. In the outputs'
        dtype; build and call it inside one `tf.function`.
        """
        outputs = tf.identity(tf.stop_gradient(outputs))
        with tf.GradientTape(watch_accessed_variables=False, persistent=True) as outer:
            outer.watch(outputs)
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(outputs)
                value = self.value(y_true, outputs, sample_weight)
            gradient = tape.gradient(value, outputs)

        def product(vector):
            return outer.gradient(
                gradient, outputs, output_gradients=tf.cast(vector, outputs.dtype),
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )

        return product

    def hessian_product(self, y_true, outputs, vector, sample_weight=None):
        """`(L o g)'' vector`: one product of `hessian_operator`."""
        return self.hessian_operator(y_true, outputs, sample_weight)(vector)


def matching_loss(loss):
    """Returns `loss` as a `MatchingLoss`, after checking that it has a matching form.

    Args:
        loss: a loss name, function or `keras.losses.Loss` as accepted by
            `model.compile(loss=...)`, or a `MatchingLoss`.

    Raises:
        ValueError: for unknown names and losses without a PSD Gauss-Newton matrix.
    """
    if isinstance(loss, MatchingLoss):
        return loss
    resolved = loss
    if isinstance(loss, str):
        try:
            resolved = keras.losses.get(loss)
        except ValueError:
            resolved = None
        if resolved is None:
            raise ValueError(
                f"Unknown loss name {loss!r}. Gauss-Newton curvature supports {_SUPPORTED}."
            )
    if not isinstance(resolved, keras.losses.Loss) and callable(resolved):
        resolved = LossFunctionWrapper(resolved)
    fn = getattr(resolved, "fn", None)
    arguments = {"reduction": resolved.reduction}
    if fn is keras.losses.mean_squared_error:
        return MatchingLoss(loss, keras.losses.MeanSquaredError, arguments)
    if fn in _CROSS_ENTROPIES:
        loss_class, activation = _CROSS_ENTROPIES[fn]
        arguments.update(resolved._fn_kwargs)
        from_logits = arguments.pop("from_logits", False)
        arguments["from_logits"] = True
        return MatchingLoss(loss, loss_class, arguments, None if from_logits else activation)
    raise ValueError(
        f"Loss {loss!r} has no matching-loss Gauss-Newton matrix here. Use one of {_SUPPORTED}."
    )
