"""The recurrence loops of rnnzoo's layers.

Both loops run a step function over time in a `tf.while_loop` whose
`maximum_iterations` is the sequence's own number of steps, static or from
`tf.shape` (Keras's `backend.rnn` takes it only from a static `input_length`
or from `inputs.shape[1]`, which a tuple of input projections lacks). The cap
sizes the derivatives: a differentiated `tf.while_loop` keeps each step's
intermediates in TensorLists of `maximum_iterations` elements, which XLA
allocates up front and cannot size without a cap, so a loose cap such as
`tf.int32.max` asks XLA for 2^31 copies of every intermediate (terabytes).

* `tensor_array_rnn` reads step inputs from and writes outputs to
  TensorArrays, like Keras's own loop: the reverse-mode path.
* `state_carrying_rnn` carries plain tensors only: it reads step inputs with
  `tf.gather` and, when all outputs are wanted, writes them into a carried
  `(time, batch, units)` tensor with `tf.tensor_scatter_nd_update`.
  `tf.autodiff.ForwardAccumulator` fails on a loop that reads or writes a
  `TensorArray` (and on `tf.scan`) but passes through this one, and through a
  Python-unrolled loop (`unroll=True`).

Reverse-mode gradients through `state_carrying_rnn` cost about 1.4x those of
the TensorArray loop, so rnnzoo layers use it only where forward mode needs
it: inside the `forward_mode_recurrence()` context (which the Hessian-free
optimizer enters when it traces Gauss-Newton products).

Forward mode alone passes through this loop; a `GradientTape` recording the
same loop inside a `tf.function` (reverse-over-forward) does not, because the
tape makes the loop keep TensorList accumulators. Reverse-over-forward
products therefore unroll the loop (static lengths) or take two passes.
"""

import contextlib
import threading

import tensorflow as tf

_context = threading.local()


@contextlib.contextmanager
def forward_mode_recurrence():
    """Makes rnnzoo recurrent layers traced inside it forward-mode safe.

    Layers with `unroll=False` that are called (or traced) inside this
    context run `state_carrying_rnn` instead of `tensor_array_rnn`, so a
    `tf.autodiff.ForwardAccumulator` around them computes JVPs. Layers with
    `unroll=True` are forward-mode safe already.

    Example:
        with rnnzoo.layers.forward_mode_recurrence():
            with tf.autodiff.ForwardAccumulator(variables, tangents) as acc:
                outputs = model(x)
            jvp = acc.jvp(outputs)
    """
    previous = forward_mode_recurrence_active()
    _context.active = True
    try:
        yield
    finally:
        _context.active = previous


def forward_mode_recurrence_active():
    """Whether the calling thread is inside `forward_mode_recurrence()`."""
    return getattr(_context, "active", False)


def _where_mask(mask_t, new, old):
    """Selects `new` where the per-example step mask is on, else `old`."""
    return tf.where(mask_t[:, None], new, old)


def _swap_batch_and_time(tensor):
    return tf.transpose(tensor, [1, 0] + list(range(2, tensor.shape.rank)))


