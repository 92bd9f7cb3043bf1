"""Momentum schedules of thesis ch. 7 (§7.2-7.4), called with the optimizer step.

Each schedule maps the (0-based) step `t` to the momentum `mu_t` and is a
`keras.optimizers.schedules.LearningRateSchedule`, so it serialises like a
Keras learning-rate schedule and can also scale a learning rate. For learning
rates use Keras's own schedules (`PiecewiseConstantDecay`, `ExponentialDecay`,
...); `FinalPhase` wraps either kind for the end-of-training switch of §7.3.
"""

import math

import keras
from keras import ops

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule

THESIS_PROGRESSION = (0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.997, 0.999)
"""The momentum progression of thesis §7.3 (deep autoencoders)."""


def check_momentum(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be a momentum in [0, 1), got {value!r}. Momentum 1 never "
            "forgets a velocity; use e.g. 0.99."
        )


def _check_boundaries(boundaries, values):
    boundaries = [int(b) for b in boundaries]
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            f"A schedule with {len(boundaries)} boundaries needs {len(boundaries) + 1} "
            f"values, got {len(values)}: boundaries={boundaries}, values={list(values)}."
        )
    if any(b <= 0 for b in boundaries) or sorted(set(boundaries)) != boundaries:
        raise ValueError(
            f"`boundaries` must be positive and strictly increasing steps, got {boundaries}."
        )
    return boundaries


def _piecewise(step, boundaries, values):
    """`values[i]` for `boundaries[i-1] <= step < boundaries[i]`."""
    step = ops.cast(step, "int64")
    index = ops.sum(ops.cast(ops.greater_equal(step, ops.array(boundaries, "int64")), "int32"))
    return ops.take(ops.array(values, "float32"), index)


@keras.saving.register_keras_serializable(package="rnnzoo")
class PiecewiseConstantMomentum(LearningRateSchedule):
    """`values[i]` from step `boundaries[i-1]` (inclusive) to `boundaries[i]` (exclusive).

    Thesis §7.4.2 (addition and multiplication problems): mu = 0.9 for the
    first 4000 iterations, then 0.98:
    `PiecewiseConstantMomentum(boundaries=[4000], values=[0.9, 0.98])`.
    """

    def __init__(self, boundaries, values):
        values = [float(v) for v in values]
        for value in values:
            check_momentum("values", value)
        self.boundaries = _check_boundaries(boundaries, values)
        self.values = values

    def __call__(self, step):
        return _piecewise(step, self.boundaries, self.values)

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}


@keras.saving.register_keras_serializable(package="rnnzoo")
class ExponentialProgression(PiecewiseConstantMomentum):
    """A momentum progression placed at exponentially spaced steps (thesis §7.3).

    `values[0]` holds until `first_step`, `values[i]` from
    `first_step * factor**(i - 1)` on: a `PiecewiseConstantMomentum` with these
    boundaries. The defaults are the thesis's progression
    [0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.997, 0.999], reaching 0.999 at step
    200,000 (3125 * 2**6) as in the 600,000-step autoencoder runs.
    """

    def __init__(self, values=THESIS_PROGRESSION, first_step=3125, factor=2.0):
        if not isinstance(first_step, int) or first_step <= 0:
            raise ValueError(f"`first_step` must be a positive integer, got {first_step!r}.")
        if not factor > 1:
            raise ValueError(f"`factor` must be > 1 (boundaries grow by it), got {factor!r}.")
        self.first_step = first_step
        self.factor = float(factor)
        values = list(values)
        super().__init__([round(first_step * self.factor**i) for i in range(len(values) - 1)],
                         values)

    def get_config(self):
        return {"values": self.values, "first_step": self.first_step, "factor": self.factor}


@keras.saving.register_keras_serializable(package="rnnzoo")
class NesterovMomentum(LearningRateSchedule):
    """`mu_t = min(1 - 2**(-1 - log2(floor(t / period) + 1)), max_momentum)`.

    The schedule of Sutskever, Martens, Dahl and Hinton (2013) that follows
    Nesterov's `mu_t ~ 1 - 3 / (t + 5)` (thesis eq. 7.8 and below eq. 7.13)
    in blocks of `period` steps: 0.5, 0.75, 0.833, ... capped at `max_momentum`.
    """

    def __init__(self, max_momentum=0.99, period=250):
        check_momentum("max_momentum", max_momentum)
        if not isinstance(period, int) or period <= 0:
            raise ValueError(f"`period` must be a positive integer, got {period!r}.")
        self.max_momentum = float(max_momentum)
        self.period = period

    def __call__(self, step):
        block = ops.floor(ops.cast(step, "float32") / self.period) + 1.0
        momentum = 1.0 - ops.power(2.0, -1.0 - ops.log(block) / math.log(2.0))
        return ops.minimum(momentum, self.max_momentum)

    def get_config(self):
        return {"max_momentum": self.max_momentum, "period": self.period}


@keras.saving.register_keras_serializable(package="rnnzoo")
class FinalPhase(LearningRateSchedule):
    """Switches a schedule for the last `fraction` of training (thesis §7.3).

    From step `ceil((1 - fraction) * total_steps)` on, the value becomes
    `value` when given, else `factor * schedule(step)`. The thesis reduces
    the learning rate by a factor of 10 and the momentum to 0.99 for the
    final 10% of the optimization (see `thesis_final_phase`).

    Args:
        schedule: a float or a schedule (`LearningRateSchedule` or callable of the step).
        total_steps: total number of optimizer steps of the run.
        fraction: final fraction of the run the switch covers.
        value: constant value of the final phase (e.g. momentum 0.99).
        factor: multiplier of the final phase (e.g. learning rate x0.1).
    """

    def __init__(self, schedule, total_steps, fraction=0.1, value=None, factor=None):
        if (value is None) == (factor is None):
            raise ValueError(
                f"Pass exactly one of `value` (e.g. momentum 0.99) and `factor` (e.g. "
                f"learning rate x0.1), got value={value!r}, factor={factor!r}."
            )
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"`total_steps` must be a positive integer, got {total_steps!r}.")
        if not 0 < fraction <= 1:
            raise ValueError(f"`fraction` must be in (0, 1], got {fraction!r}.")
        self.schedule = schedule
        self.total_steps = total_steps
        self.fraction = float(fraction)
        self.value = None if value is None else float(value)
        self.factor = None if factor is None else float(factor)
        self.start = math.ceil((1.0 - self.fraction) * total_steps)

    def __call__(self, step):
        base = self.schedule(step) if callable(self.schedule) else self.schedule
        base = ops.cast(base, "float32")
        final = ops.cast(self.value, "float32") if self.value is not None else base * self.factor
        return ops.where(ops.greater_equal(ops.cast(step, "int64"), self.start), final, base)

    def get_config(self):
        schedule = self.schedule
        if callable(schedule):
            schedule = keras.saving.serialize_keras_object(schedule)
        return {
            "schedule": schedule,
            "total_steps": self.total_steps,
            "fraction": self.fraction,
            "value": self.value,
            "factor": self.factor,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def thesis_final_phase(learning_rate, momentum, total_steps, fraction=0.1):
    """`(learning_rate, momentum)` schedules with the §7.3 final phase applied.

    For the last `fraction` of `total_steps` the learning rate is divided by
    10 and the momentum set to 0.99. Pass the results to `NAG`.
    """
    return (
        FinalPhase(learning_rate, total_steps, fraction=fraction, factor=0.1),
        FinalPhase(momentum, total_steps, fraction=fraction, value=0.99),
    )
