"""Export a training run with its family's exporter: what `rnnzoo-export --model_dir=RUN` does.

A run's family comes from its model name (`rnnzoo.zoo.registry.get_family`), read from
`checkpoint.json` (`config.model`, written by `rnnzoo.zoo.training.train`) or, for a char LM
fitted without the training loop, from its `char_lm.json`. `EXPORTERS` maps each family to
its exporter, `exporter(model_dir, export_base, version, **options)`.
"""

import inspect
import json
import os

from rnnzoo.export import arm_controller, char_lm, predict, rtrbm, translation
from rnnzoo.zoo import registry
from rnnzoo.zoo.checkpoint import STATE_FILE

EXPORTERS = {
    "pathological": predict.export_run,
    "sequence_classifier": predict.export_run,
    "autoencoder": predict.export_run,
    "char_lm": char_lm.export_model_dir,
    "seq2seq": translation.export_model_dir,
    "arm_controller": arm_controller.export_model_dir,
    "rtrbm": rtrbm.export_model_dir,
}
"""{family name: exporter}; a new family adds its `rnnzoo/export/<family>.py` exporter here."""


def run_model_name(model_dir):
    """The `--model` name of the run in `model_dir`; raises `ValueError` if it is no training run."""
    for name, read in ((STATE_FILE, lambda run: run.get("config", {}).get("model")),
                       (char_lm.RUN_FILE, lambda run: run.get("model"))):
        path = os.path.join(model_dir, name)
        if os.path.exists(path):
            with open(path) as f:
                model = read(json.load(f))
            if not model:
                raise ValueError(f"{path} names no model; is it from rnnzoo-train? Train again into a fresh --model_dir")
            return model
    raise ValueError(
        f"{model_dir!r} is no rnnzoo training run (it holds no {STATE_FILE}); pass the --model_dir of a run "
        f"trained with `rnnzoo-train --model=... --model_dir=DIR`"
    )


def run_family(model_dir):
    """The family name (`pathological`, `sequence_classifier`, `autoencoder`, `char_lm`, ...) of a run."""
    return registry.get_family(run_model_name(model_dir)).name


def export_run(model_dir, export_base, version=None, **options):
    """Exports the run in `model_dir` as `<export_base>/<version>/` with its family's exporter; returns the path.

    Args:
        options: exporter options of the run's family (e.g. `max_generate` for char LMs).

    Raises:
        ValueError: not a training run, a family without exporter, an option the family's exporter does
            not take, a bad or existing version.
        ServingParityError: the export would not run on stock TF Serving or breaks its contracts.
    """
    family = run_family(model_dir)
    if family not in EXPORTERS:
        raise ValueError(
            f"runs of family {family!r} ({model_dir!r}) have no exporter yet; write rnnzoo/export/{family}.py "
            f"and list it in rnnzoo.export.runs.EXPORTERS (families with one: {', '.join(EXPORTERS)})"
        )
    exporter = EXPORTERS[family]
    accepted = set(inspect.signature(exporter).parameters) - {"model_dir", "export_base", "version"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} does not apply to {family} runs (their exporter takes "
            f"{', '.join(sorted(accepted)) or 'no options'}); drop it"
        )
    return exporter(model_dir, export_base, version, **options)
