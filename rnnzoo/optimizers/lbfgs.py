"""L-BFGS with memory 100, the baseline of thesis §6.7.1, run in-graph one iteration per step.

The thesis compares AHF with minFunc's L-BFGS (memory 100). Here one optimizer step (one
`fit` step on one batch) is one L-BFGS iteration on that batch (Nocedal & Wright 2006,
Alg. 7.4-7.5):

1. loss `f` and gradient `g` at `theta` on the batch;
2. direction `d = -H g` by the two-loop recursion over the stored pairs
   `(s_i, y_i)`, newest first, with `H_0 = (s^T y / y^T y) I` of the newest pair
   (no pairs yet: `d = -g / |g|_1`, minFunc's and L-BFGS-B's first step scale);
3. backtracking line search from step size `learning_rate` (1: the quasi-Newton step),
   shrinking by `line_search_shrink` until `f(theta + a d) <= f + armijo a g^T d`,
   each trial evaluating the loss and its gradient on the same batch;
4. the pair `s = a d`, `y = g(theta + s) - g(theta)` (both on this batch) enters the
   memory if `s^T y > 1e-10 |s| |y|` (the curvature condition that keeps `H` positive
   definite); the oldest of `memory` pairs is dropped.

No acceptable step keeps the weights and clears the memory (the next step restarts from
`-g`). The pairs live in two `(memory, n)` optimizer variables used as a ring buffer, so the
whole iteration is one graph (`tf.while_loop`s, no host round trip) and the memory is saved
with checkpoints. SciPy's L-BFGS-B is the reference in the tests; it is not used here because
a host call inside the training step's `tf.function` would leave the graph every iteration.
"""

import math

import keras
import tensorflow as tf

from rnnzoo.optimizers.second_order import ArmijoSearchOptimizer, check_positive_integer, flatten


def _l1_norm(gradient):
    """`|g|_1`, floored at 1e-30 (a first step `-g / |g|_1` stays finite)."""
    return tf.maximum(tf.reduce_sum(tf.abs(gradient)), tf.constant(1e-30, gradient.dtype))


def two_loop_direction(gradient, s, y, count, memory):
    """`-H g` by the L-BFGS two-loop recursion (Nocedal & Wright 2006, Alg. 7.4).

    Args:
        gradient: flat `g`, `(n,)`.
        s, y: the ring buffers `(memory, n)`; pair `k` (0-based, oldest first) of the
            `count` stored so far is in row `k % memory`.
        count: int32 scalar tensor, the number of pairs ever stored (only the last
            `min(count, memory)` are used).
        memory: Python int, the buffer size.

    Returns:
        The direction `(n,)`; `-g / |g|_1` when no pair is stored.
    """
    dtype = gradient.dtype
    used = tf.minimum(count, memory)
    first = count - used  # the oldest pair still stored
    rho = tf.zeros([memory], dtype)

    def backward(k, q, alphas, rho):
        row = tf.math.floormod(k, memory)
        s_k, y_k = s[row], y[row]
        rho_k = 1.0 / tf.tensordot(y_k, s_k, 1)
        alpha = rho_k * tf.tensordot(s_k, q, 1)
        alphas = tf.tensor_scatter_nd_update(alphas, [[row]], [alpha])
        rho = tf.tensor_scatter_nd_update(rho, [[row]], [rho_k])
        return k - 1, q - alpha * y_k, alphas, rho

    _, q, alphas, rho = tf.while_loop(
        lambda k, *_: k >= first, backward, (count - 1, gradient, tf.zeros([memory], dtype), rho)
    )
    newest = tf.math.floormod(count - 1, memory)
    s_n, y_n = s[newest], y[newest]
    gamma = tf.where(
        used > 0,
        tf.tensordot(s_n, y_n, 1) / tf.tensordot(y_n, y_n, 1),
        1.0 / _l1_norm(gradient),
    )

    def forward(k, r):
        row = tf.math.floormod(k, memory)
        beta = rho[row] * tf.tensordot(y[row], r, 1)
        return k + 1, r + (alphas[row] - beta) * s[row]

    _, r = tf.while_loop(lambda k, _: k < count, forward, (first, gamma * q))
    return -r


