"""`rnnzoo-train`: trains a zoo model on a task, resumably, and writes metrics.json.

    rnnzoo-train --model=irnn --task=addition --seq_len=100 --optimizer=momentum \
        --learning_rate=1e-3 --clip_norm=0.1 --batch_size=16 --train_steps=20000 \
        --model_dir=/tmp/irnn_add100

Flags map 1:1 onto `rnnzoo.training.loop.TrainConfig`; the model family's
options (e.g. `--units`, `--num_scopes`) onto its config dataclass (unset:
the family default). Re-running with the same `--model_dir` resumes from its
checkpoint; a larger `--train_steps` continues. `--flagfile` works.

A run whose training loss (or test loss, or a weight) becomes NaN or infinite
stops there: metrics.json says `"diverged": true` and `"success": false`, the
last good checkpoint is kept, one line on stderr says where it diverged, and
the exit status is 1. A run that gets clearly and persistently worse than its
best (`--degraded_patience`, `--degraded_tolerance`) is reported as
`"degraded": true` with its `peak_step` (and stops with `--stop_when_degraded`),
and the last line on stderr says so; `best_model.keras` (what `rnnzoo-export`
exports) holds the model of its best evaluation.
"""

import ast
import dataclasses
import json
import sys
import typing

from rnnzoo.cli.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

from absl import app, flags  # noqa: E402

from rnnzoo.optimizers.hessian_free import CG_WARM_STARTS, EVALUATION_BATCHES  # noqa: E402
from rnnzoo.training import distribution, registry  # noqa: E402
from rnnzoo.training.optimizer_factory import MOMENTUM_SCHEDULES, OPTIMIZERS  # noqa: E402
from rnnzoo.training.loop import TrainConfig  # noqa: E402

_DEFAULTS = TrainConfig()

flags.DEFINE_string("model", None, "Model name (see the error message of an unknown name).")
flags.DEFINE_string("task", None, "Task name of rnnzoo.data (default: the model family's; "
                    "addition, digits for deep_autoencoder, none for char_* models).")
flags.DEFINE_list("task_options", [], "Task options as name=value pairs, e.g. binarize=true "
                  "for digits (see rnnzoo.data.get_task).")
flags.DEFINE_string("optimizer", _DEFAULTS.optimizer, f"One of {', '.join(OPTIMIZERS)}.")
flags.DEFINE_float("learning_rate", None, "Constant learning rate (default: the model's "
                   "recipe, else 1e-3).")
flags.DEFINE_list("lr_boundaries", [], "Steps where the piecewise-constant learning rate changes.")
flags.DEFINE_list("lr_values", [], "Piecewise-constant learning rates (one more than boundaries).")
flags.DEFINE_integer("lr_decay_steps", None, "Inverse-time decay: lr / (1 + step / "
                     "lr_decay_steps); 0: constant (default: the model's recipe, else 0).")
flags.DEFINE_float("momentum", _DEFAULTS.momentum, "Constant momentum, or cap of `nesterov`.")
flags.DEFINE_string(
    "momentum_schedule", _DEFAULTS.momentum_schedule, f"One of {', '.join(MOMENTUM_SCHEDULES)}."
)
flags.DEFINE_list("momentum_boundaries", [], "Steps where the piecewise momentum changes.")
flags.DEFINE_list("momentum_values", [], "Piecewise momenta (one more than boundaries).")
flags.DEFINE_integer("momentum_period", _DEFAULTS.momentum_period,
                     "Block length of `nesterov`; first switch of `progression`.")
flags.DEFINE_float("final_phase", _DEFAULTS.final_phase,
                   "Final fraction of training with lr/10 and momentum 0.99 (thesis §7.3).")
flags.DEFINE_float("hf_damping", _DEFAULTS.hf_damping, "HF: initial Tikhonov damping lambda.")
flags.DEFINE_float("hf_structural_damping", _DEFAULTS.hf_structural_damping,
                   "HF: structural damping mu (thesis §4.2.3).")
flags.DEFINE_integer("hf_max_cg_iterations", _DEFAULTS.hf_max_cg_iterations,
                     "HF: CG step cap; AHF: direction cap.")
flags.DEFINE_float("hf_curvature_fraction", _DEFAULTS.hf_curvature_fraction,
                   "HF, AHF: fraction of each batch used for curvature products.")
flags.DEFINE_string("hf_cg_warm_start", _DEFAULTS.hf_cg_warm_start,
                    f"HF: CG's warm start, one of {', '.join(CG_WARM_STARTS)} (the step "
                    "backtracking chose, or the last CG iterate as Martens 2010 §4.5).")
flags.DEFINE_string("hf_evaluation_batch", _DEFAULTS.hf_evaluation_batch,
                    f"HF: the batch of CG backtracking and rho, one of "
                    f"{', '.join(EVALUATION_BATCHES)} (the whole batch or its curvature part).")
