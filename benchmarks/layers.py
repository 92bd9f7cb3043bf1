"""Training throughput of rnnzoo layers vs Keras's LSTM and SimpleRNN at equal parameter count.

Every model is `Input((T, D)) -> recurrent layer -> Dense(1)` trained with SGD
on MSE, T=100, batch 64, on the CPU, with and without `jit_compile=True`.
Each layer's width is chosen so its recurrent layer has the parameter count
of a 128-unit LSTM (within 1%). Throughput is sequences per second over the
timed steps of a `fit` call, after its warm-up steps; the configurations are measured in
interleaved rounds and the median is reported, together with each one's
ratio to the LSTM of the same round and compilation mode.

    python benchmarks/layers.py --output benchmarks/results/layers.json
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from output import write_json  # noqa: E402  (benchmarks/output.py)

from rnnzoo.layers import MRNN, ResRNN, TensorRNN  # noqa: E402
from rnnzoo.machine import machine_description  # noqa: E402

FEATURES = 32
ANCHOR_UNITS = 128

FACTORIES = {
    "keras.LSTM": lambda units: keras.layers.LSTM(units),
    "keras.SimpleRNN": lambda units: keras.layers.SimpleRNN(units),
    "rnnzoo.MRNN(factors=units)": lambda units: MRNN(units, factors=units),
    "rnnzoo.TensorRNN(rank=units)": lambda units: TensorRNN(units, rank=units),
    "rnnzoo.ResRNN": lambda units: ResRNN(units),
}


def layer_parameters(factory, units):
    layer = factory(units)
    layer.build((None, None, FEATURES))
    return layer.count_params()


def matched_units(factory, target):
    """Smallest width whose parameter count reaches `target` (closest of the two neighbours)."""
    low, high = 1, 4 * ANCHOR_UNITS
    while low < high:
        mid = (low + high) // 2
        if layer_parameters(factory, mid) < target:
            low = mid + 1
        else:
            high = mid
    candidates = [u for u in (low - 1, low) if u > 0]
    return min(candidates, key=lambda u: abs(layer_parameters(factory, u) - target))


def make_model(factory, units, seq_len, jit):
    model = keras.Sequential([keras.Input((seq_len, FEATURES)), factory(units), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e-3), "mse", jit_compile=jit)
    return model


class StepTimes(keras.callbacks.Callback):
    """Wall-clock time at the end of every training step."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


WARMUP_STEPS = 3


def sequences_per_second(model, dataset, batch_size, steps):
    """Throughput between the end of the warm-up steps and the end of the last step.

    Timing inside one `fit` call keeps `fit`'s own start-up (iterators,
    callbacks, the first trace) out of the measurement.
    """
    timer = StepTimes()
    model.fit(dataset, steps_per_epoch=WARMUP_STEPS + steps, epochs=1, verbose=0, callbacks=[timer])
    return steps * batch_size / (timer.times[-1] - timer.times[WARMUP_STEPS - 1])


def interleaved_throughput(models, dataset, batch_size, steps, rounds, describe=str):
    """`{key: [sequences/s per round]}`: every model measured once per round, in turn.

    Interleaving spreads slow phases of a shared machine over all models.
    """
    samples = {key: [] for key in models}
    for round_index in range(rounds):
        for key, model in models.items():
            samples[key].append(sequences_per_second(model, dataset, batch_size, steps))
            print(f"round {round_index + 1}/{rounds} {describe(key)}: "
                  f"{samples[key][-1]:.0f} sequences/s", flush=True)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq_len", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=None, help="JSON file to write (also printed)")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size * 4, args.seq_len, FEATURES)).astype("float32")
    y = rng.standard_normal((args.batch_size * 4, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).cache().repeat()

    target = layer_parameters(FACTORIES["keras.LSTM"], ANCHOR_UNITS)
    widths = {name: matched_units(f, target) for name, f in FACTORIES.items()}
    models = {
        (name, jit): make_model(FACTORIES[name], widths[name], args.seq_len, jit)
        for jit in (False, True)
        for name in FACTORIES
    }
    samples = interleaved_throughput(models, dataset, args.batch_size, args.steps, args.rounds,
                                     describe=lambda key: f"{key[0]} jit={key[1]}")

    results = []
    for (name, jit), values in samples.items():
        anchor = samples[("keras.LSTM", jit)]
        ratios = [v / a for v, a in zip(values, anchor)]
        results.append(
            {
                "layer": name,
                "jit_compile": jit,
                "units": widths[name],
                "parameters": layer_parameters(FACTORIES[name], widths[name]),
                "sequences_per_second": round(statistics.median(values), 1),
                "ratio_to_lstm": round(statistics.median(ratios), 3),
            }
        )
    report = {
        "benchmark": "training throughput at equal parameter count",
        "anchor": f"keras.layers.LSTM({ANCHOR_UNITS}), same run, same jit_compile",
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "features": FEATURES,
        "timed_steps": args.steps,
        "rounds": args.rounds,
        "machine": machine_description(),
        "target": "rnnzoo.MRNN ratio_to_lstm >= 1.0",
        "results": results,
    }
    write_json(report, args.output)
    if args.output:
        plot(report, os.path.splitext(args.output)[0] + ".png")


def plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["layer"] for r in report["results"]))
    fig, ax = plt.subplots(figsize=(8, 4))
    for offset, jit in ((-0.2, False), (0.2, True)):
        values = [next(r["ratio_to_lstm"] for r in report["results"]
                       if r["layer"] == n and r["jit_compile"] == jit) for n in names]
        ax.bar(np.arange(len(names)) + offset, values, width=0.4, label=f"jit_compile={jit}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(names)), [n.replace("rnnzoo.", "") for n in names], rotation=15)
    ax.set_ylabel("training throughput / LSTM")
    ax.set_title(f"Equal parameters, T={report['seq_len']}, batch {report['batch_size']}, CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
