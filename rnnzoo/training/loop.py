"""The training loop shared by every zoo family: optimizer, checkpoints, metrics.

    from rnnzoo.training.loop import TrainConfig, train
    metrics = train(TrainConfig(model="irnn", task="addition", seq_len=50,
                                optimizer="momentum", learning_rate=1e-3,
                                clip_norm=0.1, batch_size=16, train_steps=2000,
                                model_dir="/tmp/irnn"))

`train` builds the family's model (`rnnzoo.training.registry`), runs its
pretraining once on a fresh run, checkpoints it as step 0, and fits it with
`keras.Model.fit` in rounds of `eval_every` steps. After every round it
evaluates the family's metrics (`rnnzoo.training.evaluation`), writes TensorBoard
scalars and `metrics.json`, checkpoints atomically (`rnnzoo.training.run_directory`)
and stops early once the success criterion holds. Re-running with the same
`model_dir` resumes from the checkpoint; a larger `train_steps` continues
training.

A run diverges when its training loss, its test loss or a weight becomes
non-finite: training stops at that step, the last good checkpoint stays as it
is, and `metrics.json` says `"diverged": true` with the step and
`"success": false`. Re-running the same `model_dir` resumes from the last good
checkpoint (e.g. with a lower `--learning_rate`).

Every evaluation that improves the family's primary metric
(`rnnzoo.training.evaluation.primary_metric`, its direction decides) is also kept as
the best checkpoint (`best_model.keras`, which `rnnzoo-export` exports);
`metrics.json` records `best_step` and `best` (its metrics). A run whose
held-out metric or training loss gets clearly and persistently worse than its
best (`rnnzoo.training.degradation`) is reported as `"degraded": true` with its
`peak_step` (judged afresh at every evaluation: a run that recovers is no
longer degraded), and with `stop_when_degraded` it stops there; the best
checkpoint holds the model of its peak, and a re-run resumes from the last
checkpoint.
"""

import dataclasses
import math
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.training import distribution, evaluation, registry
from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.training.degradation import StepLosses, TrainLossMonitor, heldout_degradation
from rnnzoo.training.position_weights import per_position_mean
from rnnzoo.training.optimizer_factory import (
    DEFAULT_CLIP_NORM,
    DEFAULT_LEARNING_RATE,
    DEFAULT_LR_DECAY_STEPS,
    OWN_STEP_OPTIMIZERS,
    check_optimizer_settings,
    make_optimizer,
)



