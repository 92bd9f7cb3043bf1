"""A training run's directory, defined once: `RunDirectory` names its files, writes them
atomically and reads back what they hold.

    run = RunDirectory("/tmp/irnn")
    run.train_config()["seq_len"], run.model_config()["units"]
    model = run.load_model("best", compile=False)

A run's directory holds:

- `checkpoint.json`, the state file: the step, wall and CPU time, the history of evaluations,
  `best` (the best checkpoint's step and metrics), `config` (the run's `TrainConfig` as a dict,
  its settings as resolved from the model's recipe) and `extra` (`model_config`: the family's
  config dataclass as a dict; `pretraining` for runs that pretrain);
- `model.keras`: the last checkpoint, the model with its optimizer state (Keras format), from
  which a re-run resumes;
- `best_model.keras`: the best checkpoint by the family's primary metric (its direction
  decides; `rnnzoo.training.evaluation.primary_metric`), which `rnnzoo-export` exports;
- `metrics.json`: the latest test metrics and their history;
- `tensorboard/`: the TensorBoard summaries; `gradients/`: the gradient-propagation records of
  runs with `gradient_steps`;
- the assets a family keeps beside its model (`save_asset`), written by its `build`: a char LM's
  `vocabulary.json`, a seq2seq run's `sentencepiece.model`.

The training loop writes the state file and the last model at step 0, before the first training
step, so from then on a run's model, configuration and assets can be read.

Every file is written to a temporary name (`.tmp-*`) in the same directory and then renamed over
the old one (`os.replace`, atomic on POSIX), so an interrupted run leaves the previous checkpoint
intact.
"""

import json
import os
import shutil
import tempfile

import keras

STATE_FILE = "checkpoint.json"
LAST_MODEL_FILE = "model.keras"
BEST_MODEL_FILE = "best_model.keras"
METRICS_FILE = "metrics.json"
TENSORBOARD_DIR = "tensorboard"
GRADIENTS_DIR = "gradients"
TEMPORARY_PREFIX = ".tmp-"
"""The names of the files a save has not renamed into place yet (a killed process leaves them)."""
CHECKPOINTS = ("best", "last")
"""What `RunDirectory.model_file` (and `rnnzoo-export --checkpoint`) can name."""


def _write_atomically(write, path):
    """`write(tmp)` into a temporary file beside `path`, then renames it over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMPORARY_PREFIX, suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_bytes(data):
    def write(path):
        with open(path, "wb") as f:
            f.write(data)

    return write


def _write_json(path, payload):
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    _write_atomically(_write_bytes(text.encode("utf-8")), path)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


class RunDirectory:
    """The files of the training run in `path` (see the module docstring)."""

    def __init__(self, path):
        if not path:
            raise ValueError("model_dir is empty; pass a directory, e.g. --model_dir=/tmp/run1.")
        self.path = str(path)
        self.state_path = os.path.join(self.path, STATE_FILE)
        self.last_model_path = os.path.join(self.path, LAST_MODEL_FILE)
        self.best_model_path = os.path.join(self.path, BEST_MODEL_FILE)
        self.metrics_path = os.path.join(self.path, METRICS_FILE)
        self.tensorboard_dir = os.path.join(self.path, TENSORBOARD_DIR)
        self.gradients_dir = os.path.join(self.path, GRADIENTS_DIR)

    def exists(self):
        """Whether the directory holds a run: its state file and last model."""
        return os.path.exists(self.state_path) and os.path.exists(self.last_model_path)

    def state(self):
        """The state file's contents, or `None` for a directory without a run."""
        return _read_json(self.state_path) if self.exists() else None

    def require(self, *assets, kind="rnnzoo training run", model="..."):
        """The state file's contents; raises a ValueError naming what the run lacks (its state file,
        its last model, one of `assets`), calling it no `kind` and saying how to train a `model` run."""
        needed = {STATE_FILE: self.state_path, LAST_MODEL_FILE: self.last_model_path,
                  **{name: self.asset_path(name) for name in assets}}
        missing = [name for name, path in needed.items() if not os.path.exists(path)]
        if missing:
            raise ValueError(
                f"{self.path!r} is no {kind} ({', '.join(missing)} missing); pass the --model_dir of a run "
                f"trained with `rnnzoo-train --model={model} --model_dir=DIR`, which writes its first "
                "checkpoint before its first step"
            )
        return _read_json(self.state_path)

    def train_config(self):
        """The run's `TrainConfig` as a dict (`dataclasses.asdict`, settings resolved)."""
        return self.require()["config"]

    def model_config(self):
        """The run's model-family config as a dict (`dataclasses.asdict` of the family's
        `config_class`)."""
        return self.require()["extra"]["model_config"]

    def model_file(self, checkpoint="best"):
        """The Keras file of the run's `checkpoint`: `"best"` (a run not evaluated yet has only the
        last, which is then its best) or `"last"`.

        Raises:
            ValueError: an unknown `checkpoint`.
        """
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint={checkpoint!r} is none of {', '.join(CHECKPOINTS)}; pass best (the "
                             "default) or last.")
        if checkpoint == "best" and os.path.exists(self.best_model_path):
            return self.best_model_path
        return self.last_model_path

    def load_model(self, checkpoint="last", compile=True):
        """The model of the run's `checkpoint` (`model_file`); by default the last, compiled with its
        optimizer state restored, which a resumed run continues from."""
        self.require()
        return keras.saving.load_model(self.model_file(checkpoint), compile=compile)

    def save(self, model, state, best=False):
        """Saves the model (with optimizer state) as the last checkpoint, also as the best when `best`,
        then the state, each atomically."""
        _write_atomically(model.save, self.last_model_path)
        if best:
            _write_atomically(lambda tmp: shutil.copyfile(self.last_model_path, tmp), self.best_model_path)
        _write_json(self.state_path, state)

    def metrics(self):
        """`metrics.json`'s contents, or `None` before the first evaluation."""
        return _read_json(self.metrics_path) if os.path.exists(self.metrics_path) else None

    def save_metrics(self, metrics):
        _write_json(self.metrics_path, metrics)

    def asset_path(self, name):
        """The path of the family's asset `name` (e.g. `vocabulary.json`)."""
        return os.path.join(self.path, name)

    def asset(self, name):
        """The bytes of the family's asset `name`, or `None` when the run has none yet."""
        path = self.asset_path(name)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def save_asset(self, name, data):
        """Writes the family's asset `name` (bytes) atomically."""
        _write_atomically(_write_bytes(data), self.asset_path(name))
