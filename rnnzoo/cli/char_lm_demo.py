"""The char-LM demo of `rnnzoo-demo` (`make demo`): train, export, serve and query a char_mrnn.

A function without flags, so that tests and notebooks can call it: `rnnzoo-demo` (the binary in
`rnnzoo/cli/demo.py`) maps its flags onto it.
"""

import json
import math
import os
import sys
import tempfile
import time

import keras

from rnnzoo.training.degradation import StepLosses

LN2 = math.log(2.0)
EVAL_SECONDS = 20.0
"""The demo evaluates held-out bits/char (and keeps the best checkpoint) this often."""
HOLDOUT_CHARS = 20_000
"""The held-out slice: the last this many characters read from the standard library's source."""


class TimeProgress(keras.callbacks.Callback):
    """A progress bar over a wall-clock budget: the training bits/char (a moving average of the
    steps' own losses) beside the held-out bits/char of the run's latest evaluation, read from its
    `metrics.json` whenever the loop rewrites it."""

    def __init__(self, seconds, metrics_path):
        super().__init__()
        self.seconds = seconds
        self.metrics_path = metrics_path
        self.bar = keras.utils.Progbar(int(seconds), unit_name="s",
                                       stateful_metrics=["train_bits", "heldout_bits", "steps"])
        self.steps = 0
        self.train_bits = None
        self.heldout_bits = None
        self.seen = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.step_losses = StepLosses()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        step_bits = self.step_losses.update(batch, float((logs or {}).get("loss", float("nan")))) / LN2
        self.train_bits = step_bits if self.train_bits is None else 0.98 * self.train_bits + 0.02 * step_bits
        if self.steps % 10 == 0:
            self._read_heldout()
            elapsed = min(int(time.monotonic() - self.start), int(self.seconds))
            self.bar.update(elapsed, self._values())

    def _read_heldout(self):
        try:
            stamp = os.stat(self.metrics_path).st_mtime_ns
        except FileNotFoundError:
            return
        if stamp != self.seen:
            self.seen = stamp
            with open(self.metrics_path) as f:
                self.heldout_bits = json.load(f).get("bits_per_char")

    def _values(self):
        values = [("steps", self.steps), ("train_bits", self.train_bits)]
        return values + ([] if self.heldout_bits is None else [("heldout_bits", self.heldout_bits)])

    def on_train_end(self, logs=None):
        self._read_heldout()
        self.bar.update(int(self.seconds), self._values(), finalize=True)


def char_lm_demo(minutes=3.0, units=128, seq_len=100, batch_size=32, max_chars=1_000_000,
                 export_base=None, prompt="def ", seed=0, out=sys.stdout):
    """Trains a small char_mrnn on the standard library's source for `minutes`, exports, serves, queries.

    The run goes through the shared training loop (`rnnzoo.training.loop.train`,
    as `rnnzoo-train --model=char_mrnn`), evaluating held-out bits/char every
    `EVAL_SECONDS` and keeping the best checkpoint; `rnnzoo.export.export_run`
    writes the best checkpoint as a SavedModel, the in-process
    `rnnzoo.serving.ModelServer` serves it, and `rnnzoo.serving.Client`
    generates a sample from `prompt` and scores it. Returns `{"sample",
    "bits_per_char", "heldout_bits_per_char", "best_step", "steps", "degraded",
    "history", "export_dir"}` (`heldout_bits_per_char`: the served, best model's).
    """
    from rnnzoo.export import export_run
    from rnnzoo.serving import Client, ModelServer, ServerOptions
    from rnnzoo.training.run_directory import RunDirectory
    from rnnzoo.training.loop import TrainConfig, train

    run_dir = tempfile.mkdtemp(prefix="char_mrnn_run_")
    seconds = minutes * 60
    # Adam with the char_mrnn recipe (`rnnzoo.zoo.char_lm.model.MRNN_RECIPE`: learning rate
    # 3e-3 / (1 + step / 1000), clipping 1), whose decay does not depend on how many steps the
    # time budget allows (docs/char_lm.md).
    config = TrainConfig(model="char_mrnn", optimizer="adam", seq_len=seq_len, batch_size=batch_size,
                         train_steps=10**9, eval_every=10**9, eval_seconds=EVAL_SECONDS, seed=seed,
                         max_seconds=seconds, early_stop=False, verbose=0, model_dir=run_dir)
    print(f"training a char_mrnn ({units} units) on the Python standard library's source for "
          f"{minutes:g} min; held-out bits/char on its last {HOLDOUT_CHARS:,} characters every "
          f"{EVAL_SECONDS:g} s", file=out, flush=True)
    progress = TimeProgress(seconds, RunDirectory(run_dir).metrics_path)
    metrics = train(config, callbacks=[progress], units=units, max_chars=max_chars, holdout_chars=HOLDOUT_CHARS)
    best = metrics["best"]
    print(f"trained {metrics['step']} steps in {metrics['wall_time_s']:.0f} s; held-out bits/char by step: "
          + ", ".join(f"{e['step']}: {e['bits_per_char']:.3f}" for e in metrics["history"]), file=out, flush=True)
    if metrics.get("degraded"):
        print(f"the run degraded: {metrics['degradation']}", file=out, flush=True)
    base = export_base or tempfile.mkdtemp(prefix="char_mrnn_")
    export_dir = export_run(run_dir, base)  # the best checkpoint
    server = ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="char_lm",
                                       model_base_path=base, file_system_poll_wait_seconds=0)).start()
    try:
        with Client(f"127.0.0.1:{server.grpc_port}") as client:
            client.wait_until_available("char_lm")
            text = client.generate("char_lm", [prompt], max_length=300, temperature=0.8, seed=seed)[0]
            scored = client.score("char_lm", [text])
    finally:
        server.stop()
    bpc = float(scored["bits_per_char"][0])
    print(f"--- sample of the served model (temperature 0.8; {bpc:.3f} bits/char under it) ---\n{text}\n---",
          file=out, flush=True)
    print(f"served the best checkpoint (step {best['step']} of {metrics['step']}): held-out "
          f"{best['bits_per_char']:.3f} bits/char", file=out, flush=True)
    return {"sample": text, "bits_per_char": bpc, "heldout_bits_per_char": best["bits_per_char"],
            "best_step": best["step"], "steps": metrics["step"], "degraded": metrics["degraded"],
            "history": metrics["history"], "export_dir": export_dir}
