"""Markdown reports with PNG learning curves for `rnnzoo.experiments.runner`."""

import glob
import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rnnzoo.machine import machine_summary  # noqa: E402


def _plot_history(axis, result, metric, name, several_seeds, **style):
    """One run's `metric` over its evaluation history, labelled `name` (and its seed)."""
    metrics = result["metrics"]
    history = metrics["history"]
    label = f"{name} (seed {result['seed']})" if several_seeds else name
    if metrics.get("diverged"):
        label += f", diverged at step {metrics['diverged_at_step']}"
    if metrics.get("degraded"):
        label += f", degraded after step {metrics['peak_step']}"
    values = [float("nan") if h.get(metric) is None else h[metric] for h in history]
    axis.plot([h["step"] for h in history], values, marker=".", label=label, **style)


def _axis_label(results, metric):
    """The metric's name, with "(higher is better)" for metrics whose runs say so in
    `metric_directions` (every other metric of the zoo is an error or a loss)."""
    name = _METRIC_NAMES.get(metric, metric)
    higher = any(r["metrics"].get("metric_directions", {}).get(metric) == "higher" for r in results)
    return f"{name} (higher is better)" if higher else name


def plot_curves(results, path, metric_names):
    """One panel per metric (test loss, test error rate) with one curve per run and seed."""
    several = len({r.get("seed") for r in results}) > 1
    figure, axes = plt.subplots(1, len(metric_names), figsize=(6 * len(metric_names), 4))
    axes = axes if len(metric_names) > 1 else [axes]
    for axis, metric in zip(axes, metric_names):
        for result in results:
            _plot_history(axis, result, metric, result["label"], several)
        axis.set_xlabel("training step")
        axis.set_ylabel(_axis_label(results, metric))
        if metric == "test_loss":
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


_METRIC_NAMES = {"test_loss": "test loss", "test_error_rate": "test error rate",
                 "test_sequence_error_rate": "wrong test sequences",
                 "reconstruction_error": "reconstruction error"}


