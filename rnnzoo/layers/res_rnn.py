"""Residual RNN (longer-rnns §3, fig. 1)."""

import keras
from keras import ops

from rnnzoo.layers.base import CellRNN, ProjectedCell, read


@keras.saving.register_keras_serializable(package="rnnzoo")
class ResRNNCell(ProjectedCell):
    """One step of the residual RNN cell of longer-rnns §3 / fig. 1.

        r_t = relu(W_hh1 h_{t-1} + W_xh x_t + b_1)
        h_t = h_{t-1} + W_hh2 r_t + b_2

    A two-step transform per time step: a ReLU layer (W_hh1, b_1) reads the
    previous state and the input, and the combination layer (W_hh2, b_2)
    maps it back "before adding the residual connection" h_{t-1}, so the
    non-residual part can learn to subtract what the residual connection
    carries. The paper fixes the parameters and their zero initialisation
    but leaves open where the input enters and where the nonlinearity sits.
    This cell takes the only reading under which that initialisation both
    makes the hidden-to-hidden map the identity and lets every parameter
    learn: the input enters the ReLU layer ("ReLU as a non-linearity",
    §4), and the residual sum stays linear, as in identity-mapping residual
    networks. With W_hh1, b_1, W_hh2, b_2 = 0 (the defaults) the step is
    exactly h_t = h_{t-1}, while r_t = relu(W_xh x_t) carries the input so
    W_hh2 gets a gradient from the first step. (A ReLU after the sum, or an
    input added beside the residual connection, leaves W_hh1, b_1 and W_hh2
    with zero gradients at that initialisation: relu'(0) = 0 from a zero
    state, and r_t = relu(0) = 0 without input.)

    Weights: `kernel` W_xh `(inputs, units)`, `recurrent_kernel` W_hh1
    `(units, units)`, `recurrent_bias` b_1, `combination_kernel` W_hh2
    `(units, units)`, `bias` b_2.

    Args:
        units: hidden state size.
        activation: nonlinearity of the first layer (default ReLU).
        recurrent_initializer: initializer of W_hh1 and W_hh2 (default zeros).
        bias_initializer: initializer of b_1 and b_2 (default zeros).
        Other arguments: see `ProjectedCell`.
    """

    def __init__(
        self,
        units,
        activation="relu",
        recurrent_initializer="zeros",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )

    @property
    def hidden_activation(self):
        """None: `h_t = h_{t-1} + W_hh2 r_t + b_2` is linear, whatever `activation` `r_t` has."""
        return None

    def build(self, input_shape):
        features = self.input_features(input_shape)
        self.kernel = self.add_kernel("kernel", (features, self.units))
        self.recurrent_kernel = self.add_recurrent_kernel(
            "recurrent_kernel", (self.units, self.units)
        )
        self.combination_kernel = self.add_recurrent_kernel(
            "combination_kernel", (self.units, self.units)
        )
        if self.use_bias:
            self.recurrent_bias = self.add_bias("recurrent_bias", (self.units,))
            self.bias = self.add_bias("bias", (self.units,))
        else:
            self.recurrent_bias = self.bias = None

    def project_inputs(self, inputs):
        """`W_xh x_t + b_1` -> `(..., units)`."""
        projected = self.project(inputs, self.kernel)
        return projected if self.recurrent_bias is None else projected + self.recurrent_bias

    def recurrent_params(self):
        return read(self.recurrent_kernel), read(self.combination_kernel), read(self.bias)

    def step(self, projected, states, params):
        recurrent_kernel, combination_kernel, bias = params
        h_prev = states[0]
        inner = self.activation(ops.matmul(h_prev, recurrent_kernel) + projected)
        h = h_prev + ops.matmul(inner, combination_kernel)
        if bias is not None:
            h = h + bias
        return h, [h]


@keras.saving.register_keras_serializable(package="rnnzoo")
class ResRNN(CellRNN):
    """Residual RNN layer (longer-rnns §3, fig. 1); see `ResRNNCell` for the equations.

    Defaults follow the paper: ReLU, and W_hh1, b_1, W_hh2, b_2 initialised
    to zero so the hidden-to-hidden map starts as the identity.

    Args:
        units: hidden state size.
        input_dim, activation, use_bias, *_initializer, *_regularizer: as in
            `ResRNNCell` / `ProjectedCell`.
        return_sequences, return_state, go_backwards, stateful, unroll,
            zero_output_for_mask: as in `keras.layers.RNN`.
    """

    def __init__(
        self,
        units,
        input_dim=None,
        activation="relu",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="zeros",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        cell = ResRNNCell(
            units,
            input_dim=input_dim,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            **self.cell_kwargs(kwargs, "res_rnn_cell"),
        )
        super().__init__(cell, **kwargs)
