"""Training runs the distribution tests compare, run in a process of their own.

    python tests/distributed_runs.py mirrored DIR     # two logical CPU devices, and one device
    python tests/distributed_runs.py multi_worker DIR # this process is one worker of TF_CONFIG

Prints one JSON line: {run name: [(step, train loss), ...]}. Logical devices and the
multi-worker strategy must be set up before TensorFlow initialises, hence a process per case.
"""

import json
import os
import sys

from rnnzoo.zoo import distribution
from rnnzoo.zoo.training import TrainConfig, train

RUNS = {  # name: (optimizer, steps, model_dir name)
    "momentum": ("momentum", 4, "momentum"),
    "hf": ("hf", 2, "hf"),
    "hf_resumed": ("hf", 4, "hf"),
}


def config(optimizer, steps, model_dir, strategy):
    return TrainConfig(
        model="rnn", task="addition", seq_len=10, batch_size=20, train_steps=steps,
        eval_every=2 if optimizer == "momentum" else 1,
        optimizer=optimizer, learning_rate=0.05, hf_curvature_fraction=1.0, hf_max_cg_iterations=8,
        test_size=64, verbose=0, model_dir=model_dir, distribution_strategy=strategy,
    )


def histories(base, strategy):
    """Trains every run of `RUNS` in order (`hf_resumed` resumes `hf`) under `strategy`."""
    return {
        name: [(e["step"], e["train_loss"]) for e in train(
            config(optimizer, steps, os.path.join(base, directory), strategy), units=32
        )["history"]]
        for name, (optimizer, steps, directory) in RUNS.items()
    }


if __name__ == "__main__":
    case, base = sys.argv[1], sys.argv[2]
    if case == "mirrored":
        distribution.use_logical_cpu_devices(2)
        result = {"mirrored": histories(os.path.join(base, "mirrored"), "mirrored"),
                  "default": histories(os.path.join(base, "default"), "default")}
    else:
        result = histories(base, "multi_worker_mirrored")
    print(json.dumps(result))
