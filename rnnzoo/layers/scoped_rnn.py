"""VL-iRNN: an iRNN with untied parameters per time scope and a growing tying penalty (longer-rnns §2, §6.3)."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from rnnzoo.layers.base import CellRNN, ProjectedCell, check_positive, read


def paper_penalty_schedule():
    """rho of longer-rnns §6.3: 2e-6, multiplied by 1.001 every 37 training steps."""
    return keras.optimizers.schedules.ExponentialDecay(
        2e-6, decay_steps=37, decay_rate=1.001, staircase=True
    )


def _tiled(initializer, scopes):
    """Initialises scope 0 with `initializer` and copies it to every scope (tied start)."""

    def initialize(shape, dtype=None):
        return ops.tile(initializer(shape[1:], dtype=dtype)[None], [scopes] + [1] * (len(shape) - 1))

    return initialize


@keras.saving.register_keras_serializable(package="rnnzoo")
class ScopedRNNCell(ProjectedCell):
    """One step of an RNN whose parameters depend on the time scope of the step.

    Time steps are bucketed into `num_scopes` consecutive scopes of
    `scope_length` steps; steps past the last scope use the last scope. Scope
    k has its own theta_k = (W_xh^k, W_hh^k, b^k) and

        h_t = relu(W_xh^k(t) x_t + W_hh^k(t) h_{t-1} + b^k(t)),
        k(t) = min(floor(t / scope_length), num_scopes - 1)

    (longer-rnns §2: "a new set of RNN parameters theta_t for each time step",
    bucketed into scopes). Every scope starts from the same iRNN
    initialisation (identity W_hh, zero bias), so the untied network starts
    as the tied one.

    The cell's second state is the number of steps it has processed
    (`(batch, 1)`, float), which selects the scope; it makes the cell usable
    inside `keras.layers.RNN` and lets a stateful layer continue a sequence
    in the right scope. Masked steps do not advance it.

    Weights: `kernel` `(scopes, inputs, units)`, `recurrent_kernel`
    `(scopes, units, units)`, `bias` `(scopes, units)`.
    """

    def __init__(
        self,
        units,
        num_scopes,
        scope_length,
        activation="relu",
        recurrent_initializer="identity",
        **kwargs,
    ):
        check_positive("num_scopes", num_scopes, "Pass the number of time scopes, e.g. 10.")
        check_positive(
            "scope_length", scope_length, "Pass the time steps per scope, e.g. 40 for T=400 in 10."
        )
        super().__init__(
            units, activation=activation, recurrent_initializer=recurrent_initializer, **kwargs
        )
        self.num_scopes = num_scopes
        self.scope_length = scope_length
        self.state_size = [units, 1]

    def build(self, input_shape):
        features = self.input_features(input_shape)
        k = self.num_scopes
        self.kernel = self.add_weight(
            name="kernel",
            shape=(k, features, self.units),
            initializer=_tiled(self.kernel_initializer, k),
            regularizer=self.kernel_regularizer,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(k, self.units, self.units),
            initializer=_tiled(self.recurrent_initializer, k),
            regularizer=self.recurrent_regularizer,
        )
        self.bias = (
            self.add_weight(
                name="bias",
                shape=(k, self.units),
                initializer=_tiled(self.bias_initializer, k),
                regularizer=self.bias_regularizer,
            )
            if self.use_bias
            else None
        )

    def scope_parameters(self):
        """The untied parameter groups, each `(scopes, ...)`."""
        return [w for w in (self.kernel, self.recurrent_kernel, self.bias) if w is not None]

    def project_inputs(self, inputs):
        """`W_xh^k x_t + b^k` for every scope k -> `(..., scopes * units)`."""
        kernel = ops.reshape(ops.transpose(self.kernel, (1, 0, 2)), (-1, self.num_scopes * self.units))
        projected = self.project(inputs, kernel)
        if self.bias is not None:
            projected = projected + ops.reshape(self.bias, (-1,))
        return projected

    def recurrent_params(self):
        """`[W_hh^1 ... W_hh^K]` side by side, `(units, scopes * units)`, read once per sequence."""
        kernel = ops.transpose(read(self.recurrent_kernel), (1, 0, 2))
        return (ops.reshape(kernel, (self.units, self.num_scopes * self.units)),)

    def step(self, projected, states, params):
        # Every scope's pre-activation from one matmul, then each row's own scope:
        # fewer ops per step than a per-row one-hot contraction or weight gather.
        # `tf.gather_nd` picks it: its gradient and JVP compile with XLA inside
        # the loop for a batch size known only at run time, where those of
        # `ops.take_along_axis` (a broadcast to a computed shape) and of a
        # batched `tf.gather` (transposes by computed permutations) do not.
        (recurrent_kernels,) = params
        h_prev, steps = states
        scope = ops.minimum(ops.cast(steps // self.scope_length, "int32"), self.num_scopes - 1)
        per_scope = ops.reshape(
            projected + ops.matmul(h_prev, recurrent_kernels), (-1, self.num_scopes, self.units)
        )
        h = self.activation(tf.gather_nd(per_scope, scope, batch_dims=1))
        return h, [h, steps + 1]

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, self.units), dtype=self.compute_dtype),
            ops.zeros((batch_size, 1), dtype=self.compute_dtype),
        ]

    def get_config(self):
        config = {"num_scopes": self.num_scopes, "scope_length": self.scope_length}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="rnnzoo")
class ScopedRNN(CellRNN):
    """VL-iRNN layer: untied iRNN parameters per time scope, pulled together by a penalty.

    The layer adds the tying penalty of longer-rnns §2 as a layer loss,

        P = rho(step) * sum_{k=1}^{K-1} ||theta_k - theta_{k+1}||^2

    summed over all parameter groups (input kernel, recurrent kernel, bias),
    where `rho` follows `penalty` (a float, or a Keras schedule called with the
    layer's training step; default the §6.3 schedule: 2e-6 x 1.001 every 37
    steps). The step counter `penalty_step` advances once per call with
    `training=True`, i.e. once per `model.fit` step. After training,
    `collapse()` returns the tied iRNN (a `keras.layers.SimpleRNN` whose
    weights are the scopes' mean).

    `return_state=True` returns `[h, steps]` (see `ScopedRNNCell`).

    Args:
        units: hidden state size.
        num_scopes: number of untied scopes K.
        scope_length: time steps per scope.
        penalty: rho, a float or a `keras.optimizers.schedules` schedule.
        input_dim, activation, use_bias, *_initializer, *_regularizer: as in
            `ScopedRNNCell` / `ProjectedCell` (defaults: ReLU, identity
            recurrent kernel, zero bias: the iRNN).
        return_sequences, return_state, go_backwards, stateful, unroll,
            zero_output_for_mask: as in `keras.layers.RNN`.
    """

    def __init__(
        self,
        units,
        num_scopes,
        scope_length,
        penalty=None,
        input_dim=None,
        activation="relu",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="identity",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        cell = ScopedRNNCell(
            units,
            num_scopes,
            scope_length,
            input_dim=input_dim,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            **self.cell_kwargs(kwargs, "scoped_rnn_cell"),
        )
        super().__init__(cell, **kwargs)
        if penalty is None:
            penalty = paper_penalty_schedule()
        elif isinstance(penalty, dict):
            penalty = keras.optimizers.schedules.deserialize(penalty)
        elif not callable(penalty):
            if not isinstance(penalty, (int, float)) or penalty < 0:
                raise ValueError(
                    f"`penalty` must be a non-negative float or a Keras schedule, got {penalty!r}."
                )
            penalty = float(penalty)
        self.penalty = penalty

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        self.penalty_step = self.add_weight(
            name="penalty_step", shape=(), initializer="zeros", dtype="int64", trainable=False
        )

    def penalty_weight(self):
        """rho at the current training step."""
        if callable(self.penalty):
            return ops.cast(self.penalty(self.penalty_step), self.compute_dtype)
        return ops.convert_to_tensor(self.penalty, self.compute_dtype)

    def scope_distance(self):
        """sum_k ||theta_k - theta_{k+1}||^2 over all parameter groups (without rho)."""
        total = 0.0
        for weight in self.cell.scope_parameters():
            total = total + ops.sum(ops.square(weight[1:] - weight[:-1]))
        return total

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if training:
            self.penalty_step.assign_add(1)
        self.add_loss(self.penalty_weight() * self.scope_distance())
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def collapse(self):
        """The tied iRNN: a `keras.layers.SimpleRNN` with the mean of the scopes' weights.

        It takes float inputs (one-hot vectors for token ids) and returns what
        this layer returns, except that `return_state` gives `[h]` only.
        """
        cell = self.cell
        rnn = keras.layers.SimpleRNN(
            cell.units,
            activation=cell.activation,
            use_bias=cell.use_bias,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
            dtype=self.dtype_policy,
        )
        features = cell.kernel.shape[1]
        rnn.build((None, None, features))
        rnn.set_weights([np.mean(np.asarray(w), axis=0) for w in cell.scope_parameters()])
        return rnn

    def get_config(self):
        penalty = self.penalty
        if callable(penalty):
            penalty = keras.optimizers.schedules.serialize(penalty)
        return {**super().get_config(), "penalty": penalty}
