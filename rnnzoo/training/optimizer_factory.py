"""The optimizer of a training run: `make_optimizer(config)` for every family and binary.

One factory and one set of defaults (`rnnzoo.training.loop.TrainConfig`):
`sgd`, `momentum` (classical, thesis eq. 7.1-7.2), `nag` (eq. 7.12-7.13),
`adam`, `hf` (Hessian-free, Alg. 5), `ahf` (augmented Hessian-free, §6.2) and
`lbfgs` (L-BFGS with memory 100, the baseline of §6.7.1), with the learning-rate and
momentum schedules of thesis ch. 7 and gradient-norm clipping.
"""

import keras

from rnnzoo.optimizers import LBFGS, NAG, AugmentedHessianFree, HessianFree, schedules
from rnnzoo.optimizers.hessian_free import CG_WARM_STARTS, EVALUATION_BATCHES
from rnnzoo.optimizers.momentum import Momentum

OPTIMIZER_CLASSES = {
    "sgd": keras.optimizers.SGD, "momentum": Momentum, "nag": NAG, "adam": keras.optimizers.Adam,
    "hf": HessianFree, "ahf": AugmentedHessianFree, "lbfgs": LBFGS,
}
"""The class `make_optimizer` builds for each name of `--optimizer`."""
OPTIMIZERS = tuple(OPTIMIZER_CLASSES)
OWN_STEP_OPTIMIZERS = tuple(
    name for name, cls in OPTIMIZER_CLASSES.items() if getattr(cls, "runs_own_step", False)
)
"""Optimizers that choose their own step (line searches): no learning-rate clipping applies."""
MOMENTUM_SCHEDULES = ("constant", "piecewise", "nesterov", "progression")
DEFAULT_LEARNING_RATE = 1e-3
"""The learning rate of a run that sets none (and whose model's recipe sets none)."""
DEFAULT_CLIP_NORM = 0.0
"""No gradient clipping unless the run or its model's recipe asks for it."""
DEFAULT_LR_DECAY_STEPS = 0
"""A constant learning rate unless the run or its model's recipe decays it."""


def check_optimizer_settings(config):
    """Raises a ValueError naming the first invalid optimizer setting of `config`."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {config.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}."
        )
    if config.momentum_schedule not in MOMENTUM_SCHEDULES:
        raise ValueError(
            f"Unknown momentum_schedule {config.momentum_schedule!r}; choose one of: "
            f"{', '.join(MOMENTUM_SCHEDULES)}."
        )
    if config.learning_rate is not None and not config.learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {config.learning_rate!r}.")
    if config.clip_norm is not None and not config.clip_norm >= 0:
        raise ValueError(f"clip_norm must be >= 0 (0 disables clipping), got {config.clip_norm!r}.")
    if config.optimizer in OWN_STEP_OPTIMIZERS and config.clip_norm:
        raise ValueError(
            f"clip_norm={config.clip_norm} does not apply to --optimizer={config.optimizer} "
            "(it chooses its step by a line search); pass --clip_norm=0."
        )
    for name, choices in (("hf_cg_warm_start", CG_WARM_STARTS),
                          ("hf_evaluation_batch", EVALUATION_BATCHES)):
        value = getattr(config, name)
        if value not in choices:
            raise ValueError(
                f"{name}={value!r} is not an option of HessianFree; pass "
                f"{' or '.join(f'--{name}={choice}' for choice in choices)}."
            )
    decay_steps = config.lr_decay_steps
    if decay_steps is not None and (isinstance(decay_steps, bool) or decay_steps < 0
                                    or int(decay_steps) != decay_steps):
        raise ValueError(f"lr_decay_steps must be an integer >= 0 (0: no decay), got {decay_steps!r}.")
    if decay_steps and config.lr_values:
        raise ValueError(
            f"lr_decay_steps={decay_steps} and lr_values={list(config.lr_values)} are two learning-"
            "rate schedules; pass one of them."
        )
    if not 0 <= config.final_phase < 1:
        raise ValueError(f"final_phase must be in [0, 1), got {config.final_phase!r}.")


def learning_rate_schedule(config):
    """The learning rate: a float, a `PiecewiseConstantDecay` or an `InverseTimeDecay`, with the
    final phase applied."""
    rate = DEFAULT_LEARNING_RATE if config.learning_rate is None else config.learning_rate
    if config.lr_values:
        if len(config.lr_values) != len(config.lr_boundaries) + 1:
            raise ValueError(
                f"lr_values needs one more entry than lr_boundaries, got "
                f"{len(config.lr_values)} values for {len(config.lr_boundaries)} boundaries."
            )
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(b) for b in config.lr_boundaries], [float(v) for v in config.lr_values]
        )
    elif config.lr_decay_steps:
        rate = keras.optimizers.schedules.InverseTimeDecay(rate, int(config.lr_decay_steps), 1.0)
    if config.final_phase:
        rate = schedules.FinalPhase(rate, config.train_steps, fraction=config.final_phase, factor=0.1)
    return rate


def momentum_schedule(config):
    """mu: a float or a schedule of `rnnzoo.optimizers.schedules`, with the final phase applied."""
    kind = config.momentum_schedule
    if kind == "constant":
        mu = float(config.momentum)
        schedules.check_momentum("momentum", mu)
    elif kind == "piecewise":
        mu = schedules.PiecewiseConstantMomentum(config.momentum_boundaries, config.momentum_values)
    elif kind == "nesterov":
        mu = schedules.NesterovMomentum(float(config.momentum), int(config.momentum_period))
    else:
        mu = schedules.ExponentialProgression(first_step=int(config.momentum_period))
    if config.final_phase:
        mu = schedules.FinalPhase(mu, config.train_steps, fraction=config.final_phase, value=0.99)
    return mu


def make_optimizer(config):
    """The optimizer of `config`, a `rnnzoo.training.loop.TrainConfig` (see its `optimizer`).

    Raises:
        ValueError: an invalid optimizer setting, naming it.
    """
    check_optimizer_settings(config)
    clip = {"clipnorm": float(config.clip_norm)} if config.clip_norm else {}
    if config.optimizer == "hf":
        return HessianFree(
            damping=float(config.hf_damping),
            structural_damping=float(config.hf_structural_damping),
            max_cg_iterations=int(config.hf_max_cg_iterations),
            curvature_fraction=float(config.hf_curvature_fraction),
            cg_warm_start=config.hf_cg_warm_start,
            evaluation_batch=config.hf_evaluation_batch,
        )
    if config.optimizer == "ahf":
        return AugmentedHessianFree(
            max_directions=int(config.hf_max_cg_iterations),
            curvature_fraction=float(config.hf_curvature_fraction),
        )
    if config.optimizer == "lbfgs":
        return LBFGS(memory=100)
    rate = learning_rate_schedule(config)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, **clip)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate, **clip)
    mu = momentum_schedule(config)
    if config.optimizer == "nag":
        return NAG(rate, momentum=mu, **clip)
    return Momentum(rate, momentum=mu, **clip)
