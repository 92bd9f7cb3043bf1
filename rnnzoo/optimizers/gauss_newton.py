"""Damped Gauss-Newton vector products (thesis §4.2.2-4.2.3, Alg. 6).

`G v = J^T (L o g)'' J v` (eq. 4.4), `J` the Jacobian of the linear outputs
`o` (the logits behind a final sigmoid/softmax, `matching_losses`).
`gauss_newton_operator` runs the network's forward pass once and returns a
`product(v)` that reuses its states, as the thesis's HF does once per
iteration (§4.2.2: "if o and the hidden state sequence h is precomputed then
the total cost of this operation is the same as a standard forward pass and
back-propagation through time"): the forward pass is recorded on a
persistent tape; `J^T u` is a backward pass over it; `J v` is the transpose
of that backward pass, taken by reverse mode with respect to its cotangent
(the backward pass at a zero cotangent is never evaluated, only its
transpose: an R-forward pass over the stored states). That needs the
recurrences unrolled, i.e. a static sequence length. Without one (rnnzoo
layers only) every product runs `J v` through the state-carrying loop in a
forward-only pass (`tf.autodiff.ForwardAccumulator`) and `J^T u` in a second,
ordinary pass, because a `tf.GradientTape` recording that loop inside a
`tf.function` breaks forward mode (its TensorList accumulators).

Structural damping (§4.2.3, eq. 4.7) adds `s * G_S v`, the Gauss-Newton
matrix of a distance `D(h(theta); h(theta_n))` on the hidden states of every
recurrent layer. The hidden states are outputs of the same passes and the
backward pass starts from the outputs and the hidden states together, so it
costs about as much as `G v` alone (Alg. 6, line 13). Where the states are
`h = e(x)` of the hidden units' input `x` with `e` tanh or the logistic
sigmoid (`forward_mode.HiddenSequence.activation`), `D` matches `e`:
`G_S = J_x^T diag(e'(x)) J_x`, computed as `J_h^T (R h / e'(x))`. Other
states (ReLU, ResRNN's residual sum, LSTM, GRU) use the squared distance
`||h - h_n||^2 / 2`: `G_S = J_h^T J_h`. `S` is summed over time steps and
hidden units and averaged over examples.

What depends on the forward states only is computed once per operator, not
per product: the weights `1 / e'(x)` of structural damping and the loss's
gradient with respect to the outputs, whose backward pass is the output
Hessian's product (`MatchingLoss.hessian_operator`).

Losses the model adds itself (weight regularizers, layer penalties) enter
with their exact Hessian, by reverse-over-reverse differentiation.
"""

import tensorflow as tf
from keras import tree

from rnnzoo.optimizers.forward_mode import forward_mode_safe, recording_hidden
from rnnzoo.optimizers.matching_losses import matching_loss

_SATURATION_FLOOR = 1e-6
_ZERO = tf.UnconnectedGradients.ZERO


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


def structural_weights(hidden, structural_damping):
    """`w` with `structural_damping * (D o e)'' R x = w * R h` on one recorded sequence.

    Tanh units: `w = s / (1 - h^2)`, logistic units: `w = s / (h (1 - h))`
    (`w * R h` equals `s R x`, the R-input of Alg. 6 line 13,
    back-propagated through `h = e(x)`); saturated units are floored, which
    can only shrink their (vanishing) contribution. Other states: `w = s`.
    `S` is the distance summed over a sequence's steps (thesis eq. 4.7:
    `D(h(theta); h(theta_n))` of the whole hidden-state sequence) and
    averaged over the batch, as the loss is (`w` carries the `1 / batch`), so
    mu means what it means in the thesis (1/30 in §4.4) at every T. Masked
    steps (padding) add nothing. `w` depends on the states only: an
    operator computes it once for all its products.
    """
    states = hidden.states
    dtype = states.dtype
    weights = tf.cast(structural_damping, dtype) / tf.cast(tf.shape(states)[0], dtype)
    floor = tf.constant(_SATURATION_FLOOR, dtype)
    if hidden.activation == "tanh":
        weights = weights / tf.maximum(1 - tf.square(states), floor)
    elif hidden.activation == "sigmoid":
        weights = weights / tf.maximum(states * (1 - states), floor)
    if hidden.mask is not None:
        weights = weights * tf.cast(hidden.mask, dtype)[:, :, None]
    return weights


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


