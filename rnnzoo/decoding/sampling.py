"""Seeded sampling of the next token, shared by every decoder (thesis §5.5.1).

`sample_next(logits, temperature, seed, position)` draws one token per row
from softmax(logits / temperature) with stateless random ops seeded by
`(seed, position)`: a row's draw depends only on its own inputs, whatever
else is in the batch. Temperature 0 takes the argmax (greedy).
"""

import tensorflow as tf


def sample_next(logits, temperature, seed, position):
    """One draw per row from softmax(logits / temperature), seeded by (seed, position); argmax at 0."""
    greedy = tf.argmax(logits, -1, output_type=tf.int32)
    scaled = logits / tf.where(temperature > 0, temperature, 1.0)[:, None]
    seeds = tf.stack([seed, tf.cast(position, tf.int64)], axis=1)
    drawn = tf.vectorized_map(
        lambda row: tf.random.stateless_categorical(row[0][None], 1, seed=row[1], dtype=tf.int32)[0, 0],
        (scaled, seeds),
    )
    return tf.where(temperature > 0, drawn, greedy)