def _recurrence(
    step_function, inputs, initial_states, mask, go_backwards, zero_output_for_mask,
    return_all_outputs, tensor_arrays,
):
    """The loop of `tensor_array_rnn` and `state_carrying_rnn`.

    `tensor_arrays` picks how step inputs are read and outputs written:
    TensorArrays, or `tf.gather` and `tf.tensor_scatter_nd_update` on plain
    tensors. Outputs fill `steps` slots, or one slot when only the last
    output is wanted; the previous output is carried only to hold it at
    masked steps: an unmasked TensorArray loop then uses the step traced
    before the loop for the output's shape only.
    """
    time_major = tf.nest.map_structure(_swap_batch_and_time, inputs)
    if mask is not None:
        mask = tf.transpose(tf.cast(mask, tf.bool), [1, 0])
    if go_backwards:
        time_major = tf.nest.map_structure(lambda x: tf.reverse(x, [0]), time_major)
        if mask is not None:
            mask = tf.reverse(mask, [0])
    first = tf.nest.flatten(time_major)[0]
    steps = first.shape[0] if first.shape[0] is not None else tf.shape(first)[0]
    slots = steps if return_all_outputs else 1
    states = list(initial_states)
    output_0, _ = step_function(tf.nest.map_structure(lambda x: x[0], time_major), states)

    if tensor_arrays:
        arrays = tf.nest.map_structure(
            lambda x: tf.TensorArray(x.dtype, size=steps, element_shape=x.shape[1:]).unstack(x),
            time_major,
        )

        def inputs_at(t):
            return tf.nest.map_structure(lambda array: array.read(t), arrays)

        def write(outputs, slot, output):
            return outputs.write(slot, output)

        outputs = tf.TensorArray(output_0.dtype, size=slots, element_shape=output_0.shape)
    else:

        def inputs_at(t):
            return tf.nest.map_structure(lambda x: tf.gather(x, t), time_major)

        def write(outputs, slot, output):
            if return_all_outputs:
                return tf.tensor_scatter_nd_update(outputs, [[slot]], output[None])
            return output[None]

        outputs = tf.zeros(tf.concat([[slots], tf.shape(output_0)], 0), dtype=output_0.dtype)
    held = tf.zeros_like(output_0) if mask is not None else ()

    def body(t, outputs, held, states):
        output, new_states = step_function(inputs_at(t), list(states))
        new_states = list(new_states)
        if mask is not None:
            mask_t = tf.gather(mask, t)
            new_states = [_where_mask(mask_t, n, o) for n, o in zip(new_states, states)]
            output = _where_mask(mask_t, output, tf.zeros_like(output) if zero_output_for_mask else held)
            held = output
        outputs = write(outputs, t if return_all_outputs else 0, output)
        return t + 1, outputs, held, new_states

    _, outputs, _, states = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), outputs, held, states),
        maximum_iterations=steps,
        parallel_iterations=32,
        swap_memory=True,
    )
    if tensor_arrays:
        outputs = outputs.stack()
    return outputs[-1], _swap_batch_and_time(outputs), states


def tensor_array_rnn(
    step_function,
    inputs,
    initial_states,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
    return_all_outputs=True,
):
    """Runs `step_function` over time in a TensorArray `tf.while_loop`.

    Keras's `backend.rnn` loop, capped at the sequence's own number of steps
    for any nesting of `inputs` (see the module docstring). Arguments and
    results as in `state_carrying_rnn`.
    """
    return _recurrence(
        step_function, inputs, initial_states, mask, go_backwards, zero_output_for_mask,
        return_all_outputs, tensor_arrays=True,
    )


def state_carrying_rnn(
    step_function,
    inputs,
    initial_states,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
    return_all_outputs=True,
):
    """Runs `step_function` over time in a TensorArray-free `tf.while_loop`.

    Same contract and masking semantics as `keras.backend.rnn` (masked steps
    keep the previous state and repeat the previous output, or output zeros
    with `zero_output_for_mask`; `go_backwards` processes time in reverse and
    returns outputs in processing order).

    Args:
        step_function: `(input_t, states) -> (output_t, new_states)`.
        inputs: `(batch, time, features)` tensor, or a nested structure of
            them (the step then receives the same structure).
        initial_states: list of `(batch, units)` tensors.
        mask: optional `(batch, time)` boolean tensor.
        go_backwards: process the sequence from its end.
        zero_output_for_mask: output zeros at masked steps.
        return_all_outputs: also return all outputs, `(batch, time, units)`.

    Returns:
        `(last_output, outputs, new_states)`; `outputs` is
        `last_output[:, None]` when `return_all_outputs` is False.
    """
    return _recurrence(
        step_function, inputs, initial_states, mask, go_backwards, zero_output_for_mask,
        return_all_outputs, tensor_arrays=False,
    )
