"""Noiseless memorisation (thesis §4.4.5; ch. 7, table 7.3).

A sequence starts with `m` symbols to remember, drawn from i[1, K], followed
by T steps of a constant input; a trigger replaces the constant input at step
T + m (1-based), after which the `m` symbols must be reproduced at the last
`m` steps, T + m + 1, ..., T + 2m. Every other target is the constant
symbol. The 5-bit problem has m = 5, K = 2 (the thesis's symbols: bits 1-2,
constant 3, trigger 4); the 20-bit problem memorises m = 10 symbols from
{1, ..., 5} (constant 6, trigger 7), "over 20 bits of information".

Inputs are 1-of-(K + 2) and targets are classes `symbol - 1` of K + 1 at
every step. `error_rate` is the fraction of wrongly recalled symbols over the
last `m` steps, the thesis's "number of incorrectly remembered bits"
(table 7.3).
"""

import tensorflow as tf

from rnnzoo.data import source as source_lib
from rnnzoo.data import task as task_lib


def memorization_sampler(count, values):
    """`sample(n, length, key)` memorising `count` symbols from i[1, values]."""
    constant = values + 1
    trigger = values + 2

    def sample(n, length, key):
        memorised = source_lib.uniform_int(key, [n, count], 1, values)
        filler = length - 2 * count  # T
        fill = tf.fill([n, filler - 1], constant)
        wait = tf.fill([n, count], constant)
        inputs = tf.concat([memorised, fill, tf.fill([n, 1], trigger), wait], axis=1)
        targets = tf.concat([tf.fill([n, filler + count], constant), memorised], axis=1)
        weights = tf.ones([n, length])
        return tf.one_hot(inputs - 1, values + 2), targets - 1, weights

    return sample


def _task(name, seq_len, seed, count, values):
    task_lib.check_seq_len(name, seq_len, 1, "the trigger must come after the memorised symbols")
    return task_lib.Task(
        name=name,
        seq_len=seq_len,
        time_steps=seq_len + 2 * count,
        input_dim=values + 2,
        output_dim=values + 1,
        output_kind=task_lib.PER_STEP_CLASSIFICATION,
        relevant_steps=tuple(range(-count, 0)),
        error_unit="symbol",
        seed=seed,
        reference="training-rnns-thesis §4.4.5, table 7.3",
        source=source_lib.SyntheticSource(
            memorization_sampler(count, values),
            (seq_len + 2 * count, seq_len + 2 * count),
            task_lib.Baseline(
                error_rate=1.0 - 1.0 / values,
                mse=None,
                description=(
                    f"Each recalled symbol is one of {values} equally likely values: "
                    f"chance accuracy 1/{values} per symbol."
                ),
            ),
        ),
    )


def memorization_5bit(seq_len, seed):
    """5-bit memorisation: T + 10 steps, 5 bits recalled at the last 5 steps."""
    return _task("memorization_5bit", seq_len, seed, count=5, values=2)


def memorization_20bit(seq_len, seed):
    """20-bit memorisation: T + 20 steps, 10 symbols of {1..5} recalled at the last 10 steps."""
    return _task("memorization_20bit", seq_len, seed, count=10, values=5)