@dataclasses.dataclass
class TrainConfig:
    """A training run; the `rnnzoo-train` flags map 1:1 onto these fields.

    Attributes:
        model, task: registry names (`rnnzoo.training.registry.model_names()`,
            `rnnzoo.data.task_names()`); `task=None` uses the model family's
            default (`addition`; `digits` for `deep_autoencoder`; none for
            the char-level language models, which read a corpus).
        task_options: task-specific options of `rnnzoo.data.get_task`, e.g.
            `{"binarize": True}` for `digits`.
        optimizer: one of `OPTIMIZERS`: `sgd`, `momentum` (classical, eq.
            7.1-7.2), `nag` (thesis eq. 7.12-7.13), `adam`, `hf` (Hessian-free,
            thesis Alg. 5), `ahf` (augmented Hessian-free, §6.2), `lbfgs` (L-BFGS,
            memory 100, §6.7.1).
        learning_rate: constant learning rate (ignored when `lr_values` is
            set); `None`: the model's recipe (`registry.Family.recipes`) or 1e-3.
        lr_boundaries, lr_values: piecewise-constant learning rate
            (`keras.optimizers.schedules.PiecewiseConstantDecay`), e.g. the
            thesis §7.4.2 schedule.
        lr_decay_steps: inverse-time decay of `learning_rate`,
            `lr_t = learning_rate / (1 + t / lr_decay_steps)`
            (`keras.optimizers.schedules.InverseTimeDecay`): it needs no run
            length, so a run stopped by `max_seconds` at any step has followed
            the same schedule. 0: constant; `None`: the model's recipe or 0.
        momentum: constant momentum, or the cap of the `nesterov` schedule.
        momentum_schedule: `constant`, `piecewise` (`momentum_boundaries`,
            `momentum_values`), `nesterov` (mu_t = 1 - 2^(-1-log2(t/period+1))
            capped at `momentum`) or `progression` (thesis §7.3 progression
            0.8 ... 0.999 at exponentially spaced steps from `momentum_period`).
        final_phase: fraction of the run at the end with the learning rate
            divided by 10 and mu = 0.99 (thesis §7.3); 0 disables it.
        hf_*: `rnnzoo.optimizers.HessianFree` arguments (`hf_cg_warm_start`:
            `backtracked` or `final`; `hf_evaluation_batch`: `gradient` or
            `curvature`); `ahf` uses `hf_max_cg_iterations` as its cap on Krylov
            directions and `hf_curvature_fraction`.
        seq_len: problem length T (task dependent).
        batch_size: training sequences per step.
        train_steps: total optimizer steps of the run (across resumptions).
        eval_every: steps between test evaluations and checkpoints.
        eval_seconds: also evaluate and checkpoint once this many seconds of
            wall time have passed since the last evaluation (0: by steps only),
            e.g. for a run bounded by `max_seconds` on machines of unknown speed.
        test_size: test examples (0: the task's default).
        clip_norm: gradient-norm clipping threshold (0: none); `None`: the
            model's recipe (0.1 for `irnn`, `resrnn`, `vlirnn` as longer-rnns
            §6 trains them), else none. Hessian-free takes no clipping.
        seed: seed of data and weights.
        model_dir: checkpoint, metrics and TensorBoard directory.
        early_stop: stop once the paper's success criterion holds on the test set.
        gradient_steps: steps at which to record gradient propagation
            (`rnnzoo.training.gradient_propagation`); empty: never.
        max_seconds: wall-clock budget of this invocation (0: none), counted
            from the start of `train` (model building and layer-wise
            pretraining included); the run stops after the step that exceeds
            it (and can be resumed).
        degraded_patience: evaluations (and x 100 steps of the smoothed
            training loss) in a row worse than the best by more than
            `degraded_tolerance` that make the run degraded
            (`rnnzoo.training.degradation`); 0: never.
        degraded_tolerance: relative margin of the degradation rule.
        stop_when_degraded: stop the run once it is degraded (else it goes
            on, reported as degraded until it recovers).
        verbose: Keras progress bar (1), one line per round (2) or silent (0).
        jit_compile: compile each training step with XLA (`True`/`False`);
            `None`: Keras's `"auto"` (on only with a GPU). Hessian-free
            steps compile too.
        mixed_precision: build the model under Keras's `mixed_float16`
            policy (float16 computations, float32 variables, loss scaling)
            for first-order optimizers; Hessian-free keeps the model, and so
            its curvature products and CG, in float32.
        distribution_strategy: `default` (one device), `mirrored` (the
            local GPUs or `devices`) or `multi_worker_mirrored` (the hosts of
            `TF_CONFIG`); see `rnnzoo.training.distribution`. Each step's global
            batch of `batch_size` is split into equal shards, one per replica;
            only the chief writes checkpoints, metrics and summaries.
        devices: device names of the `mirrored` strategy (empty: every GPU,
            else the CPU).
    """

    model: str = "irnn"
    task: str | None = None
    task_options: dict = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    learning_rate: float | None = None
    lr_boundaries: tuple = ()
    lr_values: tuple = ()
    lr_decay_steps: int | None = None
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
    hf_cg_warm_start: str = "backtracked"
    hf_evaluation_batch: str = "gradient"
    seq_len: int | None = None
    batch_size: int = 100
    train_steps: int = 1000
    eval_every: int = 100
    eval_seconds: float = 0.0
    test_size: int = 0
    clip_norm: float | None = None
    seed: int = 0
    model_dir: str = ""
    early_stop: bool = True
    gradient_steps: tuple = ()
    max_seconds: float = 0.0
    degraded_patience: int = 3
    degraded_tolerance: float = 0.1
    stop_when_degraded: bool = False
    verbose: int = 1
    jit_compile: bool | None = None
    mixed_precision: bool = False
    distribution_strategy: str = "default"
    devices: tuple = ()

    def run_description(self):
        """The fields that identify the run (a resumed run must keep them)."""
        return {"model": self.model, "task": self.task, "task_options": dict(self.task_options),
                "seq_len": self.seq_len, "seed": self.seed}

    def make_task(self):
        """The `rnnzoo.data.Task` of this run."""
        from rnnzoo.data import get_task

        return get_task(self.task, seq_len=self.seq_len, seed=self.seed, **self.task_options)