flags.DEFINE_integer("seq_len", None, "Problem length T.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Training sequences per step.")
flags.DEFINE_integer("train_steps", _DEFAULTS.train_steps, "Total optimizer steps.")
flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every, "Steps between evaluations/checkpoints.")
flags.DEFINE_float("eval_seconds", _DEFAULTS.eval_seconds, "Also evaluate/checkpoint after this many seconds "
                   "since the last evaluation (0: by steps only).")
flags.DEFINE_integer("test_size", _DEFAULTS.test_size, "Test examples (0: task default).")
flags.DEFINE_float("clip_norm", None, "Gradient-norm clipping, 0: none (default: the model's "
                   "recipe: 0.1 for irnn/resrnn/vlirnn as longer-rnns §6, 1.0 for char_*; else none).")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of data and weights.")
flags.DEFINE_string("model_dir", None, "Checkpoint/metrics/TensorBoard directory.")
flags.DEFINE_bool("early_stop", _DEFAULTS.early_stop, "Stop once the success criterion holds.")
flags.DEFINE_list("gradient_steps", [], "Steps at which to record per-time-step gradients.")
flags.DEFINE_float("max_seconds", _DEFAULTS.max_seconds, "Wall-clock budget of this run (0: none).")
flags.DEFINE_integer("degraded_patience", _DEFAULTS.degraded_patience,
                     "Evaluations (and x100 steps of the smoothed training loss) in a row worse than the best "
                     "by more than --degraded_tolerance that make the run degraded (0: never).")
flags.DEFINE_bool("stop_when_degraded", _DEFAULTS.stop_when_degraded,
                  "Stop a degraded run (else it goes on, reported as degraded until it recovers).")
flags.DEFINE_float("degraded_tolerance", _DEFAULTS.degraded_tolerance,
                   "Relative margin of the degradation rule (0.1: 10% worse than the best).")
flags.DEFINE_integer("verbose", _DEFAULTS.verbose, "1: progress bar, 2: a line per round, 0: quiet.")
flags.DEFINE_bool("jit_compile", _DEFAULTS.jit_compile, "Compile training steps with XLA "
                  "(Hessian-free included); unset: Keras's 'auto' (on with a GPU only).")
flags.DEFINE_bool("mixed_precision", _DEFAULTS.mixed_precision, "Keras mixed_float16 for "
                  "first-order optimizers; --optimizer=hf keeps its model and curvature in float32.")

flags.DEFINE_enum("distribution_strategy", _DEFAULTS.distribution_strategy, list(distribution.STRATEGIES),
                  "default: one device; mirrored: this machine's GPUs (or --devices); "
                  "multi_worker_mirrored: the hosts of TF_CONFIG (see docs/training.md).")
flags.DEFINE_list("devices", [], "Devices of --distribution_strategy=mirrored, e.g. /gpu:0,/gpu:1 "
                  "(default: every GPU, else the CPU).")
flags.DEFINE_integer("logical_cpu_devices", 0, "Split the CPU into N logical devices /cpu:0.. "
                     "(e.g. to run mirrored replicas without GPUs; 0: leave it whole).")

RECIPE_FLAGS = ("optimizer", "momentum", "batch_size", "train_steps", "eval_every")
"""Settings a model's recipe (`registry.Family.recipes`) gives `rnnzoo-train` runs that leave the flag out."""

_FLAG_TYPES = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string,
               bool: flags.DEFINE_bool}


def _flag_type(annotation):
    """`int` for `int` or `int | None`, likewise for the other flag types; else None."""
    candidates = [t for t in typing.get_args(annotation) if t is not type(None)] or [annotation]
    return candidates[0] if len(candidates) == 1 and candidates[0] in _FLAG_TYPES else None


def _define_model_flags():
    """One flag per field of every family's config dataclass (default: the family's)."""
    defined = {}
    for family in registry.load_families().values():
        for field in dataclasses.fields(family.config_class):
            if field.name in defined or field.name in flags.FLAGS:
                continue
            define = _FLAG_TYPES.get(_flag_type(field.type), flags.DEFINE_string)
            define(field.name, None, f"Model option of family {family.name!r} "
                   f"(default {field.default!r}).")
            defined[field.name] = family
    return defined


_MODEL_FLAGS = _define_model_flags()
FLAGS = flags.FLAGS


def _fail(message):
    print(f"rnnzoo-train: {message}", file=sys.stderr)
    sys.exit(2)


def parse_task_options(pairs):
    """`{"binarize": True}` from `["binarize=true"]`: values are Python literals, true/false or text."""
    options = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            _fail(f"--task_options entry {pair!r} is not name=value; e.g. --task_options=binarize=true.")
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            value = lowered == "true"
        else:
            try:
                value = ast.literal_eval(text.strip())
            except (ValueError, SyntaxError):
                value = text.strip()
        options[name.strip()] = value
    return options


