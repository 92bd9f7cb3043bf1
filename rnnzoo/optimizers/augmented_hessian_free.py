"""Augmented Hessian-free (thesis §6.2): greedy line searches along A-conjugate Krylov directions.

Hessian-free (ch. 4) minimises the damped quadratic model by CG and truncates it. AHF keeps
the Krylov machinery but trusts the true objective instead of the model: it builds directions
`c_0, c_1, ...` that are conjugate with respect to the Gauss-Newton matrix `A`
(`c_i^T A c_j = 0`, `i != j`) and picks each coefficient by a line search on the objective,
the earlier coefficients fixed,

    alpha_i = argmin_a f(theta + sum_{j<i} alpha_j c_j + a c_i),

which on the quadratic model itself is exactly CG (conjugacy makes `q(sum alpha_i c_i) =
sum q(alpha_i c_i)`, so the greedy choice is the joint one). No lambda damping, no CG
truncation; the space is "augmented" by the previous update (hot start, `c_0`).

Choices the thesis leaves open (measured in `tests/test_augmented_hessian_free.py` and
`docs/arm_control.md`):

- directions: `c_0` the previous update (zero on the first step: skipped), then the quadratic
  model's residual `r = -g - A x` at the current point `x = sum alpha_j c_j`, A-orthogonalised
  against every stored direction (Gram-Schmidt applied twice; one Gauss-Newton product
  `A c_i` per direction, stored so the residual needs no further product). With exact
  coefficients this spans the Krylov space `K_i(A, g)` augmented by `c_0`;
- 1-D search: the model's minimiser `a_q = c^T r / c^T A c` first, then halving it
  (`line_search_steps` trials) until the objective is below its current value; none below:
  `alpha_i = 0`. The objective therefore never rises;
- stopping rule: after `max_directions` directions, at a non-positive or non-finite
  curvature `c^T A c`, a vanishing direction, or when the last `k = max(5, i // 10)`
  directions decreased the objective by less than `k * tolerance` times the decrease of the
  whole iteration so far (the relative-progress rule of Martens 2010 on the true objective);
- batches: the gradient and the line searches use the whole batch, the Gauss-Newton products
  its first `curvature_fraction` (as HF, §4.5).
"""

import keras
import tensorflow as tf

from rnnzoo.optimizers.batches import LocalBatch
from rnnzoo.optimizers.second_order import (
    SecondOrderOptimizer,
    backtracking_line_search,
    check_number,
    check_positive_integer,
)


