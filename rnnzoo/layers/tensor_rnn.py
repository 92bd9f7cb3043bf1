"""Tensor (bilinear) RNN: full 3-way tensor or CP-decomposed (thesis eq. 5.3; honours draft §3)."""

import keras
import tensorflow as tf
from keras import ops

from rnnzoo.layers.base import CellRNN, ProjectedCell, check_positive, read


@keras.saving.register_keras_serializable(package="rnnzoo")
class TensorRNNCell(ProjectedCell):
    """One step of a tensor RNN: the input selects a hidden-to-hidden matrix.

    With a 3-way tensor `W` of shape `(inputs, units, units)` the input gives
    the matrix `W^(v_t) = sum_m v_t^(m) W^(m)` (thesis eq. 5.3) and

        h_t = tanh(W_hv v_t + W_hh h_{t-1} + b_h + h_{t-1} W^(v_t))

    i.e. the bilinear form `B(v, h)_k = sum_{m,j} v_m h_j W_{m j k}` plus the
    usual additive input and recurrent terms (honours draft §2.2.3, §4.1).

    With `rank=R` the tensor is CP-decomposed (CANDECOMP/PARAFAC, draft
    §3.3.1) into `W_{m j k} = sum_r A_{m r} B_{j r} C_{r k}`, so
    `B(v, h) = ((v A) * (h B)) C` costs O(R (inputs + 2 units)) per example
    instead of O(inputs units^2).

    Weights: `kernel` W_hv `(inputs, units)`, `recurrent_kernel` W_hh
    `(units, units)`, `bias`, and either `tensor` `(inputs, units, units)`
    or `input_factor_kernel` A `(inputs, rank)`, `hidden_factor_kernel` B
    `(units, rank)`, `factor_output_kernel` C `(rank, units)`.

    Args:
        units: hidden state size.
        rank: None for the full tensor, or the number of CP components.
        tensor_initializer: initializer of the full tensor or of the CP
            factors.
        Other arguments: see `ProjectedCell`.
    """

    def __init__(self, units, rank=None, tensor_initializer="glorot_uniform", **kwargs):
        if rank is not None:
            check_positive("rank", rank, "Pass a positive CP rank, or rank=None for the full tensor.")
        super().__init__(units, **kwargs)
        self.rank = rank
        self.tensor_initializer = keras.initializers.get(tensor_initializer)

    def _add_tensor_weight(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.tensor_initializer,
            regularizer=self.recurrent_regularizer,
        )

    def build(self, input_shape):
        features = self.input_features(input_shape)
        self.kernel = self.add_kernel("kernel", (features, self.units))
        self.recurrent_kernel = self.add_recurrent_kernel(
            "recurrent_kernel", (self.units, self.units)
        )
        self.bias = self.add_bias("bias", (self.units,)) if self.use_bias else None
        if self.rank is None:
            self.tensor = self._add_tensor_weight("tensor", (features, self.units, self.units))
        else:
            self.input_factor_kernel = self._add_tensor_weight(
                "input_factor_kernel", (features, self.rank)
            )
            self.hidden_factor_kernel = self._add_tensor_weight(
                "hidden_factor_kernel", (self.units, self.rank)
            )
            self.factor_output_kernel = self._add_tensor_weight(
                "factor_output_kernel", (self.rank, self.units)
            )

    def project_inputs(self, inputs):
        """`(W_hv v + b, v A)` (CP) or `(W_hv v + b, vec(W^(v)))` (full tensor)."""
        additive = self.project(inputs, self.kernel)
        if self.bias is not None:
            additive = additive + self.bias
        if self.rank is not None:
            return additive, self.project(inputs, self.input_factor_kernel)
        tensor = ops.reshape(self.tensor, (-1, self.units * self.units))
        return additive, self.project(inputs, tensor)

    def recurrent_params(self):
        if self.rank is None:
            return (read(self.recurrent_kernel),)
        return (
            read(self.recurrent_kernel),
            read(self.hidden_factor_kernel),
            read(self.factor_output_kernel),
        )

    def step(self, projected, states, params):
        h_prev = states[0]
        additive, selected = projected
        pre = additive + ops.matmul(h_prev, params[0])
        if self.rank is None:
            # `selected` holds the input-selected matrix W^(v_t), flattened.
            matrix = tf.reshape(selected, tf.concat([tf.shape(h_prev), [self.units]], 0))
            pre = pre + tf.einsum("bj,bjk->bk", h_prev, matrix)
        else:
            _, hidden_factor, factor_output = params
            pre = pre + ops.matmul(selected * ops.matmul(h_prev, hidden_factor), factor_output)
        h = self.activation(pre)
        return h, [h]

    def get_config(self):
        config = {
            "rank": self.rank,
            "tensor_initializer": keras.initializers.serialize(self.tensor_initializer),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="rnnzoo")
class TensorRNN(CellRNN):
    """Tensor RNN layer, full (`rank=None`) or CP-decomposed (`rank=R`); see `TensorRNNCell`.

    The full tensor's per-step matrix `W^(v_t)` is computed for every step
    before the loop (`(batch, time, units^2)` memory): use `rank` for large
    `units`. Token ids are accepted given `input_dim`.

    Args:
        units: hidden state size.
        rank: None (full 3-way tensor) or the CP rank.
        input_dim, activation, use_bias, *_initializer, *_regularizer: as in
            `TensorRNNCell` / `ProjectedCell`.
        return_sequences, return_state, go_backwards, stateful, unroll,
            zero_output_for_mask: as in `keras.layers.RNN`.
    """

    def __init__(
        self,
        units,
        rank=None,
        input_dim=None,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        tensor_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        cell = TensorRNNCell(
            units,
            rank=rank,
            input_dim=input_dim,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            tensor_initializer=tensor_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            **self.cell_kwargs(kwargs, "tensor_rnn_cell"),
        )
        super().__init__(cell, **kwargs)
