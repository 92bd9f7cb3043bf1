"""Hessian-free optimization with structural damping (thesis ch. 4, Alg. 5 and 6)."""

import math

import keras
import tensorflow as tf
from keras import tree

from rnnzoo.optimizers.conjugate_gradient import conjugate_gradient
from rnnzoo.optimizers.gauss_newton import gauss_newton_operator, trainable_variables
from rnnzoo.optimizers.matching_losses import matching_loss


def _flatten(tensors):
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def _unflatten(flat, variables):
    sizes = [math.prod(v.shape) for v in variables]
    return [tf.reshape(part, v.shape) for part, v in zip(tf.split(flat, sizes), variables)]


CG_WARM_STARTS = ("backtracked", "final")
"""The values of `HessianFree(cg_warm_start=...)`, the default first."""
EVALUATION_BATCHES = ("gradient", "curvature")
"""The values of `HessianFree(evaluation_batch=...)`, the default first."""


def _check(name, value, condition, hint):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not condition(value):
        raise ValueError(f"`{name}` {hint}, got {value!r}.")


@keras.saving.register_keras_serializable(package="rnnzoo")
class HessianFree(keras.optimizers.Optimizer):
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

    runs_own_step = True

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
        _check("damping", damping, lambda v: v > 0, "(initial lambda) must be > 0, e.g. 1.0")
        _check("structural_damping", structural_damping, lambda v: v >= 0, "must be >= 0")
        _check("curvature_fraction", curvature_fraction, lambda v: 0 < v <= 1, "must be in (0, 1]")
        _check("max_cg_iterations", max_cg_iterations, lambda v: isinstance(v, int) and v > 0,
               "must be a positive integer")
        _check("cg_tolerance", cg_tolerance, lambda v: v > 0, "must be > 0")
        _check("cg_decay", cg_decay, lambda v: 0 <= v <= 1, "must be in [0, 1]")
        _check("learning_rate", learning_rate, lambda v: v > 0, "(initial step size) must be > 0")
        _check("armijo", armijo, lambda v: 0 < v < 1, "must be in (0, 1)")
        _check("line_search_shrink", line_search_shrink, lambda v: 0 < v < 1, "must be in (0, 1)")
        _check("line_search_steps", line_search_steps, lambda v: isinstance(v, int) and v > 0,
               "must be a positive integer")
        if cg_warm_start not in CG_WARM_STARTS:
            raise ValueError(
                f"`cg_warm_start` must be one of {CG_WARM_STARTS}, got {cg_warm_start!r}."
            )
        if evaluation_batch not in EVALUATION_BATCHES:
            raise ValueError(
                f"`evaluation_batch` must be one of {EVALUATION_BATCHES}, "
                f"got {evaluation_batch!r}."
            )
        super().__init__(learning_rate=learning_rate, name=name)
        self.initial_damping = float(damping)
        self.structural_damping = float(structural_damping)
        self.curvature_fraction = float(curvature_fraction)
        self.max_cg_iterations = max_cg_iterations
        self.cg_tolerance = float(cg_tolerance)
        self.cg_decay = float(cg_decay)
        self.armijo = float(armijo)
        self.line_search_shrink = float(line_search_shrink)
        self.line_search_steps = line_search_steps
        self.cg_warm_start = cg_warm_start
        self.evaluation_batch = evaluation_batch

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        dtype = variables[0].dtype if variables else keras.config.floatx()
        self.damping = self.add_variable(
            (), initializer=keras.initializers.Constant(self.initial_damping), dtype=dtype,
            name="damping",
        )
        self.previous_update = self.add_variable(
            (sum(math.prod(v.shape) for v in variables),), dtype=dtype, name="previous_update"
        )

    def apply(self, grads, trainable_variables=None):
        raise ValueError(
            "HessianFree computes its own steps from the loss and the batch, not from "
            "gradients. Build the model with rnnzoo.Model(inputs, outputs) (whose train_step "
            "runs the optimizer's step) and train it with model.fit."
        )

    # ------------------------------------------------------------------ step
    def run_step(self, model, x, y, sample_weight=None):
        """One HF iteration on the batch `(x, y, sample_weight)` (see the class docstring).

        Returns:
            A dict with `loss` (before the step), `y_pred` (at the weights
            before the step), `damping` (lambda after it), `rho`, `cg_steps`
            and `step_size` (the line search's alpha; 0 for a rejected step).
        """
        return self._iterate(model, _LocalBatch(self, model, x, y, sample_weight))

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
        return self._iterate(model, _ReplicatedBatch(self, model, strategy, x, y, sample_weight))

    def _iterate(self, model, batch):
        variables = trainable_variables(model)
        if model.loss is None:
            raise ValueError("Compile the model with a loss before training with HessianFree.")
        if not self.built:
            self.build(variables)
        dtype = self.previous_update.dtype
        theta = [tf.identity(v.value) for v in variables]

        on_curvature_batch = self.evaluation_batch == "curvature"

        def loss_at(delta, evaluate=batch.loss):
            """`evaluate()` at theta + delta (leaves the weights there); NaN/Inf -> +inf."""
            for variable, start, change in zip(variables, theta, _unflatten(delta, variables)):
                variable.assign(start + change)
            value = evaluate()
            return tf.where(tf.math.is_finite(value), value, tf.constant(math.inf, dtype))

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
            value = loss_at(iterates[j], evaluated)
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

        # Armijo backtracking line search along delta.
        slope = tf.tensordot(gradient, delta, 1)
        armijo = tf.cast(self.armijo, dtype)

        def line_search(trial, alpha, accepted):
            value = loss_at(alpha * delta)
            accepted = value <= loss_value + armijo * alpha * slope
            return trial + 1, tf.where(accepted, alpha, alpha * self.line_search_shrink), accepted

        # The backtracking evaluated the batch loss at delta: with a unit first step
        # size that is the line search's first trial, which is not evaluated again.
        initial = tf.cast(self.learning_rate, dtype)
        unit_step = tf.constant(False) if on_curvature_batch else tf.equal(initial, 1)
        unit_step_accepted = (
            finite & (slope < 0) & unit_step & (new_loss <= loss_value + armijo * slope)
        )
        _, alpha, accepted = tf.while_loop(
            lambda trial, alpha, accepted: (
                ~accepted & (trial < self.line_search_steps) & finite & (slope < 0)
            ),
            line_search,
            (
                tf.cast(unit_step, tf.int32),
                tf.where(unit_step & ~unit_step_accepted, initial * self.line_search_shrink, initial),
                unit_step_accepted,
            ),
        )
        alpha = tf.where(accepted, alpha, tf.zeros_like(alpha))
        for variable, value in zip(variables, theta):
            variable.assign(value)
        for variable, change in zip(variables, _unflatten(alpha * delta, variables)):
            variable.assign_add(change)
        if self.cg_warm_start == "final":
            warm_start = tf.where(finite, iterates[saved - 1], tf.zeros_like(delta))
        else:
            warm_start = tf.where(accepted, delta, tf.zeros_like(delta))
        self.previous_update.assign(warm_start)
        self.iterations.assign_add(1)
        return {
            "loss": loss_value,
            "y_pred": y_pred,
            "damping": self.damping.value,
            "rho": rho,
            "cg_steps": cg_steps,
            "step_size": alpha,
        }

    def get_config(self):
        return {
            "name": self.name,
            "damping": self.initial_damping,
            "structural_damping": self.structural_damping,
            "curvature_fraction": self.curvature_fraction,
            "max_cg_iterations": self.max_cg_iterations,
            "cg_tolerance": self.cg_tolerance,
            "cg_decay": self.cg_decay,
            "learning_rate": float(self.learning_rate.numpy()),
            "armijo": self.armijo,
            "line_search_shrink": self.line_search_shrink,
            "line_search_steps": self.line_search_steps,
            "cg_warm_start": self.cg_warm_start,
            "evaluation_batch": self.evaluation_batch,
        }


