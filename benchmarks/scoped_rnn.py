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
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from layers import interleaved_throughput  # noqa: E402  (benchmarks/layers.py)
from output import write_json  # noqa: E402  (benchmarks/output.py)

from rnnzoo.layers import ScopedRNN  # noqa: E402
from rnnzoo.machine import machine_description  # noqa: E402

ANCHOR = "keras.SimpleRNN (iRNN)"


def recurrent_layers(units, seq_len, scopes):
    """`{name: layer}`: the anchor iRNN, then a VL-iRNN per number of scopes."""
    layers = {ANCHOR: keras.layers.SimpleRNN(units, activation="relu",
                                             recurrent_initializer="identity")}
    for k in scopes:
        layers[f"rnnzoo.ScopedRNN(num_scopes={k})"] = ScopedRNN(
            units, num_scopes=k, scope_length=-(-seq_len // k))
    return layers


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
    for name, layer in recurrent_layers(args.units, args.seq_len, (1, 10)).items():
        model = keras.Sequential([keras.Input((args.seq_len, 2)), layer, keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), "mse")
        models[name] = model
    samples = interleaved_throughput(models, dataset, args.batch_size, args.steps, args.rounds)

    report = {
        "benchmark": "VL-iRNN training throughput",
        "anchor": f"{ANCHOR}, same width, same run",
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "units": args.units,
        "timed_steps": args.steps,
        "rounds": args.rounds,
        "machine": machine_description(),
        "results": [
            {
                "layer": name,
                "sequences_per_second": round(statistics.median(values), 1),
                "ratio_to_irnn": round(statistics.median(
                    [v / a for v, a in zip(values, samples[ANCHOR])]), 3),
            }
            for name, values in samples.items()
        ],
    }
    write_json(report, args.output)


if __name__ == "__main__":
    main()
