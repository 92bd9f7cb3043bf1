"""The training loop shared by every zoo family: optimizer, checkpoints, metrics.

    from rnnzoo.zoo.training import TrainConfig, train
    metrics = train(TrainConfig(model="irnn", task="addition", seq_len=50,
                                optimizer="momentum", learning_rate=1e-3,
                                clip_norm=0.1, batch_size=16, train_steps=2000,
                                model_dir="/tmp/irnn"))

`train` builds the family's model (`rnnzoo.zoo.registry`), runs its
pretraining once on a fresh run, and fits it with `keras.Model.fit` in
rounds of `eval_every` steps. After every round it evaluates the test set
with the paper's criterion, writes TensorBoard scalars and `metrics.json`,
checkpoints atomically (`rnnzoo.zoo.checkpoint`) and stops early once the
success criterion holds. Re-running with the same `model_dir` resumes from
the checkpoint; a larger `train_steps` continues training.
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.optimizers import NAG, HessianFree, schedules
from rnnzoo.zoo import registry
from rnnzoo.zoo.checkpoint import Checkpointer
from rnnzoo.optimizers.momentum import Momentum

OPTIMIZERS = ("sgd", "momentum", "nag", "adam", "hf")
MOMENTUM_SCHEDULES = ("constant", "piecewise", "nesterov", "progression")


@dataclasses.dataclass
class TrainConfig:
    """A training run; the `rnnzoo-train` flags map 1:1 onto these fields.

    Attributes:
        model, task: registry names (`rnnzoo.zoo.registry.model_names()`,
            `rnnzoo.data.task_names()`); `task=None` uses the model family's
            default (`addition`; `digits` for `deep_autoencoder`; none for
            the char-level language models, which read a corpus).
        task_options: task-specific options of `rnnzoo.data.get_task`, e.g.
            `{"binarize": True}` for `digits`.
        optimizer: one of `OPTIMIZERS`: `sgd`, `momentum` (classical, eq.
            7.1-7.2), `nag` (thesis eq. 7.12-7.13), `adam`, `hf` (Hessian-free,
            thesis Alg. 5).
        learning_rate: constant learning rate (ignored when `lr_values` is set).
        lr_boundaries, lr_values: piecewise-constant learning rate
            (`keras.optimizers.schedules.PiecewiseConstantDecay`), e.g. the
            thesis §7.4.2 schedule.
        momentum: constant momentum, or the cap of the `nesterov` schedule.
        momentum_schedule: `constant`, `piecewise` (`momentum_boundaries`,
            `momentum_values`), `nesterov` (mu_t = 1 - 2^(-1-log2(t/period+1))
            capped at `momentum`) or `progression` (thesis §7.3 progression
            0.8 ... 0.999 at exponentially spaced steps from `momentum_period`).
        final_phase: fraction of the run at the end with the learning rate
            divided by 10 and mu = 0.99 (thesis §7.3); 0 disables it.
        hf_*: `rnnzoo.optimizers.HessianFree` arguments.
        seq_len: problem length T (task dependent).
        batch_size: training sequences per step.
        train_steps: total optimizer steps of the run (across resumptions).
        eval_every: steps between test evaluations and checkpoints.
        test_size: test examples (0: the task's default).
        clip_norm: gradient-norm clipping threshold (0: none).
        seed: seed of data and weights.
        model_dir: checkpoint, metrics and TensorBoard directory.
        early_stop: stop once the paper's success criterion holds on the test set.
        gradient_steps: steps at which to record gradient propagation
            (`rnnzoo.zoo.gradient_propagation`); empty: never.
        max_seconds: wall-clock budget of this invocation (0: none), counted
            from the start of `train` (model building and layer-wise
            pretraining included); the run stops after the step that exceeds
            it (and can be resumed).
        verbose: Keras progress bar (1), one line per round (2) or silent (0).
    """

    model: str = "irnn"
    task: str | None = None
    task_options: dict = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_boundaries: tuple = ()
    lr_values: tuple = ()
    momentum: float = 0.9
    momentum_schedule: str = "constant"
    momentum_boundaries: tuple = ()
    momentum_values: tuple = ()
    momentum_period: int = 250
    final_phase: float = 0.0
    hf_damping: float = 1.0
    hf_structural_damping: float = 0.0
    hf_max_cg_iterations: int = 250
    hf_curvature_fraction: float = 0.1
    seq_len: int | None = None
    batch_size: int = 100
    train_steps: int = 1000
    eval_every: int = 100
    test_size: int = 0
    clip_norm: float = 0.0
    seed: int = 0
    model_dir: str = ""
    early_stop: bool = True
    gradient_steps: tuple = ()
    max_seconds: float = 0.0
    verbose: int = 1

    def run_description(self):
        """The fields that identify the run (a resumed run must keep them)."""
        return {"model": self.model, "task": self.task, "task_options": dict(self.task_options),
                "seq_len": self.seq_len, "seed": self.seed}

    def make_task(self):
        """The `rnnzoo.data.Task` of this run."""
        from rnnzoo.data import get_task

        return get_task(self.task, seq_len=self.seq_len, seed=self.seed, **self.task_options)


def resolve_task(config):
    """`config` with its task resolved by the model family (`registry.Family.resolve_task`)."""
    family = registry.get_family(config.model)
    task = family.resolve_task(config.task)
    if not isinstance(config.task_options, dict):
        raise ValueError(
            f"task_options must be a dict of option names to values, got {config.task_options!r}; "
            "e.g. {'binarize': True} (--task_options=binarize=true)."
        )
    if config.task_options and task is None:
        raise ValueError(
            f"task_options={config.task_options!r} do not apply to model {config.model!r}, "
            "which takes no task."
        )
    return dataclasses.replace(config, task=task, task_options=dict(config.task_options))


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_config(config):
    """Raises a ValueError naming the first invalid field of `config`."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {config.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}."
        )
    if config.momentum_schedule not in MOMENTUM_SCHEDULES:
        raise ValueError(
            f"Unknown momentum_schedule {config.momentum_schedule!r}; choose one of: "
            f"{', '.join(MOMENTUM_SCHEDULES)}."
        )
    for name in ("batch_size", "train_steps", "eval_every"):
        _positive_int(name, getattr(config, name))
    if not config.learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {config.learning_rate!r}.")
    if config.clip_norm < 0:
        raise ValueError(f"clip_norm must be >= 0 (0 disables clipping), got {config.clip_norm!r}.")
    if config.optimizer == "hf" and config.clip_norm:
        raise ValueError(
            f"clip_norm={config.clip_norm} does not apply to --optimizer=hf (Hessian-free "
            "chooses its step by CG and a line search); pass --clip_norm=0."
        )
    if not 0 <= config.final_phase < 1:
        raise ValueError(f"final_phase must be in [0, 1), got {config.final_phase!r}.")
    if not config.model_dir:
        raise ValueError("model_dir is empty; pass a directory, e.g. --model_dir=/tmp/run1.")