def resolve_config(config):
    """`config` with its task resolved by the model family (`registry.Family.resolve_task`) and
    unset training settings taken from the model's recipe (`registry.Family.recipes`) or the
    defaults."""
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
    settings = {"learning_rate": DEFAULT_LEARNING_RATE, "clip_norm": DEFAULT_CLIP_NORM,
                "lr_decay_steps": DEFAULT_LR_DECAY_STEPS}
    recipe = dict(family.recipes.get(config.model, {}))
    if config.optimizer in OWN_STEP_OPTIMIZERS:
        recipe.pop("clip_norm", None)  # these optimizers choose their own step
    if config.lr_values:
        recipe.pop("lr_decay_steps", None)  # the run's own schedule replaces the recipe's
    settings.update(recipe)
    unset = {name: value for name, value in settings.items() if getattr(config, name) is None}
    return dataclasses.replace(config, task=task, task_options=dict(config.task_options), **unset)


def _integer_at_least(name, value, minimum=1, meaning=""):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}{meaning}, got {value!r}.")


def check_config(config):
    """Raises a ValueError naming the first invalid field of `config`."""
    check_optimizer_settings(config)
    for name in ("batch_size", "train_steps", "eval_every"):
        _integer_at_least(name, getattr(config, name))
    if not config.eval_seconds >= 0:
        raise ValueError(f"eval_seconds must be >= 0 (0: evaluate every eval_every steps only), got "
                         f"{config.eval_seconds!r}.")
    _integer_at_least("degraded_patience", config.degraded_patience, 0, " (0: never degraded)")
    if not config.degraded_tolerance > 0:
        raise ValueError(f"degraded_tolerance must be > 0 (e.g. 0.1: 10% worse than the best), got "
                         f"{config.degraded_tolerance!r}.")
    if not config.model_dir:
        raise ValueError("model_dir is empty; pass a directory, e.g. --model_dir=/tmp/run1.")
    if config.distribution_strategy not in distribution.STRATEGIES:
        raise ValueError(
            f"distribution_strategy={config.distribution_strategy!r} is none of "
            f"{', '.join(distribution.STRATEGIES)}."
        )
    if config.distribution_strategy == "multi_worker_mirrored" and config.max_seconds:
        raise ValueError(
            f"max_seconds={config.max_seconds} cannot stop workers at the same step (each has its "
            "own clock); bound a multi-worker run by --train_steps instead."
        )


def _all_finite(variables):
    return all(bool(np.all(np.isfinite(np.asarray(v)))) for v in variables)


