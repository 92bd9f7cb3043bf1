"""Damped Gauss-Newton vector products (thesis §4.2.2-4.2.3, Alg. 6).

`G v = J^T (L o g)'' J v` (eq. 4.4) with `J v` from
`tf.autodiff.ForwardAccumulator` (Pearlmutter's R-operator) and `J^T u` from
reverse mode, taken on the same forward pass ("reverse-over-forward"): about
one forward, one tangent and one backward pass. That needs the recurrences
unrolled, i.e. a static sequence length; without one (rnnzoo layers only)
`J v` comes from a forward-only pass through the state-carrying loop and
`J^T u` from a second, ordinary pass, because a `tf.GradientTape` recording
that loop inside a `tf.function` breaks forward mode (its TensorList
accumulators).

Structural damping (§4.2.3) adds `s * G_S v`, the Gauss-Newton matrix of a
distance `D(h(theta); h(theta_n))` on the hidden states of every recurrent
layer. The hidden tangents `R h` come from the same forward pass and the
backward pass starts from the outputs and the hidden states together, so it
costs about as much as `G v` alone (Alg. 6, line 13). For tanh units `D`
matches the nonlinearity, `G_S = J_u^T diag(1 - h^2) J_u` over the
pre-activations `u`, computed as `J_h^T (R h / (1 - h^2))`; other recurrent
layers (ReLU, LSTM, GRU) use the squared distance `||h - h_n||^2 / 2`. `S` is
averaged over examples and time steps and summed over hidden units.

Losses the model adds itself (weight regularizers, layer penalties) enter
with their exact Hessian, by reverse-over-forward differentiation.
"""

import tensorflow as tf
from keras import tree

from rnnzoo.optimizers.forward_mode import forward_mode_safe, recording_hidden
from rnnzoo.optimizers.matching_losses import (
    matching_loss,
    output_hessian_product,
    placeholder_targets,
)

_SATURATION_FLOOR = 1e-6


def trainable_variables(model):
    """`model.trainable_variables`, or a `ValueError` when there are none."""
    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError(
            f"Model '{model.name}' has no trainable weights, so there is nothing to optimise "
            "or take curvature of. Build the model (call it on data or pass keras.Input) and "
            "check that its layers are trainable."
        )
    return variables


def structural_distance_product(hidden, tangent):
    """`(D o e)'' R x` mapped to the hidden states, for one recorded sequence.

    Tanh units: `R h / (1 - h^2)` (equals `R u`, the R-pre-activation of Alg.
    6 line 13, back-propagated through `h = tanh(u)`); saturated units are
    floored, which can only shrink their (vanishing) contribution. Other
    units: `R h`. `S` is the distance summed over a sequence's steps (thesis
    eq. 4.7: `D(h(theta); h(theta_n))` of the whole hidden-state sequence)
    and averaged over the batch, as the loss is, so mu means what it means
    in the thesis (1/30 in §4.4) at every T. Masked steps (padding) add
    nothing.
    """
    states = hidden.states
    if hidden.tanh_units:
        floor = tf.constant(_SATURATION_FLOOR, states.dtype)
        tangent = tangent / tf.maximum(1 - tf.square(states), floor)
    if hidden.mask is not None:
        tangent = tangent * tf.cast(hidden.mask, states.dtype)[:, :, None]
    return tangent / tf.cast(tf.shape(states)[0], states.dtype)


def _single_output(y_pred, model):
    if tree.is_nested(y_pred):
        raise ValueError(
            f"Model '{model.name}' has {len(tree.flatten(y_pred))} outputs; Gauss-Newton "
            "products here take single-output models. Concatenate the outputs into one "
            "tensor with one matching loss."
        )
    return y_pred


def static_time(x):
    """Whether every input of rank >= 2 has a static second (time) dimension."""
    return all(
        t.shape.rank is not None and (t.shape.rank < 2 or t.shape[1] is not None)
        for t in (tf.convert_to_tensor(t) for t in tree.flatten(x))
    )