class _LocalBatch:
    """The batch's loss, gradient and Gauss-Newton products on one device."""

    def __init__(self, optimizer, model, x, y, sample_weight):
        self.optimizer = optimizer
        self.model = model
        self.batch = (x, y, sample_weight)
        self.matching = matching_loss(model.loss)
        self.variables = trainable_variables(model)
        self.dtype = self.variables[0].dtype

    def objective(self, x, y, sample_weight):
        """`(loss at the current weights, predictions)` on one batch, in the variables' dtype."""
        y_pred = self.model(x, training=False)
        outputs = tf.cast(self.matching.linear_outputs(y_pred), self.dtype)
        value = self.matching.value(y, outputs, sample_weight=sample_weight)
        if self.model.losses:
            value = value + tf.cast(tf.add_n(self.model.losses), self.dtype)
        return value, y_pred

    def loss(self):
        return self.objective(*self.batch)[0]

    def curvature_loss(self):
        """The loss on the curvature batch."""
        return self.objective(*self.curvature_head(*self.batch))[0]

    def loss_and_gradient(self):
        return self.shard_loss_and_gradient(*self.batch)

    def shard_loss_and_gradient(self, x, y, sample_weight):
        with tf.GradientTape() as tape:
            value, y_pred = self.objective(x, y, sample_weight)
        gradient = tape.gradient(value, self.variables, unconnected_gradients="zero")
        return value, _flatten(gradient), y_pred

    def curvature_head(self, x, y, sample_weight):
        """The curvature batch: the first `curvature_fraction` of `(x, y, sample_weight)`."""
        size = tf.shape(tree.flatten(x)[0])[0]
        curvature_size = tf.maximum(1, tf.cast(
            tf.math.ceil(self.optimizer.curvature_fraction * tf.cast(size, tf.float32)), tf.int32
        ))

        def head(tensor):
            return None if tensor is None else tensor[:curvature_size]

        return tuple(tree.map_structure(head, t) for t in (x, y, sample_weight))

    def shard_operator(self, x, y, sample_weight, structural):
        """`G v` (flat) on the curvature batch: the first `curvature_fraction` of this batch."""
        x_c, y_c, weight_c = self.curvature_head(x, y, sample_weight)
        product = gauss_newton_operator(
            self.model, self.matching, x_c, structural, y=y_c, sample_weight=weight_c
        )
        return lambda vector: _flatten(product(_unflatten(vector, self.variables)))

    def curvature(self, structural):
        return self.shard_operator(*self.batch, structural)


