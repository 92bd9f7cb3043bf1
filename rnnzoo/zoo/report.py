"""Markdown reports with PNG learning curves for `rnnzoo.zoo.experiments`."""

import glob
import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(results, path, metric_names):
    """One panel per metric (test loss, test error rate) with one curve per run."""
    figure, axes = plt.subplots(1, len(metric_names), figsize=(6 * len(metric_names), 4))
    axes = axes if len(metric_names) > 1 else [axes]
    for axis, metric in zip(axes, metric_names):
        for result in results:
            history = result["metrics"]["history"]
            steps = [h["step"] for h in history]
            values = [h[metric] for h in history]
            axis.plot(steps, values, marker=".", label=result["label"])
        axis.set_xlabel("training step")
        axis.set_ylabel(metric)
        if metric == "test_loss":
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
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


def write_report(experiment, scale, seed, results, total_seconds, out_dir, time_budget_s=0.0):
    """Writes `report.md` and `curves.png` in `out_dir`; returns the report path."""
    from rnnzoo.zoo.experiments import machine_description

    plot_curves(results, os.path.join(out_dir, "curves.png"), ["test_loss", "test_error_rate"])
    lines = [
        f"# {experiment.title}",
        "",
        f"Paper: {experiment.claim}",
        "",
        f"Scale: `{scale}`; seed {seed}; total wall time {total_seconds / 60:.1f} min on "
        f"{machine_description()} (shared with other jobs, so times are upper bounds); "
        + (f"training budget {time_budget_s:.0f} s shared equally by the runs (a run stops at "
           "its share of it or at its step count)." if time_budget_s else "no time budget."),
        "",
        f"Reproduce: `rnnzoo-reproduce --experiment={experiment.name} --scale={scale}`",
        "",
        f"| run | ours: {experiment.metric_name} | ours: test loss | paper | steps | wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        metrics = result["metrics"]
        ours = metrics["test_error_rate"] if result["metric"] == "test_error_rate" else metrics["test_loss"]
        lines.append(
            f"| {result['label']} | {_format(ours)} | {_format(metrics['test_loss'])} | "
            f"{result['paper']} | {metrics['step']} | {_format(metrics['wall_time_s'])} |"
        )
    lines += ["", "![learning curves](curves.png)", ""]
    lines += _gradient_section(results, out_dir)
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
