"""A character language model's text interface in TensorFlow ops: scoring and sampling.

`TextModel` is what the char-LM export serves (`rnnzoo.zoo.char_lm.export`) and
what its evaluations use (`rnnzoo.zoo.char_lm.text_evaluation`): the same graph
behind both, so served and evaluated texts agree.
"""

import math

import tensorflow as tf

from rnnzoo.data.char_tokenizer import CharTokenizer
from rnnzoo.decoding.sampling import sample_next
from rnnzoo.decoding.size_checks import gated

LN2 = math.log(2.0)


class TextModel(tf.Module):
    """A trained char LM's text interface, in TensorFlow ops only (exportable, servable).

    - `tokenizer`: its `rnnzoo.data.char_tokenizer.CharTokenizer` (text <-> ids).
    - `score(text)`: `log_prob` = sum over the characters of
      log P(c_i | START, c_<i) (nats) and `bits_per_char` = -log_prob / (ln 2 *
      characters); both 0 for an empty text.
    - `generate(prompt, max_length, temperature, seed)`: `text` = prompt (as
      given) + up to `max_length` sampled characters. Each row draws from
      softmax(o_t / temperature) with stateless random ops seeded by
      `(seed, position)`, so a row's text depends only on its own inputs;
      temperature 0 takes the argmax (greedy). A sampled unknown symbol is
      written U+FFFD. Sampling runs in a `tf.while_loop` that carries the
      recurrent state explicitly.

    Args:
        model: a model from `rnnzoo.zoo.char_lm.model.build_model` (layers
            `recurrent`, `logits`, optionally `embedding`).
        vocabulary: its `Vocabulary`.
        max_generate: largest accepted `max_length` (larger is INVALID_ARGUMENT).
    """

    def __init__(self, model, vocabulary, max_generate=4096):
        super().__init__(name="char_lm")
        self.model = model
        self.max_generate = int(max_generate)
        self.tokenizer = CharTokenizer(vocabulary)
        recurrent = model.get_layer("recurrent")
        self._cell = recurrent.cell
        self._embedding = model.get_layer("embedding") if _has_layer(model, "embedding") else None
        self._output = model.get_layer("logits")
        sizes = self._cell.state_size
        self._state_sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]

    # -------------------------------------------------------------- scoring
    def score(self, text):
        ids = self.tokenizer.encode(text)
        dense = ids.to_tensor()
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(2 - tf.shape(dense)[1], 0)]])  # >= 1 step when all are empty
        characters = ids.row_lengths() - 1
        logits = tf.cast(self.model(dense[:, :-1], training=False), tf.float32)
        log_p = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=dense[:, 1:], logits=logits)
        mask = tf.sequence_mask(characters, tf.shape(log_p)[1], tf.float32)
        log_prob = tf.reduce_sum(log_p * mask, axis=1)
        count = tf.cast(characters, tf.float32)
        bits = tf.where(count > 0, -log_prob / (LN2 * tf.maximum(count, 1.0)), 0.0)
        return {"bits_per_char": bits, "log_prob": log_prob}

    # -------------------------------------------------------------- sampling
    def initial_state(self, batch):
        return [tf.zeros([batch, size], tf.float32) for size in self._state_sizes]

    def step(self, ids, states):
        """One character for every row: ids int32[b], states -> (logits [b, V], states)."""
        inputs = self._embedding(ids) if self._embedding is not None else ids
        output, states = self._cell.call(inputs, states)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        return tf.cast(self._output(output), tf.float32), states

    def generate(self, prompt, max_length, temperature, seed):
        checks = [
            tf.debugging.assert_non_negative(max_length, message="max_length must be >= 0"),
            tf.debugging.assert_less_equal(
                max_length, self.max_generate, message=f"max_length must be <= {self.max_generate}, the "
                "export's limit (rnnzoo-export --max_generate)"
            ),
            tf.debugging.assert_greater_equal(
                temperature, 0.0, message="temperature must be >= 0 (0 = greedy) and not NaN"
            ),
        ]
        checks += [
            tf.debugging.assert_equal(
                tf.shape(values)[0], tf.shape(prompt)[0],
                message=f"{name} needs one value per prompt",
            )
            for name, values in (("max_length", max_length), ("temperature", temperature), ("seed", seed))
        ]
        max_length, temperature, seed = gated(checks, max_length, temperature, seed)
        context = self.tokenizer.encode(prompt)
        lengths = tf.cast(context.row_lengths(), tf.int32)  # start symbol + prompt
        padded = context.to_tensor()
        batch = tf.shape(prompt)[0]
        first = lengths - 1  # step at which each row draws its first character
        total = tf.maximum(tf.reduce_max(tf.concat([first + max_length, [0]], 0)), 0)
        last_column = tf.shape(padded)[1] - 1
        rows = tf.range(batch)

        def body(t, token, states, drawn):
            given = padded[:, tf.minimum(t, last_column)]
            inputs = tf.where(t < lengths, given, token)
            logits, states = self.step(inputs, states)
            position = t - first
            active = (position >= 0) & (position < max_length)
            token = tf.cond(
                tf.reduce_any(active & (temperature > 0)),
                lambda: sample_next(logits, temperature, seed, position),
                lambda: tf.argmax(logits, -1, output_type=tf.int32),
            )
            indices = tf.stack([rows, tf.fill([batch], t)], axis=1)
            drawn = tf.tensor_scatter_nd_update(drawn, indices, token)
            return t + 1, token, states, drawn

        drawn = tf.zeros([batch, total], tf.int32)
        _, _, _, drawn = tf.while_loop(
            lambda t, *_: t < total,
            body,
            (tf.constant(0), tf.zeros([batch], tf.int32), self.initial_state(batch), drawn),
        )
        picks = tf.ragged.range(first, first + max_length)
        flat = tf.gather_nd(drawn, tf.stack([tf.cast(picks.value_rowids(), tf.int32), picks.flat_values], 1))
        continuation = tf.RaggedTensor.from_row_lengths(flat, tf.cast(max_length, tf.int64))
        return {"text": tf.strings.join([prompt, self.tokenizer.decode(continuation)])}


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)