class _RoundEnd(keras.callbacks.Callback):
    """Counts steps; stops on divergence, at the step count or the time budget; at each
    round's end evaluates, logs, checkpoints and stops early on success."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_epoch_begin(self, epoch, logs=None):
        self.step_losses = StepLosses()

    def on_train_batch_begin(self, batch, logs=None):
        self.step_started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        run = self.run
        if run.step > run.first_step:  # the invocation's first step traces the graph
            run.train_seconds += time.monotonic() - self.step_started
        run.step += 1
        loss = None if logs is None else logs.get("loss")
        run.last_train_loss = None if loss is None else float(loss)
        if run.last_train_loss is not None and not math.isfinite(run.last_train_loss):
            run.diverge(f"training loss {run.last_train_loss}")
        elif run.last_train_loss is not None:
            step_loss = self.step_losses.update(batch, run.last_train_loss)
            run.train_loss_degradation = run.train_loss_monitor.update(run.step, step_loss)
        out_of_time = (run.config.max_seconds
                       and time.monotonic() - run.start > run.config.max_seconds)
        stop_degraded = run.config.stop_when_degraded and run.train_loss_degradation is not None
        if run.diverged or stop_degraded or run.step >= run.config.train_steps or out_of_time:
            self.model.stop_training = True
        elif run.config.eval_seconds and time.monotonic() - run.evaluated_at > run.config.eval_seconds:
            if run.finish_round():
                self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.run.diverged or self.run.finish_round():
            self.model.stop_training = True


class _Run:
    """State of one `train` call (step, clock, history, divergence)."""

    def __init__(self, config, built, model, run_dir, state, start, cpu_start, chief=True):
        self.config = config
        self.chief = chief
        self.built = built
        self.model = model
        self.run_dir = run_dir
        self.step = state.get("step", 0)
        self.first_step = self.step
        self.good_step = self.step
        self.train_seconds = state.get("train_seconds", 0.0)
        self.previous_seconds = state.get("wall_time_s", 0.0)
        self.previous_cpu_seconds = state.get("cpu_seconds", 0.0)
        self.history = state.get("history", [])
        self.first_evaluation = len(self.history)  # the degradation rule judges evaluations from here
        self.best = state.get("best")
        self.degradation = None
        self.train_loss_degradation = None
        self.train_loss_monitor = TrainLossMonitor(config.degraded_patience, config.degraded_tolerance)
        self.extra = state.get("extra", {})
        self.start = start
        self.cpu_start = cpu_start
        self.evaluated_at = start
        self.last_train_loss = None
        self.diverged = False
        self.metrics = None
        self.writer = (tf.summary.create_file_writer(run_dir.tensorboard_dir)
                       if chief else tf.summary.create_noop_writer())

    def wall_time(self):
        return self.previous_seconds + time.monotonic() - self.start

    def cpu_time(self):
        """CPU seconds of the run over all its invocations: each counts its process's CPU time
        (all threads) since it started, so a run in a worker process counts that process's."""
        return self.previous_cpu_seconds + time.process_time() - self.cpu_start

    def describe(self):
        """The run's fields of `metrics.json` besides the latest evaluation."""
        return {
            **self.config.run_description(),
            "optimizer": self.config.optimizer,
            "train_steps": self.config.train_steps,
            "metric_directions": evaluation.directions(self.built),
            "success_criterion": None if self.built.success is None else self.built.success.as_dict(),
            "best_step": None if self.best is None else self.best["step"],
            "best": self.best,
            "degraded": False,
            **({} if self.degradation is None else self.degradation.as_metrics()),
            "history": self.history,
            **self.extra,
        }

    def checkpoint(self, best=False):
        """Saves the model and the run state (atomically); the last good checkpoint from now on,
        and the best one too when `best`.

        A worker other than the chief saves into a directory it then deletes: saving
        reads distributed variables, which every worker of a multi-worker strategy does
        together."""
        self.good_step = self.step
        if self.chief:
            self._save(self.run_dir, best)
            return
        scratch = tempfile.mkdtemp(prefix="rnnzoo-worker-checkpoint-")
        try:
            self._save(RunDirectory(scratch), best)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _save(self, run_dir, best):
        run_dir.save(self.model, {
            "step": self.step,
            "best": self.best,
            "wall_time_s": round(self.wall_time(), 3),
            "cpu_seconds": round(self.cpu_time(), 3),
            "train_seconds": round(self.train_seconds, 3),
            "history": self.history,
            "extra": self.extra,
            "config": dataclasses.asdict(self.config),
        }, best=best)

    def diverge(self, what):
        """Records a divergence at the current step; the last good checkpoint is left as it is."""
        self.diverged = True
        self.metrics = {
            "step": self.step,
            "wall_time_s": round(self.wall_time(), 3),
            "cpu_seconds": round(self.cpu_time(), 3),
            "train_loss": evaluation.finite_or_none(self.last_train_loss)
            if self.last_train_loss is not None else None,
            "test_loss": None,
            "success": False,
            "diverged": True,
            "diverged_at_step": self.step,
            "divergence": what,
            "last_good_step": self.good_step,
            **self.describe(),
        }
        if self.chief:
            self.run_dir.save_metrics(self.metrics)

    def finish_round(self):
        """Evaluates, writes summaries, metrics and a checkpoint; True to stop early."""
        self.evaluated_at = time.monotonic()
        if self.metrics is not None and self.metrics["step"] == self.step and not self.metrics.get("diverged"):
            return self.config.early_stop and self.metrics["success"]  # evaluated at this step already
        if not _all_finite(self.model.weights):  # nothing to evaluate or keep
            self.diverge("non-finite weights")
            return True
        result = evaluation.evaluate(self.model, self.built)
        if self.built.test_dataset is not None and result["test_loss"] is None:
            self.diverge("non-finite test loss")
            return True
        entry = {
            "step": self.step,
            "wall_time_s": round(self.wall_time(), 3),
            "cpu_seconds": round(self.cpu_time(), 3),
            "train_seconds": round(self.train_seconds, 3),
            "train_loss": self.last_train_loss,
            **result,
        }
        self.history.append(entry)
        primary = evaluation.primary_metric(self.built)
        improved = evaluation.improves(entry, self.best, primary)
        if improved:
            self.best = {key: value for key, value in entry.items()
                         if key not in ("train_seconds", "cpu_seconds")}
        self.degradation = heldout_degradation(
            self.history, self.first_evaluation, primary,
            self.config.degraded_patience, self.config.degraded_tolerance) or self.train_loss_degradation
        with self.writer.as_default(step=self.step):
            for key, value in entry.items():
                if key not in ("step", "wall_time_s", "cpu_seconds", "train_seconds", "success") \
                        and value is not None:
                    tf.summary.scalar(key, value)
        self.writer.flush()
        self.metrics = {**entry, "diverged": False, **self.describe()}
        self.checkpoint(best=improved)
        if self.chief:
            self.run_dir.save_metrics(self.metrics)
        if self.config.verbose == 2:
            shown = ", ".join(f"{k}={_format(v)}" for k, v in result.items())
            print(f"step {self.step}: {shown}", flush=True)
        if self.degradation is not None and self.config.verbose:
            print(degradation_message(self.metrics), flush=True)
        stop_degraded = self.config.stop_when_degraded and self.degradation is not None
        return bool(stop_degraded or (self.config.early_stop and entry["success"]))


