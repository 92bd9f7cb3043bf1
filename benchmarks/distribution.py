"""Training speed with 1 vs 2 synchronous replicas (`--distribution_strategy=mirrored`).

The anchor is the same run on one device (`default`), measured in the same process. On a CPU
the two replicas are logical devices sharing the machine's cores (`--logical_cpu_devices=2`):
small per-replica ops can run side by side on two cores, while the distributed path adds
sharding, all-reduces and, for HF, one cross-replica exchange per CG product; on GPUs each
replica has its own device.

    .venv/bin/python benchmarks/distribution.py --output benchmarks/results/distribution.json

Seconds per step come from the training loop's own `train_seconds` (steps only, without the
first, graph-tracing step, evaluations and checkpoints).
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from output import write_json  # noqa: E402  (benchmarks/output.py)

from rnnzoo.machine import machine_description  # noqa: E402
from rnnzoo.training import distribution  # noqa: E402
from rnnzoo.training.loop import TrainConfig, train  # noqa: E402


def seconds_per_step(optimizer, strategy, steps, seq_len, batch_size, root):
    config = TrainConfig(
        model="rnn", task="addition", seq_len=seq_len, batch_size=batch_size, optimizer=optimizer,
        learning_rate=1e-3, train_steps=steps, eval_every=steps, test_size=100, early_stop=False,
        hf_max_cg_iterations=50, hf_structural_damping=1 / 30, verbose=0,
        model_dir=os.path.join(root, f"{optimizer}_{strategy}"), distribution_strategy=strategy,
    )
    metrics = train(config, units=100)
    return metrics["train_seconds"] / (metrics["step"] - 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq_len", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=200)
    parser.add_argument("--first_order_steps", type=int, default=60)
    parser.add_argument("--hf_steps", type=int, default=6)
    parser.add_argument("--output", default=None, help="JSON file to write (also printed)")
    args = parser.parse_args()
    distribution.use_logical_cpu_devices(2)
    root = tempfile.mkdtemp(prefix="rnnzoo-distribution-bench-")
    rows = {}
    for optimizer, steps in (("adam", args.first_order_steps), ("hf", args.hf_steps)):
        times = {strategy: seconds_per_step(optimizer, strategy, steps, args.seq_len, args.batch_size, root)
                 for strategy in ("default", "mirrored")}
        rows[optimizer] = {
            "steps": steps,
            "seconds_per_step": {"one_device": round(times["default"], 4),
                                 "two_replicas": round(times["mirrored"], 4)},
            "two_replicas_over_one_device": round(times["mirrored"] / times["default"], 3),
        }
    write_json({
        "benchmark": "distribution",
        "machine": machine_description(),
        "model": f"rnn (100 tanh units) on addition T={args.seq_len}, global batch {args.batch_size}",
        "replicas": "2 logical CPU devices sharing the machine's cores",
        "hf": "50 CG steps cap, structural damping 1/30, curvature fraction 0.1",
        "results": rows,
    }, args.output)


if __name__ == "__main__":
    main()
