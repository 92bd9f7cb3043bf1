"""Registry of the sequence problems: `get_task(name, seq_len=..., seed=...)`."""

import difflib
import inspect

import numpy as np

from rnnzoo.data import digits, marked_operands, memorization, random_permutation, temporal_order

_BUILDERS = {
    "addition": marked_operands.addition,
    "addition_thesis": marked_operands.addition_thesis,
    "addition_layerwise": marked_operands.addition_layerwise,
    "multiplication": marked_operands.multiplication,
    "multiplication_longer_rnns": marked_operands.multiplication_longer_rnns,
    "xor": marked_operands.xor,
    "temporal_order": temporal_order.temporal_order,
    "temporal_order_3bit": temporal_order.temporal_order_3bit,
    "random_permutation": random_permutation.random_permutation,
    "memorization_5bit": memorization.memorization_5bit,
    "memorization_20bit": memorization.memorization_20bit,
    "digits": digits.digits,
}


def task_names():
    """Names accepted by `get_task`, sorted."""
    return sorted(_BUILDERS)


def get_task(name, seq_len=None, seed=0, train_size=None, **options):
    """Build a `Task` by name.

    Names and the paper each follows:
      - `addition`: longer-rnns §5.1 (fixed T, markers anywhere, target
        u_I + u_J). `addition_thesis`: thesis §4.4.1 (T' ~ i[T, 11T/10],
        target (u_I + u_J)/2). `addition_layerwise`: layer-wise pretraining
        §4.1 (markers in the first and last T/10 steps, target u_I + u_J).
      - `multiplication`: thesis §4.4.1 (U[0, 1] values).
        `multiplication_longer_rnns`: longer-rnns §5.2 (U[0, 2] values).
      - `xor`: thesis §4.4.1.
      - `temporal_order`, `temporal_order_3bit`: thesis §4.4.2-4.4.3.
      - `random_permutation`: thesis §4.4.4.
      - `memorization_5bit`, `memorization_20bit`: thesis §4.4.5 (T + 10 and
        T + 20 steps).
      - `digits`: scikit-learn's 8x8 digits row by row (options `binarize`,
        `test_fraction`, `split_seed`; `seq_len` is 8 or None).

    Args:
        name: one of `task_names()`.
        seq_len: the problem length T (required for synthetic problems).
        seed: non-negative integer seeding the train stream and test set.
        train_size: a generated problem's finite training set size (longer-rnns
            §5, layer-wise §4.1: 100,000), drawn once from the seed and
            reshuffled every epoch; `None` (default): fresh sequences for
            every batch (thesis §4.4).
        **options: task-specific options (see each builder's docstring).

    Raises:
        ValueError: unknown name, bad seq_len or seed, unknown option.
    """
    if name not in _BUILDERS:
        close = difflib.get_close_matches(str(name), _BUILDERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"Unknown task {name!r}; {hint}choose one of: {', '.join(task_names())}."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0.")
    builder = _BUILDERS[name]
    accepted = [p for p in inspect.signature(builder).parameters if p not in ("seq_len", "seed")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) if accepted else "none"
        raise ValueError(
            f"Task {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {allowed} (and train_size for generated problems)."
        )
    if isinstance(seq_len, np.integer):
        seq_len = int(seq_len)
    task = builder(seq_len=seq_len, seed=int(seed), **options)
    return task if train_size is None else task.with_train_size(train_size)
