"""The temporal order problems (thesis §4.4.2-4.4.3; Hochreiter and Schmidhuber 1997, tasks 6a/6b).

Inputs are 1-of-6 encoded symbols: distractors drawn from i[3, 6] except at
two (or three) special steps holding symbols drawn from i[1, 2]. The target
at the last step is the ordered tuple of special symbols as one class of 4
(or 8): class `sum_k 2^(K-1-k) (s_k - 1)`, so `(1, 1) -> 0`, `(1, 2) -> 1`,
`(2, 1) -> 2`, `(2, 2) -> 3`.
"""

import tensorflow as tf

from rnnzoo.data import source as source_lib
from rnnzoo.data import task as task_lib

NUM_SYMBOLS = 6


def special_ranges(seq_len, fractions):
    """0-based closed index ranges of the special steps.

    `fractions` are the papers' `(a, b)` pairs: the 1-based step is drawn from
    i[a T, b T], i.e. from the integers in that real interval.
    """
    ranges = []
    for lo, hi in fractions:
        first = -(-lo * seq_len // 10)  # ceil(lo T / 10)
        last = hi * seq_len // 10  # floor(hi T / 10)
        ranges.append((first - 1, last - 1))
    return ranges


def temporal_order_sampler(ranges):
    """`sample(n, length, key)` with special symbols at steps drawn from `ranges`."""

    def sample(n, length, key):
        keys = tf.unstack(tf.random.split(key, 1 + 2 * len(ranges)))
        symbols = source_lib.uniform_int(keys[0], [n, length], 3, 6)
        steps = tf.range(length)[None, :]
        label = tf.zeros([n], tf.int32)
        for k, (lo, hi) in enumerate(ranges):
            position = source_lib.uniform_int(keys[1 + 2 * k], [n], lo, hi)
            special = source_lib.uniform_int(keys[2 + 2 * k], [n], 1, 2)
            symbols = tf.where(steps == position[:, None], special[:, None], symbols)
            label = 2 * label + (special - 1)
        return tf.one_hot(symbols - 1, NUM_SYMBOLS), label

    return sample


def _task(name, seq_len, seed, fractions, reference):
    task_lib.check_seq_len(
        name, seq_len, 10, "the special steps' ranges i[a T/10, b T/10] need T/10 >= 1"
    )
    ranges = special_ranges(seq_len, fractions)
    classes = 2 ** len(ranges)
    return task_lib.Task(
        name=name,
        seq_len=seq_len,
        time_steps=seq_len,
        input_dim=NUM_SYMBOLS,
        output_dim=classes,
        output_kind=task_lib.LAST_STEP_CLASSIFICATION,
        relevant_steps=(-1,),
        error_unit="sequence",
        seed=seed,
        reference=reference,
        source=source_lib.SyntheticSource(
            temporal_order_sampler(ranges),
            (seq_len, seq_len),
            task_lib.Baseline(
                error_rate=1.0 - 1.0 / classes,
                mse=None,
                description=f"All {classes} orders are equally likely: chance accuracy 1/{classes}.",
            ),
        ),
    )


def temporal_order(seq_len, seed):
    """Temporal order (thesis §4.4.2): specials at I ~ i[T/10, 2T/10], J ~ i[5T/10, 6T/10]; 4 classes."""
    return _task(
        "temporal_order", seq_len, seed, [(1, 2), (5, 6)], "training-rnns-thesis §4.4.2"
    )


def temporal_order_3bit(seq_len, seed):
    """3-bit temporal order (thesis §4.4.3): specials in i[T/10, 2T/10], i[3T/10, 4T/10],
    i[6T/10, 7T/10]; 8 classes."""
    return _task(
        "temporal_order_3bit",
        seq_len,
        seed,
        [(1, 2), (3, 4), (6, 7)],
        "training-rnns-thesis §4.4.3",
    )
