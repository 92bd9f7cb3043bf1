"""Collapse as an outcome: a run whose held-out metric, or between evaluations its training loss,
gets clearly and persistently worse than its best is `degraded`.

The rule, chosen from measured curves: a 128-unit char MRNN trained with Adam 3e-3 went from 2.0
to 3.2 held-out bits/char (+60%) over its last 2,600 steps, its smoothed training loss +70%,
while the held-out bits/char of runs that keep learning move by about 1% between evaluations and
the smoothed training loss of a noisy one by a few percent. So:

- held out: the primary metric (`rnnzoo.training.evaluation.primary_metric`) is worse than its best
  by more than `tolerance` (relative to the best's magnitude) at each of the last `patience`
  evaluations of this invocation; the run peaked at the best evaluation's step;
- training loss: its exponential moving average over about 100 steps (`TRAIN_SMOOTHING`) is
  worse than its lowest value since the invocation's first `WARMUP_STEPS` steps by more than
  `tolerance` for `patience` x 100 consecutive steps; the run peaked where the average was lowest.

Counting only this invocation's evaluations and steps lets a resumed run (say with a lower
learning rate) recover before it is judged again.
"""

import dataclasses
import math

from rnnzoo.training.evaluation import oriented

TRAIN_SMOOTHING = 0.01
"""Weight of the newest step in the training loss's moving average (about 100 steps)."""
WARMUP_STEPS = 200
"""Steps of an invocation before the training-loss rule watches (the first steps fall fast)."""
STEPS_PER_PATIENCE = 100
"""The training-loss rule's persistence: `patience` x this many steps."""


def worse(value, best, tolerance):
    """Whether lower-is-better `value` exceeds `best` by more than `tolerance` x |best|."""
    return value > best + tolerance * abs(best)


@dataclasses.dataclass
class Degradation:
    """A degraded run: `signal` (`"heldout"` or `"train_loss"`), the step it peaked at, the step it was
    found at, and what was seen."""

    signal: str
    peak_step: int
    found_at_step: int
    description: str

    def as_metrics(self):
        return {"degraded": True, "peak_step": self.peak_step, "degraded_at_step": self.found_at_step,
                "degradation": self.description}


def heldout_degradation(history, first_index, metric, patience, tolerance):
    """A `Degradation` when the last `patience` evaluations of `history[first_index:]` are all worse
    than the best evaluation of `history` on `metric` = `(name, direction)`; else `None`."""
    recent = history[first_index:]
    if patience < 1 or len(recent) < patience:
        return None
    name, direction = metric
    best = min(history, key=lambda entry: oriented(entry.get(name), direction))
    best_value = oriented(best.get(name), direction)
    if not math.isfinite(best_value):
        return None
    last = recent[-patience:]
    if best in last or not all(worse(oriented(e.get(name), direction), best_value, tolerance) for e in last):
        return None
    return Degradation("heldout", best["step"], last[-1]["step"], (
        f"held-out {name} {last[-1].get(name):.4g} at step {last[-1]['step']} against {best.get(name):.4g} at "
        f"step {best['step']}: worse by more than {tolerance:.0%} at each of the last {patience} evaluations"))


class StepLosses:
    """Each step's own training loss within a Keras epoch, from the running means Keras logs:
    the mean after batch b is m_b, so batch b's loss is (b + 1) m_b - b m_{b-1}. Make one per epoch."""

    def __init__(self):
        self.mean = 0.0

    def update(self, batch, mean):
        """The loss of `batch` (0-based within the epoch) whose running mean Keras logs as `mean`."""
        loss = (batch + 1) * mean - batch * self.mean
        self.mean = mean
        return loss


class TrainLossMonitor:
    """The training-loss rule of the module docstring, fed one step's loss at a time."""

    def __init__(self, patience, tolerance):
        self.patience, self.tolerance = patience, tolerance
        self.steps = 0
        self.average = None
        self.lowest = math.inf
        self.lowest_step = None
        self.worse_steps = 0

    def update(self, step, loss):
        """Adds the loss of `step`; returns a `Degradation` once the rule holds, else `None`."""
        if self.patience < 1 or loss is None or not math.isfinite(loss):
            return None
        self.steps += 1
        self.average = loss if self.average is None else self.average + TRAIN_SMOOTHING * (loss - self.average)
        if self.steps < WARMUP_STEPS:
            return None
        if self.average < self.lowest:
            self.lowest, self.lowest_step, self.worse_steps = self.average, step, 0
        elif worse(self.average, self.lowest, self.tolerance):
            self.worse_steps += 1
        else:
            self.worse_steps = 0
        if self.worse_steps < self.patience * STEPS_PER_PATIENCE:
            return None
        return Degradation("train_loss", self.lowest_step, step, (
            f"smoothed training loss {self.average:.4g} at step {step} against {self.lowest:.4g} at step "
            f"{self.lowest_step}: worse by more than {self.tolerance:.0%} for "
            f"{self.patience * STEPS_PER_PATIENCE} steps"))
