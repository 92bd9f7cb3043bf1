"""rnnzoo-export: write a trained model as a SavedModel version for TensorFlow Serving.

  rnnzoo-export --model_dir=/tmp/resrnn_add --export_base=/models/addition        # next free version
  rnnzoo-export --model_dir=/tmp/char_mrnn --export_base=/models/char_lm --version=3

Takes the run directory of any family (`rnnzoo-train --model_dir`) and exports it with its
family's exporter (`rnnzoo.export.export_run`): char LMs get the `generate` (= `serving_default`)
and `score` signatures (docs/char_lm.md); pathological-problem, sequence-classifier and
autoencoder runs the `predict` contract as `serving_default` (the Keras model's inputs ->
outputs). Writes `<export_base>/<version>/` with warmup records once the serving-parity and
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
_MAX_GENERATE = flags.DEFINE_integer(
    "max_generate", None, "Char-LM runs: largest max_length the generate signature accepts (default 4096)."
)
_MAX_FRAMES = flags.DEFINE_integer(
    "max_frames", None, "RTRBM/TRBM runs: largest num_frames the generate_frames signature accepts (default 1000)."
)
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
        options = {} if _MAX_GENERATE.value is None else {"max_generate": _MAX_GENERATE.value}
        if _MAX_FRAMES.value is not None:
            options["max_frames"] = _MAX_FRAMES.value
        print(export_run(_MODEL_DIR.value, _EXPORT_BASE.value, _VERSION.value, **options))
    except (ServingParityError, ValueError) as error:
        print(f"rnnzoo-export: {error}", file=sys.stderr)
        return 1
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