def _hidden_cotangents(weights, tangents):
    return [w * tf.cast(t, w.dtype) for w, t in zip(weights, tangents)]


def _linear_outputs(model, matching, y_pred, dtype):
    """The model's single output as linear outputs `o`, in the variables' dtype."""
    return tf.cast(matching.linear_outputs(_single_output(y_pred, model)), dtype)


def _one_pass_operator(model, matching, x, y, sample_weight, structural_damping, record):
    """`product` over one recorded forward pass (static sequence lengths: unrolled)."""
    variables = trainable_variables(model)
    primals = [variable.value for variable in variables]
    with tf.GradientTape(watch_accessed_variables=False, persistent=True) as tape:
        tape.watch(primals)
        with tf.GradientTape(watch_accessed_variables=False) as penalty_tape:
            penalty_tape.watch(primals)
            with forward_mode_safe(model, record_hidden=record) as hidden:
                outputs = _linear_outputs(
                    model, matching, model(x, training=False), variables[0].dtype
                )
            penalty = tf.add_n(model.losses) if model.losses else None
        penalty_gradient = (
            None if penalty is None
            else penalty_tape.gradient(penalty, primals, unconnected_gradients=_ZERO)
        )
    targets = [outputs] + [sequence.states for sequence in hidden]
    y = matching.placeholder_targets(outputs) if y is None else y
    # What every product multiplies by, computed once from the recorded forward pass.
    output_hessian = matching.hessian_operator(y, outputs, sample_weight)
    weights = [structural_weights(sequence, structural_damping) for sequence in hidden]

    def product(vectors):
        vectors = list(vectors)
        # J v: the backward pass J^T c is linear in c; its transpose maps v to J v.
        with tf.GradientTape(watch_accessed_variables=False) as transpose:
            cotangents = [tf.zeros_like(target) for target in targets]
            transpose.watch(cotangents)
            backward = tape.gradient(
                targets, primals, output_gradients=cotangents, unconnected_gradients=_ZERO
            )
        tangents = transpose.gradient(
            backward, cotangents, output_gradients=vectors, unconnected_gradients=_ZERO
        )
        output_gradients = [output_hessian(tangents[0]), *_hidden_cotangents(weights, tangents[1:])]
        products = tape.gradient(
            targets, primals, output_gradients=output_gradients, unconnected_gradients=_ZERO
        )
        if penalty_gradient is not None:  # H_P v by reverse over reverse
            curvature = tape.gradient(
                penalty_gradient, primals, output_gradients=vectors, unconnected_gradients=_ZERO
            )
            products = [p + c for p, c in zip(products, curvature)]
        return products

    return product


def _two_pass_product(model, matching, x, vectors, y, sample_weight, structural_damping, record):
    """`G v` for unknown sequence lengths: `J v` forward-only, `J^T u` by a second pass."""
    variables = trainable_variables(model)
    dtype = variables[0].dtype
    primals = [variable.value for variable in variables]
    tangents = list(vectors)
    with tf.autodiff.ForwardAccumulator(primals, tangents) as accumulator:
        with forward_mode_safe(model, record_hidden=record) as hidden:
            outputs = _linear_outputs(model, matching, model(x, training=False), dtype)
    output_tangent = accumulator.jvp(outputs, unconnected_gradients=_ZERO)
    hidden_tangents = [accumulator.jvp(h.states, unconnected_gradients=_ZERO) for h in hidden]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(primals)
        with tf.GradientTape(watch_accessed_variables=False) as penalty_tape:
            penalty_tape.watch(primals)
            with recording_hidden(model) as recorded:
                outputs = _linear_outputs(model, matching, model(x, training=False), dtype)
            penalty = tf.add_n(model.losses) if model.losses else None
        hidden = recorded[: len(hidden_tangents)]  # recorded always; damped only if asked
        targets = [outputs] + [sequence.states for sequence in hidden]
        if penalty is not None:  # H_P v = d/dtheta (grad P . v), reverse over reverse
            gradient = penalty_tape.gradient(penalty, primals, unconnected_gradients=_ZERO)
            targets.append(tf.add_n([tf.reduce_sum(g * t) for g, t in zip(gradient, tangents)]))
    y = matching.placeholder_targets(outputs) if y is None else y
    output_gradients = [
        matching.hessian_product(y, outputs, output_tangent, sample_weight),
        *_hidden_cotangents(
            [structural_weights(h, structural_damping) for h in hidden], hidden_tangents
        ),
    ]
    if penalty is not None:
        output_gradients.append(tf.ones_like(targets[-1]))
    return tape.gradient(
        targets, primals, output_gradients=output_gradients, unconnected_gradients=_ZERO
    )


