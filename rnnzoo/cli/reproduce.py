"""`rnnzoo-reproduce`: runs one of the papers' experiments end to end and writes a report.

    rnnzoo-reproduce --list
    rnnzoo-reproduce --experiment=longer_rnns_resrnn --scale=small --output_dir=results
    rnnzoo-reproduce --experiment=thesis_table_7_3 --scale=paper --output_dir=docs/results/paper \
        --resume --time_budget_s=7200

Writes `<output_dir>/<experiment>/report.md` (ours vs the paper's number,
seeds, wall time), `curves.png`, `results.json` and the runs' model dirs
under `runs/` (or `--work_dir`). `--resume` continues the runs kept there
(a campaign longer than one process); see `rnnzoo.experiments.runner`.
"""

import sys

from rnnzoo.cli.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

from absl import app, flags  # noqa: E402

from rnnzoo import experiments  # noqa: E402

flags.DEFINE_string("experiment", None, "Experiment name (see --list).")
flags.DEFINE_enum("scale", "small", list(experiments.SCALES),
                  "small: minutes; medium (thesis_fig_4_1): hours; paper: paper sizes.")
flags.DEFINE_string("output_dir", "reproduce", "Directory of the reports.")
flags.DEFINE_string("work_dir", None, "Directory of the runs' checkpoints (default: under output_dir).")
# seed and verbose mean the same as rnnzoo-train's flags of the same names.
flags.DEFINE_integer("seed", 0, "Seed of every run (the first, with --num_seeds).",
                     allow_override=True)
flags.DEFINE_integer("num_seeds", 1, "Run every run with seeds seed, seed+1, ...; the report "
                     "gives mean, range and success count over them.")
flags.DEFINE_float("time_budget_s", None,
                   "Training budget of the experiment in seconds, shared by its runs "
                   "(default: 900 for --scale=small, 600 per run for medium, none for paper).")
flags.DEFINE_integer("jobs", 1, "Runs trained at a time, each in a process of its own with "
                     "cores/jobs threads; the wall time is about the budget / jobs.", lower_bound=1)
flags.DEFINE_bool("resume", False, "Continue the runs kept under the output directory: finished "
                  "ones are not trained again, the others resume from their last checkpoint (or "
                  "start). Without it, an output directory that holds runs is refused.")
flags.DEFINE_bool("list", False, "List the experiments and exit.")
flags.DEFINE_integer("verbose", 2, "Per-run verbosity (0, 1: progress bar, 2: a line per round).",
                     allow_override=True)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if FLAGS.list:
        for name in experiments.experiment_names():
            print(f"{name}: {experiments.EXPERIMENTS[name].title}")
        return
    if FLAGS.experiment not in experiments.EXPERIMENTS:
        print(
            f"rnnzoo-reproduce: unknown experiment {FLAGS.experiment!r}; choose one of: "
            f"{', '.join(experiments.experiment_names())}.",
            file=sys.stderr,
        )
        sys.exit(2)
    if FLAGS.num_seeds < 1 or FLAGS.seed < 0:
        print(f"rnnzoo-reproduce: --seed={FLAGS.seed} must be >= 0 and --num_seeds="
              f"{FLAGS.num_seeds} >= 1.", file=sys.stderr)
        sys.exit(2)
    try:
        path = experiments.run_experiment(
            FLAGS.experiment, scale=FLAGS.scale, output_dir=FLAGS.output_dir,
            work_dir=FLAGS.work_dir, seeds=range(FLAGS.seed, FLAGS.seed + FLAGS.num_seeds),
            verbose=FLAGS.verbose,
            time_budget_s=FLAGS.time_budget_s, jobs=FLAGS.jobs, resume=FLAGS.resume,
        )
    except ValueError as error:
        print(f"rnnzoo-reproduce: {error}", file=sys.stderr)
        sys.exit(2)
    print(path)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
