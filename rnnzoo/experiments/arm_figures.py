"""Thesis fig. 6.2's comparison: the trained controllers against iLQR per reach, with pictures.

`illustrate(results, out_dir)` is the `thesis_fig_6_2` experiment's report section
(`rnnzoo.experiments.runner`). For every task the experiment trained controllers on, it

- runs iLQR per reach (`rnnzoo.control.ilqr`, the thesis's gold standard, §6.7.1) on the runs'
  test reaches (the same reaches, constants and horizon as the controllers' `test_loss`) and
  writes the result to `ilqr.json`;
- tabulates the mean final loss per reach of every optimizer next to iLQR's and the thesis's;
- draws `curves_vs_ilqr.png` (test loss over training steps and over the seconds spent in
  them, iLQR as a dashed line);

and for centre-out draws `hands_center_out.png` (the 64 hand paths of each trained controller
and of iLQR, targets marked) and `reach_center_out.gif` (one reach, the arm of the first run's
controller and iLQR's open-loop arm moving side by side, a matplotlib animation written with
the Pillow writer).
"""

import json
import os
import time

import numpy as np
import tensorflow as tf

from rnnzoo.control import ilqr
from rnnzoo.zoo import arm_controller  # registers the classes its checkpoints name
from rnnzoo.training.run_directory import RunDirectory

ILQR_ITERATIONS = 100
THESIS_ILQR = {"center_out": "8.95e-5"}
"""Thesis fig. 6.2: iLQR's mean final loss per reach (the runs carry the others' numbers)."""
TASK_TITLES = {"center_out": "centre-out", "postural": "postural", "ddn": "DDN"}


def trained_layer(result):
    """The `ClosedLoop` layer of a run's last good checkpoint."""
    model = RunDirectory(result["config"]["model_dir"]).load_model()
    return model.get_layer("closed_loop")


def test_batch(layer, config):
    """The reaches the run's `test_loss` is measured on (`rnnzoo.zoo.arm_controller.model.build`)."""
    if layer.task.name == "ddn":
        return layer.task.test_batch(config["seed"],
                                     config["test_size"] or arm_controller.DDN_TEST_SIZE)
    return layer.task.batch(None)


def controller_trajectory(layer, batch):
    """The trajectory `(B, T + 1, 4)` of the trained controller on `batch`."""
    inputs = {name: tf.constant(np.asarray(getattr(batch, name), np.float32))
              for name in ("initial_state", "target", "disturbance", "torque_noise")}
    return tf.function(layer.rollout)(inputs).trajectory.numpy()


def _by_task(results):
    tasks = {}
    for result in results:
        tasks.setdefault(result["config"]["task"], []).append(result)
    return tasks


def _final_loss(result):
    metrics = result["metrics"]
    if metrics.get("diverged"):
        return f"diverged at step {metrics['diverged_at_step']}"
    value = metrics.get("test_loss")
    return "-" if value is None else f"{value:.3g}"


def run_ilqr(results):
    """iLQR on the test reaches of each task's first run: `{task: entry}` (JSON-ready)."""
    entries = {}
    for task, group in _by_task(results).items():
        layer = trained_layer(group[0])
        batch = test_batch(layer, group[0]["config"])
        started = time.monotonic()
        solution = ilqr(layer.task, layer.arm, batch, iterations=ILQR_ITERATIONS)
        entries[task] = {
            "mean_loss": float(np.mean(solution.loss)),
            "reaches": int(len(solution.loss)),
            "iterations": solution.iterations,
            "history": solution.history,
            "seconds": round(time.monotonic() - started, 1),
            "steps": layer.task.steps,
            "delay_ignored": layer.task.delay,
            "trajectory": solution.trajectory.tolist() if task == "center_out" else None,
        }
    return entries


def _optimizer_name(result):
    return result["config"]["optimizer"].upper().replace("LBFGS", "L-BFGS")


def _curves(results, entries, path):
    """Test loss per task against optimizer iterations (top) and seconds spent in training
    steps, tracing included (bottom); iLQR's mean loss dashed."""
    import matplotlib.pyplot as plt

    tasks = _by_task(results)
    figure, axes = plt.subplots(2, len(tasks), figsize=(4.6 * len(tasks), 6.6), squeeze=False)
    for column, (task, group) in enumerate(tasks.items()):
        for axis, clock, name in ((axes[0][column], "step", "training step (one iteration)"),
                                  (axes[1][column], "train_seconds",
                                   "seconds in training steps (first traces)")):
            for result in group:
                history = result["metrics"]["history"]
                axis.plot([h[clock] for h in history],
                          [np.nan if h.get("test_loss") is None else h["test_loss"]
                           for h in history], marker=".", label=_optimizer_name(result))
            axis.axhline(entries[task]["mean_loss"], color="black", linestyle="--",
                         linewidth=1, label="iLQR per reach")
            axis.set_yscale("log")
            axis.set_title(f"{TASK_TITLES[task]} (T = {entries[task]['steps']})", fontsize=10)
            axis.set_xlabel(name)
            axis.set_ylabel("mean test loss per reach")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _hands(arm, trajectory):
    return arm.hand_position(tf.constant(trajectory)).numpy()