@keras.saving.register_keras_serializable(package="rnnzoo")
class AugmentedHessianFree(SecondOrderOptimizer):
    """Augmented Hessian-free (thesis §6.2), one AHF iteration per `fit` step.

    See the module docstring for the algorithm and the choices made. Use it through
    `rnnzoo.Model` with a matching loss, like `HessianFree`:

        model.compile(optimizer=rnnzoo.optimizers.AugmentedHessianFree(), loss="mse")

    The previous update (the hot start) is an optimizer variable, saved with checkpoints.

    Args:
        max_directions: cap on conjugate directions per iteration (hot start included).
        curvature_fraction: fraction of each batch used for Gauss-Newton products.
        tolerance: epsilon of the relative-progress stopping rule (0: run to the cap).
        line_search_steps: trials per 1-D search (the model's minimiser, then halvings).
        name: optimizer name.
    """

    def __init__(self, max_directions=50, curvature_fraction=0.1, tolerance=1e-3,
                 line_search_steps=10, name="augmented_hessian_free"):
        check_positive_integer("max_directions", max_directions,
                               "must be a positive integer, e.g. 50")
        check_number("curvature_fraction", curvature_fraction, lambda v: 0 < v <= 1,
                     "must be in (0, 1]")
        check_number("tolerance", tolerance, lambda v: v >= 0, "must be >= 0 (0: run to the cap)")
        check_positive_integer("line_search_steps", line_search_steps)
        super().__init__(learning_rate=1.0, name=name)
        self.max_directions = max_directions
        self.curvature_fraction = float(curvature_fraction)
        self.tolerance = float(tolerance)
        self.line_search_steps = line_search_steps

    def build_state(self, size, dtype):
        self.previous_update = self.add_variable((size,), dtype=dtype, name="previous_update")

    def iterate(self, model, x, y, sample_weight=None):
        """One AHF iteration on the batch; leaves the weights at the result.

        Returns:
            A dict: `loss` and `y_pred` before the step; `losses`, `(max_directions + 1,)`,
            the objective after each direction (entry 0: before the step; unused entries
            repeat the last value); `model_losses`, the quadratic model `q(x) - q(0)` after
            each direction; `directions`, the number of directions; `evaluations`, the
            objective evaluations of the line searches.
        """
        weights = self.begin_iteration(model)
        dtype = self.previous_update.dtype
        batch = LocalBatch(self.curvature_fraction, model, x, y, sample_weight)

        loss_value, gradient, y_pred = batch.loss_and_gradient()
        finite = tf.math.is_finite(loss_value) & tf.reduce_all(tf.math.is_finite(gradient))
        apply_curvature = batch.curvature(0.0)

        slots = self.max_directions
        size = tf.shape(gradient)[0]
        previous = self.previous_update.value
        hot = tf.reduce_any(tf.not_equal(previous, 0)) & tf.reduce_all(tf.math.is_finite(previous))
        eps = tf.constant(1e-30, dtype)

        def body(i, offset, model_product, current, directions, products, curvatures, losses,
                 model_losses, evaluations, done):
            residual = -gradient - model_product
            candidate = tf.where((i == 0) & hot, previous, residual)
            for _ in range(2):  # Gram-Schmidt twice keeps the directions A-conjugate
                coefficients = tf.linalg.matvec(products, candidate) / curvatures
                candidate = candidate - tf.linalg.matvec(directions, coefficients, transpose_a=True)
            direction = candidate
            direction_product = apply_curvature(direction)
            curvature = tf.tensordot(direction, direction_product, 1)
            usable = (
                tf.math.is_finite(curvature) & (curvature > 0)
                & (tf.norm(direction) > 1e-12 * tf.maximum(tf.norm(gradient), eps))
            )
            model_step = tf.tensordot(direction, residual, 1) / tf.where(usable, curvature, 1)

            search = backtracking_line_search(
                lambda step: (weights.loss_at(offset + step * direction, batch.loss), ()),
                lambda step, objective: objective < current,
                current,
                model_step,
                0.5,
                self.line_search_steps,
                usable,
            )
            step, value = search.step, search.value
            offset = offset + step * direction
            model_product = model_product + step * direction_product
            row = [[i]]
            directions = tf.where(
                usable, tf.tensor_scatter_nd_update(directions, row, [direction]), directions)
            products = tf.where(
                usable, tf.tensor_scatter_nd_update(products, row, [direction_product]), products)
            curvatures = tf.where(
                usable, tf.tensor_scatter_nd_update(curvatures, row, [curvature]), curvatures)
            model_value = tf.tensordot(gradient, offset, 1) + 0.5 * tf.tensordot(
                offset, model_product, 1)
            losses = tf.tensor_scatter_nd_update(losses, [[i + 1]], [value])
            model_losses = tf.tensor_scatter_nd_update(model_losses, [[i + 1]], [model_value])
            window = tf.maximum(5, i // 10)
            earlier = tf.gather(losses, tf.maximum(i + 1 - window, 0))
            total = losses[0] - value
            stalled = (i + 1 >= window) & (
                earlier - value <= tf.cast(window, dtype) * self.tolerance * total)
            done = ~usable | stalled | (i + 1 >= slots)
            return (i + 1, offset, model_product, value, directions, products, curvatures,
                    losses, model_losses, evaluations + search.trials, done)

        zeros = tf.zeros([size], dtype)
        start = (
            tf.constant(0), zeros, zeros, loss_value,
            tf.zeros([slots, size], dtype), tf.zeros([slots, size], dtype),
            tf.ones([slots], dtype), tf.fill([slots + 1], loss_value), tf.zeros([slots + 1], dtype),
            tf.constant(0), ~finite,
        )
        count, offset, _, final, _, _, _, losses, model_losses, evaluations, _ = tf.while_loop(
            lambda *state: ~state[-1], body, start, maximum_iterations=slots
        )
        # Unused trace entries repeat the last value.
        filled = tf.range(slots + 1) <= count
        losses = tf.where(filled, losses, final)
        model_losses = tf.where(filled, model_losses, tf.gather(model_losses, count))
        self.finish_iteration(weights, offset)
        self.previous_update.assign(offset)
        return {
            "loss": loss_value, "y_pred": y_pred, "losses": losses, "model_losses": model_losses,
            "directions": count, "evaluations": evaluations,
        }

    def run_step(self, model, x, y, sample_weight=None):
        """One AHF iteration (see `iterate`); logs `loss`, `y_pred`, `directions`, `evaluations`."""
        result = self.iterate(model, x, y, sample_weight)
        return {key: result[key] for key in ("loss", "y_pred", "directions", "evaluations")}

    def get_config(self):
        return {
            **super().get_config(),
            "max_directions": self.max_directions,
            "curvature_fraction": self.curvature_fraction,
            "tolerance": self.tolerance,
            "line_search_steps": self.line_search_steps,
        }