def _format(value):
    return f"{value:.5g}" if isinstance(value, float) else str(value)


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


def dtype_policy(config):
    """The Keras dtype policy the run's model is built under (see `TrainConfig.mixed_precision`)."""
    if config.mixed_precision and config.optimizer not in OWN_STEP_OPTIMIZERS:
        return "mixed_float16"
    return keras.config.dtype_policy().name


def build_run(config, **model_options):
    """The family's `Built` for `config` (resolved by `resolve_config`), without training."""
    family = registry.get_family(config.model)
    config = resolve_config(config)
    family_config = registry.make_config(family, **model_options)
    keras.utils.set_random_seed(config.seed)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy(config))
    try:
        return family_config, family.build(config.model, family_config, config)
    finally:
        keras.config.set_dtype_policy(previous)


def divergence_message(metrics):
    """One line saying where a diverged run diverged and what is kept, or `None`."""
    if not metrics or not metrics.get("diverged"):
        return None
    return (
        f"diverged at step {metrics['diverged_at_step']} ({metrics['divergence']}); the last good "
        f"checkpoint (step {metrics['last_good_step']}) is kept and a re-run resumes from it: "
        "lower --learning_rate or set --clip_norm"
    )


def degradation_message(metrics):
    """One line saying that and how a degraded run degraded and what is kept, or `None`."""
    if not metrics or not metrics.get("degraded"):
        return None
    return (
        f"degraded: {metrics['degradation']} (evaluated at step {metrics['step']}). The best checkpoint "
        f"(step {metrics['best_step']}) is what rnnzoo-export exports; a re-run resumes from the last one: "
        "lower --learning_rate or set --clip_norm"
    )


def train(config, callbacks=(), **model_options):
    """Trains (or resumes) the run of `config`; returns the final metrics dict.

    Args:
        config: a `TrainConfig`.
        callbacks: extra Keras callbacks for `fit`.
        **model_options: fields of the model family's config dataclass
            (e.g. `units=100`); `None` values keep the family default.

    Returns:
        The contents of `metrics.json`: `step`, `wall_time_s` (the run's wall
        clock), `cpu_seconds` (its process's CPU time, all threads, summed over
        invocations like `wall_time_s`), `train_seconds` (time in training
        steps, without evaluations, checkpoints and each invocation's first,
        graph-tracing step), `train_loss`,
        `test_loss`, `success`, `diverged`, the family's named metrics, their
        `metric_directions`, the `success_criterion`, `history` and the run
        description (a diverged run: also `diverged_at_step`, `divergence`
        and `last_good_step`), `best_step` and `best` (the best checkpoint's
        evaluation) and `degraded` (a degraded run: also `peak_step`,
        `degraded_at_step` and `degradation`).
    """
    start, cpu_start = time.monotonic(), time.process_time()
    check_config(config)
    config = resolve_config(config)
    run_dir = RunDirectory(config.model_dir)
    state = run_dir.state()
    strategy = distribution.make_strategy(config.distribution_strategy, config.devices)
    with strategy.scope():  # the model, its optimizer and metrics hold distributed variables
        return _train(config, callbacks, model_options, run_dir, state, strategy, start,
                      cpu_start)


