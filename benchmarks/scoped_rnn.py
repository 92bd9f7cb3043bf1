"""Training throughput of the VL-iRNN (`rnnzoo.layers.ScopedRNN`) vs the tied iRNN it unties.

The anchor is Keras's `SimpleRNN` with ReLU units and an identity recurrent
initialisation (the iRNN) of the same width; the models are
`Input((T, 2)) -> recurrent layer -> Dense(1)` trained with SGD + momentum on
MSE in the longer-rnns setting (T=100, batch 16, 100 units), with 1 and 10
time scopes. Configurations are measured in interleaved rounds; the median
throughput and the median ratio to the iRNN of the same round are reported.

    python benchmarks/scoped_rnn.py --output benchmarks/results/scoped_rnn.json
"""

import argparse
import json
import os
import platform
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from layers import sequences_per_second  # noqa: E402  (benchmarks/layers.py)
from rnnzoo.layers import ScopedRNN  # noqa: E402


def factories(units, seq_len, scopes):
    made = {"keras.SimpleRNN (iRNN)": lambda: keras.layers.SimpleRNN(
        units, activation="relu", recurrent_initializer="identity")}
    for k in scopes:
        made[f"rnnzoo.ScopedRNN(num_scopes={k})"] = lambda k=k: ScopedRNN(
            units, num_scopes=k, scope_length=-(-seq_len // k))
    return made


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq_len", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=None, help="JSON file to write (also printed)")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.batch_size * 4, args.seq_len, 2)).astype("float32")
    y = rng.uniform(size=(args.batch_size * 4, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).cache().repeat()

    models = {}
    for name, make in factories(args.units, args.seq_len, (1, 10)).items():
        model = keras.Sequential([keras.Input((args.seq_len, 2)), make(), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), "mse")
        models[name] = model
    anchor = next(iter(models))
    samples = {name: [] for name in models}
    for round_index in range(args.rounds):
        for name, model in models.items():
            samples[name].append(sequences_per_second(model, dataset, args.batch_size, args.steps))
            print(f"round {round_index + 1}/{args.rounds} {name}: {samples[name][-1]:.0f} "
                  "sequences/s", flush=True)

    report = {
        "benchmark": "VL-iRNN training throughput",
        "anchor": f"{anchor}, same width, same run",
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "units": args.units,
        "timed_steps": args.steps,
        "rounds": args.rounds,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__},
        "results": [
            {
                "layer": name,
                "sequences_per_second": round(statistics.median(values), 1),
                "ratio_to_irnn": round(statistics.median(
                    [v / a for v, a in zip(values, samples[anchor])]), 3),
            }
            for name, values in samples.items()
        ],
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