def learning_rate_schedule(config):
    """The learning rate: a float or a `PiecewiseConstantDecay`, with the final phase applied."""
    rate = config.learning_rate
    if config.lr_values:
        if len(config.lr_values) != len(config.lr_boundaries) + 1:
            raise ValueError(
                f"lr_values needs one more entry than lr_boundaries, got "
                f"{len(config.lr_values)} values for {len(config.lr_boundaries)} boundaries."
            )
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(b) for b in config.lr_boundaries], [float(v) for v in config.lr_values]
        )
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
    """The optimizer of `config` (see `TrainConfig.optimizer`)."""
    check_config(config)
    clip = {"clipnorm": float(config.clip_norm)} if config.clip_norm else {}
    if config.optimizer == "hf":
        return HessianFree(
            damping=float(config.hf_damping),
            structural_damping=float(config.hf_structural_damping),
            max_cg_iterations=int(config.hf_max_cg_iterations),
            curvature_fraction=float(config.hf_curvature_fraction),
        )
    rate = learning_rate_schedule(config)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, **clip)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate, **clip)
    mu = momentum_schedule(config)
    if config.optimizer == "nag":
        return NAG(rate, momentum=mu, **clip)
    return Momentum(rate, momentum=mu, **clip)


def evaluate(model, loss, test_dataset, error_rate, success_error_rate=None):
    """Test loss (without regularisation penalties), the paper's error rate and success."""
    ys, weights, predictions = [], [], []
    for batch in test_dataset:
        x, y, weight = keras.utils.unpack_x_y_sample_weight(batch)
        ys.append(np.asarray(y))
        weights.append(None if weight is None else np.asarray(weight))
        predictions.append(np.asarray(model(x, training=False)))
    losses = [
        float(loss(y, p, sample_weight=w)) * len(y) for y, p, w in zip(ys, predictions, weights)
    ]
    count = sum(len(y) for y in ys)
    error = float(error_rate(np.concatenate(ys), np.concatenate(predictions)))
    return {
        "test_loss": sum(losses) / count,
        "test_error_rate": error,
        "success": bool(success_error_rate is not None and error < success_error_rate),
    }


