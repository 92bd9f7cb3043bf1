"""A family's test evaluation: named metrics with a direction, and its success criterion.

Every family hands the training loop the metrics its paper reports
(`Metric`: the thesis's zero-one error rates and bits per character are
lower-is-better, BLEU is higher-is-better) and, where the paper has one, a
success criterion on one of them (`Criterion`, e.g. thesis §4.4: fewer than
1% of the test sequences wrong). `evaluate` computes them on the test set;
`metrics.json` and the reports carry them by name beside the test loss.

A non-finite value (a diverged model's) never satisfies a criterion and is
reported as `None` (JSON `null`): NaN must not win a comparison.
"""

import dataclasses
import math
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

LOWER = "lower"
HIGHER = "higher"
DIRECTIONS = (LOWER, HIGHER)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A named test metric.

    Attributes:
        name: its key in `metrics.json` (e.g. `"test_error_rate"`, `"bits_per_char"`).
        compute: `compute(y_true, y_pred) -> float` over the whole test set
            (numpy arrays: the concatenated targets and model outputs), or
            `None` for a metric the family's own `Built.evaluate(model)`
            returns (e.g. BLEU of beam-search translations).
        direction: `"lower"` or `"higher"`: which values are better.
        description: what it measures, with the paper's reference.
    """

    name: str
    compute: Callable | None
    direction: str = LOWER
    description: str = ""

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"Metric {self.name!r}: direction={self.direction!r}; choose 'lower' or 'higher'."
            )


@dataclasses.dataclass(frozen=True)
class Criterion:
    """Success when metric `metric` is better than `threshold` (strictly).

    Attributes:
        metric: the name of one of the family's metrics.
        threshold: the bound (e.g. 0.01 for thesis §4.4's 1%).
        direction: the metric's direction (`"lower"`: success below `threshold`).
        reference: where the paper states the criterion.
    """

    metric: str
    threshold: float
    direction: str = LOWER
    reference: str = ""

    def met(self, values):
        """True when `values[metric]` is finite and better than the threshold."""
        value = values.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        return value < self.threshold if self.direction == LOWER else value > self.threshold

    def as_dict(self):
        return dataclasses.asdict(self)


def finite_or_none(value):
    """`float(value)`, or `None` when it is NaN or infinite (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def task_metrics(task):
    """The metrics and success criterion of a `rnnzoo.data.Task` (thesis §4.4; table 7.3).

    `test_error_rate` is the paper's reported error (per sequence, or per
    recalled symbol for the memorisation problems); success is always decided
    on whole sequences (`test_sequence_error_rate < 1%`, thesis §4.4), which
    the symbol-level problems report as a second metric.
    """
    metrics = [Metric("test_error_rate", task.error_rate,
                      description=f"wrong test {task.error_unit}s ({task.reference})")]
    criterion_metric = "test_error_rate"
    if task.error_unit != "sequence":
        metrics.append(Metric("test_sequence_error_rate", task.sequence_error_rate,
                              description="test sequences with any wrong relevant output "
                                          "(thesis §4.4)"))
        criterion_metric = "test_sequence_error_rate"
    criterion = Criterion(criterion_metric, task.success_error_rate,
                          reference="thesis §4.4: fewer than 1% of the test sequences wrong")
    return tuple(metrics), criterion


def evaluate(model, built):
    """The test loss (the mean over the weighted positions, without regularisation penalties),
    every metric of `built` and success.

    Args:
        model: the model to evaluate.
        built: the family's `rnnzoo.training.registry.Built` (its loss, test set,
            metrics, criterion and optional own `evaluate`).

    Returns:
        `{"test_loss", <metric name>: value, ..., "success"}`; non-finite
        values are `None` (`test_loss` is also `None` without a test set).
    """
    values = {"test_loss": None}
    if built.test_dataset is not None:
        ys, weights, predictions = [], [], []
        for batch in built.test_dataset:
            x, y, weight = keras.utils.unpack_x_y_sample_weight(batch)
            ys.append(np.asarray(y))
            weights.append(None if weight is None else np.asarray(weight))
            predictions.append(np.asarray(model(x, training=False)))
        # The mean over the weighted positions (`rnnzoo.training.position_weights`), from the loss's
        # unreduced values: whatever its reduction, and without the division by the replicas in
        # sync that Keras applies inside a tf.distribute scope (keras/src/losses/loss.py).
        loss = keras.losses.get(built.loss)
        unreduced = loss.call if isinstance(loss, keras.losses.Loss) else loss
        total, weight_total = 0.0, 0.0
        for y, p, w in zip(ys, predictions, weights):
            per_position = np.asarray(unreduced(y, p), np.float64)
            w = np.ones_like(per_position) if w is None else np.broadcast_to(np.asarray(w, np.float64),
                                                                             per_position.shape)
            total += float(np.sum(per_position * w))
            weight_total += float(np.sum(w))
        values["test_loss"] = finite_or_none(total / weight_total) if weight_total else None
        y_true, y_pred = np.concatenate(ys), np.concatenate(predictions)
        for metric in built.metrics:
            if metric.compute is not None:
                values[metric.name] = finite_or_none(metric.compute(y_true, y_pred))
    if built.evaluate is not None:
        values.update({k: finite_or_none(v) for k, v in built.evaluate(model).items()})
    missing = [m.name for m in built.metrics if m.name not in values]
    if missing:
        raise ValueError(
            f"metrics {missing} have no compute function and the family's evaluate() did not "
            "return them; give each metric a compute function or return it from Built.evaluate."
        )
    values["success"] = bool(built.success is not None and built.success.met(values))
    return values


def directions(built):
    """`{metric name: "lower" | "higher"}` of a family's metrics (for metrics.json and reports)."""
    return {metric.name: metric.direction for metric in built.metrics}


def primary_metric(built):
    """`(name, direction)` of the family's primary metric: its first (headline) metric, or the test
    loss (lower is better) for a family without metrics."""
    return (built.metrics[0].name, built.metrics[0].direction) if built.metrics else ("test_loss", LOWER)


def oriented(value, direction):
    """`value` as a lower-is-better number (`None` and non-finite values: +inf, never best)."""
    if value is None or not math.isfinite(value):
        return math.inf
    return value if direction == LOWER else -value


def improves(values, best, metric):
    """Whether the evaluation `values` is better than `best` (an earlier evaluation, or `None`) on
    `metric` = `(name, direction)`; an equal metric is decided by the lower test loss."""
    if best is None:
        return True
    name, direction = metric
    new, old = oriented(values.get(name), direction), oriented(best.get(name), direction)
    if new != old:
        return new < old
    return oriented(values.get("test_loss"), LOWER) < oriented(best.get("test_loss"), LOWER)
