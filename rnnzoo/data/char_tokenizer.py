"""In-graph character tokenisation of a `Vocabulary` (core TensorFlow ops only: exportable).

`CharTokenizer(vocabulary).encode(text)` maps string[b] to ragged int32 ids
`[b, (1 + chars)]`: the start symbol (`START`, a newline: every text is read
after it) then one id per Unicode character; characters outside the
vocabulary, and invalid UTF-8 bytes, become the unknown id 0. `decode(ids)`
maps ragged ids back to UTF-8 strings (the unknown id as U+FFFD).
"""

import numpy as np
import tensorflow as tf

START = "\n"
"""Every text is read after this character: an empty prompt samples the start of a line."""


class CharTokenizer(tf.Module):
    """Text <-> character ids of `vocabulary` in TensorFlow ops (see the module docstring)."""

    def __init__(self, vocabulary, name="char_tokenizer"):
        super().__init__(name=name)
        code_points = vocabulary.code_points()
        known = code_points[1:]
        order = np.argsort(known)
        self._sorted_code_points = known[order].astype(np.int32)
        self._sorted_ids = (order + 1).astype(np.int32)
        self._id_code_points = code_points.astype(np.int32)
        self.start_id = int(vocabulary.encode(START)[0])

    def encode(self, text):
        """string[b] -> ragged int32[b, (1 + chars)], the start id first."""
        code_points = tf.strings.unicode_decode(text, "UTF-8", errors="replace")
        flat = code_points.flat_values
        table = tf.constant(self._sorted_code_points)
        position = tf.minimum(tf.searchsorted(table, flat, side="left"), tf.size(table) - 1)
        found = tf.equal(tf.gather(table, position), flat)
        ids = tf.where(found, tf.gather(tf.constant(self._sorted_ids), position), 0)
        start = tf.fill([tf.shape(text)[0], 1], tf.constant(self.start_id, tf.int32))
        return tf.concat([tf.RaggedTensor.from_tensor(start), code_points.with_flat_values(ids)], axis=1)

    def decode(self, ids):
        """ragged int32[b, (n)] -> string[b] (UTF-8)."""
        code_points = tf.gather(tf.constant(self._id_code_points), ids)
        return tf.strings.unicode_encode(code_points, "UTF-8")
