"""Training runs the distribution tests compare, run in a process of their own.

    python tests/distributed_runs.py mirrored DIR     # two logical CPU devices, and one device
    python tests/distributed_runs.py multi_worker DIR # this process is one worker of TF_CONFIG
    python tests/distributed_runs.py families DIR     # every other family, two devices and one
    python tests/distributed_runs.py curvature_evaluation DIR  # HF on the curvature batch
    python tests/distributed_runs.py clipping_with_loss_scaling DIR  # the refusal's message

Prints one JSON line: {run name: [(step, train loss), ...]}. Logical devices and the
multi-worker strategy must be set up before TensorFlow initialises, hence a process per case.
"""

import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

import rnnzoo
from rnnzoo.optimizers import HessianFree
from rnnzoo.training import distribution, registry
from rnnzoo.training.loop import TrainConfig, train

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


def family_runs(base):
    """A few steps of every family's smallest configuration (`Family.smallest`, with its recipe's
    optimizer settings: gradient clipping for the char LM and seq2seq) but the pathological one's,
    which the runs above cover, and the arm controller with HF too: {name: (TrainConfig fields,
    family options)}; the families' data is written into `base`."""
    runs = {}
    for family in registry.load_families().values():
        if family.name != "pathological":
            runs[family.name] = family.smallest(base)
    fields, options = runs["arm_controller"]
    runs["arm_controller_hf"] = (dict(fields, optimizer="hf", hf_max_cg_iterations=4), options)
    return runs


def family_histories(base, strategy):
    """Three steps of every run of `family_runs` under `strategy`: {name: [(step, train loss)]}."""
    return {
        name: [(e["step"], e["train_loss"]) for e in train(TrainConfig(
            train_steps=3, eval_every=1, test_size=8, verbose=0, distribution_strategy=strategy,
            model_dir=os.path.join(base, strategy, name), **fields), **options)["history"]]
        for name, (fields, options) in family_runs(base).items()
    }


def curvature_evaluation_histories():
    """HF with `evaluation_batch="curvature"` and the final-iterate warm start, on one device
    and on two mirrored replicas: `{strategy: {"loss": [...], "rho": [...]}}`.

    Each replica's curvature batch is the head of its shard; the data repeats the local
    curvature batch's second half as the second shard's head, so both see the same sequences.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6, 2)).astype("float32")
    x[20:30] = x[10:20]
    y = np.tanh(x[:, 0, :1] - 0.5 * x[:, 2, 1:]).astype("float32")

    def build():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6, 2))
        return rnnzoo.Model(inputs, keras.layers.Dense(1)(keras.layers.SimpleRNN(8)(inputs)))

    result = {}
    for name, strategy in (("default", tf.distribute.get_strategy()),
                           ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        with strategy.scope():
            model = build()
            model.compile(optimizer=HessianFree(structural_damping=0.3, max_cg_iterations=8,
                                                curvature_fraction=0.5, cg_warm_start="final",
                                                evaluation_batch="curvature"), loss="mse")
        history = model.fit(x, y, batch_size=40, epochs=3, shuffle=False, verbose=0).history
        result[name] = {"loss": history["loss"], "rho": history["rho"]}
    return result


def clipping_with_loss_scaling_error():
    """Fits a clipping, loss-scaling optimizer on two mirrored replicas; returns the error."""
    x = np.ones((8, 3, 2), "float32")
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        inputs = keras.Input((3, 2))
        model = rnnzoo.Model(inputs, keras.layers.Dense(1)(keras.layers.SimpleRNN(4)(inputs)))
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(clipnorm=1.0)),
                      loss="mse")
    try:
        model.fit(x, x[:, 0, :1], batch_size=8, verbose=0)
    except ValueError as error:
        return {"error": str(error), "weights_finite": all(
            bool(np.isfinite(w).all()) for w in model.get_weights())}
    return {"error": None}


if __name__ == "__main__":
    case, base = sys.argv[1], sys.argv[2]
    if case == "curvature_evaluation":
        distribution.use_logical_cpu_devices(2)
        result = curvature_evaluation_histories()
    elif case == "clipping_with_loss_scaling":
        distribution.use_logical_cpu_devices(2)
        result = clipping_with_loss_scaling_error()
    elif case == "mirrored":
        distribution.use_logical_cpu_devices(2)
        result = {"mirrored": histories(os.path.join(base, "mirrored"), "mirrored"),
                  "default": histories(os.path.join(base, "default"), "default")}
    elif case == "families":
        distribution.use_logical_cpu_devices(2)
        result = {"mirrored": family_histories(base, "mirrored"), "default": family_histories(base, "default")}
    else:
        result = histories(base, "multi_worker_mirrored")
    print(json.dumps(result))
