"""The char-LM demo of `rnnzoo-demo` (`make demo`): train, export, serve and query a char_mrnn.

A function without flags, so that tests and notebooks can call it: `rnnzoo-demo` (the binary in
`rnnzoo/cli/demo.py`) maps its flags onto it.
"""

import sys
import tempfile
import time

import keras
import numpy as np


class TimeProgress(keras.callbacks.Callback):
    """A progress bar over a wall-clock budget, showing the running training bits/char."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.bar = keras.utils.Progbar(int(seconds), unit_name="s",
                                       stateful_metrics=["bits_per_char", "steps"])
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps % 10 == 0:
            elapsed = min(int(time.monotonic() - self.start), int(self.seconds))
            bits = float((logs or {}).get("loss", float("nan"))) / np.log(2.0)
            self.bar.update(elapsed, [("bits_per_char", bits), ("steps", self.steps)])

    def on_train_end(self, logs=None):
        self.bar.update(int(self.seconds), [("steps", self.steps)], finalize=True)


def char_lm_demo(minutes=3.0, units=128, seq_len=100, batch_size=32, max_chars=1_000_000,
                 export_base=None, prompt="def ", seed=0, out=sys.stdout):
    """Trains a small char_mrnn on the standard library's source for `minutes`, exports, serves, queries.

    The run goes through the shared training loop (`rnnzoo.zoo.training.train`,
    as `rnnzoo-train --model=char_mrnn`), `rnnzoo.export.export_model_dir`
    writes the SavedModel, the in-process `rnnzoo.serving.ModelServer` serves
    it, and `rnnzoo.serving.Client` generates a sample from `prompt` and scores it.
    Returns `{"sample", "bits_per_char", "heldout_bits_per_char", "export_dir"}`.
    """
    from rnnzoo.export import export_model_dir
    from rnnzoo.serving import Client, ModelServer, ServerOptions
    from rnnzoo.zoo.char_lm import MRNN_RECIPE
    from rnnzoo.zoo.training import TrainConfig, train

    run_dir = tempfile.mkdtemp(prefix="char_mrnn_run_")
    seconds = minutes * 60
    # Adam with the char_mrnn recipe: learning rate 3e-3 / (1 + step / 1000), clipping 1; the
    # decay does not depend on how many steps the time budget allows (docs/char_lm.md).
    config = TrainConfig(model="char_mrnn", optimizer="adam", **MRNN_RECIPE, seq_len=seq_len,
                         batch_size=batch_size, train_steps=10**9, eval_every=10**9, seed=seed,
                         max_seconds=seconds, early_stop=False, verbose=0, model_dir=run_dir)
    print(f"training a char_mrnn ({units} units) on the Python standard library's source for "
          f"{minutes:g} min", file=out, flush=True)
    metrics = train(config, callbacks=[TimeProgress(seconds)], units=units, max_chars=max_chars)
    print(f"trained {metrics['step']} steps in {metrics['wall_time_s']:.0f} s; held-out "
          f"{metrics['bits_per_char']:.3f} bits/char", file=out, flush=True)
    base = export_base or tempfile.mkdtemp(prefix="char_mrnn_")
    export_dir = export_model_dir(run_dir, base)
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
    print(f"--- sample (temperature 0.8) ---\n{text}\n--- {bpc:.3f} bits/char under the served model ---",
          file=out, flush=True)
    return {"sample": text, "bits_per_char": bpc, "heldout_bits_per_char": metrics["bits_per_char"],
            "export_dir": export_dir}
