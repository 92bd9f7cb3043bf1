"""The Recurrent Temporal RBM and the simplified Temporal RBM (thesis ch. 3).

Both layers model a sequence of visible vectors v_1..v_T (e.g. video frames)
with one RBM per time step whose hidden bias depends on the past:

    b_t = b_h + W' h_{t-1}                                  (thesis eq. 3.14-3.15)
    P(v_t, h_t | h_{t-1}) ~ exp(v_t'b_v + h_t'W v_t + h_t'b_t)

The RTRBM (eq. 3.16-3.22, Alg. 3-4) replaces the sampled h_{t-1} by the
deterministic mean-field chain

    r_t = sigmoid(W v_t + b_h + W' r_{t-1}),   r_0 = h_0 (learned)   (eq. 3.20)

so the dynamic bias b_t = b_h + W' r_{t-1} is a differentiable function of
the past frames and training backpropagates through the r chain. The TRBM
baseline samples h_{t-1} instead and does not backpropagate through time.

Calling either layer is deterministic: it returns the r chain (for the TRBM,
the hidden probabilities with probabilities in place of the sampled history,
which is the same mean-field recursion). Sampling is explicit, in the methods
`gibbs`, `cd_loss`, `predict_frames`, `predict_next` and `generate`, each
with a `seed`: a scalar (one stream for the whole batch) or an int vector
`[batch]` (one stream per row, so a row's samples do not depend on the other
rows of the batch).

Weights (row-vector convention, `v @ kernel`), named alike in both layers:
`kernel` W^T `(visible, units)`, `recurrent_kernel` W'^T `(units, units)`,
`hidden_bias` b_h, `visible_bias` b_v, `initial_hidden` h_0.

Visible units are binary (eq. 2.24-2.27) or Gaussian with unit variance
(eq. 2.33 with s = 1: v | h ~ N(b_v + W^T h, I); standardise real-valued data).
"""

import keras
import tensorflow as tf

from rnnzoo.layers.base import check_positive

VISIBLE_TYPES = ("binary", "gaussian")
EXPECTATIONS = ("gibbs", "mean_field")


def _check_count(name, value, hint, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}. {hint}")


def _random(kind, shape, seed, salt, dtype=tf.float32):
    """Stateless `uniform` or `normal` draws of `shape` (`[batch, ...]`).

    `seed`: scalar (one stream for the batch) or `[batch]` vector (one stream per row);
    `salt`: an int distinguishing the draws made from the same seed.
    """
    draw = tf.random.stateless_uniform if kind == "uniform" else tf.random.stateless_normal
    seed = tf.cast(seed, tf.int64)
    salt = tf.cast(salt, tf.int64)
    if seed.shape.rank == 0:
        return draw(shape, tf.stack([seed, salt]), dtype=dtype)
    row_shape = shape[1:]
    return tf.map_fn(lambda s: draw(row_shape, tf.stack([s, salt]), dtype=dtype), seed,
                     fn_output_signature=dtype)


def _bernoulli(probabilities, seed, salt):
    uniform = _random("uniform", tf.shape(probabilities), seed, salt, probabilities.dtype)
    return tf.cast(uniform < probabilities, probabilities.dtype)


