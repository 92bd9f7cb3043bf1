"""Losses whose Gauss-Newton matrix is positive semi-definite (thesis §4.2.2).

The Gauss-Newton matrix `J^T (L o g)'' J` is PSD when the loss `L` matches
the output nonlinearity `g`, i.e. `L o g` is convex in the linear outputs
`o`. rnnzoo differentiates the Keras loss itself, so the curvature is that of
the same scalar, mean-reduced loss `model.compile(loss=...)` minimises:

- mean squared error on linear outputs (`"mse"`, `MeanSquaredError()`);
- sigmoid + binary cross-entropy: `BinaryCrossentropy(from_logits=True)`;
- softmax + (sparse) categorical cross-entropy:
  `SparseCategoricalCrossentropy(from_logits=True)`,
  `CategoricalCrossentropy(from_logits=True)`.
"""

import keras
import tensorflow as tf
from keras.src.losses.losses import LossFunctionWrapper

_LOGIT_LOSSES = {
    keras.losses.binary_crossentropy: "BinaryCrossentropy",
    keras.losses.sparse_categorical_crossentropy: "SparseCategoricalCrossentropy",
    keras.losses.categorical_crossentropy: "CategoricalCrossentropy",
}
_SUPPORTED = (
    "'mse' / keras.losses.MeanSquaredError(), "
    "keras.losses.BinaryCrossentropy(from_logits=True), "
    "keras.losses.SparseCategoricalCrossentropy(from_logits=True), "
    "keras.losses.CategoricalCrossentropy(from_logits=True)"
)


def matching_loss(loss):
    """Returns `loss` as a Keras `Loss` after checking it matches linear outputs.

    Args:
        loss: a loss name, function or `keras.losses.Loss` as accepted by
            `model.compile(loss=...)`.

    Raises:
        ValueError: for unknown names, losses without a PSD Gauss-Newton
            matrix, and cross-entropies on probabilities instead of logits.
    """
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
    if fn is keras.losses.mean_squared_error:
        return resolved
    if fn in _LOGIT_LOSSES:
        if not resolved._fn_kwargs.get("from_logits", False):
            raise ValueError(
                f"Loss {loss!r} is a cross-entropy of probabilities; the Gauss-Newton matrix "
                "needs the loss to match linear outputs (thesis §4.2.2). Give the model a "
                "linear output layer (the logits) and pass "
                f"keras.losses.{_LOGIT_LOSSES[fn]}(from_logits=True)."
            )
        return resolved
    raise ValueError(
        f"Loss {loss!r} has no matching-loss Gauss-Newton matrix here. Use one of {_SUPPORTED}."
    )


def placeholder_targets(loss, y_pred):
    """Targets for evaluating the output Hessian when none are given.

    The output Hessians of matching losses do not depend on the targets
    (for categorical cross-entropy: given that each target sums to 1).
    """
    if loss.fn is keras.losses.sparse_categorical_crossentropy:
        return tf.zeros(tf.shape(y_pred)[:-1], dtype="int32")
    if loss.fn is keras.losses.categorical_crossentropy:
        return tf.one_hot(tf.zeros(tf.shape(y_pred)[:-1], "int32"), tf.shape(y_pred)[-1])
    return tf.zeros_like(y_pred)


def output_hessian_product(loss, y_true, y_pred, vector, sample_weight=None):
    """`(L o g)'' vector`: the loss's Hessian w.r.t. the outputs times `vector`.

    Forward-over-reverse through the loss alone (cheap next to the network).
    """
    y_pred = tf.identity(tf.stop_gradient(y_pred))
    with tf.autodiff.ForwardAccumulator(y_pred, vector) as accumulator:
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(y_true, y_pred, sample_weight=sample_weight)
        gradient = tape.gradient(value, y_pred)
    product = accumulator.jvp(gradient, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return tf.cast(product, vector.dtype)  # Keras losses compute in floatx