def gauss_newton_operator(
    model, loss, x, structural_damping=0.0, *, y=None, sample_weight=None
):
    """The damped Gauss-Newton matrix of a Keras model on a batch, as `product(vectors)`.

    Runs the forward pass once (thesis §4.2.2, Alg. 6) and returns a function
    `product(vectors) -> list of tensors` computing
    `(G + structural_damping * G_S + H_P) v`; its calls reuse the forward
    states, so each costs an R-forward and a backward pass (recurrences with
    a static sequence length; without one, rnnzoo layers take two passes per
    call). `G` is the Gauss-Newton matrix of the scalar loss Keras minimises
    for `model.compile(loss=loss)` (eq. 4.4), `G_S` that of structural
    damping (§4.2.3, eq. 4.7), `H_P` the exact Hessian of the model's own
    losses. `HessianFree` builds one per iteration on the curvature batch
    and calls it at every CG step.

    Args:
        model: a built, single-output Keras model.
        loss: loss name or object, as for `model.compile`; see
            `rnnzoo.optimizers.matching_losses` (a final sigmoid/softmax with a
            cross-entropy of probabilities works as in Keras).
        x: a batch of inputs.
        structural_damping: weight of `G_S` (>= 0; `HessianFree` passes
            `lambda * mu`, a tensor); the Python number 0 skips it.
        y, sample_weight: optional targets and sample weights of the batch
            (matching losses' Hessians do not depend on the targets).

    Returns:
        `product(vectors)`: `vectors` shaped like `model.trainable_variables`
        (in that order); returns a list of tensors of the same shapes. Build
        the operator and call it inside one `tf.function`.

    Example:
        @tf.function
        def curvatures(x, vectors):
            product = rnnzoo.optimizers.gauss_newton_operator(model, "mse", x)
            return [sum(tf.reduce_sum(a * b) for a, b in zip(v, product(v)))
                    for v in vectors]
    """
    matching = matching_loss(loss)
    trainable_variables(model)
    if isinstance(structural_damping, (int, float)) and structural_damping < 0:
        raise ValueError(
            f"`structural_damping` must be >= 0, got {structural_damping!r}."
        )
    record = not (isinstance(structural_damping, (int, float)) and structural_damping == 0)
    if static_time(x):
        return _one_pass_operator(model, matching, x, y, sample_weight, structural_damping, record)

    def product(vectors):
        return _two_pass_product(
            model, matching, x, vectors, y, sample_weight, structural_damping, record
        )

    return product


def _checked_vectors(model, vectors):
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
    return tangents


def gauss_newton_product(
    model, loss, x, vectors, *, y=None, sample_weight=None, structural_damping=0.0
):
    """Gauss-Newton matrix-vector products `G v` of a Keras model (thesis eq. 4.4).

    One product of `gauss_newton_operator(model, loss, x, structural_damping)`
    (which see); for several products on one batch, use the operator. Works
    through rnnzoo layers and Keras's `SimpleRNN`/`LSTM`/`GRU` (unrolled
    while traced, so these need a static sequence length).

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
    matching = matching_loss(loss)
    tangents = _checked_vectors(model, vectors)
    operator = gauss_newton_operator(
        model, matching, x, structural_damping, y=y, sample_weight=sample_weight
    )
    return operator(tangents)
