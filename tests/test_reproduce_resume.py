"""Campaigns that outlive a process: a run killed part-way resumes to the weights of an
uninterrupted one, and `rnnzoo-reproduce --resume` continues a budget-stopped experiment."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from rnnzoo import experiments
from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.training.loop import TrainConfig, train

# Trains the run of argv[1] (TrainConfig fields as JSON) and holds it, without training further,
# at the end of step argv[2] (after its last checkpoint) until it is killed.
_KILLED_RUN = """
import json, signal, sys
import keras
from rnnzoo.training.loop import TrainConfig, train

class HoldAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step, self.steps = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.step:
            signal.pause()

train(TrainConfig(**json.loads(sys.argv[1])), callbacks=[HoldAt(int(sys.argv[2]))], units=8)
"""


def _fields(model_dir, **overrides):
    return dict(model="rnn", task="addition", seq_len=10, batch_size=20, test_size=100,
                early_stop=False, degraded_patience=0, verbose=0, model_dir=str(model_dir),
                **overrides)


def _kill_after_checkpoint(fields, checkpoint_step, hold_at, log_path):
    """Trains `fields` in a subprocess, SIGKILLs it once its checkpoint reaches `checkpoint_step`
    (it is held at step `hold_at` at the latest, so it never finishes); returns the checkpoint."""
    state_path = RunDirectory(fields["model_dir"]).state_path
    with open(log_path, "w") as log:
        child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, json.dumps(fields), str(hold_at)],
                                 stdout=log, stderr=log, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + 300
    try:
        while not (os.path.exists(state_path)
                   and json.load(open(state_path))["step"] >= checkpoint_step):
            assert time.monotonic() < deadline, "no checkpoint within 300 s: " + open(log_path).read()
            try:
                child.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"the run ended (status {child.returncode}) before it was killed: "
                        + open(log_path).read())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return json.load(open(state_path))


def _weights(model_dir):
    return RunDirectory(model_dir).load_model().get_weights()


@pytest.mark.parametrize("optimizer, settings, checkpoint_step, hold_at", [
    ("momentum", dict(train_steps=20, eval_every=5), 10, 13),
    ("hf", dict(train_steps=4, eval_every=1, hf_max_cg_iterations=4), 2, 3),
], ids=["momentum", "hf"])
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(
        tmp_path, optimizer, settings, checkpoint_step, hold_at):
    killed = _fields(tmp_path / "killed", optimizer=optimizer, **settings)
    state = _kill_after_checkpoint(killed, checkpoint_step, hold_at, tmp_path / "killed.log")
    assert checkpoint_step <= state["step"] < settings["train_steps"] and state["cpu_seconds"] > 0
    keras.backend.clear_session()
    resumed = train(TrainConfig(**killed), units=8)
    keras.backend.clear_session()
    whole = train(TrainConfig(**_fields(tmp_path / "whole", optimizer=optimizer, **settings)), units=8)
    assert resumed["step"] == whole["step"] == settings["train_steps"]
    assert resumed["cpu_seconds"] > state["cpu_seconds"], "CPU time adds up over invocations"
    for ours, theirs in zip(_weights(tmp_path / "killed"), _weights(tmp_path / "whole"), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _tiny_experiment(scale):
    base = dict(model="irnn", task="addition", seq_len=6, batch_size=8 if scale == "small" else 16,
                test_size=40,
                early_stop=False, degraded_patience=0)
    return [experiments.Run(label, TrainConfig(train_steps=steps, eval_every=every, **base),
                            {"units": 3}, "0.5", metric="test_loss")
            for label, steps, every in (("A", 1, 1), ("B", 200, 100), ("C", 4, 2))]


def test_resume_finishes_budget_stopped_runs_without_retraining_finished_ones(
        tmp_path, monkeypatch, capsys):
    from rnnzoo.cli import reproduce

    tiny = experiments.Experiment("tiny", "Tiny", "claim", _tiny_experiment, differences="tiny.")
    monkeypatch.setitem(experiments.EXPERIMENTS, "tiny", tiny)
    out, runs = tmp_path / "tiny", tmp_path / "tiny" / "runs"

    def invoke(**kwargs):
        keras.backend.clear_session()
        path = experiments.run_experiment("tiny", output_dir=str(tmp_path), verbose=0, **kwargs)
        return open(path).read(), {r["label"]: r for r in json.loads((out / "results.json").read_text())}

    # A second's budget: A stops at its one step; the budget is spent, B and C do not start.
    report, results = invoke(time_budget_s=1e-3)
    assert [results[label]["in_progress"] for label in "ABC"] == [False, True, True]
    assert "**In progress: 2 of 3 runs** (1 of 205 steps done" in report
    assert f"--output_dir={tmp_path} --resume` continues them" in report
    assert "| A | " in report and "| 1 / 1 |" in report
    assert "| in progress | 0 / 200 |" in report and "| in progress | 0 / 4 |" in report
    finished_a = os.stat(runs / "00_seed0" / "metrics.json").st_mtime_ns

    with pytest.raises(ValueError, match=r"already holds runs.*pass --resume.*another --output_dir"):
        experiments.run_experiment("tiny", output_dir=str(tmp_path), verbose=0)
    reproduce.FLAGS(["rnnzoo-reproduce", "--experiment=tiny", f"--output_dir={tmp_path}"])
    try:
        with pytest.raises(SystemExit) as exit_info:
            reproduce.main([])
    finally:
        reproduce.FLAGS.unparse_flags()
    assert exit_info.value.code == 2 and "pass --resume" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"other settings \(batch_size: saved 8, --scale=paper gives 16\)"):
        experiments.run_experiment("tiny", scale="paper", output_dir=str(tmp_path), resume=True)

    # Resumed with the same budget: B gets it all (A costs none) and is stopped part-way.
    report, results = invoke(time_budget_s=1e-3, resume=True)
    stopped = results["B"]["metrics"]
    assert results["B"]["in_progress"] and 0 < stopped["step"] < 200 and results["C"]["in_progress"]
    assert f"| in progress | {stopped['step']:,} / 200 |" in report
    assert "**In progress: 2 of 3 runs**" in report

    report, results = invoke(time_budget_s=0, resume=True)
    assert not any(r["in_progress"] for r in results.values())
    assert "in progress" not in report.lower()
    assert "| 200 / 200 |" in report and "| 4 / 4 |" in report and "| 1 / 1 |" in report
    assert os.stat(runs / "00_seed0" / "metrics.json").st_mtime_ns == finished_a, "A not re-run"
    finished_b = results["B"]["metrics"]
    assert finished_b["history"][0]["step"] == stopped["history"][0]["step"], "B continued, not restarted"
    assert finished_b["cpu_seconds"] > stopped["cpu_seconds"]
    assert (out / ".gitignore").read_text() == "runs/*/tensorboard/\nruns/*/.tmp-*\n"
