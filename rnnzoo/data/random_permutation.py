"""The random permutation problem (thesis §4.4.4; Hochreiter and Schmidhuber 1997, task 2b).

Symbols from {1, ..., 100}, 1-of-100 encoded: the first and the last symbol
are the same, drawn from i[1, 2]; the others are drawn from i[3, 100]. The
target at every step is the next input symbol (class `symbol - 1`), so only
the last target, predicted at the step before last, can be predicted; it is
the one scored by `error_rate` (`relevant_steps=(-2,)`). The last step has no
next symbol: its sample weight is 0.
"""

import tensorflow as tf

from rnnzoo.data import source as source_lib
from rnnzoo.data import task as task_lib

NUM_SYMBOLS = 100


def sample(n, length, key):
    """`(x, y, sample_weight)`: one-hot symbols, next-symbol classes, step weights."""
    special_key, symbol_key = tf.unstack(tf.random.split(key, 2))
    special = source_lib.uniform_int(special_key, [n, 1], 1, 2)
    middle = source_lib.uniform_int(symbol_key, [n, length - 2], 3, NUM_SYMBOLS)
    symbols = tf.concat([special, middle, special], axis=1) - 1
    targets = tf.concat([symbols[:, 1:], tf.zeros([n, 1], tf.int32)], axis=1)
    weights = tf.concat([tf.ones([n, length - 1]), tf.zeros([n, 1])], axis=1)
    return tf.one_hot(symbols, NUM_SYMBOLS), targets, weights


def random_permutation(seq_len, seed):
    """Random permutation with T symbols per sequence (thesis §4.4.4)."""
    task_lib.check_seq_len(
        "random_permutation", seq_len, 3, "the first and last symbols need a distractor between them"
    )
    return task_lib.Task(
        name="random_permutation",
        seq_len=seq_len,
        time_steps=seq_len,
        input_dim=NUM_SYMBOLS,
        output_dim=NUM_SYMBOLS,
        output_kind=task_lib.PER_STEP_CLASSIFICATION,
        relevant_steps=(-2,),
        error_unit="sequence",
        seed=seed,
        reference="training-rnns-thesis §4.4.4",
        source=source_lib.SyntheticSource(
            sample,
            (seq_len, seq_len),
            task_lib.Baseline(
                error_rate=0.5,
                mse=None,
                description="The last symbol is 1 or 2 with equal odds: chance accuracy 1/2.",
            ),
        ),
    )
