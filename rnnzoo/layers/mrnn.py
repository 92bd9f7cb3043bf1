"""Multiplicative RNN (thesis ch. 5, eq. 5.1 and 5.4-5.7)."""

import keras
from keras import ops

from rnnzoo.layers.base import CellRNN, ProjectedCell, check_positive, read


@keras.saving.register_keras_serializable(package="rnnzoo")
class MRNNCell(ProjectedCell):
    """One step of the Multiplicative RNN.

    The input synthesises the hidden-to-hidden matrix
    `W_hh^(v_t) = W_hf diag(W_fv v_t) W_fh` (thesis eq. 5.4), so one step is

        f_t = diag(W_fv v_t) W_fh h_{t-1}                (eq. 5.5)
        h_t = tanh(W_hf f_t + W_hv v_t + b_h)            (eq. 5.6, bias of eq. 5.1)

    The output layer `o_t = W_oh h_t + b_o` (eq. 5.7) is a `Dense` layer on
    the returned sequence. Weights (row-vector convention, `x @ W`):
    `kernel` W_hv^T `(input, units)`, `input_factor_kernel` W_fv^T
    `(input, factors)`, `hidden_factor_kernel` W_fh^T `(units, factors)`,
    `factor_hidden_kernel` W_hf^T `(factors, units)`, `bias` b_h.

    Args:
        units: hidden state size.
        factors: number of multiplicative factors F (rank of the synthesised
            matrix's factorisation).
        factor_initializer: initializer of W_fv, the input-to-factor gains.
            Default N(1, 0.1): a one-hot input then synthesises
            `W_hf diag(~1) W_fh`, close to a product of the two orthogonal
            recurrent matrices, so every character starts with a
            well-conditioned transition (Keras's near-zero Glorot gains would
            shrink it to a spectral radius of about 0.1).
        Other arguments: see `ProjectedCell` (`input_dim` enables token ids;
            `recurrent_initializer` initialises W_fh and W_hf).
    """

    def __init__(self, units, factors, factor_initializer=None, **kwargs):
        check_positive("factors", factors, "Pass the number of factors, e.g. factors=units.")
        super().__init__(units, **kwargs)
        self.factors = factors
        if factor_initializer is None:
            factor_initializer = keras.initializers.RandomNormal(mean=1.0, stddev=0.1)
        self.factor_initializer = keras.initializers.get(factor_initializer)

    def build(self, input_shape):
        features = self.input_features(input_shape)
        self.kernel = self.add_kernel("kernel", (features, self.units))
        self.input_factor_kernel = self.add_weight(
            name="input_factor_kernel",
            shape=(features, self.factors),
            initializer=self.factor_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.hidden_factor_kernel = self.add_recurrent_kernel(
            "hidden_factor_kernel", (self.units, self.factors)
        )
        self.factor_hidden_kernel = self.add_recurrent_kernel(
            "factor_hidden_kernel", (self.factors, self.units)
        )
        self.bias = self.add_bias("bias", (self.units,)) if self.use_bias else None

    def project_inputs(self, inputs):
        """`(W_hv v_t + b_h, W_fv v_t)`: `(..., units)` and `(..., factors)`."""
        additive = self.project(inputs, self.kernel)
        if self.bias is not None:
            additive = additive + self.bias
        return additive, self.project(inputs, self.input_factor_kernel)

    def recurrent_params(self):
        return read(self.hidden_factor_kernel), read(self.factor_hidden_kernel)

    def step(self, projected, states, params):
        hidden_factor, factor_hidden = params
        additive, gains = projected
        factors = gains * ops.matmul(states[0], hidden_factor)
        h = self.activation(ops.matmul(factors, factor_hidden) + additive)
        return h, [h]

    def get_config(self):
        config = {
            "factors": self.factors,
            "factor_initializer": keras.initializers.serialize(self.factor_initializer),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="rnnzoo")
class MRNN(CellRNN):
    """Multiplicative RNN layer (thesis eq. 5.4-5.7), a drop-in for `keras.layers.SimpleRNN`.

    Inputs are float vectors `(batch, time, features)` or, with `input_dim`
    (the vocabulary size), integer token ids `(batch, time)`; the token path
    gathers weight rows and equals the one-hot path.

    Args:
        units: hidden state size.
        factors: number of multiplicative factors F.
        input_dim: vocabulary size for token-id inputs (optional).
        activation, use_bias, *_initializer, *_regularizer: as in `MRNNCell`.
        return_sequences, return_state, go_backwards, stateful, unroll,
            zero_output_for_mask: as in `keras.layers.RNN`. `unroll=True` (or
            `rnnzoo.layers.forward_mode_recurrence()`) makes the layer
            differentiable by `tf.autodiff.ForwardAccumulator`.

    Example:
        model = keras.Sequential([
            keras.Input((None,), dtype="int32"),
            MRNN(256, factors=256, input_dim=86, return_sequences=True),
            keras.layers.Dense(86),
        ])
    """

    def __init__(
        self,
        units,
        factors,
        input_dim=None,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        factor_initializer=None,
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        cell = MRNNCell(
            units,
            factors,
            input_dim=input_dim,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            factor_initializer=factor_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            **self.cell_kwargs(kwargs, "mrnn_cell"),
        )
        super().__init__(cell, **kwargs)
