"""Registry of zoo model families: which family builds, trains and exports which `--model` name.

A family is a module or package of `rnnzoo/zoo/` that declares itself once, with
`register(Family(...))` at import: its model names, its config dataclass (each field an
`rnnzoo-train` flag), its builder, its recipes, its exporter and the serving contracts its
exports carry, and its smallest configuration (what the family tests run). Nothing else lists
families: `load_families()` imports every module of `rnnzoo.zoo`, and the training loop
(`rnnzoo.training.loop.train`), `rnnzoo-train`, `rnnzoo-export`, the serving-contract docs and the
family tests find them here. The loop does the rest for every family: the optimizer, checkpoints
and resumption, TensorBoard summaries, progress bar, early stopping on the family's success
criterion, collapse detection and `metrics.json`.
"""

import dataclasses
import difflib
import importlib
import inspect
import pkgutil
from typing import Any, Callable

FAMILIES_PACKAGE = "rnnzoo.zoo"
"""The package whose modules (and subpackages) are the families."""


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
        metrics: the family's test metrics (`rnnzoo.training.evaluation.Metric`,
            each with its direction), in the order reports show them; the
            first one is the family's headline metric.
        success: the paper's success criterion on one of the metrics
            (`rnnzoo.training.evaluation.Criterion`); `None`: none, never stops early.
        evaluate: optional `evaluate(model) -> {metric name: value}` for
            metrics that are not functions of test-set predictions.
        pretrain: optional `pretrain(model, train_config)` run once
            before supervised training of a fresh model (e.g. layer-wise
            pretraining); returns a dict of pretraining statistics.
        resume: optional `resume(model)` run on the model a resumed run restores, before it
            trains on: adjusts what follows this invocation's settings (e.g. a learning-rate
            decay to 0 at a `train_steps` that the resumed run raised).
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
    resume: Callable | None = None
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family, declared once in its module of `rnnzoo.zoo`.

    Attributes:
        name: the family's name (e.g. `"char_lm"`).
        models: the `--model` names it builds.
        config_class: a dataclass of its model hyperparameters, every field with a default.
        build: `build(model_name, config, train_config) -> Built`; files the family keeps beside
            the model (e.g. a vocabulary) it writes as assets of the run's directory
            (`rnnzoo.training.run_directory.RunDirectory.save_asset`); the loop records `config`
            and `train_config` in the run's state file.
        export: `export(model_dir, export_base, version=None, checkpoint="best", **options)`,
            the family's exporter (what `rnnzoo-export` runs; each further keyword argument, e.g.
            a size cap, becomes an `rnnzoo-export` flag); `None`: the family has none yet.
        signatures: the serving contracts (`rnnzoo.serving.signatures`) its exports carry.
        default_signature: the one of `signatures` its exports also carry as `serving_default`
            (what TF Serving runs for a request that names no signature); `None`: none, or the
            `predict` contract, whose signature key is `serving_default` itself.
        smallest: `smallest(directory) -> (TrainConfig fields, model options)`: the family's
            smallest configuration, which the family tests train, resume, export and serve
            (any data it needs is written into `directory`).
        evaluate: `evaluate(model_dir) -> dict`, the family's own evaluations of a trained run,
            which `rnnzoo-evaluate` adds to its JSON.
        tasks: the `rnnzoo.data` tasks the family trains on (`None`: every task; `()`: none,
            the family reads its own data, e.g. a text corpus).
        default_task: the task of a run that names none.
        recipes: {model name: the training settings its paper trains it with}: fields of
            `rnnzoo.training.loop.TrainConfig` (e.g. `clip_norm`, `batch_size`), used wherever
            a run leaves them unset (`rnnzoo.training.loop.resolve_config`).
    """

    name: str
    models: tuple
    config_class: type
    build: Callable
    export: Callable | None = None
    signatures: tuple = ()
    default_signature: str | None = None
    smallest: Callable | None = None
    evaluate: Callable | None = None
    tasks: tuple | None = None
    default_task: str | None = "addition"
    recipes: dict = dataclasses.field(default_factory=dict)

    def export_options(self):
        """{option name: default} of the family's exporter beyond the run, base, version and
        checkpoint (e.g. `{"max_generate": 4096}`)."""
        if self.export is None:
            return {}
        parameters = inspect.signature(self.export).parameters
        return {name: p.default for name, p in parameters.items()
                if name not in ("model_dir", "export_base", "version", "checkpoint")}

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
    """Imports every module of `rnnzoo.zoo` so the families register themselves; returns
    {family name: Family}."""
    package = importlib.import_module(FAMILIES_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{FAMILIES_PACKAGE}.{module.name}")
    return dict(_FAMILIES)


def contract_families():
    """{serving contract name: the names of the families whose exports carry it, sorted}."""
    carriers = {}
    for family in load_families().values():
        for contract in family.signatures:
            carriers.setdefault(contract, []).append(family.name)
    return {contract: tuple(sorted(names)) for contract, names in carriers.items()}


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
