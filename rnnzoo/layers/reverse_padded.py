"""`ReversePadded`: reverse each sequence's real (unmasked) steps, padding left at the end.

Sutskever et al. (2014), rnn-critical-review §5.3: the encoder reads the source "in reverse
order", which puts the first source words next to the first target words. With post-padded
batches the reversal must keep the padding where it is: `tf.reverse_sequence` reverses the first
`length` steps of each row, `length` counted from the Keras mask, and the mask passes through
unchanged.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="rnnzoo")
class ReversePadded(keras.layers.Layer):
    """[b, t, ...] -> the same with each row's first `length` steps reversed (length: its mask's
    true steps; every step without a mask)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return tf.reverse(inputs, axis=[1])
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        return tf.reverse_sequence(inputs, lengths, seq_axis=1, batch_axis=0)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape
