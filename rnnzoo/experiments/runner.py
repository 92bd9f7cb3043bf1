"""`run_experiment`: trains an experiment's runs (resumably, within a budget, in this process or
several) and writes its report; `EXPERIMENTS`: every paper module's experiments by name."""

import dataclasses
import gc
import glob
import json
import os
import time

import keras

from rnnzoo.training.run_directory import TEMPORARY_PREFIX, TENSORBOARD_DIR, RunDirectory
from rnnzoo.training.loop import resolve_config, train
from rnnzoo.experiments import layerwise, longer_rnns, sequence_to_sequence, thesis
from rnnzoo.experiments.experiment import MEDIUM_RUN_BUDGET_S

EXPERIMENTS = {e.name: e for paper in (thesis, longer_rnns, layerwise, sequence_to_sequence)
               for e in paper.EXPERIMENTS}
"""{name: Experiment} of every paper module."""


def experiment_names():
    return sorted(EXPERIMENTS)


def get_experiment(name):
    if name not in EXPERIMENTS:
        raise ValueError(
            f"Unknown experiment {name!r}; choose one of: {', '.join(experiment_names())}."
        )
    return EXPERIMENTS[name]


def run_experiment(name, scale="small", output_dir="reproduce", work_dir=None, seeds=(0,),
                   verbose=2, time_budget_s=None, jobs=1, resume=False):
    """Trains every run of experiment `name` once per seed and writes `report.md`,
    `curves.png` and `results.json` (see `rnnzoo.experiments.report`).

    The report is rewritten whenever a run finishes and when the invocation
    ends, with each run's steps done of planned and its CPU time, so a
    campaign longer than one process shows where it stands at any time.

    Args:
        seeds: the seeds of every run (data and weights); the report gives each
            row's mean, range and success count over them.
        time_budget_s: training seconds of this invocation shared by the runs it
            trains (default: `SMALL_BUDGET_S` for `small`, `MEDIUM_RUN_BUDGET_S`
            per run and seed to train for `medium`, none for `paper`). A run
            starting gets what is left of it (less what the runs in progress
            were given) divided by the runs still to start, so a run that stops
            early (on success or at its step count) leaves its time to the later
            ones; once it is spent no further run starts, and the runs it stopped
            or never started stay in progress for `resume`. With `jobs` runs at a
            time the wall time is about `time_budget_s / jobs`.
        jobs: runs trained at a time, each in a process of its own with
            `os.cpu_count() // jobs` threads (1: one after another in this
            process). Step-capped runs give the same numbers either way.
        resume: continue the runs kept in the work dir (default
            `<output_dir>/<name>/runs`, so committing `<output_dir>/<name>`
            commits them): a finished run (its step count reached, solved with
            early stopping, diverged or degraded) is not trained again and
            costs no budget, the others resume from their last checkpoint (or
            start). Without it, a work dir that already holds runs is
            refused, so runs of two invocations are never mixed unnoticed.

    Returns:
        The path of the markdown report.
    """
    experiment = get_experiment(name)
    if scale not in experiment.scales:
        raise ValueError(
            f"Experiment {name!r} has no scale {scale!r}; choose one of: "
            f"{', '.join(experiment.scales)}."
        )
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds={seeds!r} must be distinct non-negative integers, e.g. (0, 1, 2).")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be a positive integer (runs trained at a time), e.g. 2.")
    planned = [(index, run, seed) for index, run in enumerate(experiment.runs(scale)) for seed in seeds]
    out = os.path.join(output_dir, name)
    work_dir = work_dir or os.path.join(out, "runs")
    held = [path for path in sorted(glob.glob(os.path.join(glob.escape(work_dir), "*")))
            if RunDirectory(path).exists()]
    if held and not resume:
        raise ValueError(
            f"{work_dir!r} already holds runs of experiment {name!r} (e.g. "
            f"{held[0]!r}); pass --resume to continue them, or another "
            "--output_dir (or --work_dir) to start afresh."
        )
    os.makedirs(out, exist_ok=True)
    _ignore_event_files(out, work_dir)
    configs = [
        dataclasses.replace(run.config, seed=seed, verbose=verbose,
                            model_dir=os.path.join(work_dir, f"{index:02d}_seed{seed}"))
        for index, run, seed in planned
    ]
    results = []
    for (_, run, seed), config in zip(planned, configs):
        _check_same_run(config, scale)
        metrics = _saved_progress(config.model_dir)
        results.append({"label": run.label, "panel": run.panel, "seed": seed,
                        "paper": run.paper, "metric": run.metric,
                        "config": dataclasses.asdict(config), "options": run.options,
                        "metrics": metrics, "in_progress": not _finished(config, metrics)})
    to_train = [position for position, result in enumerate(results) if result["in_progress"]]
    if len(to_train) < len(results):
        print(f"[{name}] {len(results) - len(to_train)} of {len(results)} runs finished before; "
              "they are not trained again", flush=True)
    if time_budget_s is None:
        time_budget_s = {"small": experiment.small_time_budget_s,
                         "medium": MEDIUM_RUN_BUDGET_S * len(to_train)}.get(scale, 0.0)
    campaign = _Campaign(experiment, scale, planned, configs, results,
                         _Budget(time_budget_s, len(to_train)), out, jobs)
    if jobs == 1:
        _train_here(campaign, to_train)
    else:
        _train_in_processes(campaign, to_train, jobs)
    return campaign.write_report()