class TemporalRBM(keras.layers.Layer):
    """Shared parameters and methods of `RTRBM` and `TRBM` (see the module docstring).

    Args:
        units: hidden units.
        visible: `"binary"` or `"gaussian"` visible units.
        return_biases: `call` also returns the per-step hidden biases b_t `(batch, time, units)`.
        kernel_initializer: initializer of W (the thesis pretrains it by static CD, §3.11).
        recurrent_initializer, bias_initializer, initial_hidden_initializer: of W',
            b_h and b_v, h_0 (thesis §3.11: N(0, 0.005^2)).
    """

    sampled_history = False
    """TRBM: the history h_{t-1} in training is sampled, without backpropagation through time."""

    def __init__(
        self,
        units,
        visible="binary",
        return_biases=False,
        kernel_initializer=None,
        recurrent_initializer=None,
        bias_initializer=None,
        initial_hidden_initializer=None,
        **kwargs,
    ):
        check_positive("units", units, "Pass the number of hidden units, e.g. units=400.")
        if visible not in VISIBLE_TYPES:
            raise ValueError(
                f"visible={visible!r} is not a visible unit type; choose one of {', '.join(VISIBLE_TYPES)}."
            )
        super().__init__(**kwargs)
        self.units = units
        self.visible = visible
        self.return_biases = return_biases
        small = {"class_name": "RandomNormal", "config": {"stddev": 0.005}}
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or {"class_name": "RandomNormal", "config": {"stddev": 0.01}})
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer or small)
        self.bias_initializer = keras.initializers.get(bias_initializer or small)
        self.initial_hidden_initializer = keras.initializers.get(initial_hidden_initializer or small)
        self.supports_masking = True

    # ------------------------------------------------------------------ Keras

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                f"{type(self).__name__} needs a known number of visible units (last input axis); "
                f"got input shape {input_shape}."
            )
        self.visible_units = int(features)
        self.kernel = self.add_weight(name="kernel", shape=(features, self.units),
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(self.units, self.units),
                                                initializer=self.recurrent_initializer)
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(self.units,),
                                           initializer=self.bias_initializer)
        self.visible_bias = self.add_weight(name="visible_bias", shape=(features,),
                                            initializer=self.bias_initializer)
        self.initial_hidden = self.add_weight(name="initial_hidden", shape=(self.units,),
                                              initializer=self.initial_hidden_initializer)

    def call(self, inputs, mask=None):
        """The mean-field chain r_1..r_T `(batch, time, units)` (eq. 3.20), and the biases b_t
        `(batch, time, units)` with `return_biases`. A masked step carries r_{t-1} over."""
        r, biases = self._chain(inputs, mask)
        return (r, biases) if self.return_biases else r

    def compute_output_shape(self, input_shape):
        shape = (*input_shape[:-1], self.units)
        return (shape, shape) if self.return_biases else shape

    def compute_mask(self, inputs, mask=None):
        return (mask, mask) if self.return_biases and mask is not None else mask

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "visible": self.visible,
            "return_biases": self.return_biases,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "initial_hidden_initializer": keras.initializers.serialize(self.initial_hidden_initializer),
        }

    # ------------------------------------------------------------- the chain

    def _check_frames(self, frames):
        frames = tf.convert_to_tensor(frames, self.compute_dtype)
        if frames.shape.rank != 3:
            raise ValueError(
                f"expected frames of shape (batch, time, {getattr(self, 'visible_units', 'visible')}), "
                f"got shape {frames.shape}."
            )
        if not self.built:
            self.build(frames.shape)
        if frames.shape[-1] is not None and frames.shape[-1] != self.visible_units:
            raise ValueError(
                f"frames have {frames.shape[-1]} visible units per step, the layer {self.visible_units}; "
                f"pass frames of shape (batch, time, {self.visible_units})."
            )
        return frames

    def _chain(self, frames, mask=None, uniforms=None):
        """`(h, biases)`: the hidden chain and b_t = b_h + W' h_{t-1}, each `(batch, time, units)`.

        `uniforms` `(batch, time, units)`: sample h_t = [u_t < P(h_t | v_t, h_{t-1})] (the TRBM's
        sampled history) instead of the mean-field r_t.
        """
        frames = tf.convert_to_tensor(frames, self.compute_dtype)
        batch = tf.shape(frames)[0]
        driven = tf.transpose(tf.matmul(frames, self.kernel) + self.hidden_bias, [1, 0, 2])
        steps = [driven]
        if mask is not None:
            steps.append(tf.transpose(tf.cast(mask, frames.dtype), [1, 0])[..., None])
        if uniforms is not None:
            steps.append(tf.transpose(uniforms, [1, 0, 2]))
        recurrent = tf.convert_to_tensor(self.recurrent_kernel)
        r0 = tf.broadcast_to(self.initial_hidden, [batch, self.units])

        def step(previous, elements):
            r = tf.sigmoid(elements[0] + tf.matmul(previous, recurrent))
            if uniforms is not None:
                r = tf.cast(elements[-1] < r, r.dtype)
            if mask is not None:
                keep = elements[1]
                r = keep * r + (1.0 - keep) * previous
            return r

        chain = tf.transpose(tf.scan(step, tuple(steps), initializer=r0), [1, 0, 2])
        previous = tf.concat([r0[:, None], chain[:, :-1]], axis=1)
        biases = self.hidden_bias + tf.matmul(previous, recurrent)
        return chain, biases

    def hidden_biases(self, frames, mask=None):
        """b_t = b_h + W' r_{t-1} `(batch, time, units)`, r from the true history (eq. 3.20)."""
        return self._chain(self._check_frames(frames), mask)[1]

    def _blank(self, frames):
        """One all-zero frame per row `(batch, 1, visible)`: what chains start from before the first frame."""
        return tf.zeros([tf.shape(frames)[0], 1, self.visible_units], frames.dtype)

    def last_state(self, frames):
        """r_t after the last frame `(batch, units)`; h_0 for sequences of no frames."""
        frames = self._check_frames(frames)
        r0 = tf.broadcast_to(self.initial_hidden, [tf.shape(frames)[0], self.units])
        # a graph cannot stack the chain of an empty sequence when the batch size is unknown
        return tf.cond(tf.shape(frames)[1] > 0, lambda: self._chain(frames)[0][:, -1], lambda: r0)

    # ------------------------------------------------------- the step's RBM

    def free_energy(self, frames, biases):
        """F(v_t; b_t) `(batch, time)` of each step's RBM with hidden bias b_t (eq. 2.27, 2.33):
        binary -v'b_v - sum_j softplus(W v + b)_j; Gaussian |v - b_v|^2 / 2 - sum_j softplus(W v + b)_j."""
        frames = tf.convert_to_tensor(frames, self.compute_dtype)
        hidden = tf.reduce_sum(tf.nn.softplus(tf.matmul(frames, self.kernel) + biases), axis=-1)
        if self.visible == "binary":
            return -tf.reduce_sum(frames * self.visible_bias, axis=-1) - hidden
        return 0.5 * tf.reduce_sum(tf.square(frames - self.visible_bias), axis=-1) - hidden

    def visible_mean(self, hidden):
        """E[v | h]: sigmoid(W^T h + b_v) (binary) or W^T h + b_v (Gaussian)."""
        activation = tf.matmul(hidden, self.kernel, transpose_b=True) + self.visible_bias
        return tf.sigmoid(activation) if self.visible == "binary" else activation

    def _sample_visible(self, mean, seed, salt):
        if self.visible == "binary":
            return _bernoulli(mean, seed, salt)
        return mean + _random("normal", tf.shape(mean), seed, salt, mean.dtype)

    def gibbs(self, frames, biases, steps, seed, salt=0):
        """k steps of block Gibbs sampling in every step's RBM at once (the biases do not depend
        on the samples, so all time steps' chains run in parallel).

        Args:
            frames: `(batch, time, visible)` starting states of the chains.
            biases: `(batch, time, units)` the steps' hidden biases b_t.
            steps: k >= 1, a Python int or int tensor.
            seed: scalar or `[batch]` int seed; `salt`: distinguishes calls with the same seed.

        Returns:
            `(v_k, mean_k)`: the visible sample after k steps and E[v | h_k], the expectation
            of that last visible update (`mean_k` is the Rao-Blackwellised estimate of E[v]).
        """
        frames = tf.convert_to_tensor(frames, self.compute_dtype)
        steps = tf.cast(steps, tf.int32)
        salt = tf.cast(salt, tf.int64) * 1_000_003

        def body(i, v, _):
            p_hidden = tf.sigmoid(tf.matmul(v, self.kernel) + biases)
            h = _bernoulli(p_hidden, seed, salt + 2 * tf.cast(i, tf.int64))
            mean = self.visible_mean(h)
            return i + 1, self._sample_visible(mean, seed, salt + 2 * tf.cast(i, tf.int64) + 1), mean

        _, sample, mean = tf.while_loop(lambda i, v, m: i < steps, body,
                                        (tf.constant(0), frames, tf.zeros_like(frames)))
        return sample, mean

    def mean_field(self, frames, biases, steps):
        """k deterministic mean-field updates p <- E[v | h = P(h | p)] from `frames` (no sampling)."""
        p = tf.convert_to_tensor(frames, self.compute_dtype)
        for _ in range(steps):
            p = self.visible_mean(tf.sigmoid(tf.matmul(p, self.kernel) + biases))
        return p

    # ------------------------------------------------------------- training

    def training_biases(self, frames, seed, mask=None):
        """The hidden biases CD trains with: the RTRBM's b_t = b_h + W' r_{t-1}, differentiable
        through the r chain (eq. 3.21-3.25); the TRBM's from a sampled history h_{t-1}
        (eq. 3.14-3.15), the samples held constant."""
        frames = self._check_frames(frames)
        if not self.sampled_history:
            return self._chain(frames, mask)[1]
        uniforms = _random("uniform", tf.concat([tf.shape(frames)[:2], [self.units]], 0), seed, -1, frames.dtype)
        chain, _ = self._chain(frames, mask, uniforms=uniforms)
        chain = tf.stop_gradient(chain)
        batch = tf.shape(frames)[0]
        r0 = tf.broadcast_to(self.initial_hidden, [batch, self.units])
        previous = tf.concat([r0[:, None], chain[:, :-1]], axis=1)
        return self.hidden_bias + tf.matmul(previous, self.recurrent_kernel)

    def free_energy_gap(self, frames, negatives, biases, mask=None):
        """sum_t [F(v_t; b_t) - F(stop_gradient(v~_t); b_t)] `(batch,)`: its gradient is minus
        the CD-k estimate of d sum_t log P(v_t | v_<t), through b_t's dependence on the past
        frames included (thesis eq. 3.21-3.25; see docs/rtrbm.md for the derivation)."""
        gap = self.free_energy(frames, biases) - self.free_energy(tf.stop_gradient(negatives), biases)
        if mask is not None:
            gap = gap * tf.cast(mask, gap.dtype)
        return tf.reduce_sum(gap, axis=-1)

    def cd_loss(self, frames, cd_steps, seed, mask=None):
        """`(loss, negatives)`: the batch mean of `free_energy_gap / T` with v~ the k-step Gibbs
        sample started at the data (CD-k), and v~. Minimising it is CD-k with BPTT through the
        r chain (RTRBM) or CD-k at each step given the sampled history (TRBM), the gradient
        divided by the sequence length (thesis §3.11)."""
        frames = self._check_frames(frames)
        biases = self.training_biases(frames, seed, mask)
        negatives, _ = self.gibbs(frames, tf.stop_gradient(biases), cd_steps, seed, salt=1)
        negatives = tf.stop_gradient(negatives)
        if mask is None:
            length = tf.cast(tf.shape(frames)[1], frames.dtype)
        else:
            length = tf.maximum(tf.reduce_sum(tf.cast(mask, frames.dtype), axis=-1), 1.0)
        gap = self.free_energy_gap(frames, negatives, biases, mask) / length
        return tf.reduce_mean(gap), negatives

    # ------------------------------------------------------ prediction, generation

    def _expected(self, start, biases, steps, expectation, chains, seed):
        """E[v] of the RBMs with hidden biases `biases` `(batch, time, units)`, chains started at
        `start` `(batch, time, visible)`: `gibbs` (mean over `chains` chains of E[v | h_k] after k
        Gibbs steps) or `mean_field` (k mean-field updates)."""
        if expectation not in EXPECTATIONS:
            raise ValueError(
                f"expectation={expectation!r} is not a way to take the expectation; choose one of "
                f"{', '.join(EXPECTATIONS)}."
            )
        _check_count("gibbs_steps", steps, "Pass the Gibbs steps of prediction, e.g. 25.")
        if expectation == "mean_field":
            return self.mean_field(start, biases, steps)
        _check_count("chains", chains, "Pass the number of Gibbs chains averaged, e.g. 1.")
        total = 0.0
        for chain in range(chains):
            _, mean = self.gibbs(start, biases, steps, seed, salt=100 + chain)
            total += mean
        return total / chains

    def predict_frames(self, frames, gibbs_steps=25, expectation="gibbs", chains=1, seed=0):
        """Predictions of every frame from its true history `(batch, time, visible)` (§3.11.1):
        frame t's RBM has bias b_h + W' r_{t-1} with r from frames 1..t-1; its chains start at
        frame t-1 (zeros for t = 1) and the prediction is E[v_t] (see `_expected`)."""
        frames = self._check_frames(frames)
        biases = self.hidden_biases(frames)
        start = tf.concat([self._blank(frames), frames[:, :-1]], axis=1)
        return self._expected(start, biases, gibbs_steps, expectation, chains, seed)

    def predict_next(self, frames, gibbs_steps=25, expectation="gibbs", chains=1, seed=0):
        """E[v_{t+1} | v_1..v_t] `(batch, visible)` as `predict_frames` takes it, for the frame
        after `frames` `(batch, t, visible)` (t may be 0: then the first frame's prediction)."""
        frames = self._check_frames(frames)
        bias = self.hidden_bias + tf.matmul(self.last_state(frames), self.recurrent_kernel)
        start = tf.concat([self._blank(frames), frames], axis=1)[:, -1:]
        return self._expected(start, bias[:, None], gibbs_steps, expectation, chains, seed)[:, 0]

    def generate(self, num_frames, prefix=None, batch_size=None, gibbs_steps=25, seed=0):
        """New frames after `prefix` (thesis Alg. 3): for each frame, k Gibbs steps in the RBM
        with bias b_h + W' h_{t-1}, started at the previous frame (zeros at the start); the
        frame's sample v_t drives the history: the RTRBM's h_t = r_t = sigmoid(W v_t + b_h +
        W' h_{t-1}), the TRBM's h_t ~ P(h_t | v_t, h_{t-1}).

        Args:
            num_frames: frames to generate (int or scalar int tensor).
            prefix: `(batch, t, visible)` frames to continue, or `None` (then `batch_size`).
            seed: scalar or `[batch]` int seed.

        Returns:
            `(batch, num_frames, visible)`: each frame's E[v_t | h] of its last Gibbs step (pixel
            probabilities for binary units; the chain continues from the sample).
        """
        if prefix is None:
            _check_count("batch_size", batch_size, "Pass prefix frames or a batch_size.")
            prefix = tf.zeros([batch_size, 0, self.visible_units], self.compute_dtype)
        prefix = self._check_frames(prefix)
        state = self.last_state(prefix)
        previous = tf.concat([self._blank(prefix), prefix], axis=1)[:, -1]
        num_frames = tf.convert_to_tensor(num_frames, tf.int32)

        def body(t, h, v, frames):
            bias = (self.hidden_bias + tf.matmul(h, self.recurrent_kernel))[:, None]
            salt = 10 * tf.cast(t, tf.int64) + 1000
            sample, mean = self.gibbs(v[:, None], bias, gibbs_steps, seed, salt=salt)
            sample, mean = sample[:, 0], mean[:, 0]
            p_hidden = tf.sigmoid(tf.matmul(sample, self.kernel) + bias[:, 0])
            if self.sampled_history:
                p_hidden = _bernoulli(p_hidden, seed, salt * 1_000_003 - 7)
            return t + 1, p_hidden, sample, frames.write(t, mean)

        array = tf.TensorArray(self.compute_dtype, size=num_frames, element_shape=previous.shape)
        _, _, _, array = tf.while_loop(lambda t, *_: t < num_frames, body,
                                       (tf.constant(0), state, previous, array))
        frames = array.stack()
        return tf.transpose(tf.reshape(frames, [num_frames, tf.shape(prefix)[0], self.visible_units]),
                            [1, 0, 2])