def plot_panels(results, path):
    """A grid with one panel per `panel` key, each comparing its runs on their metric.

    A curve is named by the run's label without the panel's name (e.g. panel
    "add T=30", curves "structural" and "Tikhonov only") and keeps its colour
    in every panel; a dashed line marks the paper's success criterion.
    """
    several = len({r.get("seed") for r in results}) > 1
    panels = {}
    for result in results:
        panels.setdefault(result["panel"], []).append(result)
    series = {}
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.8 * columns, 2.9 * rows),
                                squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (panel, group) in zip(axes.flat, panels.items()):
        metric = group[0]["metric"]
        for result in group:
            name = result["label"].removeprefix(panel).strip() or result["label"]
            colour = series.setdefault(name, colours[len(series) % len(colours)])
            _plot_history(axis, result, metric, name, several, color=colour)
        axis.set_ylabel(_axis_label(group, metric))
        if metric == "test_loss":
            axis.set_yscale("log")
        criterion = group[0]["metrics"].get("success_criterion")
        if criterion is not None and criterion["metric"] == metric:
            axis.axhline(criterion["threshold"], color="grey", linestyle="--", linewidth=0.8)
        axis.set_title(panel, fontsize=10)
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _format(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _summary(values):
    """Equal values as one; different ones as `mean (min-max)`; `-` where any is missing
    (a diverged run has no test metrics)."""
    if any(v is None for v in values):
        return "-"
    if min(values) == max(values):
        return _format(values[0])
    mean = sum(values) / len(values)
    return f"{_format(float(mean))} ({_format(min(values))}-{_format(max(values))})"


def _rows(results):
    """The results grouped by run label, in order."""
    rows = {}
    for result in results:
        rows.setdefault(result["label"], []).append(result)
    return rows.values()


def _steps(group):
    """Steps done of planned, e.g. `1,200 / 50,000` (done as `mean (min-max)` where seeds differ)."""
    done = [r["metrics"]["step"] for r in group]
    text = f"{done[0]:,}" if min(done) == max(done) else (
        f"{sum(done) / len(done):,.0f} ({min(done):,}-{max(done):,})")
    return f"{text} / {group[0]['config']['train_steps']:,}"


def _cpu_hours(metrics):
    return None if metrics.get("cpu_seconds") is None else metrics["cpu_seconds"] / 3600


def _solved(group):
    """The `solved` cell: seeds that met the success criterion of the finished ones, where they
    diverged or peaked, and how many are still in progress."""
    finished = [r["metrics"] for r in group if not r.get("in_progress")]
    waiting = len(group) - len(finished)
    if not finished:
        return "in progress"
    has_criterion = any(r["metrics"].get("success_criterion") is not None for r in group)
    solved = f"{sum(bool(m['success']) for m in finished)}/{len(finished)}" if has_criterion else "-"
    diverged = [m["diverged_at_step"] for m in finished if m.get("diverged")]
    if diverged:
        solved += f" (diverged at step {', '.join(map(str, diverged))})"
    degraded = [m["peak_step"] for m in finished if m.get("degraded")]
    if degraded:
        solved += f" (degraded after peaking at step {', '.join(map(str, degraded))})"
    return solved + (f", {waiting} in progress" if waiting else "")


def write_report(experiment, scale, results, total_seconds, out_dir, time_budget_s=0.0, jobs=1):
    """Writes `report.md` and `curves.png` in `out_dir`; returns the report path.

    A row per run: with several seeds, each number is `mean (min-max)` over
    them and `solved` counts the seeds that met the paper's success criterion
    (a diverged run never does: its row says where it diverged; a degraded run's row says
    where it peaked). Runs marked `in_progress` (a campaign of several invocations, see
    `rnnzoo.experiments.runner.run_experiment`) say so in `solved` and in a line at the top, with
    the command that continues them; every row gives its steps done of planned and the CPU time
    spent over all invocations. The experiment's pictures (`illustrate`) need every run's final
    model and are drawn once none is in progress.
    `curves.png` has a panel per run `panel` when every run has one (each
    comparing its runs on their metric), else test loss and error rate panels
    with every run.
    """
    seeds = sorted({r["seed"] for r in results})
    curves = os.path.join(out_dir, "curves.png")
    if all(r.get("panel") for r in results):
        plot_panels(results, curves)
    else:
        plot_curves(results, curves,
                    ["test_loss", *sorted({r["metric"] for r in results} - {"test_loss"})])
    seed_flags = "" if seeds == [0] else (
        f" --seed={seeds[0]}" + (f" --num_seeds={len(seeds)}" if len(seeds) > 1 else "")
    )
    command = (f"rnnzoo-reproduce --experiment={experiment.name} --scale={scale}{seed_flags}"
               + (f" --jobs={jobs}" if jobs > 1 else ""))
    in_progress = [r for r in results if r.get("in_progress")]
    cpu_hours = sum(_cpu_hours(r["metrics"]) or 0.0 for r in results)
    lines = [f"# {experiment.title}", ""]
    if in_progress:
        done = sum(r["metrics"]["step"] for r in results)
        planned = sum(r["config"]["train_steps"] for r in results)
        lines += [
            f"**In progress: {len(in_progress)} of {len(results)} runs** ({done:,} of {planned:,} "
            f"steps done, {cpu_hours:.2f} CPU-hours so far); `{command} "
            f"--output_dir={os.path.dirname(os.path.normpath(out_dir)) or '.'} --resume` continues "
            "them. Their numbers are those of their last evaluation.",
            "",
        ]
    lines += [
        f"Paper: {experiment.claim}",
        "",
        f"Scale: `{scale}`; seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; "
        f"wall time {total_seconds / 60:.1f} min (the invocation that wrote this report), "
        f"{cpu_hours:.2f} CPU-hours (every run over all invocations) on "
        f"{machine_summary()} (shared with other jobs, so times are upper bounds); "
        + (f"{jobs} runs at a time, each in its own process; " if jobs > 1 else "")
        + (f"time budget {time_budget_s:.0f} s of training shared by the runs (each run gets "
           "what is left of it divided by the runs still to start, and stops there, at its step "
           "count or on success)." if time_budget_s else "no time budget."),
        "",
        f"Reproduce: `{command}`",
        "",
        f"| run | ours: {experiment.metric_name} | ours: test loss | paper | solved | steps | "
        "wall time (s) | CPU-hours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group in _rows(results):
        metrics = [r["metrics"] for r in group]
        key = group[0]["metric"]
        lines.append(
            f"| {group[0]['label']} | {_summary([m.get(key) for m in metrics])} | "
            f"{_summary([m.get('test_loss') for m in metrics])} | {group[0]['paper']} | "
            f"{_solved(group)} | {_steps(group)} | "
            f"{_summary([m.get('wall_time_s') for m in metrics])} | "
            f"{_summary([_cpu_hours(m) for m in metrics])} |"
        )
    lines += ["", "![learning curves](curves.png)", ""]
    lines += _detail_section(experiment, results)
    lines += _gradient_section(results, out_dir)
    illustrate = getattr(experiment, "illustrate", None)  # an experiment's pictures, if it has any
    if illustrate is not None and not in_progress:
        lines += illustrate(results, out_dir)
    lines += [
        "## Differences from the paper",
        "",
        experiment.differences,
        "",
    ]
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def _detail_section(experiment, results):
    """A table of `experiment.detail_metrics` (rows) by run (columns), final evaluation; a run
    without a metric shows `-`."""
    groups = list(_rows(results))
    names = [name for name in getattr(experiment, "detail_metrics", ())
             if any(name in r["metrics"] for r in results)]
    if not names:
        return []
    lines = ["## Further metrics (final evaluation)", "",
             "| metric | " + " | ".join(g[0]["label"] for g in groups) + " |",
             "|---" * (len(groups) + 1) + "|"]
    for name in names:
        direction = next((r["metrics"].get("metric_directions", {}).get(name) for r in results
                          if name in r["metrics"]), None)
        cells = [_summary([r["metrics"].get(name) for r in g]) if any(name in r["metrics"] for r in g)
                 else "-" for g in groups]
        lines.append(f"| {name}{f' ({direction})' if direction else ''} | " + " | ".join(cells) + " |")
    return lines + [""]


def _gradient_section(results, out_dir):
    """Copies the runs' gradient-propagation plots next to the report and links them."""
    lines = []
    for index, result in enumerate(results):
        plots = glob.glob(os.path.join(result["config"]["model_dir"], "gradients", "step_*.png"))
        plots.sort(key=lambda p: int(os.path.basename(p)[5:-4]))
        for plot in plots:
            name = f"gradients_{index:02d}_{os.path.basename(plot)}"
            shutil.copyfile(plot, os.path.join(out_dir, name))
            if not lines:
                lines += ["## Per-time-step gradients (longer-rnns §6.9)", ""]
            lines.append(f"{result['label']}, {os.path.basename(plot)[:-4].replace('_', ' ')}:")
            lines += ["", f"![{result['label']} {name}]({name})", ""]
    return lines