class _RoundEnd(keras.callbacks.Callback):
    """Counts steps; at each round's end evaluates, logs, checkpoints and stops early."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_train_batch_end(self, batch, logs=None):
        self.run.step += 1
        self.run.last_train_loss = None if logs is None else logs.get("loss")
        config = self.run.config
        out_of_time = config.max_seconds and time.monotonic() - self.run.start > config.max_seconds
        if self.run.step >= config.train_steps or out_of_time:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.run.finish_round(logs or {}):
            self.model.stop_training = True


class _Run:
    """State of one `train` call (step, clock, history)."""

    def __init__(self, config, built, model, checkpointer, state, start):
        self.config = config
        self.built = built
        self.model = model
        self.checkpointer = checkpointer
        self.step = state.get("step", 0)
        self.previous_seconds = state.get("wall_time_s", 0.0)
        self.history = state.get("history", [])
        self.extra = state.get("extra", {})
        self.start = start
        self.last_train_loss = None
        self.metrics = None
        self.writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "tensorboard"))

    def wall_time(self):
        return self.previous_seconds + time.monotonic() - self.start

    def finish_round(self, logs):
        """Evaluates, writes summaries, metrics and a checkpoint; True to stop early."""
        result = evaluate(
            self.model, self.built.loss, self.built.test_dataset, self.built.error_rate,
            self.built.success_error_rate,
        )
        train_loss = logs.get("loss", self.last_train_loss)
        entry = {
            "step": self.step,
            "wall_time_s": round(self.wall_time(), 3),
            "train_loss": None if train_loss is None else float(train_loss),
            **result,
        }
        self.history.append(entry)
        with self.writer.as_default(step=self.step):
            for key in ("train_loss", "test_loss", "test_error_rate"):
                if entry[key] is not None:
                    tf.summary.scalar(key, entry[key])
        self.writer.flush()
        self.metrics = {
            **entry,
            **self.config.run_description(),
            "optimizer": self.config.optimizer,
            "train_steps": self.config.train_steps,
            "success_error_rate": self.built.success_error_rate,
            "history": self.history,
            **self.extra,
        }
        state = {
            "step": self.step,
            "wall_time_s": entry["wall_time_s"],
            "history": self.history,
            "extra": self.extra,
            "config": dataclasses.asdict(self.config),
        }
        self.checkpointer.save(self.model, state)
        self.checkpointer.save_metrics(self.metrics)
        if self.config.verbose == 2:
            print(
                f"step {self.step}: test_loss={entry['test_loss']:.5g} "
                f"test_error_rate={entry['test_error_rate']:.4f} success={entry['success']}",
                flush=True,
            )
        return self.config.early_stop and entry["success"]


_DESCRIPTION_DEFAULTS = {"task_options": {}}
"""Run-description fields older runs did not record, with the value they ran with."""


def _check_resumable(config, state, model_dir):
    saved = state["config"]
    description = config.run_description()
    if config.task is None:  # a family without tasks: older runs recorded the default task
        description.pop("task")
    mismatched = {
        k: (saved.get(k, _DESCRIPTION_DEFAULTS.get(k)), v)
        for k, v in description.items()
        if saved.get(k, _DESCRIPTION_DEFAULTS.get(k)) != v
    }
    if mismatched:
        details = ", ".join(f"{k}: saved {a!r}, requested {b!r}" for k, (a, b) in mismatched.items())
        raise ValueError(
            f"model_dir {model_dir!r} holds a different run ({details}); pass another "
            "--model_dir or the saved run's settings."
        )


def build_run(config, **model_options):
    """The family's `Built` for `config` (task resolved by `resolve_task`), without training."""
    family = registry.get_family(config.model)
    config = resolve_task(config)
    family_config = registry.make_config(family, **model_options)
    keras.utils.set_random_seed(config.seed)
    return family_config, family.build(config.model, family_config, config)


