"""What the second-order optimizers share: Hessian-free (ch. 4), AHF (§6.2), L-BFGS (§6.7.1).

Each runs one whole iteration on the batch per `fit` step (`run_step`, called by
`rnnzoo.Model`) instead of applying gradients, on the trainable weights as one flat vector
(`flatten`, `unflatten`): it evaluates the objective at trial points `theta + delta`
(`FlatWeights`) and ends at the step it takes. Its line searches backtrack
(`backtracking_line_search`, Nocedal & Wright 2006, Alg. 3.1): HF's and L-BFGS's from
`learning_rate` under Armijo's sufficient-decrease condition (`ArmijoSearchOptimizer`),
AHF's from the quadratic model's minimiser under simple decrease.
"""

import math
from typing import NamedTuple

import keras
import tensorflow as tf

from rnnzoo.optimizers.gauss_newton import trainable_variables


def check_number(name, value, condition, hint):
    """Raises ``ValueError("`name` hint, got value.")`` unless `value` is a number (not a
    bool) for which `condition(value)` holds, e.g. `check_number("cg_decay", 2, lambda v:
    0 <= v <= 1, "must be in [0, 1]")`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not condition(value):
        raise ValueError(f"`{name}` {hint}, got {value!r}.")


def check_positive_integer(name, value, hint="must be a positive integer"):
    """`check_number` for a positive `int` (`2.0` is not one)."""
    check_number(name, value, lambda v: isinstance(v, int) and v > 0, hint)


def check_choice(name, value, choices):
    """Raises a ValueError listing `choices` unless `value` is one of them."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")


def flatten(tensors):
    """The tensors as one flat vector, in order: the layout of every flat vector here."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def unflatten(flat, variables):
    """`flatten`'s inverse: the flat vector split into tensors shaped like `variables`."""
    sizes = [math.prod(v.shape) for v in variables]
    return [tf.reshape(part, v.shape) for part, v in zip(tf.split(flat, sizes), variables)]


class FlatWeights:
    """Trainable variables moved along flat vectors from `theta`, their values when it is made
    (the start of an iteration)."""

    def __init__(self, variables):
        self.variables = variables
        self.theta = [tf.identity(v.value) for v in variables]

    def assign(self, delta):
        """Puts the variables at `theta + delta`, `delta` flat."""
        for variable, start, change in zip(self.variables, self.theta,
                                           unflatten(delta, self.variables)):
            variable.assign(start + change)

    def loss_at(self, delta, loss):
        """`loss()` at `theta + delta` (leaves the variables there); NaN/Inf -> +inf."""
        self.assign(delta)
        value = loss()
        return tf.where(tf.math.is_finite(value), value, tf.constant(math.inf, value.dtype))


class LineSearch(NamedTuple):
    """The result of `backtracking_line_search`."""

    step: tf.Tensor
    """The accepted step size; 0 when none was accepted."""
    value: tf.Tensor
    """The objective at `step`."""
    aux: object
    """What `evaluate` returned besides the objective at the last trial."""
    accepted: tf.Tensor
    """Whether a step size was accepted."""
    trials: tf.Tensor
    """The number of trials (int32), a trial done before the search included."""


def backtracking_line_search(evaluate, accept, value, initial_step, shrink, max_trials, search,
                             aux=(), first=None):
    """Backtracking line search (Nocedal & Wright 2006, Alg. 3.1) as one `tf.while_loop`.

    Tries the step sizes `initial_step * shrink**k`, `k = 0, 1, ...`, until `accept` passes one
    or `max_trials` were tried; none where `search` is False.

    Args:
        evaluate: `step -> (objective, aux)`: the objective at step size `step` (it may leave
            the weights there) and what the caller keeps of the last trial (L-BFGS: the
            gradient; `()`: nothing).
        accept: `(step, objective) -> bool tensor`: Armijo's sufficient decrease
            `f(theta + a d) <= f(theta) + c_1 a g^T d` (N&W eq. 3.4; `ArmijoSearchOptimizer`)
            or AHF's simple decrease.
        value: the objective at step size 0.
        initial_step: the first step size, a scalar tensor.
        shrink: Python float in (0, 1), the step-size factor per rejected trial.
        max_trials: Python int, the cap on trials.
        search: scalar bool tensor; False: no trial (e.g. not a descent direction).
        aux: `aux` when no trial runs.
        first: `(done, objective)`: whether the trial at `initial_step` is done already (a
            bool tensor; HF's CG backtracking evaluated the whole step) and its objective,
            which is not evaluated again; None: it is not.

    Returns:
        A `LineSearch`.
    """
    if first is None:
        trial, step, accepted, last = 0, initial_step, tf.constant(False), value
    else:
        done, last = first
        accepted = search & done & accept(initial_step, last)
        trial = tf.cast(done, tf.int32)
        step = tf.where(done & ~accepted, initial_step * shrink, initial_step)

    def body(trial, step, accepted, last, aux):
        last, aux = evaluate(step)
        accepted = accept(step, last)
        return trial + 1, tf.where(accepted, step, step * shrink), accepted, last, aux

    trials, step, accepted, last, aux = tf.while_loop(
        lambda trial, step, accepted, *_: ~accepted & (trial < max_trials) & search,
        body,
        (trial, step, accepted, last, aux),
    )
    return LineSearch(
        step=tf.where(accepted, step, tf.zeros_like(step)),
        value=tf.where(accepted, last, value),
        aux=aux,
        accepted=accepted,
        trials=trials,
    )