class _ReplicatedBatch(_LocalBatch):
    """The same quantities, each replica's on its shard, averaged over the replicas.

    Keras divides a loss by the replicas in sync when it is computed in a replica
    context (`matching_losses` undoes that), so each replica's value is its shard's
    mean and the replicas' mean is the global batch's.
    """

    def __init__(self, optimizer, model, strategy, x, y, sample_weight):
        super().__init__(optimizer, model, x, y, sample_weight)
        self.strategy = strategy

    def _mean(self, per_replica):
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    def loss(self):
        return self._mean(self.strategy.run(lambda *b: self.objective(*b)[0], args=self.batch))

    def curvature_loss(self):
        return self._mean(self.strategy.run(
            lambda *b: self.objective(*self.curvature_head(*b))[0], args=self.batch
        ))

    def loss_and_gradient(self):
        value, gradient, y_pred = self.strategy.run(self.shard_loss_and_gradient, args=self.batch)
        return self._mean(value), self._mean(gradient), y_pred

    def curvature(self, structural):
        operators = {}  # replica id -> that replica's operator over its recorded forward pass

        def build(x, y, sample_weight):
            operators[_replica_id()] = self.shard_operator(x, y, sample_weight, structural)

        self.strategy.run(build, args=self.batch)
        return lambda vector: self._mean(
            self.strategy.run(lambda v: operators[_replica_id()](v), args=(vector,))
        )


def _replica_id():
    replica = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
    return int(replica)
