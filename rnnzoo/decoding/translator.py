"""A trained sequence-to-sequence model's text interface in TensorFlow ops: `translate`.

`Translator` is what the translation export serves (`rnnzoo.zoo.translation.export`) and what the
family's BLEU evaluation decodes with (`rnnzoo.zoo.translation.model`): one graph behind both.
rnn-critical-review §5.3 (Sutskever et al. 2014): the encoder reads the (reversed) source, its
final state starts the decoder, which reads BOS and then its own previous token, and a left to
right beam search (`rnnzoo.decoding.beam_search`) picks the output.
"""

import tensorflow as tf

from rnnzoo.data.subword_tokenizer import BOS_ID, EOS_ID, PAD_ID
from rnnzoo.decoding.beam_search import beam_search
from rnnzoo.decoding.size_checks import gated


class Translator(tf.Module):
    """`translate(source, beam_width, length_penalty, max_length)` of a seq2seq Keras model.

    - `source` string[b]: sentences, tokenised in the graph by `tokenizer`;
    - `beam_width` int32[b] in [1, max_beam_width]; `length_penalty` float32[b] >= 0, the alpha
      of ((5 + n) / 6)^alpha; `max_length` int32[b] in [0, max_decode_length], target pieces
      (EOS not counted), 0: `ceil(length_ratio * source pieces) + length_offset`, at most
      `max_decode_length`;
    - returns `translation` string[b] (= `n_best[:, 0]`), `n_best` string[b, K] and `scores`
      float32[b, K] (length-penalised log-probabilities, best first; K = the batch's largest
      beam width; unused slots "" and -inf).

    Bad values fail with INVALID_ARGUMENT naming the input.

    Args:
        model: a model of `rnnzoo.zoo.translation.model.build_model`: a nested `encoder` model (source
            ids -> each layer's final state, flattened), `target_embedding`, `target_rnn_1` ...
            `target_rnn_L` (Keras RNN layers) and `logits`.
        tokenizer: its `rnnzoo.data.subword_tokenizer.SubwordTokenizer`.
    """

    def __init__(self, model, tokenizer, max_beam_width=16, max_decode_length=128, length_ratio=2.0,
                 length_offset=10):
        super().__init__(name="translator")
        self.model = model
        self.tokenizer = tokenizer
        self.max_beam_width = int(max_beam_width)
        self.max_decode_length = int(max_decode_length)
        self.length_ratio = float(length_ratio)
        self.length_offset = int(length_offset)
        self._encoder = model.get_layer("encoder")
        self._embedding = model.get_layer("target_embedding")
        names = sorted((layer.name for layer in model.layers if layer.name.startswith("target_rnn_")),
                       key=lambda name: int(name.rsplit("_", 1)[1]))
        self._cells = [model.get_layer(name).cell for name in names]
        self._output = model.get_layer("logits")

    def _split_states(self, flat):
        states, start = [], 0
        for cell in self._cells:
            count = len(cell.state_size) if isinstance(cell.state_size, (list, tuple)) else 1
            states.append(list(flat[start:start + count]))
            start += count
        return states

    def step(self, tokens, states):
        """One decoder step: tokens int32[n], per-layer states -> (logits float32[n, V], states)."""
        x = self._embedding(tokens)
        new_states = []
        for cell, state in zip(self._cells, states):
            x, state = cell.call(x, state)
            new_states.append(list(state) if isinstance(state, (list, tuple)) else [state])
        return tf.cast(self._output(x), tf.float32), new_states

    def encode(self, source_ids):
        """Source piece ids int32[b, s] (0-padded) -> the decoder's initial states per layer."""
        flat = self._encoder(source_ids, training=False)
        flat = flat if isinstance(flat, (list, tuple)) else [flat]
        return self._split_states([tf.cast(s, tf.float32) for s in flat])

    def limits(self, source_lengths, max_length):
        """Per-row largest target length in pieces (EOS not counted)."""
        automatic = tf.cast(tf.math.ceil(self.length_ratio * tf.cast(source_lengths, tf.float32)), tf.int32)
        automatic = tf.minimum(automatic + self.length_offset, self.max_decode_length)
        return tf.where(max_length > 0, max_length, automatic)

    def _checked(self, source, beam_width, length_penalty, max_length):
        """The three per-sentence arguments, gated by their checks (`rnnzoo.decoding.size_checks`)."""
        checks = [
            tf.debugging.assert_equal(tf.shape(values)[0], tf.shape(source)[0],
                                      message=f"{name} needs one value per source sentence")
            for name, values in (("beam_width", beam_width), ("length_penalty", length_penalty),
                                 ("max_length", max_length))
        ]
        checks += [
            tf.debugging.assert_greater_equal(beam_width, 1, message="beam_width must be >= 1"),
            tf.debugging.assert_less_equal(beam_width, self.max_beam_width,
                                           message=f"beam_width must be <= {self.max_beam_width}, the "
                                           "export's limit (rnnzoo-export --max_beam_width)"),
            tf.debugging.assert_greater_equal(length_penalty, 0.0,
                                              message="length_penalty must be >= 0 (0: none) and not NaN"),
            tf.debugging.assert_less_equal(length_penalty, 1e6, message="length_penalty must be finite"),
            tf.debugging.assert_non_negative(max_length, message="max_length must be >= 0 (0: automatic)"),
            tf.debugging.assert_less_equal(max_length, self.max_decode_length,
                                           message=f"max_length must be <= {self.max_decode_length}, the "
                                           "export's limit (rnnzoo-export --max_decode_length)"),
        ]
        return gated(checks, beam_width, length_penalty, max_length)

    def translate(self, source, beam_width, length_penalty, max_length):
        beam_width, length_penalty, max_length = self._checked(source, beam_width, length_penalty, max_length)
        pieces = self.tokenizer.encode(source)
        source_ids = pieces.to_tensor(default_value=PAD_ID)
        source_ids = tf.pad(source_ids, [[0, 0], [0, tf.maximum(1 - tf.shape(source_ids)[1], 0)]])
        limit = self.limits(pieces.row_lengths(), max_length) + 1  # + the EOS
        beam_size = tf.maximum(tf.reduce_max(tf.concat([beam_width, [1]], 0)), 1)
        max_steps = tf.reduce_max(tf.concat([limit, [1]], 0))
        found = beam_search(self.step, self.encode(source_ids), beam_width, length_penalty, limit, beam_size,
                            max_steps, BOS_ID, EOS_ID)
        batch = tf.shape(source)[0]
        flat_ids = tf.reshape(found.ids, [batch * beam_size, max_steps])
        n_best = tf.reshape(self.tokenizer.decode(flat_ids), [batch, beam_size])
        return {"translation": n_best[:, 0], "n_best": n_best, "scores": found.scores}
