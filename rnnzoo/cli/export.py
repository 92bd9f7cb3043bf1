"""rnnzoo-export: write a trained model as a SavedModel version for TensorFlow Serving.

  rnnzoo-export --model_dir=/tmp/char_mrnn --export_base=/models/char_lm            # next free version
  rnnzoo-export --model_dir=/tmp/char_mrnn --export_base=/models/char_lm --version=3

Writes `<export_base>/<version>/` with the `generate` (= `serving_default`) and
`score` signatures and warmup records, after the serving-parity check passes
(docs/char_lm.md). Prints the version directory. `--check_only=DIR` runs the
serving-parity check on an existing SavedModel instead.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Directory of a trained model (rnnzoo-train --model_dir).")
_EXPORT_BASE = flags.DEFINE_string("export_base", None, "TF Serving base path; the export goes to <export_base>/<version>.")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: one more than the largest existing).")
_MAX_GENERATE = flags.DEFINE_integer("max_generate", 4096, "Largest max_length the generate signature accepts.")
_CHECK_ONLY = flags.DEFINE_string("check_only", None, "Only run the serving-parity check on this SavedModel directory.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from rnnzoo.export import ServingParityError, check_serving_parity, export_model_dir

    try:
        if _CHECK_ONLY.value:
            check_serving_parity(_CHECK_ONLY.value)
            print(f"{_CHECK_ONLY.value}: serving parity OK")
            return 0
        if not _MODEL_DIR.value or not _EXPORT_BASE.value:
            raise app.UsageError("pass --model_dir=<trained model> and --export_base=<serving base path>")
        print(export_model_dir(_MODEL_DIR.value, _EXPORT_BASE.value, _VERSION.value, _MAX_GENERATE.value))
    except (ServingParityError, ValueError) as error:
        print(f"rnnzoo-export: {error}", file=sys.stderr)
        return 1
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
