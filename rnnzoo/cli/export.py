"""rnnzoo-export: write a trained model as a SavedModel version for TensorFlow Serving.

  rnnzoo-export --model_dir=/tmp/resrnn_add --export_base=/models/addition        # next free version
  rnnzoo-export --model_dir=/tmp/char_mrnn --export_base=/models/char_lm --version=3

Takes the run directory of any family (`rnnzoo-train --model_dir`) and exports it with its
family's exporter (`rnnzoo.export.export_run`): char LMs get `generate` (= `serving_default`) and
`score` (docs/char_lm.md), seq2seq runs `translate`, arm controllers `control_step` and
`control_sequence`, RTRBM/TRBM runs `next_frame` and `generate_frames`, pathological-problem,
sequence-classifier and autoencoder runs the `predict` contract as `serving_default` (the Keras
model's inputs -> outputs). Every option of a family's exporter is a flag of the same name. It exports the run's best checkpoint (`best_model.keras`; runs without
one: the last), or with `--checkpoint=last` its last one. `--max_generate`, `--max_frames`, `--max_beam_width` and
`--max_decode_length` set the caps of the size arguments (docs/serving.md, "Size caps"). Writes `<export_base>/<version>/` with warmup records once the serving-parity and
signature-contract checks pass, and prints that directory. `--check_only=DIR` runs the
serving-parity check on an existing SavedModel instead.
"""

import sys

from rnnzoo.cli.quiet import quiet_tensorflow

quiet_tensorflow()

from absl import app, flags  # noqa: E402

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Directory of a trained model (rnnzoo-train --model_dir).")
_EXPORT_BASE = flags.DEFINE_string("export_base", None, "TF Serving base path; the export goes to <export_base>/<version>.")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: one more than the largest existing).")


RUN_DEFAULT = "the run's"
"""How a flag's help names an exporter default of `None`: the value the run was trained with."""


def _define_exporter_flags():
    """One flag per option of every family's exporter (`Family.export_options`: the size caps
    of its signatures); unset: the exporter's default."""
    from rnnzoo.training import registry

    owners = {}
    for family in registry.load_families().values():
        for name, default in family.export_options().items():
            owners.setdefault(name, []).append((family.name, default))
    return [
        flags.DEFINE_integer(name, None, "; ".join(
            f"{family} runs: default {RUN_DEFAULT if default is None else default}"
            for family, default in users) + " (docs/serving.md, size caps)")
        for name, users in sorted(owners.items())
    ]


_EXPORTER_FLAGS = _define_exporter_flags()
"""The exporters' options: a request above a size cap is INVALID_ARGUMENT before anything is allocated."""
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "best", ["best", "last"],
                                "Which checkpoint of the run to export: its best evaluation or its last step.")
_CHECK_ONLY = flags.DEFINE_string("check_only", None, "Only run the serving-parity check on this SavedModel directory.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from rnnzoo.export import ServingParityError, check_serving_parity, export_run

    try:
        if _CHECK_ONLY.value:
            check_serving_parity(_CHECK_ONLY.value)
            print(f"{_CHECK_ONLY.value}: serving parity OK")
            return 0
        if not _MODEL_DIR.value or not _EXPORT_BASE.value:
            raise app.UsageError("pass --model_dir=<trained model> and --export_base=<serving base path>")
        options = {flag.name: flag.value for flag in _EXPORTER_FLAGS if flag.value is not None}
        print(export_run(_MODEL_DIR.value, _EXPORT_BASE.value, _VERSION.value, checkpoint=_CHECKPOINT.value,
                         **options))
    except (ServingParityError, ValueError) as error:
        print(f"rnnzoo-export: {error}", file=sys.stderr)
        return 1
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
