"""Training throughput of the RTRBM / TRBM (CD-25 + BPTT) with and without XLA.

The thesis setting (§3.11): one 100-frame video of 30 x 30 pixels per update, 400 hidden
units, CD-25 in every frame's RBM (all frames' chains in parallel) plus backpropagation
through the r chain, SGD with momentum 0.9. The anchor, measured in the same rounds, is a
Keras `SimpleRNN(400)` with a `Dense(900)` sigmoid output trained by BPTT to predict the
next frame of the same videos (a conventional recurrent video model of the same width).
Configurations are measured in interleaved rounds; the median updates/s and the median
ratio to the anchor of the same round are reported.

    python benchmarks/rtrbm.py --output benchmarks/results/rtrbm.json
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from layers import interleaved_throughput  # noqa: E402  (benchmarks/layers.py)
from output import write_json  # noqa: E402  (benchmarks/output.py)

from rnnzoo.data.bouncing_balls import BouncingBalls  # noqa: E402
from rnnzoo.machine import machine_description  # noqa: E402
from rnnzoo.zoo.rtrbm.model import RTRBMConfig, build_model  # noqa: E402

ANCHOR = "keras.SimpleRNN(400) + Dense(900), BPTT"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--units", type=int, default=400)
    parser.add_argument("--cd_steps", type=int, default=25)
    parser.add_argument("--steps", type=int, default=10, help="timed updates per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=None, help="JSON file to write (also printed)")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    videos = BouncingBalls(frames=args.frames + 1, seed=0).videos(0, 4)
    pixels = videos.shape[-1]
    rbm_data = tf.data.Dataset.from_tensor_slices(videos[:, :-1]).batch(1).cache().repeat()
    pairs = tf.data.Dataset.from_tensor_slices((videos[:, :-1], videos[:, 1:])).batch(1).cache().repeat()

    anchor = keras.Sequential([keras.Input((args.frames, pixels)),
                               keras.layers.SimpleRNN(args.units, return_sequences=True),
                               keras.layers.Dense(pixels, activation="sigmoid")])
    anchor.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    models = {ANCHOR: (anchor, pairs)}
    config = RTRBMConfig(units=args.units, cd_steps=args.cd_steps, initial_cd_updates=0)
    for model_name in ("rtrbm", "trbm"):
        for xla in (False, True):
            model = build_model(model_name, config, pixels)
            model.compile(keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=xla)
            models[f"{model_name} CD-{args.cd_steps}{' + BPTT' if model_name == 'rtrbm' else ''}, "
                   f"XLA {'on' if xla else 'off'}"] = (model, rbm_data)

    load_before = os.getloadavg()[0]
    samples = {}
    for key, (model, dataset) in models.items():
        samples.update(interleaved_throughput({key: model}, dataset, 1, args.steps, 1))
    for _ in range(args.rounds - 1):
        for key, (model, dataset) in models.items():
            samples[key] += interleaved_throughput({key: model}, dataset, 1, args.steps, 1)[key]

    report = {
        "benchmark": "RTRBM / TRBM training throughput (thesis §3.11 setting)",
        "anchor": f"{ANCHOR}, next-frame MSE on the same videos, same run",
        "frames": args.frames,
        "pixels": pixels,
        "hidden_units": args.units,
        "cd_steps": args.cd_steps,
        "videos_per_update": 1,
        "timed_updates": args.steps,
        "rounds": args.rounds,
        "machine": machine_description(),
        "load_average_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "results": [
            {
                "model": name,
                "updates_per_second": round(statistics.median(values), 2),
                "ratio_to_anchor": round(statistics.median(
                    [v / a for v, a in zip(values, samples[ANCHOR])]), 3),
            }
            for name, values in samples.items()
        ],
    }
    write_json(report, args.output)


if __name__ == "__main__":
    main()