def _hand_paths(panels, targets, path):
    """One panel per `(title, hands (B, T + 1, 2))`, targets as crosses."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.5), squeeze=False)
    for axis, (title, hands) in zip(axes[0], panels):
        for reach in hands:
            axis.plot(reach[:, 0], reach[:, 1], linewidth=0.7, color="tab:blue")
        axis.plot(targets[:, 0], targets[:, 1], "x", color="tab:red", markersize=4)
        axis.set_title(title, fontsize=9)
        axis.set_aspect("equal")
        axis.set_xlabel("hand x (m)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("hand y (m)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _reach_gif(arm, arms, target, path, milliseconds=80):
    """An animation of one reach, one arm per `(title, trajectory (T + 1, 4))`, side by side."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    config = arm.config
    figure, axes = plt.subplots(1, len(arms), figsize=(3.2 * len(arms), 3.2), squeeze=False)
    drawn = []
    for axis, (title, trajectory) in zip(axes[0], arms):
        shoulder = trajectory[:, 0]
        elbow = np.stack([config.l1 * np.cos(shoulder), config.l1 * np.sin(shoulder)], -1)
        hand = _hands(arm, trajectory)
        axis.plot(*target, "x", color="tab:red", markersize=8)
        (links,) = axis.plot([], [], "o-", color="tab:blue", linewidth=3)
        (trace,) = axis.plot([], [], color="tab:orange", linewidth=1)
        axis.set_xlim(-0.35, 0.35)
        axis.set_ylim(-0.05, 0.65)
        axis.set_aspect("equal")
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("x (m), shoulder at 0")
        drawn.append((links, trace, elbow, hand))

    def frame(t):
        artists = []
        for links, trace, elbow, hand in drawn:
            links.set_data([0, elbow[t, 0], hand[t, 0]], [0, elbow[t, 1], hand[t, 1]])
            trace.set_data(hand[: t + 1, 0], hand[: t + 1, 1])
            artists += [links, trace]
        return artists

    frames = len(arms[0][1])
    movie = animation.FuncAnimation(figure, frame, frames=frames, blit=True)
    movie.save(path, writer=animation.PillowWriter(fps=1000 / milliseconds))
    plt.close(figure)


def illustrate(results, out_dir):
    """The report's iLQR comparison and pictures (see the module docstring); returns its
    markdown lines."""
    entries = run_ilqr(results)
    with open(os.path.join(out_dir, "ilqr.json"), "w") as f:
        json.dump({task: {k: v for k, v in e.items() if k != "trajectory"}
                   for task, e in entries.items()}, f, indent=2)
    _curves(results, entries, os.path.join(out_dir, "curves_vs_ilqr.png"))
    tasks = _by_task(results)
    optimizers = list(dict.fromkeys(r["config"]["optimizer"] for r in results))
    names = [_optimizer_name({"config": {"optimizer": o}}) for o in optimizers]
    lines = [
        "## Mean final loss per reach: controllers vs iLQR (fig. 6.2)", "",
        "Each controller's mean test loss per reach at the end of its run (the thesis's loss), "
        "iLQR's on the same reaches (open-loop torques per reach, at most "
        f"{ILQR_ITERATIONS} iterations), and the thesis's numbers (thesis / ours: its units "
        "and constants are not given, so only the ordering compares).", "",
        "| task | " + " | ".join(names) + " | iLQR | thesis (" + " / ".join(names) + " / iLQR) |",
        "|---" * (len(names) + 3) + "|",
    ]
    for task, group in tasks.items():
        found = {r["config"]["optimizer"]: _final_loss(r) for r in group}
        thesis = {r["config"]["optimizer"]: r["paper"] for r in group}
        lines.append(
            f"| {TASK_TITLES[task]} | " + " | ".join(found.get(o, "not run") for o in optimizers)
            + f" | {entries[task]['mean_loss']:.3g} | "
            + " / ".join(thesis.get(o, "-") for o in optimizers)
            + f" / {THESIS_ILQR.get(task, '-')} |")
    lines += [""]
    for task, entry in entries.items():
        lines.append(
            f"- iLQR, {TASK_TITLES[task]}: {entry['reaches']} reaches, T = {entry['steps']}, "
            f"{entry['iterations']} iterations, {entry['seconds']} s"
            + (f"; it knows each reach's disturbances in advance and has no feedback delay "
               f"(the controllers see the state {entry['delay_ignored']} steps late)"
               if entry["delay_ignored"] or task != "center_out" else "") + ".")
    lines += ["", "![test loss vs iLQR](curves_vs_ilqr.png)", ""]
    if "center_out" in tasks:
        group = tasks["center_out"]
        panels, first = [], None
        for result in group:
            layer = trained_layer(result)
            batch = test_batch(layer, result["config"])
            trajectory = controller_trajectory(layer, batch)
            first = first or (result, trajectory)
            panels.append((f"{result['label']}: {_final_loss(result)}", _hands(layer.arm,
                                                                             trajectory)))
        optimal = np.asarray(entries["center_out"]["trajectory"])
        panels.append((f"iLQR: {entries['center_out']['mean_loss']:.3g}",
                       _hands(layer.arm, optimal)))
        targets = _hands(layer.arm, batch.target.astype(np.float64))
        _hand_paths(panels, targets, os.path.join(out_dir, "hands_center_out.png"))
        result, trajectory = first
        reach = 0
        _reach_gif(layer.arm, [(f"{result['label']} controller", trajectory[reach]),
                               ("iLQR (open loop)", optimal[reach])],
                   targets[reach], os.path.join(out_dir, "reach_center_out.gif"))
        lines += [
            "Hand paths of the 64 centre-out test reaches (start in the middle, targets as "
            "crosses; panel titles give the mean loss per reach):", "",
            "![hand paths](hands_center_out.png)", "",
            f"Reach {reach} ({result['label']} controller, closed loop, and iLQR's open-loop "
            "torques), one frame per 10 ms step:", "",
            "![one reach](reach_center_out.gif)", "",
        ]
    return lines