@keras.saving.register_keras_serializable(package="rnnzoo")
class LBFGS(ArmijoSearchOptimizer):
    """L-BFGS (memory 100, thesis §6.7.1), one iteration per `fit` step; see the module docstring.

    Use it through `rnnzoo.Model` like `HessianFree`:

        model.compile(optimizer=rnnzoo.optimizers.LBFGS(), loss="mse")

    For tasks whose every step sees the same batch (centre-out, postural) this is plain
    full-batch L-BFGS; with fresh batches (DDN) each pair is still measured on one batch, so
    `H` stays positive definite, but it mixes curvature of different batches.

    Args:
        memory: number of `(s, y)` pairs kept (thesis: 100).
        learning_rate: first step size of the line search (1: the quasi-Newton step).
        armijo: sufficient-decrease constant `c_1` in (0, 1).
        line_search_shrink: step-size factor per rejected trial, in (0, 1).
        line_search_steps: maximal number of trials per iteration.
        name: optimizer name.
    """

    def __init__(self, memory=100, learning_rate=1.0, armijo=1e-4, line_search_shrink=0.5,
                 line_search_steps=30, name="lbfgs"):
        check_positive_integer("memory", memory,
                               "(pairs kept) must be a positive integer, e.g. 100")
        super().__init__(learning_rate, armijo, line_search_shrink, line_search_steps, name)
        self.memory = memory

    def build_state(self, size, dtype):
        self.s_memory = self.add_variable((self.memory, size), dtype=dtype, name="s_memory")
        self.y_memory = self.add_variable((self.memory, size), dtype=dtype, name="y_memory")
        self.pairs = self.add_variable((), dtype="int32", name="pairs")

    def run_step(self, model, x, y, sample_weight=None):
        """One L-BFGS iteration on the batch `(x, y, sample_weight)`.

        Returns:
            A dict with `loss` (before the step), `y_pred` (before the step), `step_size`
            (0: no acceptable step, memory cleared) and `pairs` (stored so far).
        """
        weights = self.begin_iteration(model)
        dtype = self.s_memory.dtype

        def value_and_gradient():
            with tf.GradientTape() as tape:
                y_pred = model(x, training=False)
                value = tf.cast(model.compute_loss(x=x, y=y, y_pred=y_pred,
                                                   sample_weight=sample_weight), dtype)
            grads = tape.gradient(value, weights.variables, unconnected_gradients="zero")
            gradient = flatten([tf.cast(g, dtype) for g in grads])
            ok = tf.math.is_finite(value) & tf.reduce_all(tf.math.is_finite(gradient))
            return tf.where(ok, value, tf.constant(math.inf, dtype)), gradient, y_pred

        loss_value, gradient, y_pred = value_and_gradient()
        finite = tf.math.is_finite(loss_value)
        direction = two_loop_direction(
            gradient, self.s_memory, self.y_memory, self.pairs.value, self.memory
        )
        slope = tf.tensordot(gradient, direction, 1)
        # A stale memory that no longer gives a descent direction restarts from -g.
        restart = ~(slope < 0)
        direction = tf.where(restart, -gradient / _l1_norm(gradient), direction)
        slope = tf.tensordot(gradient, direction, 1)

        def trial(step):
            weights.assign(step * direction)
            value, grad, _ = value_and_gradient()
            return value, grad

        search = self.armijo_line_search(trial, loss_value, slope, finite & (slope < 0),
                                         aux=gradient)
        step, accepted = search.step, search.accepted
        s_new = step * direction
        self.finish_iteration(weights, s_new)
        y_new = search.aux - gradient
        curvature = tf.tensordot(s_new, y_new, 1)
        store = accepted & (curvature > 1e-10 * tf.norm(s_new) * tf.norm(y_new))
        row = tf.math.floormod(self.pairs.value, self.memory)
        self.s_memory.assign(tf.where(
            store, tf.tensor_scatter_nd_update(self.s_memory.value, [[row]], [s_new]),
            self.s_memory.value))
        self.y_memory.assign(tf.where(
            store, tf.tensor_scatter_nd_update(self.y_memory.value, [[row]], [y_new]),
            self.y_memory.value))
        self.pairs.assign(tf.where(accepted, self.pairs + tf.cast(store, tf.int32), 0))
        return {"loss": loss_value, "y_pred": y_pred, "step_size": step, "pairs": self.pairs.value}

    def get_config(self):
        return {**super().get_config(), "memory": self.memory}
