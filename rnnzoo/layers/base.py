"""Shared machinery of rnnzoo's recurrent cells and layers.

A cell splits one step of its recurrence into two parts:

* `project_inputs(inputs)`: everything that depends on the input only
  (`W_hv v_t + b_h`, `W_fv v_t`, ...). It is time-parallel, so a layer computes
  it for the whole sequence with one matmul, or one row gather for integer
  token ids, before the loop.
* `step(projected_t, states, params)`: the recurrent part, with the weights
  `params = recurrent_params()` read once outside the loop.

`cell.call(inputs, states)` composes the two, so every cell works inside
`keras.layers.RNN` like a Keras cell. `CellRNN` runs a cell over a sequence
with Keras's RNN semantics (masking, `initial_state`, `return_sequences`,
`return_state`, `go_backwards`, `stateful`, `unroll`) and picks a
forward-mode-safe loop inside `forward_mode_recurrence()`.
"""

import keras
import tensorflow as tf
from keras import ops
from keras.src import backend as keras_backend

from rnnzoo.layers.recurrence import (
    forward_mode_recurrence_active,
    state_carrying_rnn,
    tensor_array_rnn,
)

_LAYER_KWARGS = ("dtype", "trainable")


def check_positive(name, value, hint):
    """Raises `ValueError` unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}. {hint}")


class ProjectedCell(keras.layers.Layer):
    """Base of rnnzoo cells: an input projection plus a recurrent step.

    Args:
        units: hidden state size.
        input_dim: vocabulary size. When given, the cell also accepts integer
            token ids (one id per step) and gathers weight rows instead of
            multiplying by one-hot vectors; float inputs must then have
            `input_dim` features (one-hot or soft).
        activation: hidden nonlinearity.
        use_bias: whether the hidden units have a bias.
        kernel_initializer, recurrent_initializer, bias_initializer:
            initializers of the input-to-hidden, hidden-to-hidden and bias
            weights (names, instances or configs, as in Keras).
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            regularizers of the same groups.
    """

    def __init__(
        self,
        units,
        input_dim=None,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        check_positive("units", units, "Pass the hidden state size, e.g. units=100.")
        if input_dim is not None:
            check_positive(
                "input_dim", input_dim, "Pass the vocabulary size, or None for float inputs."
            )
        super().__init__(**kwargs)
        self.units = units
        self.input_dim = input_dim
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.state_size = units
        self.output_size = units

    # ----------------------------------------------------------------- weights
    def input_features(self, input_shape):
        """Number of input features for a step input shape (token ids: input_dim)."""
        if len(input_shape) < 2:  # a batch of token ids
            if self.input_dim is None:
                raise ValueError(
                    f"{type(self).__name__} got integer token ids of shape {tuple(input_shape)} "
                    "but no `input_dim`. Pass input_dim=<vocabulary size>, or feed float "
                    "vectors of shape (batch, time, features)."
                )
            return self.input_dim
        features = input_shape[-1]
        if self.input_dim is not None and features is not None and features != self.input_dim:
            raise ValueError(
                f"{type(self).__name__} has input_dim={self.input_dim} but got inputs with "
                f"{features} features. Feed one-hot vectors of size {self.input_dim} or "
                "token ids of shape (batch, time)."
            )
        if features is None:
            raise ValueError(
                f"{type(self).__name__} needs a known feature dimension, got input shape "
                f"{tuple(input_shape)}."
            )
        return features

    def add_kernel(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )

    def add_recurrent_kernel(self, name, shape, initializer=None):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer or self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
        )

    def add_bias(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
        )

    # ------------------------------------------------------------- projection
    def project(self, inputs, kernel):
        """`inputs @ kernel`, by row gather when `inputs` are integer token ids."""
        if inputs.dtype.is_integer:
            return tf.gather(tf.convert_to_tensor(kernel), inputs)
        return ops.matmul(inputs, kernel)

    def project_inputs(self, inputs):
        """Time-parallel input terms: `(..., features)` or ids `(...)` -> `(..., P)`, or a tuple of them."""
        raise NotImplementedError

    def recurrent_params(self):
        """The weights `step` needs, read once (tensors, not variables)."""
        raise NotImplementedError

    def step(self, projected, states, params):
        """One recurrent step: `(projected_t, [h_{t-1}, ...], params) -> (o_t, states_t)`."""
        raise NotImplementedError

    @property
    def hidden_activation(self):
        """`e` of `h_t = e(x_t)`, `x_t` the hidden units' input (thesis §2.5), or None.

        Structural damping (thesis eq. 4.7) matches its distance to `e`;
        `None` says the state is not an elementwise function of one input.
        """
        return self.activation

    def call(self, inputs, states, training=False):
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        return self.step(self.project_inputs(inputs), states, self.recurrent_params())

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        config = {
            "units": self.units,
            "input_dim": self.input_dim,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }
        return {**super().get_config(), **config}


def read(variable):
    """Reads a variable into a tensor (loops must not capture variable handles)."""
    return None if variable is None else tf.convert_to_tensor(variable)


class CellRNN(keras.layers.RNN):
    """Runs a `ProjectedCell` over time with the semantics of `keras.layers.RNN`.

    Subclasses build their cell from their own arguments and pass the usual
    RNN arguments (`return_sequences`, `return_state`, `go_backwards`,
    `stateful`, `unroll`, `zero_output_for_mask`) through `**kwargs`.

    The input projection runs once over the whole sequence before the loop.
    With `unroll=True` the loop is Keras's Python-unrolled one; otherwise it
    is `tensor_array_rnn`, whose iteration cap is the sequence's own length,
    so its gradient compiles with XLA also for lengths known only at run
    time, or, inside `forward_mode_recurrence()`, `state_carrying_rnn`, which
    `tf.autodiff.ForwardAccumulator` can differentiate.
    """

    @staticmethod
    def cell_kwargs(kwargs, name):
        """Layer-level kwargs the cell shares (dtype, trainable) plus its name."""
        return {**{k: kwargs[k] for k in _LAYER_KWARGS if k in kwargs}, "name": name}

    @property
    def units(self):
        return self.cell.units

    def build(self, sequences_shape, initial_state_shape=None):
        rank = len(sequences_shape)
        if rank == 2 and self.cell.input_dim is None:
            raise ValueError(
                f"{type(self).__name__} got inputs of shape {tuple(sequences_shape)}: integer "
                "token ids need `input_dim` (the vocabulary size). Pass input_dim=..., or feed "
                "float vectors of shape (batch, time, features)."
            )
        if rank not in (2, 3):
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, time, features) or "
                f"token ids (batch, time); got shape {tuple(sequences_shape)} (rank {rank}). "
                "Reshape the input to rank 3."
            )
        super().build(sequences_shape, initial_state_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        sequences = tf.convert_to_tensor(sequences)
        integer = sequences.dtype.is_integer
        if sequences.shape.rank == 2 and not integer:
            raise ValueError(
                f"{type(self).__name__} got rank-2 inputs of dtype {sequences.dtype.name}: a "
                "rank-2 input must be integer token ids. Cast ids to int32, or add a feature "
                "axis for float inputs."
            )
        if sequences.shape.rank == 3 and integer:
            raise ValueError(
                f"{type(self).__name__} got integer inputs of shape {tuple(sequences.shape)}: "
                "token ids must have shape (batch, time). Drop the feature axis, or cast "
                "feature vectors to float."
            )
        if integer:
            # keras.layers.RNN.call slices a feature axis; ids get a unit one
            # here that inner_loop removes again.
            sequences = sequences[..., None]
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def _maybe_config_dropout_masks(self, cell, input_sequence, input_state):
        """rnnzoo cells have no dropout masks to prepare."""

    def _maybe_reset_dropout_masks(self, cell):
        """rnnzoo cells have no dropout masks to reset."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if sequences.dtype.is_integer:
            sequences = sequences[..., 0]
        projected = self.cell.project_inputs(sequences)
        params = self.cell.recurrent_params()

        def step(inputs, states):
            return self.cell.step(inputs, list(states), params)

        initial_state = list(initial_state)
        if self.unroll:  # keras.layers.RNN.call has checked that the length is static
            return keras_backend.rnn(
                step,
                projected,
                initial_state,
                go_backwards=self.go_backwards,
                mask=mask,
                unroll=True,
                input_length=sequences.shape[1],
                zero_output_for_mask=self.zero_output_for_mask,
                return_all_outputs=self.return_sequences,
            )
        loop = state_carrying_rnn if forward_mode_recurrence_active() else tensor_array_rnn
        return loop(
            step,
            projected,
            initial_state,
            mask=mask,
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
