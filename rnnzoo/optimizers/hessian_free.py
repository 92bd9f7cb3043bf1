"""Hessian-free optimization with structural damping (thesis ch. 4, Alg. 5 and 6)."""

import math

import keras
import tensorflow as tf

from rnnzoo.optimizers.batches import LocalBatch, ReplicatedBatch
from rnnzoo.optimizers.conjugate_gradient import conjugate_gradient
from rnnzoo.optimizers.second_order import (
    ArmijoSearchOptimizer,
    check_choice,
    check_number,
    check_positive_integer,
)


CG_WARM_STARTS = ("backtracked", "final")
"""The values of `HessianFree(cg_warm_start=...)`, the default first."""
EVALUATION_BATCHES = ("gradient", "curvature")
"""The values of `HessianFree(evaluation_batch=...)`, the default first."""


@keras.saving.register_keras_serializable(package="rnnzoo")
class HessianFree(ArmijoSearchOptimizer):
    """Hessian-free optimizer of Martens (2010) with structural damping (thesis ch. 4).

    One optimizer step (one `fit` step on one batch) is one iteration `n` of
    Alg. 5 on that batch:

    1. gradient `g` of the compiled loss on the whole batch (the gradient
       mini-batch); the first `curvature_fraction` of the batch is the
       curvature mini-batch (§4.5 uses 1/10);
    2. CG on `B = G + lambda I + lambda mu G_S` (Gauss-Newton matrix,
       Tikhonov damping, structural damping §4.2.3), warm-started from
       `cg_decay` times the previous iteration's solution (`cg_warm_start`:
       the step it backtracked to, or its final CG iterate as Martens 2010
       §4.5 does), stopped on the relative progress of the quadratic
       (Martens 2010) or after `max_cg_iterations`;
    3. CG backtracking: walking back over iterates saved at steps
       `ceil(1.3^j)` while the loss decreases, past iterates where it is
       NaN/Inf; the loss is the whole batch's, or the curvature batch's
       (`evaluation_batch="curvature"`, as Boulanger-Lewandowski's
       theano-hf evaluates it);
    4. Levenberg-Marquardt (§4.2.1): `rho = (f(theta + delta) - f(theta)) /
       q(delta)`, `f` on the same batch as the backtracking; `rho > 3/4`:
       lambda x 2/3, `rho < 1/4`: lambda x 3/2;
    5. Armijo backtracking line search from step size `learning_rate`
       (shrinking by `line_search_shrink`, sufficient decrease `armijo`);
       no acceptable step leaves the weights unchanged.

    A non-finite loss or gradient, non-finite curvature or a step whose loss
    is NaN/Inf is rejected: the weights are kept (or the last finite CG
    iterate is used) and lambda grows, so NaNs never reach the weights.

    The model is evaluated in inference mode (`training=False`) throughout,
    so dropout and other training-only behaviour are off. The Gauss-Newton
    products need a matching loss (`rnnzoo.optimizers.matching_losses`): mse
    on linear outputs, or a cross-entropy on logits or after a final Keras
    sigmoid/softmax, whose logits it recovers as Keras does. The loss, the
    curvature and CG run in the dtype of the model's variables. Each
    iteration runs the forward pass on the curvature batch once
    (`gauss_newton_operator`); every CG step reuses its states. Recurrent layers are unrolled
    while the step is traced when the sequence length is static (rnnzoo
    layers also work without it); the whole step is one graph, traced once
    per `fit`.

    Use it through `rnnzoo.Model`:

        model = rnnzoo.Model(inputs, outputs)
        model.compile(optimizer=HessianFree(damping=1.0, structural_damping=0.3),
                      loss="mse")
        model.fit(x, y, batch_size=1000, epochs=10)

    The damping `lambda` and the CG warm start are optimizer variables,
    saved and restored with the model (`.keras` files, checkpoints).

    Args:
        damping: initial Tikhonov damping lambda (> 0).
        structural_damping: mu of eq. 4.7 (>= 0; thesis: 1/30 to 1).
        curvature_fraction: fraction of each batch used for curvature products.
        max_cg_iterations: cap on CG steps per iteration.
        cg_tolerance: epsilon of the relative-progress stopping rule.
        cg_decay: warm-start decay of the previous CG solution.
        cg_warm_start: which previous solution CG starts from: `"backtracked"`
            (the step CG backtracking chose, kept only when the line search
            accepted it) or `"final"` (the last CG iterate, Martens 2010 and
            both numpy/Theano peers).
        evaluation_batch: the batch whose loss CG backtracking and rho use:
            `"gradient"` (the whole batch) or `"curvature"` (its first
            `curvature_fraction`, cheaper). The line search always uses the
            whole batch, as its sufficient-decrease test uses its gradient.
        learning_rate: initial step size of the line search (1: the CG step).
        armijo: sufficient-decrease constant of the line search.
        line_search_shrink: step-size factor per line-search trial.
        line_search_steps: maximal number of line-search trials.
        name: optimizer name.
    """

    def __init__(
        self,
        damping=1.0,
        structural_damping=0.0,
        curvature_fraction=0.1,
        max_cg_iterations=250,
        cg_tolerance=5e-4,
        cg_decay=0.95,
        learning_rate=1.0,
        armijo=1e-2,
        line_search_shrink=0.8,
        line_search_steps=20,
        cg_warm_start="backtracked",
        evaluation_batch="gradient",
        name="hessian_free",
    ):
        check_number("damping", damping, lambda v: v > 0, "(initial lambda) must be > 0, e.g. 1.0")
        check_number("structural_damping", structural_damping, lambda v: v >= 0, "must be >= 0")
        check_number("curvature_fraction", curvature_fraction, lambda v: 0 < v <= 1,
                     "must be in (0, 1]")
        check_positive_integer("max_cg_iterations", max_cg_iterations)
        check_number("cg_tolerance", cg_tolerance, lambda v: v > 0, "must be > 0")
        check_number("cg_decay", cg_decay, lambda v: 0 <= v <= 1, "must be in [0, 1]")
        check_choice("cg_warm_start", cg_warm_start, CG_WARM_STARTS)
        check_choice("evaluation_batch", evaluation_batch, EVALUATION_BATCHES)
        super().__init__(learning_rate, armijo, line_search_shrink, line_search_steps, name)
        self.initial_damping = float(damping)
        self.structural_damping = float(structural_damping)
        self.curvature_fraction = float(curvature_fraction)
        self.max_cg_iterations = max_cg_iterations
        self.cg_tolerance = float(cg_tolerance)
        self.cg_decay = float(cg_decay)
        self.cg_warm_start = cg_warm_start
        self.evaluation_batch = evaluation_batch

    def build_state(self, size, dtype):
        self.damping = self.add_variable(
            (), initializer=keras.initializers.Constant(self.initial_damping), dtype=dtype,
            name="damping",
        )
        self.previous_update = self.add_variable((size,), dtype=dtype, name="previous_update")

    # ------------------------------------------------------------------ step
    def run_step(self, model, x, y, sample_weight=None):
        """One HF iteration on the batch `(x, y, sample_weight)` (see the class docstring).

        Returns:
            A dict with `loss` (before the step), `y_pred` (at the weights
            before the step), `damping` (lambda after it), `rho`, `cg_steps`
            and `step_size` (the line search's alpha; 0 for a rejected step).
        """
        return self._iterate(
            model, LocalBatch(self.curvature_fraction, model, x, y, sample_weight)
        )

    def run_replicated_step(self, model, strategy, x, y, sample_weight=None):
        """One HF iteration on a batch sharded over the replicas of a `tf.distribute` strategy.

        Called in cross-replica context with per-replica `x`, `y`, `sample_weight`
        (equal shards). The loss, gradient and every Gauss-Newton product are
        computed by each replica on its shard (its curvature batch is the first
        `curvature_fraction` of the shard) and averaged over the replicas; CG,
        backtracking, the damping update and the line search then run once, so
        every replica holds the same weights and optimizer state. Returns what
        `run_step` returns, with `y_pred` per replica.
        """
        return self._iterate(model, ReplicatedBatch(
            self.curvature_fraction, model, strategy, x, y, sample_weight
        ))

    def _iterate(self, model, batch):
        weights = self.begin_iteration(model)
        dtype = self.previous_update.dtype
        on_curvature_batch = self.evaluation_batch == "curvature"
        evaluated = batch.curvature_loss if on_curvature_batch else batch.loss

        loss_value, gradient, y_pred = batch.loss_and_gradient()
        finite = tf.math.is_finite(loss_value) & tf.reduce_all(tf.math.is_finite(gradient))
        # f(theta) on the backtracking's batch, the base of rho.
        base_loss = batch.curvature_loss() if on_curvature_batch else loss_value
        gradient = tf.where(finite, gradient, tf.zeros_like(gradient))

        damping = tf.identity(self.damping.value)
        structural = damping * self.structural_damping if self.structural_damping else 0.0
        product = batch.curvature(structural)

        def apply_curvature(vector):
            return product(vector) + damping * vector

        start = tf.where(finite, self.cg_decay * self.previous_update, 0)
        iterates, values, saved, cg_steps = conjugate_gradient(
            apply_curvature, -gradient, start, self.max_cg_iterations, self.cg_tolerance
        )

        # CG backtracking (Martens 2010, §4.6): from the last iterate back while the
        # loss decreases; non-finite losses (NaN/Inf: +inf here) are walked past.
        def backtrack(j, best, best_loss, going):
            value = weights.loss_at(iterates[j], evaluated)
            better = value < best_loss
            going = better | ~tf.math.is_finite(value)
            return (j - 1, tf.where(better, j, best), tf.where(better, value, best_loss), going)

        last = saved - 1
        _, best, new_loss, _ = tf.while_loop(
            lambda j, best, best_loss, going: going & (j >= 0),
            backtrack,
            (last, last, tf.constant(math.inf, dtype), tf.constant(True)),
        )
        delta = iterates[best]
        predicted = values[best]  # q(delta) - q(0), the CG objective (eq. 4.1)

        # Levenberg-Marquardt (§4.2.1).
        rho = (new_loss - base_loss) / predicted
        valid = finite & tf.math.is_finite(rho) & (predicted < 0)
        damping_factor = tf.where(
            valid & (rho > 0.75), 2.0 / 3.0, tf.where(valid & (rho >= 0.25), 1.0, 1.5)
        )
        self.damping.assign(damping * tf.cast(damping_factor, dtype))

        # Armijo backtracking line search along delta. The backtracking evaluated the batch
        # loss at delta: with a unit first step size that is the line search's first trial.
        slope = tf.tensordot(gradient, delta, 1)
        unit_step = tf.equal(tf.cast(self.learning_rate, dtype), 1)
        search = self.armijo_line_search(
            lambda alpha: (weights.loss_at(alpha * delta, batch.loss), ()),
            loss_value,
            slope,
            finite & (slope < 0),
            first=None if on_curvature_batch else (unit_step, new_loss),
        )
        self.finish_iteration(weights, search.step * delta)
        if self.cg_warm_start == "final":
            warm_start = tf.where(finite, iterates[saved - 1], tf.zeros_like(delta))
        else:
            warm_start = tf.where(search.accepted, delta, tf.zeros_like(delta))
        self.previous_update.assign(warm_start)
        return {
            "loss": loss_value,
            "y_pred": y_pred,
            "damping": self.damping.value,
            "rho": rho,
            "cg_steps": cg_steps,
            "step_size": search.step,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "damping": self.initial_damping,
            "structural_damping": self.structural_damping,
            "curvature_fraction": self.curvature_fraction,
            "max_cg_iterations": self.max_cg_iterations,
            "cg_tolerance": self.cg_tolerance,
            "cg_decay": self.cg_decay,
            "cg_warm_start": self.cg_warm_start,
            "evaluation_batch": self.evaluation_batch,
        }