@keras.saving.register_keras_serializable(package="rnnzoo")
class RTRBM(TemporalRBM):
    """Recurrent Temporal RBM (thesis eq. 3.16-3.22, Alg. 3-4).

    Calling it on frames `(batch, time, visible)` returns the mean-field chain
    r_t = sigmoid(W v_t + b_h + W' r_{t-1}) (eq. 3.20); `cd_loss` trains it by
    CD-k at every step and backpropagation through the r chain; `predict_frames`,
    `predict_next` and `generate` (Alg. 3) use the step RBMs. See `TemporalRBM`.

    Example:
        rbm = RTRBM(400)
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
        with tf.GradientTape() as tape:
            loss, _ = rbm.cd_loss(frames, cd_steps=25, seed=step)
        optimizer.apply(tape.gradient(loss, rbm.trainable_variables), rbm.trainable_variables)
        video = rbm.generate(100, batch_size=4, seed=0)
    """


@keras.saving.register_keras_serializable(package="rnnzoo")
class TRBM(TemporalRBM):
    """Simplified Temporal RBM (thesis eq. 3.14-3.15): only the hidden bias is dynamic,
    b_t = b_h + W' h_{t-1}, with h_{t-1} sampled (`cd_loss`: from P(h_{t-1} | v_{t-1}, h_{t-2}),
    no backpropagation through time; `generate`: sampled hidden states).

    Calling it returns the hidden probabilities P(h_t = 1 | v_t, h_{t-1}) with probabilities
    in place of the sampled history (the mean-field recursion the RTRBM uses); its parameters
    are named as the RTRBM's, so the two compare like for like. See `TemporalRBM`.
    """

    sampled_history = True
