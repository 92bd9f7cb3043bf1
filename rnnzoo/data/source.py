"""Seeded tf.data pipelines over sequences drawn with stateless random ops.

A synthetic problem is a function `sample(n, length, key)` returning a batch
`(x, y)` or `(x, y, sample_weight)` of `n` sequences of `length` steps, drawn
from the stateless key `key` (a `[2]` int64 tensor). `SyntheticSource` turns
it into an endless training stream (batch `i` drawn from
`fold_in([seed, 0], i)`, so every batch is fresh and the stream repeats
exactly for the same seed) and a fixed test set (drawn from `[seed, 1]`,
disjoint from the training stream).

With a `train_size`, training instead cycles through a finite training set of
that many sequences drawn once from `[seed, 2]` and reshuffled every epoch,
as longer-rnns §5 and the layer-wise paper §4.1 train (100,000 sequences
"generated beforehand").

Variable-length problems (the thesis's addition family, T' ~ i[T, 11T/10])
come in two forms:

- unpadded (default): every training batch draws one T' and all its
  sequences have that length, so models need no masking and each sequence's
  marginal distribution is exactly the paper's; the test set draws one T'
  per sequence and groups sequences of equal length into batches, so its
  content depends on the seed and size, not on the batch size.
- padded: every sequence draws its own T', as in the thesis, and is
  pre-padded to the longest length 11T/10 with steps whose every feature is
  `PAD_VALUE`, so all batches have one static length (which Hessian-free's
  forward-mode products through Keras's recurrent layers need).
  `keras.layers.Masking(PAD_VALUE)` in front of a recurrent layer makes it
  skip the padding exactly: its state stays the initial state until the
  sequence starts. Their samplers take per-sequence lengths `length` of
  shape `[n]` and `steps`, the padded length.
"""

import numpy as np
import tensorflow as tf

PAD_VALUE = -1.0
"""Every feature of a padding step (no real step of the padded problems has all features -1)."""

DEFAULT_TEST_SIZE = 10_000
"""Thesis §4.4: "the test set also consists of 10,000 sequences"."""

_TRAIN_STREAM = 0
_TEST_STREAM = 1
_FINITE_TRAIN_STREAM = 2


def uniform_index(key, lo, count):
    """Integers uniform on `[lo, lo + count)`, elementwise; `count` may vary per element."""
    count = tf.cast(count, tf.float64)
    u = tf.random.stateless_uniform(tf.shape(count), key, dtype=tf.float64)
    offset = tf.minimum(tf.floor(u * count), count - 1.0)
    return tf.cast(lo, tf.int32) + tf.cast(offset, tf.int32)


def uniform_int(key, shape, lo, hi):
    """Integers uniform on the closed range `[lo, hi]` (thesis notation `i[lo, hi]`)."""
    return tf.random.stateless_uniform(shape, key, minval=lo, maxval=hi + 1, dtype=tf.int32)


class SyntheticSource:
    """Train and test pipelines of a generated problem.

    Args:
        sample: `sample(n, length, key) -> (x, y)` or `(x, y, sample_weight)`.
        lengths: `(shortest, longest)` number of steps, inclusive; equal for
            fixed-length problems.
        baseline: the problem's `Baseline`.
        train_size: number of sequences of a finite training set; `None`
            for an endless stream of fresh sequences.
    """

    def __init__(self, sample, lengths, baseline, train_size=None):
        self._sample = sample
        self.lengths = lengths
        self._baseline = baseline
        self.train_size = train_size

    def baseline(self):
        return self._baseline

    def with_train_size(self, train_size):
        """The same problem trained on a finite set of `train_size` sequences (`None`: endless)."""
        return SyntheticSource(self._sample, self.lengths, self._baseline, train_size)

    def train_dataset(self, batch_size, seed, padded=False):
        if self.train_size is not None:
            return self._finite_train_dataset(batch_size, seed, padded)
        key = tf.constant([seed, _TRAIN_STREAM], tf.int64)
        shortest, longest = self.lengths

        def batch(step):
            batch_key = tf.random.fold_in(key, step)
            if shortest == longest:
                return self._sample(batch_size, shortest, batch_key)
            length_key, sequence_key = tf.unstack(tf.random.split(batch_key, 2))
            if padded:
                lengths = uniform_int(length_key, [batch_size], shortest, longest)
                return self._sample(batch_size, lengths, sequence_key, steps=longest)
            length = uniform_int(length_key, [], shortest, longest)
            return self._sample(batch_size, length, sequence_key)

        dataset = tf.data.Dataset.counter().map(
            batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def _finite_train_dataset(self, batch_size, seed, padded):
        shortest, longest = self.lengths
        if shortest != longest and not padded:
            raise ValueError(
                f"a finite training set (train_size={self.train_size}) of a variable-length "
                f"problem (T' from {shortest} to {longest}) holds sequences of different lengths; "
                "read it with padded=True (the zoo models do) or drop train_size."
            )
        key = tf.constant([seed, _FINITE_TRAIN_STREAM], tf.int64)
        dataset = tf.data.Dataset.from_tensor_slices(self._draw(self.train_size, key))
        dataset = dataset.shuffle(self.train_size, seed=seed, reshuffle_each_iteration=True)
        return dataset.repeat().batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    def _draw(self, size, key):
        """`size` sequences from `key`, each of its own length pre-padded (variable-length problems)."""
        shortest, longest = self.lengths
        if shortest == longest:
            return self._sample(size, shortest, key)
        length_key, sequence_key = tf.unstack(tf.random.split(key, 2))
        lengths = uniform_int(length_key, [size], shortest, longest)
        return self._sample(size, lengths, sequence_key, steps=longest)

    def test_dataset(self, batch_size, size, seed, padded=False):
        size = DEFAULT_TEST_SIZE if size is None else size
        key = tf.constant([seed, _TEST_STREAM], tf.int64)
        shortest, longest = self.lengths
        if shortest == longest or padded:
            return tf.data.Dataset.from_tensor_slices(self._draw(size, key)).batch(batch_size)
        length_key, sequence_key = tf.unstack(tf.random.split(key, 2))
        lengths = uniform_int(length_key, [size], shortest, longest).numpy()
        groups = []
        for length, count in zip(*np.unique(lengths, return_counts=True)):
            group_key = tf.random.fold_in(sequence_key, int(length))
            groups.append(
                tf.data.Dataset.from_tensor_slices(
                    self._sample(int(count), int(length), group_key)
                ).batch(batch_size)
            )
        dataset = groups[0]
        for group in groups[1:]:
            dataset = dataset.concatenate(group)
        return dataset
