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

import math

import keras
import tensorflow as tf

from rnnzoo.optimizers.gauss_newton import trainable_variables
from rnnzoo.optimizers.hessian_free import _check, _LocalBatch, _unflatten


@keras.saving.register_keras_serializable(package="rnnzoo")
class AugmentedHessianFree(keras.optimizers.Optimizer):
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

    runs_own_step = True

    def __init__(self, max_directions=50, curvature_fraction=0.1, tolerance=1e-3,
                 line_search_steps=10, name="augmented_hessian_free"):
        _check("max_directions", max_directions, lambda v: isinstance(v, int) and v > 0,
               "must be a positive integer, e.g. 50")
        _check("curvature_fraction", curvature_fraction, lambda v: 0 < v <= 1, "must be in (0, 1]")
        _check("tolerance", tolerance, lambda v: v >= 0, "must be >= 0 (0: run to the cap)")
        _check("line_search_steps", line_search_steps, lambda v: isinstance(v, int) and v > 0,
               "must be a positive integer")
        super().__init__(learning_rate=1.0, name=name)
        self.max_directions = max_directions
        self.curvature_fraction = float(curvature_fraction)
        self.tolerance = float(tolerance)
        self.line_search_steps = line_search_steps

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        dtype = variables[0].dtype if variables else keras.config.floatx()
        self.previous_update = self.add_variable(
            (sum(math.prod(v.shape) for v in variables),), dtype=dtype, name="previous_update"
        )

    def apply(self, grads, trainable_variables=None):
        raise ValueError(
            "AugmentedHessianFree computes its own steps from the loss and the batch, not from "
            "gradients. Build the model with rnnzoo.Model(inputs, outputs) and train it with "
            "model.fit."
        )

    def iterate(self, model, x, y, sample_weight=None):
        """One AHF iteration on the batch; leaves the weights at the result.

        Returns:
            A dict: `loss` and `y_pred` before the step; `losses`, `(max_directions + 1,)`,
            the objective after each direction (entry 0: before the step; unused entries
            repeat the last value); `model_losses`, the quadratic model `q(x) - q(0)` after
            each direction; `directions`, the number of directions; `evaluations`, the
            objective evaluations of the line searches.
        """
        variables = trainable_variables(model)
        if model.loss is None:
            raise ValueError("Compile the model with a loss before training with "
                             "AugmentedHessianFree.")
        if not self.built:
            self.build(variables)
        dtype = self.previous_update.dtype
        theta = [tf.identity(v.value) for v in variables]
        batch = _LocalBatch(self, model, x, y, sample_weight)

        def loss_at(delta):
            for variable, start, change in zip(variables, theta, _unflatten(delta, variables)):
                variable.assign(start + change)
            value = batch.loss()
            return tf.where(tf.math.is_finite(value), value, tf.constant(math.inf, dtype))

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

            def trial(j, step, accepted, value):
                value = loss_at(offset + step * direction)
                accepted = value < current
                return j + 1, tf.where(accepted, step, 0.5 * step), accepted, value

            trials, step, accepted, value = tf.while_loop(
                lambda j, step, accepted, value: ~accepted & (j < self.line_search_steps) & usable,
                trial,
                (0, model_step, tf.constant(False), current),
            )
            step = tf.where(accepted, step, tf.zeros_like(step))
            value = tf.where(accepted, value, current)
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
                    losses, model_losses, evaluations + trials, done)

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
        for variable, value in zip(variables, theta):
            variable.assign(value)
        for variable, change in zip(variables, _unflatten(offset, variables)):
            variable.assign_add(change)
        self.previous_update.assign(offset)
        self.iterations.assign_add(1)
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
            "name": self.name,
            "max_directions": self.max_directions,
            "curvature_fraction": self.curvature_fraction,
            "tolerance": self.tolerance,
            "line_search_steps": self.line_search_steps,
        }
