"""What a campaign's update costs on this machine, compiled with XLA and without.

Campaigns (`rnnzoo-reproduce --resume`, docs/training.md) spend CPU-hours on a few models; each is
measured here through the real training loop (`rnnzoo.training.loop.train`) with the run's own
configuration from its experiment, in a fresh process pinned to one core (`taskset`) with one
TensorFlow thread, as a campaign worker runs (`--jobs` = cores). A measurement is the difference in
process CPU time between two fresh runs, of a few updates and of `--steps` more (building, tracing
and XLA compilation cancel), without evaluations or pretraining. The anchor is the same run without
XLA in the same invocation: `ratio_to_anchor` < 1 means XLA makes the update cheaper.

    python benchmarks/campaign_steps.py --output benchmarks/results/campaign_steps.json
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CAMPAIGN_RUNS = (  # (experiment, scale, run label)
    ("thesis_table_7_3", "paper", "add T=80 nag"),
    ("thesis_table_7_3", "paper", "mul T=80 nag"),
    ("thesis_table_7_3", "paper", "mem-5 T=200 nag"),
    ("thesis_table_7_3", "paper", "mem-20 T=50 nag"),
    ("thesis_fig_3_balls", "paper", "rtrbm"),
    ("thesis_fig_3_balls", "paper", "trbm"),
    ("thesis_fig_4_1", "medium", "add T=100 structural"),
)


def _child(experiment, scale, label, jit, warmup, steps):
    """Prints the CPU milliseconds per update of the run `label`, one thread."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from rnnzoo.experiments import get_experiment
    from rnnzoo.training.loop import train

    run = next(r for r in get_experiment(experiment).runs(scale) if r.label == label)
    options = dict(run.options)
    if "pretrain_steps" in options:
        options["pretrain_steps"] = 0  # the campaign pays pretraining once, not per update
    def cpu_seconds(total_steps):
        """CPU time of a fresh run of `total_steps` (building, tracing and compiling included)."""
        with tempfile.TemporaryDirectory() as model_dir:
            config = dataclasses.replace(
                run.config, train_steps=total_steps, eval_every=10**9, test_size=10, verbose=0,
                jit_compile=jit, max_seconds=0.0, model_dir=model_dir)
            started = time.process_time()
            train(config, **options)
            return time.process_time() - started

    # two fresh runs differ by `steps` updates only
    cost = cpu_seconds(warmup + steps) - cpu_seconds(warmup)
    print(json.dumps({"ms_per_update": 1000.0 * cost / steps}))


def _measure(experiment, scale, label, jit, warmup, steps, core):
    command = ["taskset", "-c", str(core), sys.executable, __file__, "--child", experiment, scale, label,
               str(int(jit)), str(warmup), str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["ms_per_update"]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        experiment, scale, label, jit, warmup, steps = sys.argv[2:8]
        _child(experiment, scale, label, jit == "1", int(warmup), int(steps))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed updates (RTRBM, HF: a tenth)")
    parser.add_argument("--core", type=int, default=0, help="the core every measurement is pinned to")
    parser.add_argument("--output", default=None, help="JSON file to write (also printed)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from output import write_json  # benchmarks/output.py

    from rnnzoo.machine import machine_description

    results = []
    load_start = os.getloadavg()[0]
    for experiment, scale, label in CAMPAIGN_RUNS:
        expensive = experiment != "thesis_table_7_3"
        steps = max(2, args.steps // 10) if expensive else args.steps
        warmup = 2 if expensive else 20
        off, on = (_measure(experiment, scale, label, jit, warmup, steps, args.core) for jit in (False, True))
        results.append({"experiment": experiment, "scale": scale, "run": label, "timed_updates": steps,
                        "ms_per_update_xla_off": round(off, 2), "ms_per_update_xla_on": round(on, 2),
                        "ratio_to_anchor": round(on / off, 3)})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    write_json({
        "benchmark": "campaign updates: CPU time per update, XLA on vs off, one core, one thread",
        "anchor": "the same run without XLA (ratio_to_anchor = XLA on / XLA off)",
        "machine": machine_description(),
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "results": results,
    }, args.output)


if __name__ == "__main__":
    main()