_INVOCATION_FIELDS = ("model_dir", "verbose", "max_seconds", "train_steps", "jit_compile")
"""`TrainConfig` fields a resumed run may change: where, how verbosely and how compiled it runs,
its budget, and its step count (a longer run continues training)."""


def _check_same_run(config, scale):
    """Raises a ValueError if `config.model_dir` holds a run trained with other settings (e.g. of
    another scale: `train` itself only checks model, task, length and seed)."""
    state = RunDirectory(config.model_dir).state()
    if state is None:
        return
    planned = json.loads(json.dumps(dataclasses.asdict(resolve_config(config))))
    different = {name: (state["config"][name], value) for name, value in planned.items()
                 if name not in _INVOCATION_FIELDS and name in state["config"]
                 and state["config"][name] != value}
    if different:
        details = ", ".join(f"{name}: saved {saved!r}, --scale={scale} gives {value!r}"
                            for name, (saved, value) in different.items())
        raise ValueError(
            f"{config.model_dir!r} holds a run with other settings ({details}); pass the --scale "
            "and seeds it was started with, or another --output_dir."
        )


def _finished(config, metrics):
    """Whether a run with `metrics` (`_saved_progress`) is done: it reached `config.train_steps`,
    met its success criterion with early stopping on, diverged, or degraded with
    `stop_when_degraded` on (without it a degraded run goes on, and may recover).

    Diverged and stopped degraded runs are outcomes the report shows; continuing one (with a
    lower learning rate, say) is a person's decision, which `rnnzoo-train` on its `model_dir` allows.
    """
    return bool(metrics.get("diverged") or (metrics.get("degraded") and config.stop_when_degraded)
                or metrics["step"] >= config.train_steps
                or (config.early_stop and metrics.get("success")))


def _saved_progress(model_dir):
    """The `metrics.json` of the run in `model_dir`; for a run not evaluated yet the step, times
    and history of its checkpoint, or zeros for one not started, so the report shows every run's
    progress."""
    run_dir = RunDirectory(model_dir)
    metrics = run_dir.metrics()
    if metrics is not None:
        return metrics
    state = run_dir.state() or {}
    return {"step": state.get("step", 0), "wall_time_s": state.get("wall_time_s", 0.0),
            "cpu_seconds": state.get("cpu_seconds", 0.0), "history": state.get("history", [])}