class SecondOrderOptimizer(keras.optimizers.Optimizer):
    """Base of the optimizers that run one whole iteration per `fit` step.

    `rnnzoo.Model` reads `runs_own_step` and calls the subclass's
    `run_step(model, x, y, sample_weight)`, which starts with `begin_iteration` and ends with
    `finish_iteration`; `apply` (gradients from elsewhere) is refused. A subclass creates its
    state (optimizer variables, saved with the model) in `build_state`; `get_config` holds
    `name` and whatever the subclasses add.
    """

    runs_own_step = True

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        dtype = variables[0].dtype if variables else keras.config.floatx()
        self.build_state(sum(math.prod(v.shape) for v in variables), dtype)

    def build_state(self, size, dtype):
        """Adds the subclass's optimizer variables, for `size` weights of `dtype`."""
        raise NotImplementedError

    def apply(self, grads, trainable_variables=None):
        raise ValueError(
            f"{type(self).__name__} computes its own steps from the loss and the batch, not from "
            "gradients. Build the model with rnnzoo.Model(inputs, outputs) (whose train_step "
            "runs the optimizer's step) and train it with model.fit."
        )

    def begin_iteration(self, model):
        """The model's trainable variables as `FlatWeights`; builds the optimizer on first use.

        Raises:
            ValueError: the model has no loss or no trainable weights.
        """
        variables = trainable_variables(model)
        if model.loss is None:
            raise ValueError(
                f"Compile the model with a loss before training with {type(self).__name__}."
            )
        if not self.built:
            self.build(variables)
        return FlatWeights(variables)

    def finish_iteration(self, weights, delta):
        """Leaves the weights at `theta + delta` (`FlatWeights`) and counts the iteration."""
        weights.assign(delta)
        self.iterations.assign_add(1)

    def get_config(self):
        return {"name": self.name}


class ArmijoSearchOptimizer(SecondOrderOptimizer):
    """A `SecondOrderOptimizer` whose iteration ends in a backtracking line search along its
    direction `d`, from step size `learning_rate`, accepting the first `a` with Armijo's
    sufficient decrease `f(theta + a d) <= f(theta) + armijo a g^T d` (Nocedal & Wright 2006,
    eq. 3.4, Alg. 3.1): `HessianFree`, `LBFGS`.

    Args:
        learning_rate: initial step size of the line search (1: the whole direction).
        armijo: sufficient-decrease constant `c_1`, in (0, 1).
        line_search_shrink: step-size factor per rejected trial, in (0, 1).
        line_search_steps: maximal number of trials per iteration.
        name: optimizer name.
    """

    def __init__(self, learning_rate, armijo, line_search_shrink, line_search_steps, name):
        check_number("learning_rate", learning_rate, lambda v: v > 0,
                     "(initial step size) must be > 0")
        check_number("armijo", armijo, lambda v: 0 < v < 1, "must be in (0, 1)")
        check_number("line_search_shrink", line_search_shrink, lambda v: 0 < v < 1,
                     "must be in (0, 1)")
        check_positive_integer("line_search_steps", line_search_steps)
        super().__init__(learning_rate=learning_rate, name=name)
        self.armijo = float(armijo)
        self.line_search_shrink = float(line_search_shrink)
        self.line_search_steps = line_search_steps

    def armijo_line_search(self, evaluate, value, slope, search, aux=(), first=None):
        """`backtracking_line_search` under Armijo's condition, `value` the objective at
        `theta` and `slope` its directional derivative `g^T d`; see there for the rest."""
        dtype = slope.dtype
        armijo = tf.cast(self.armijo, dtype)
        return backtracking_line_search(
            evaluate,
            lambda step, trial_value: trial_value <= value + armijo * step * slope,
            value,
            tf.cast(self.learning_rate, dtype),
            self.line_search_shrink,
            self.line_search_steps,
            search,
            aux=aux,
            first=first,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate": float(self.learning_rate.numpy()),
            "armijo": self.armijo,
            "line_search_shrink": self.line_search_shrink,
            "line_search_steps": self.line_search_steps,
        }