def config_from_flags():
    """`(TrainConfig, model options)` from the parsed flags; exits naming a bad value."""
    if FLAGS.model is None:
        _fail(f"--model is required; choose one of: {', '.join(registry.model_names())}.")
    try:
        family = registry.get_family(FLAGS.model)
    except ValueError as error:
        _fail(str(error))
    try:
        task = family.resolve_task(FLAGS.task)
    except ValueError as error:
        _fail(str(error))
    if FLAGS.optimizer not in OPTIMIZERS:
        _fail(f"Unknown optimizer {FLAGS.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}.")
    if not FLAGS.model_dir:
        _fail("--model_dir is required (checkpoints, metrics.json and TensorBoard logs go there).")
    try:
        config = TrainConfig(
            model=FLAGS.model, task=task, task_options=parse_task_options(FLAGS.task_options),
            optimizer=FLAGS.optimizer,
            learning_rate=FLAGS.learning_rate,
            lr_boundaries=tuple(int(v) for v in FLAGS.lr_boundaries),
            lr_values=tuple(float(v) for v in FLAGS.lr_values),
            lr_decay_steps=FLAGS.lr_decay_steps,
            momentum=FLAGS.momentum, momentum_schedule=FLAGS.momentum_schedule,
            momentum_boundaries=tuple(int(v) for v in FLAGS.momentum_boundaries),
            momentum_values=tuple(float(v) for v in FLAGS.momentum_values),
            momentum_period=FLAGS.momentum_period, final_phase=FLAGS.final_phase,
            hf_damping=FLAGS.hf_damping, hf_structural_damping=FLAGS.hf_structural_damping,
            hf_max_cg_iterations=FLAGS.hf_max_cg_iterations,
            hf_curvature_fraction=FLAGS.hf_curvature_fraction,
            hf_cg_warm_start=FLAGS.hf_cg_warm_start,
            hf_evaluation_batch=FLAGS.hf_evaluation_batch,
            seq_len=FLAGS.seq_len, batch_size=FLAGS.batch_size, train_steps=FLAGS.train_steps,
            eval_every=FLAGS.eval_every, eval_seconds=FLAGS.eval_seconds, test_size=FLAGS.test_size, clip_norm=FLAGS.clip_norm,
            seed=FLAGS.seed, model_dir=FLAGS.model_dir, early_stop=FLAGS.early_stop,
            gradient_steps=tuple(int(v) for v in FLAGS.gradient_steps),
            max_seconds=FLAGS.max_seconds, degraded_patience=FLAGS.degraded_patience,
            degraded_tolerance=FLAGS.degraded_tolerance, stop_when_degraded=FLAGS.stop_when_degraded,
            verbose=FLAGS.verbose,
            jit_compile=FLAGS.jit_compile, mixed_precision=FLAGS.mixed_precision,
            distribution_strategy=FLAGS.distribution_strategy, devices=tuple(FLAGS.devices),
        )
    except ValueError as error:
        _fail(f"bad list flag value: {error}")
    # A model's recipe may also name the optimizer, momentum, batch size and length of run its paper
    # trains with (e.g. the RTRBM's SGD with momentum 0.9 on one video per update; seq2seq's 15-minute
    # run): they replace the loop's defaults where the command line leaves those flags out.
    recipe = family.recipes.get(FLAGS.model, {})
    config = dataclasses.replace(config, **{name: recipe[name] for name in RECIPE_FLAGS
                                            if name in recipe and not FLAGS[name].present})
    fields = {f.name for f in dataclasses.fields(family.config_class)}
    options = {name: FLAGS[name].value for name in fields if name in _MODEL_FLAGS}
    foreign = [n for n, f in _MODEL_FLAGS.items() if n not in fields and FLAGS[n].present]
    if foreign:
        _fail(
            f"--{', --'.join(foreign)} do not apply to model {FLAGS.model!r}; its options are: "
            f"{', '.join(sorted(fields))}."
        )
    return config, options


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; all options are --flags.")
    config, options = config_from_flags()
    from rnnzoo.training.loop import degradation_message, divergence_message, train

    try:
        if FLAGS.logical_cpu_devices:
            distribution.use_logical_cpu_devices(FLAGS.logical_cpu_devices)
        metrics = train(config, **options)
    except ValueError as error:
        _fail(str(error))
    summary = {k: v for k, v in metrics.items() if k != "history"}
    print(json.dumps(summary, sort_keys=True))
    diverged = divergence_message(metrics)
    if diverged:
        print(f"rnnzoo-train: {diverged}", file=sys.stderr)
        sys.exit(1)
    degraded = degradation_message(metrics)
    if degraded:
        print(f"rnnzoo-train: {degraded}", file=sys.stderr)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
