"""Export a training run with its family's exporter: what `rnnzoo-export --model_dir=RUN` does.

A run's family comes from its model name (`rnnzoo.training.registry.get_family`), read from its
training configuration (`rnnzoo.training.run_directory.RunDirectory.train_config`); the family
declares its exporter (`Family.export`).
"""

from rnnzoo.training import registry
from rnnzoo.training.run_directory import RunDirectory


def run_model_name(model_dir):
    """The `--model` name of the run in `model_dir`; raises `ValueError` if it is no training run."""
    model = RunDirectory(model_dir).train_config().get("model")
    if not model:
        raise ValueError(f"the run in {model_dir!r} names no model; is it from rnnzoo-train? Train again "
                         "into a fresh --model_dir")
    return model


def run_family(model_dir):
    """The family name (`pathological`, `char_lm`, `seq2seq`, ...) of the run in `model_dir`."""
    return registry.get_family(run_model_name(model_dir)).name


def export_run(model_dir, export_base, version=None, checkpoint="best", **options):
    """Exports the run in `model_dir` as `<export_base>/<version>/` with its family's exporter; returns the path.

    Args:
        checkpoint: `"best"` (the run's best evaluation) or `"last"`.
        options: exporter options of the run's family (`Family.export_options`, e.g. `max_generate`
            for char LMs).

    Raises:
        ValueError: not a training run, a family without exporter, an option the family's exporter does
            not take, a bad or existing version.
        ServingParityError: the export would not run on stock TF Serving or breaks its contracts.
    """
    family = registry.get_family(run_model_name(model_dir))
    if family.export is None:
        exporting = sorted(f.name for f in registry.load_families().values() if f.export is not None)
        raise ValueError(
            f"runs of family {family.name!r} ({model_dir!r}) have no exporter yet; declare one as its "
            f"Family's `export` (families with one: {', '.join(exporting)})"
        )
    accepted = family.export_options()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} does not apply to {family.name} runs (their exporter takes "
            f"{', '.join(sorted(accepted)) or 'no options'}); drop it"
        )
    return family.export(model_dir, export_base, version, checkpoint=checkpoint, **options)
