"""Atomic checkpoints of a training run in its `model_dir`.

A run's directory holds:

- `model.keras`: the last checkpoint, the model with its optimizer state (Keras format), from
  which a re-run resumes;
- `best_model.keras`: the best checkpoint by the family's primary metric (its direction
  decides; `rnnzoo.training.evaluation.primary_metric`), which `rnnzoo-export` exports;
- `checkpoint.json`: the step, the run's configuration and training state (`best`: the best
  checkpoint's step and metrics);
- `metrics.json`: the latest test metrics and their history.

Every file is written to a temporary name in the same directory and then
renamed over the old one (`os.replace`, atomic on POSIX), so an interrupted
run leaves the previous checkpoint intact.
"""

import json
import os
import shutil
import tempfile

import keras

MODEL_FILE = "model.keras"
BEST_MODEL_FILE = "best_model.keras"
CHECKPOINTS = ("best", "last")
"""What `model_file` (and `rnnzoo-export --checkpoint`) can name."""
STATE_FILE = "checkpoint.json"
METRICS_FILE = "metrics.json"


def write_json_atomically(path, payload):
    """Writes `payload` as JSON to `path` through a temporary file and a rename."""

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
            f.write("\n")

    _write_atomically(write, path)


def model_file(model_dir, checkpoint="best"):
    """The Keras file of a run's `checkpoint`: `"best"` (runs written before best checkpoints existed
    have only the last, which is then their best) or `"last"`.

    Raises:
        ValueError: an unknown `checkpoint`.
    """
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint={checkpoint!r} is none of {', '.join(CHECKPOINTS)}; pass best (the default) "
                         "or last.")
    best = os.path.join(model_dir, BEST_MODEL_FILE)
    if checkpoint == "best" and os.path.exists(best):
        return best
    return os.path.join(model_dir, MODEL_FILE)


def _write_atomically(write, path):
    """`write(tmp)` into a temporary file beside `path`, then renames it over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_json(path):
    with open(path) as f:
        return json.load(f)


class Checkpointer:
    """Saves and restores a run in `model_dir` (see the module docstring)."""

    def __init__(self, model_dir):
        if not model_dir:
            raise ValueError("model_dir is empty; pass a directory, e.g. --model_dir=/tmp/run1.")
        self.model_dir = model_dir
        self.model_path = os.path.join(model_dir, MODEL_FILE)
        self.best_model_path = os.path.join(model_dir, BEST_MODEL_FILE)
        self.state_path = os.path.join(model_dir, STATE_FILE)
        self.metrics_path = os.path.join(model_dir, METRICS_FILE)

    def exists(self):
        return os.path.exists(self.state_path) and os.path.exists(self.model_path)

    def state(self):
        """The saved `checkpoint.json` contents, or `None` for a fresh directory."""
        return read_json(self.state_path) if self.exists() else None

    def metrics(self):
        return read_json(self.metrics_path) if os.path.exists(self.metrics_path) else None

    def save(self, model, state, best=False):
        """Saves the model (with optimizer state), also as the best checkpoint when `best`, then the
        state, each atomically."""
        _write_atomically(model.save, self.model_path)
        if best:
            _write_atomically(lambda tmp: shutil.copyfile(self.model_path, tmp), self.best_model_path)
        write_json_atomically(self.state_path, state)

    def save_metrics(self, metrics):
        write_json_atomically(self.metrics_path, metrics)

    def load_model(self):
        """The saved model, compiled with its optimizer state restored."""
        if not os.path.exists(self.model_path):
            raise ValueError(
                f"No checkpoint in {self.model_dir!r} ({MODEL_FILE} is missing); train a model "
                "there with rnnzoo-train --model_dir=... first."
            )
        return keras.saving.load_model(self.model_path, compile=True)