def train(config, callbacks=(), **model_options):
    """Trains (or resumes) the run of `config`; returns the final metrics dict.

    Args:
        config: a `TrainConfig`.
        callbacks: extra Keras callbacks for `fit`.
        **model_options: fields of the model family's config dataclass
            (e.g. `units=100`); `None` values keep the family default.

    Returns:
        The contents of `metrics.json`: `step`, `wall_time_s`, `test_loss`,
        `test_error_rate`, `success`, `history` and the run description.
    """
    start = time.monotonic()
    check_config(config)
    config = resolve_task(config)
    checkpointer = Checkpointer(config.model_dir)
    state = checkpointer.state()
    family_config, built = build_run(config, **model_options)
    if state is not None:
        _check_resumable(config, state, config.model_dir)
        model = checkpointer.load_model()
        done = state["step"] >= config.train_steps or (
            config.early_stop and state["history"] and state["history"][-1]["success"]
        )
        if done:
            return checkpointer.metrics()
    else:
        state = {"extra": {"model_config": dataclasses.asdict(family_config)}}
        model = built.model
        if built.pretrain is not None:
            pretraining_started = time.monotonic()
            state["extra"]["pretraining"] = built.pretrain(model, config)
            state["extra"]["pretraining"]["wall_time_s"] = round(
                time.monotonic() - pretraining_started, 3
            )
        model.compile(optimizer=make_optimizer(config), loss=built.loss)
    # The clock (wall_time_s, max_seconds) counts this invocation from its start,
    # model building and layer-wise pretraining included.
    run = _Run(config, built, model, checkpointer, state, start)
    if built.description and config.verbose:
        print(built.description, flush=True)
    dataset = built.train_dataset
    if run.step:
        dataset = dataset.skip(run.step)
    all_callbacks = [_RoundEnd(run), *callbacks]
    if config.gradient_steps:
        from rnnzoo.zoo.gradient_propagation import GradientPropagation

        all_callbacks.append(
            GradientPropagation(
                steps=config.gradient_steps,
                batch=next(iter(built.test_dataset)),
                loss=built.loss,
                output_dir=os.path.join(config.model_dir, "gradients"),
                start_step=run.step,
            )
        )
    round_steps = min(config.eval_every, config.train_steps)
    model.fit(
        dataset,
        steps_per_epoch=round_steps,
        epochs=math.ceil(config.train_steps / round_steps),
        initial_epoch=run.step // round_steps,
        callbacks=all_callbacks,
        shuffle=False,  # the task pipelines shuffle (or generate) their own batches
        verbose=1 if config.verbose == 1 else 0,
    )
    if run.metrics is None or run.metrics["step"] != run.step:
        run.finish_round({})
    return run.metrics


def evaluate_checkpoint(model_dir, task=None, seq_len=None, test_size=None, seed=None):
    """Evaluates the checkpoint in `model_dir` on a task's test set.

    Args:
        model_dir: a directory written by `train`.
        task, seq_len, test_size, seed: override the run's own (e.g. to test a
            model trained at T=100 on T=200); `None` keeps the run's.

    Returns:
        A dict with `test_loss`, `test_error_rate`, `success`, the step of
        the checkpoint and the evaluation's model/task/seq_len/seed/test_size.
    """
    checkpointer = Checkpointer(model_dir)
    state = checkpointer.state()
    if state is None:
        raise ValueError(
            f"No checkpoint in {model_dir!r}; pass the --model_dir of an rnnzoo-train run."
        )
    saved = dict(state["config"])
    for key in ("lr_boundaries", "lr_values", "momentum_boundaries", "momentum_values",
                "gradient_steps"):
        saved[key] = tuple(saved.get(key) or ())
    overrides = {"task": task, "seq_len": seq_len, "test_size": test_size, "seed": seed}
    config = dataclasses.replace(
        TrainConfig(**saved), **{k: v for k, v in overrides.items() if v is not None}
    )
    if registry.get_family(config.model).tasks == () and task is None:
        config = dataclasses.replace(config, task=None)  # older runs recorded a default task
    config = resolve_task(config)
    _, built = build_run(config, **state.get("extra", {}).get("model_config", {}))
    model = checkpointer.load_model()
    if model.input_shape != built.model.input_shape:
        raise ValueError(
            f"The model in {model_dir!r} takes inputs of shape {model.input_shape} (trained "
            f"with task={saved['task']!r}, seq_len={saved['seq_len']!r}), but task="
            f"{config.task!r} with seq_len={config.seq_len!r} gives {built.model.input_shape}; "
            "evaluate at the training seq_len (zoo models have a fixed input length)."
        )
    result = evaluate(model, built.loss, built.test_dataset, built.error_rate,
                      built.success_error_rate)
    return {
        **result,
        "step": state["step"],
        "model": config.model,
        "task": config.task,
        "task_options": config.task_options,
        "seq_len": config.seq_len,
        "seed": config.seed,
        "test_size": config.test_size,
        "model_dir": model_dir,
    }
