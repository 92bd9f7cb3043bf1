"""Registry of zoo model families: which family builds which `--model` name.

A family is one file of `rnnzoo/zoo/` that declares:

- `name`: the family's name (e.g. `"pathological"`);
- `models`: the `--model` names it builds (e.g. `("rnn", "irnn", ...)`);
- `config_class`: a small dataclass of its model hyperparameters, every
  field with a default (the `rnnzoo-train` binary turns each field into a
  flag of the same name);
- `build(model_name, config, train_config) -> Built`: the compiled-ready
  model, its loss, its data and its evaluation (see `Built`).

and registers itself with `register(Family(...))` at import. The training
loop (`rnnzoo.zoo.training.train`) does the rest for every family: the
optimizer, checkpoints and resumption, TensorBoard summaries, progress
bar, early stopping on the family's success criterion, and `metrics.json`.
"""

import dataclasses
import difflib
import importlib
from typing import Any, Callable

FAMILY_MODULES = (
    "rnnzoo.zoo.pathological",
    "rnnzoo.zoo.sequence_classifier",
    "rnnzoo.zoo.autoencoder",
    "rnnzoo.zoo.char_lm",
    "rnnzoo.zoo.translation",
    "rnnzoo.zoo.arm_controller",
    "rnnzoo.zoo.rtrbm",
)
"""Modules imported by `load_families()`; a missing optional one is skipped."""


@dataclasses.dataclass
class Built:
    """What a family hands to the training loop.

    Attributes:
        model: a `keras.Model` with linear outputs, not compiled: a
            `rnnzoo.Model` (which also runs Hessian-free), or a model of the
            family's own whose `train_step` is its training rule (e.g. the
            RTRBM's contrastive divergence).
        loss: the Keras loss to compile with (a matching loss on linear
            outputs, e.g. `"mse"` or `SparseCategoricalCrossentropy(from_logits=True)`,
            so Hessian-free can use it too).
        train_dataset: endless `tf.data.Dataset` of training batches.
        test_dataset: finite `tf.data.Dataset` of test batches `(x, y)` or
            `(x, y, sample_weight)` (batches may differ in length); `None` when
            the family's `evaluate` does all the evaluation.
        metrics: the family's test metrics (`rnnzoo.zoo.evaluation.Metric`,
            each with its direction), in the order reports show them; the
            first one is the family's headline metric.
        success: the paper's success criterion on one of the metrics
            (`rnnzoo.zoo.evaluation.Criterion`); `None`: none, never stops early.
        evaluate: optional `evaluate(model) -> {metric name: value}` for
            metrics that are not functions of test-set predictions.
        pretrain: optional `pretrain(model, train_config)` run once
            before supervised training of a fresh model (e.g. layer-wise
            pretraining); returns a dict of pretraining statistics.
        description: one line shown at the start of training.
    """

    model: Any
    loss: Any
    train_dataset: Any
    test_dataset: Any
    metrics: tuple = ()
    success: Any = None
    evaluate: Callable | None = None
    pretrain: Callable | None = None
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: its model names, its config dataclass and its builder.

    `evaluate`, when given, is `evaluate(model_dir) -> dict`: the family's own
    evaluations of a trained run, which `rnnzoo-evaluate` adds to its JSON.
    `tasks` names the `rnnzoo.data` tasks the family trains on (`None`: every
    task; `()`: none, the family reads its own data, e.g. a text corpus), and
    `default_task` is the one a run without a task uses. `recipes` maps a
    model name to the training settings its paper trains it with (fields of
    `rnnzoo.zoo.training.TrainConfig` such as `clip_norm`), used where a run
    leaves them unset; `optimizer`, `momentum`, `batch_size`, `train_steps` and
    `eval_every` in a recipe are used by `rnnzoo-train` where its command line
    leaves those flags out.
    """

    name: str
    models: tuple
    config_class: type
    build: Callable
    evaluate: Callable | None = None
    tasks: tuple | None = None
    default_task: str | None = "addition"
    recipes: dict = dataclasses.field(default_factory=dict)

    def resolve_task(self, task):
        """`task`, or the default when `None`; raises `ValueError` for a task the family does not take."""
        if task is None:
            return self.default_task
        if self.tasks is None:
            from rnnzoo.data import task_names

            if task not in task_names():
                raise ValueError(
                    f"Unknown task {task!r}; choose one of: {', '.join(task_names())}."
                )
        elif not self.tasks:
            raise ValueError(
                f"Models of family {self.name!r} ({', '.join(self.models)}) read their own data "
                f"and take no task; drop task={task!r} (--task)."
            )
        elif task not in self.tasks:
            raise ValueError(
                f"Models of family {self.name!r} train on {', '.join(self.tasks)} only; got "
                f"task {task!r}."
            )
        return task


_FAMILIES = {}


def register(family):
    """Registers `family`; a model name may belong to one family only."""
    for model in family.models:
        owner = _model_owner().get(model)
        if owner is not None and owner.name != family.name:
            raise ValueError(
                f"Model name {model!r} of family {family.name!r} is already registered by "
                f"family {owner.name!r}; choose another name."
            )
    _FAMILIES[family.name] = family
    return family


def _model_owner():
    return {m: f for f in _FAMILIES.values() for m in f.models}


def load_families():
    """Imports the family modules so they register themselves; returns the families."""
    for module in FAMILY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
    return dict(_FAMILIES)


def model_names():
    """Every registered `--model` name, sorted."""
    load_families()
    return sorted(_model_owner())


def get_family(model_name):
    """The `Family` that builds `model_name`.

    Raises:
        ValueError: unknown model, naming the valid ones.
    """
    load_families()
    owners = _model_owner()
    if model_name not in owners:
        close = difflib.get_close_matches(str(model_name), owners, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"Unknown model {model_name!r}; {hint}choose one of: {', '.join(sorted(owners))}."
        )
    return owners[model_name]


def make_config(family, **overrides):
    """`family.config_class(**overrides)`, ignoring `None` values; unknown names raise."""
    fields = {f.name for f in dataclasses.fields(family.config_class)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"Model family {family.name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(sorted(fields))}."
        )
    return family.config_class(**{k: v for k, v in overrides.items() if v is not None})
