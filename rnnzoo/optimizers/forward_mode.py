"""Tracing a Keras model so `tf.autodiff.ForwardAccumulator` passes through its recurrences.

`tf.autodiff.ForwardAccumulator` fails on TensorArray loops (Keras's default
RNN loop). Inside `forward_mode_safe(model)`:

- every recurrent layer (`keras.layers.RNN`: rnnzoo layers, Keras's
  `SimpleRNN`, `LSTM`, `GRU`) whose input has a static number of time steps
  runs Python-unrolled, which forward mode passes through also under an
  enclosing `tf.GradientTape` (reverse-over-forward) and which is the fastest
  route (see ARCHITECTURE "Measured facts");
- without a static number of steps, rnnzoo layers (`CellRNN`) run their
  state-carrying `tf.while_loop` (`rnnzoo.layers.forward_mode_recurrence()`),
  which forward mode passes through only when no tape records it in a
  `tf.function`; Keras's layers then raise a `ValueError`;
- cuDNN kernels (no forward-mode derivative) are never used.

With `record_hidden=True` (also in `recording_hidden(model)`, which changes
no loop), every recurrent layer's hidden-state sequence `(batch, time,
units)` is recorded, also for layers that return only their last output,
for structural damping (thesis §4.2.3).

The contexts act while the model is called (traced); they change nothing
outside.
"""

import contextlib

import keras

from rnnzoo.layers.base import CellRNN
from rnnzoo.layers.recurrence import forward_mode_recurrence


class HiddenSequence:
    """A recurrent layer's hidden-state sequence recorded during a call, with its mask.

    `mask` is the layer's `(batch, time)` boolean input mask (steps it
    skipped are False), or `None`.
    """

    def __init__(self, layer, states, mask=None):
        self.layer = layer
        self.states = states
        self.mask = mask

    @property
    def activation(self):
        """`"tanh"`, `"sigmoid"` when the states are that function of the hidden units' input
        (thesis §2.5: `h_t = e(x_t)`), else None.

        rnnzoo cells say so with `hidden_activation` (`ResRNN`'s residual state
        is linear: None); Keras's `SimpleRNNCell` with its `activation`; gated
        cells (LSTM, GRU) and other cells: None.
        """
        cell = getattr(self.layer, "cell", None)
        if hasattr(cell, "hidden_activation"):
            activation = cell.hidden_activation
        elif isinstance(cell, keras.layers.SimpleRNNCell):
            activation = cell.activation
        else:
            activation = None
        return _MATCHED_ACTIVATIONS.get(activation)


_MATCHED_ACTIVATIONS = {keras.activations.tanh: "tanh", keras.activations.sigmoid: "sigmoid"}


def recurrent_layers(model):
    """All `keras.layers.RNN` layers inside `model` (recursively, incl. wrapped ones)."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.RNN)]


def check_forward_mode_safe(layer):
    """Raises `ValueError` for a layer forward mode cannot differentiate."""
    if getattr(layer, "use_cudnn", None) is True:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has use_cudnn=True: cuDNN RNN "
            "kernels have no forward-mode or second-order derivatives, so Gauss-Newton "
            "products cannot pass through them. Build it with use_cudnn=False (or 'auto', "
            "which the Hessian-free optimizer turns off while it traces)."
        )


def _patched_inner_loop(layer, original, recorded, forward_mode):
    """`layer.inner_loop`, forward-mode safe if asked, recording its full output sequence."""

    def inner_loop(sequences, initial_state, mask, training=False):
        saved = {"return_sequences": layer.return_sequences, "unroll": layer.unroll}
        if forward_mode and hasattr(layer, "use_cudnn"):
            saved["use_cudnn"] = layer.use_cudnn
            layer.use_cudnn = False
        if forward_mode and not layer.unroll:
            if sequences.shape[1] is not None:
                layer.unroll = True
            elif not isinstance(layer, CellRNN):
                raise ValueError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) runs Keras's TensorArray "
                    "loop, which tf.autodiff.ForwardAccumulator cannot differentiate, and its "
                    f"inputs of shape {tuple(sequences.shape)} have no static number of time "
                    "steps to unroll it over. Give the model a fixed sequence length "
                    "(keras.Input((T, features))), or use an rnnzoo layer, whose loop is "
                    "forward-mode safe for any length."
                )
        if recorded is not None:
            layer.return_sequences = True
        try:
            last_output, outputs, states = original(sequences, initial_state, mask, training)
        finally:
            for name, value in saved.items():
                setattr(layer, name, value)
        if recorded is not None:
            recorded.append(HiddenSequence(layer, outputs, mask))
        return last_output, outputs, states

    return inner_loop


@contextlib.contextmanager
def _patched(model, record_hidden, forward_mode):
    layers = recurrent_layers(model)
    if forward_mode:
        for layer in layers:
            check_forward_mode_safe(layer)
    recorded = []
    patched = []
    try:
        for layer in layers:
            layer.inner_loop = _patched_inner_loop(
                layer, layer.inner_loop, recorded if record_hidden else None, forward_mode
            )
            patched.append(layer)
        yield recorded
    finally:
        for layer in patched:
            del layer.inner_loop


@contextlib.contextmanager
def recording_hidden(model):
    """Records each recurrent layer's hidden-state sequence; yields the list it fills."""
    with _patched(model, record_hidden=True, forward_mode=False) as recorded:
        yield recorded


@contextlib.contextmanager
def forward_mode_safe(model, record_hidden=False):
    """Calls of `model` inside are forward-mode differentiable; yields the recorded sequences.

    Args:
        model: a Keras model or layer.
        record_hidden: record each recurrent layer's hidden-state sequence.

    Yields:
        A list that fills with `HiddenSequence`s as the model is called
        (empty when `record_hidden` is False).

    Raises:
        ValueError: naming a layer that cannot be made forward-mode safe.
    """
    with _patched(model, record_hidden, forward_mode=True) as recorded:
        with forward_mode_recurrence():
            yield recorded