def damped_gauss_newton_product(
    model, loss, x, tangents, y=None, sample_weight=None, structural_damping=0.0
):
    """`(G + structural_damping * G_S + H_model_losses) v` and the outputs.

    With a static sequence length the recurrences are unrolled and one pass
    gives both `J v` (forward mode) and `J^T u` (reverse mode over it). Without
    one, rnnzoo layers' state-carrying loop gives `J v` in a forward-only pass
    and a second, ordinary forward-backward pass gives `J^T u` (a tape cannot
    record the forward-mode loop inside a `tf.function`).

    Args:
        model: a built, single-output Keras model.
        loss: a `keras.losses.Loss` accepted by `matching_loss`.
        x: model inputs.
        tangents: tensors shaped like `model.trainable_variables` (the vector `v`).
        y: targets (only their shape/dtype matter for matching losses); None
            uses placeholders.
        sample_weight: optional weights, as in `loss(y, y_pred, sample_weight)`.
        structural_damping: the weight of `G_S` (the HF optimizer passes
            `lambda * mu`, a tensor); the Python number 0 skips it.

    Returns:
        `(products, y_pred)`: a list shaped like the variables, and the outputs at theta.
    """
    variables = trainable_variables(model)
    primals = [variable.value for variable in variables]
    tangents = list(tangents)
    record = not (isinstance(structural_damping, (int, float)) and structural_damping == 0)
    one_pass = static_time(x)
    zero = tf.UnconnectedGradients.ZERO
    with tf.GradientTape(watch_accessed_variables=False, persistent=not one_pass) as tape:
        if one_pass:
            tape.watch(primals)
        with tf.autodiff.ForwardAccumulator(primals, tangents) as accumulator:
            with forward_mode_safe(model, record_hidden=record) as hidden:
                y_pred = _single_output(model(x, training=False), model)
            penalty = tf.add_n(model.losses) if model.losses else None
        output_tangent = accumulator.jvp(y_pred, unconnected_gradients=zero)
        hidden_tangents = [accumulator.jvp(h.states, unconnected_gradients=zero) for h in hidden]
        penalty_tangent = None if penalty is None else accumulator.jvp(penalty)
        if not one_pass:
            tape.watch(primals)
            with tf.GradientTape(watch_accessed_variables=False) as penalty_tape:
                penalty_tape.watch(primals)
                with recording_hidden(model) as hidden:
                    y_pred = _single_output(model(x, training=False), model)
                penalty = tf.add_n(model.losses) if model.losses else None
            if penalty is not None:  # H_P v by reverse over reverse
                gradient = penalty_tape.gradient(penalty, primals, unconnected_gradients=zero)
                penalty_tangent = tf.add_n(
                    [tf.reduce_sum(g * t) for g, t in zip(gradient, tangents)]
                )

    if y is None:
        y = placeholder_targets(loss, y_pred)
    targets = [y_pred]
    output_gradients = [output_hessian_product(loss, y, y_pred, output_tangent, sample_weight)]
    for sequence, tangent in zip(hidden, hidden_tangents):
        targets.append(sequence.states)
        output_gradients.append(
            tf.cast(structural_damping, tangent.dtype)
            * structural_distance_product(sequence, tangent)
        )
    if penalty_tangent is not None:
        targets.append(penalty_tangent)
        output_gradients.append(tf.ones_like(penalty_tangent))
    products = tape.gradient(
        targets, primals, output_gradients=output_gradients, unconnected_gradients=zero
    )
    return products, y_pred


def gauss_newton_product(
    model, loss, x, vectors, *, y=None, sample_weight=None, structural_damping=0.0
):
    """Gauss-Newton matrix-vector products `G v` of a Keras model (thesis eq. 4.4).

    `G` is the Gauss-Newton matrix of the scalar, mean-reduced loss Keras
    minimises for `model.compile(loss=loss)` on the batch `x` (plus the exact
    Hessian of the model's own regularization losses), for the matching
    losses of `rnnzoo.optimizers.matching_losses`. The model must have linear
    outputs (logits for the cross-entropies). Works through rnnzoo layers
    and Keras's `SimpleRNN`/`LSTM`/`GRU` (unrolled while traced, so these need
    a static sequence length).

    Args:
        model: a built, single-output Keras model.
        loss: loss name or object, as for `model.compile`.
        x: a batch of inputs.
        vectors: tensors shaped like `model.trainable_variables`.
        y, sample_weight: optional targets and sample weights of the batch.
        structural_damping: weight of the structural-damping matrix `G_S`
            (§4.2.3) added to `G`.

    Returns:
        A list of tensors shaped like `model.trainable_variables`. Wrap the
        call in a `tf.function` to run it repeatedly.

    Example:
        v = [tf.random.normal(w.shape) for w in model.trainable_variables]
        gv = rnnzoo.optimizers.gauss_newton_product(model, "mse", x, v)
        curvature = sum(tf.reduce_sum(a * b) for a, b in zip(v, gv))
    """
    loss = matching_loss(loss)
    variables = trainable_variables(model)
    vectors = list(vectors)
    if len(vectors) != len(variables):
        raise ValueError(
            f"Got {len(vectors)} vectors for {len(variables)} trainable variables; pass one "
            "tensor per entry of model.trainable_variables, in that order."
        )
    tangents = []
    for vector, variable in zip(vectors, variables):
        vector = tf.convert_to_tensor(vector, dtype=variable.dtype)
        if tuple(vector.shape) != tuple(variable.shape):
            raise ValueError(
                f"Vector of shape {tuple(vector.shape)} does not match variable "
                f"'{variable.path}' of shape {tuple(variable.shape)}."
            )
        tangents.append(vector)
    if structural_damping < 0:
        raise ValueError(
            f"`structural_damping` must be >= 0, got {structural_damping!r}."
        )
    products, _ = damped_gauss_newton_product(
        model, loss, x, tangents, y=y, sample_weight=sample_weight,
        structural_damping=structural_damping,
    )
    return products
