"""Losses as means over the positions that carry weight.

Keras's losses reduce a weighted batch with `sum_over_batch_size`: sum(w * l) / (number of
positions), weighted or not. A char LM that predicts only the last 50 of 100 characters (thesis
§5.4.2) would then report and train on half its per-character loss, and a seq2seq batch on its
loss lowered by its padding fraction. The training loop maps every training batch through
`per_position_mean`, which rescales the batch's weights to mean 1:

    w' = w * n / sum(w)        (n = the batch's positions)

so Keras's own reduction gives sum(w' * l) / n = sum(w * l) / sum(w), the mean over the weighted
positions, for every loss, optimizer (Hessian-free's objective and curvature included) and
progress bar. The scaling is per global batch, before a `tf.distribute` strategy splits it into
shards: each replica's sum(w' * l) / (n / replicas), divided by the replicas as Keras does, adds
up to the same mean. Batches without weights are unchanged (their mean is already per position),
and so are the batches of a model whose outputs carry a Keras mask (a seq2seq decoder's, zero
exactly where the weights are): Keras then weights the valid positions by n / valid itself
(`apply_mask` in keras/src/losses/loss.py), which already gives the same mean.
"""

import tensorflow as tf


def normalized(sample_weight):
    """`sample_weight * size / sum(sample_weight)` (all zeros stay zeros)."""
    sample_weight = tf.convert_to_tensor(sample_weight)
    size = tf.cast(tf.size(sample_weight), sample_weight.dtype)
    return sample_weight * tf.math.divide_no_nan(size, tf.reduce_sum(sample_weight))


def masks_outputs(model):
    """Whether a functional Keras model's outputs carry a Keras mask."""
    return any(getattr(output, "_keras_mask", None) is not None for output in getattr(model, "outputs", None) or ())


def per_position_mean(dataset, model=None):
    """`dataset` of `(x, y)` or `(x, y, sample_weight)` batches with each batch's weights `normalized`
    (unchanged for a `model` whose outputs Keras masks; see the module docstring)."""
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 3) or masks_outputs(model):
        return dataset
    return dataset.map(lambda x, y, sample_weight: (x, y, normalized(sample_weight)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
