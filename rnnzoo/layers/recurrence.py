"""Recurrence loops that forward-mode autodiff can pass through.

`tf.autodiff.ForwardAccumulator` fails on a loop that reads or writes a
`TensorArray` (Keras's default `backend.rnn` path and `tf.scan`). It passes
through a Python-unrolled loop (`unroll=True`) and through a `tf.while_loop`
whose loop variables are plain tensors. `state_carrying_rnn` is such a loop:
it reads step inputs with `tf.gather`, carries the state, and, when all
outputs are wanted, writes them into a carried `(time, batch, units)` tensor
with `tf.tensor_scatter_nd_update`.

Reverse-mode gradients through it cost about 1.4x those of the TensorArray
loop, so rnnzoo layers use it only where forward mode needs it: inside the
`forward_mode_recurrence()` context (which the Hessian-free optimizer enters
when it traces Gauss-Newton products).

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
    context run `state_carrying_rnn` instead of Keras's TensorArray loop, so
    a `tf.autodiff.ForwardAccumulator` around them computes JVPs. Layers with
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
    def swap_batch_and_time(tensor):
        return tf.transpose(tensor, [1, 0] + list(range(2, tensor.shape.rank)))

    time_major = tf.nest.map_structure(swap_batch_and_time, inputs)
    if mask is not None:
        mask = tf.transpose(tf.cast(mask, tf.bool), [1, 0])
    if go_backwards:
        time_major = tf.nest.map_structure(lambda x: tf.reverse(x, [0]), time_major)
        if mask is not None:
            mask = tf.reverse(mask, [0])
    steps = tf.shape(tf.nest.flatten(time_major)[0])[0]
    states = list(initial_states)

    def inputs_at(t):
        return tf.nest.map_structure(lambda x: tf.gather(x, t), time_major)

    output_0, _ = step_function(inputs_at(0), states)
    last_output = tf.zeros_like(output_0)
    if return_all_outputs:
        outputs = tf.zeros(
            tf.concat([[steps], tf.shape(output_0)], 0), dtype=output_0.dtype
        )
    else:
        outputs = tf.zeros([0], dtype=output_0.dtype)

    def body(t, last_output, outputs, states):
        output, new_states = step_function(inputs_at(t), list(states))
        new_states = list(new_states)
        if mask is not None:
            mask_t = tf.gather(mask, t)
            new_states = [_where_mask(mask_t, n, o) for n, o in zip(new_states, states)]
            held = tf.zeros_like(output) if zero_output_for_mask else last_output
            output = _where_mask(mask_t, output, held)
        last_output = output
        if return_all_outputs:
            outputs = tf.tensor_scatter_nd_update(outputs, [[t]], output[None])
        return t + 1, last_output, outputs, new_states

    _, last_output, outputs, states = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), last_output, outputs, states),
        shape_invariants=(
            tf.TensorShape([]),
            last_output.shape,
            outputs.shape,
            [s.shape for s in states],
        ),
    )
    if return_all_outputs:
        outputs = swap_batch_and_time(outputs)
    else:
        outputs = last_output[:, None]
    return last_output, outputs, states
