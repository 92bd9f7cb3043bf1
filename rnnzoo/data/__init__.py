"""Seeded tf.data pipelines of the papers' sequence problems.

    from rnnzoo.data import get_task
    task = get_task("addition", seq_len=50, seed=0)
    train = task.train_dataset(batch_size=100)
    test = task.test_dataset(batch_size=1000)
"""

from rnnzoo.data.registry import get_task, task_names
from rnnzoo.data.task import (
    LAST_STEP_CLASSIFICATION,
    PER_STEP_CLASSIFICATION,
    REGRESSION,
    Baseline,
    Task,
)

__all__ = [
    "LAST_STEP_CLASSIFICATION",
    "PER_STEP_CLASSIFICATION",
    "REGRESSION",
    "Baseline",
    "Task",
    "get_task",
    "task_names",
]