def _ignore_event_files(out, work_dir):
    """Writes `out/.gitignore` leaving the runs' TensorBoard event files (a copy of
    `metrics.json`'s history, appended to at every evaluation) and the temporary files of saves a
    killed process left behind out of git, so `git add <out>` commits the report and the runs'
    resumable state. Nothing when the work dir is outside `out`, or `out` has a `.gitignore`."""
    runs = os.path.relpath(work_dir, out)
    path = os.path.join(out, ".gitignore")
    if runs.startswith(os.pardir) or os.path.exists(path):
        return
    with open(path, "w") as f:
        f.write(f"{runs}/*/{TENSORBOARD_DIR}/\n{runs}/*/{TEMPORARY_PREFIX}*\n")


class _Campaign:
    """The runs of one `run_experiment` invocation: their budget, results and report."""

    def __init__(self, experiment, scale, planned, configs, results, budget, out, jobs):
        self.experiment, self.scale, self.out, self.jobs = experiment, scale, out, jobs
        self.planned, self.configs, self.results, self.budget = planned, configs, results, budget
        self.time_budget_s = budget.total_s
        self.started = time.monotonic()

    def start(self, position):
        """The config of run `position`, which starts now, with its share of the budget."""
        _, run, seed = self.planned[position]
        done = self.results[position]["metrics"]["step"]
        print(f"[{self.experiment.name}] {run.label} (seed {seed})"
              + (f", from step {done:,}" if done else ""), flush=True)
        return dataclasses.replace(self.configs[position], max_seconds=self.budget.start())

    def finish(self, position, config, metrics, took_s):
        """Records what run `position` (trained with `config` for `took_s` seconds) reached and
        rewrites the report."""
        self.budget.finish(config.max_seconds, took_s)
        self.results[position].update(config=dataclasses.asdict(config), metrics=metrics,
                                      in_progress=not _finished(config, metrics))
        self.write_report()

    def write_report(self):
        """Writes `results.json` and the report (`rnnzoo.experiments.report.write_report`); returns its path."""
        from rnnzoo.experiments.report import write_report

        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.results, f, indent=2)
        return write_report(self.experiment, self.scale, self.results, time.monotonic() - self.started,
                            self.out, self.time_budget_s, self.jobs)


class _Budget:
    """Splits `total_s` training seconds over `runs` runs as they start (0: no budget)."""

    def __init__(self, total_s, runs):
        self.total_s = total_s
        self.left_s, self.to_start = total_s, runs
        self.unlimited = not total_s

    def spent(self):
        """True once the runs given time have used it all: no further run starts."""
        return not self.unlimited and self.left_s <= 0

    def start(self):
        """The seconds of the run starting now; call `finish` with what it took."""
        self.to_start -= 1
        if self.unlimited:
            return 0.0
        given = max(self.left_s, 1.0) / (self.to_start + 1)
        self.left_s -= given
        return given

    def finish(self, given_s, took_s):
        self.left_s += given_s - took_s


def _train_here(campaign, positions):
    """Trains the runs at `positions` one after another in this process, while budget is left."""
    for position in positions:
        if campaign.budget.spent():
            return
        # Each run starts from a clean Keras state: tracing a Hessian-free step
        # beside many earlier runs' graphs took up to 8x longer (45 s vs 6 s).
        keras.backend.clear_session()
        gc.collect()
        config = campaign.start(position)
        run_started = time.monotonic()
        metrics = train(config, **campaign.planned[position][1].options)
        campaign.finish(position, config, metrics, time.monotonic() - run_started)


def _train_in_processes(campaign, positions, jobs):
    """Trains the runs at `positions`, up to `jobs` at a time, each in a fresh process, while
    budget is left."""
    import concurrent.futures
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    running = {}
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
        max_tasks_per_child=1,
    ) as pool:
        pending = list(positions)
        while running or (pending and not campaign.budget.spent()):
            while pending and len(running) < jobs and not campaign.budget.spent():
                position = pending.pop(0)
                config = campaign.start(position)
                options = campaign.planned[position][1].options
                future = pool.submit(_train_in_process, config, options, threads)
                running[future] = (position, config, time.monotonic())
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                position, config, run_started = running.pop(future)
                campaign.finish(position, config, future.result(), time.monotonic() - run_started)


def _train_in_process(config, options, threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return train(config, **options)