def _train(config, callbacks, model_options, run_dir, state, strategy, start, cpu_start):
    family_config, built = build_run(config, **model_options)
    if state is not None:
        _check_resumable(config, state, config.model_dir)
        model = run_dir.load_model()
        if built.resume is not None:
            built.resume(model)
        done = state["step"] >= config.train_steps or (
            config.early_stop and state["history"] and state["history"][-1]["success"]
        )
        previous = run_dir.metrics()
        if done and not (previous or {}).get("diverged"):
            return previous
        if config.verbose and (previous or {}).get("diverged"):
            print(f"resuming from step {state['step']}, the last good checkpoint; the previous "
                  f"attempt diverged at step {previous['diverged_at_step']}", flush=True)
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
    if config.jit_compile is not None:  # also for a resumed run's restored model
        model.jit_compile = config.jit_compile
    # The clock (wall_time_s, max_seconds) counts this invocation from its start,
    # model building and layer-wise pretraining included.
    run = _Run(config, built, model, run_dir, state, start, cpu_start,
               distribution.is_chief(strategy))
    if not run.step:
        run.checkpoint()  # step 0: a good checkpoint to fall back on from the first step
    if built.description and config.verbose:
        print(built.description, flush=True)
    dataset = per_position_mean(built.train_dataset, model)
    if run.step:
        dataset = dataset.skip(run.step)
    if distribution.is_distributed(strategy):
        dataset = distribution.distribute_train_dataset(strategy, dataset, config.batch_size)
    all_callbacks = [_RoundEnd(run), *callbacks]
    if config.gradient_steps:
        from rnnzoo.training.gradient_propagation import GradientPropagation

        all_callbacks.append(
            GradientPropagation(
                steps=config.gradient_steps,
                batch=next(iter(built.test_dataset)),
                loss=built.loss,
                output_dir=run_dir.gradients_dir,
                start_step=run.step,
            )
        )
    round_steps = min(config.eval_every, config.train_steps)
    if run.step < config.train_steps:
        model.fit(
            dataset,
            steps_per_epoch=round_steps,
            epochs=math.ceil(config.train_steps / round_steps),
            initial_epoch=run.step // round_steps,
            callbacks=all_callbacks,
            shuffle=False,  # the task pipelines shuffle (or generate) their own batches
            verbose=1 if config.verbose == 1 else 0,
        )
    if not run.diverged and (run.metrics is None or run.metrics["step"] != run.step
                             or run.metrics.get("diverged")):
        run.finish_round()
    if distribution.is_distributed(strategy):
        # The next run in this process reads what the chief has just written.
        distribution.barrier(strategy)
    return run.metrics


def evaluate_checkpoint(model_dir, task=None, seq_len=None, test_size=None, seed=None, checkpoint="best"):
    """Evaluates a checkpoint of the run in `model_dir` on a task's test set.

    Args:
        model_dir: a directory written by `train`.
        task, seq_len, test_size, seed: override the run's own (e.g. to test a
            model trained at T=100 on T=200); `None` keeps the run's.
        checkpoint: `"best"` (the run's best evaluation; a run without one: its last step) or
            `"last"`.

    Returns:
        A dict with `test_loss`, the family's metrics, `success`, the step of
        the checkpoint and the evaluation's model/task/seq_len/seed/test_size.
    """
    run_dir = RunDirectory(model_dir)
    state = run_dir.require()
    saved = dict(run_dir.train_config())
    for key in ("lr_boundaries", "lr_values", "momentum_boundaries", "momentum_values",
                "gradient_steps"):
        saved[key] = tuple(saved.get(key) or ())
    overrides = {"task": task, "seq_len": seq_len, "test_size": test_size, "seed": seed}
    config = dataclasses.replace(
        TrainConfig(**saved), **{k: v for k, v in overrides.items() if v is not None}
    )
    if registry.get_family(config.model).tasks == () and task is None:
        config = dataclasses.replace(config, task=None)  # older runs recorded a default task
    _, built = build_run(config, **run_dir.model_config())
    config = resolve_config(config)
    model = run_dir.load_model(checkpoint)
    if model.input_shape != built.model.input_shape:
        raise ValueError(
            f"The model in {model_dir!r} takes inputs of shape {model.input_shape} (trained "
            f"with task={saved['task']!r}, seq_len={saved['seq_len']!r}), but task="
            f"{config.task!r} with seq_len={config.seq_len!r} gives {built.model.input_shape}; "
            "evaluate at the training seq_len (zoo models have a fixed input length)."
        )
    return {
        **evaluation.evaluate(model, built),
        "metric_directions": evaluation.directions(built),
        "step": state["step"] if checkpoint == "last" or not state.get("best") else state["best"]["step"],
        "checkpoint": checkpoint,
        "model": config.model,
        "task": config.task,
        "task_options": config.task_options,
        "seq_len": config.seq_len,
        "seed": config.seed,
        "test_size": config.test_size,
        "model_dir": model_dir,
    }
