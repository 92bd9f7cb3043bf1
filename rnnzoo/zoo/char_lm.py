"""Character-level language models (thesis ch. 5): MRNN, tanh RNN and LSTM.

Models (`--model`), each one recurrent layer on character ids and a linear
softmax output layer `o_t = W_oh h_t + b_o` (eq. 5.7), trained to maximise
`sum_t log P(v_{t+1} | v_<=t)` (§5.3):

- `char_mrnn`: multiplicative RNN (eq. 5.4-5.7) reading ids directly
  (`MRNN(input_dim=vocabulary)` gathers the rows of W_hv and W_fv).
- `char_rnn`: tanh RNN (`keras.layers.SimpleRNN`) after an `Embedding`.
- `char_lstm`: `keras.layers.LSTM` after an `Embedding`.

Recurrent weights start sparse (15 nonzero incoming weights per unit,
§5.4.2 and ch. 4) with variance 1/15. Training sequences have length
`seq_len` and only their last `seq_len - context` characters are predicted
(§5.4.2). The test metric is bits per character on the last `holdout_chars`
characters of the corpus (§5.4.1; by default 10%, at most 50,000).

`TextModel` gives a trained model a text interface built from TensorFlow ops
only (tokenisation, scoring and sampling in a `tf.while_loop` carrying the
recurrent state); it is what `rnnzoo.export.char_lm` exports and what the
evaluation functions here use:

- `bits_per_char`: held-out bits per character and perplexity;
- `sample`: samples with a temperature from a prefix (§5.5.1);
- `complete`: several completions of a prefix (structured completion, §5.5.2);
- `debag`: the "debagging" problem (§5.4.4);
- `evaluate_model_dir`: all of them for a trained `model_dir`.
"""

import dataclasses
import itertools
import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.data.char_corpus import CharCorpus, Vocabulary, load_corpus
from rnnzoo.initializers import Sparse
from rnnzoo.layers import MRNN
from rnnzoo.model import Model
from rnnzoo.zoo import evaluation, registry

MODELS = ("char_mrnn", "char_rnn", "char_lstm")
VOCABULARY_FILE = "vocabulary.json"
CONFIG_FILE = "char_lm.json"
START = "\n"
"""Every text is read after this character: an empty prompt samples the start of a line."""
LN2 = math.log(2.0)


@dataclasses.dataclass
class CharLMConfig:
    """Hyperparameters and corpus of the character language models.

    Attributes:
        units: hidden units (the thesis: 1500).
        factors: `char_mrnn` factors F; 0 means `units` (the thesis: 1500).
        embedding_dim: `char_rnn` / `char_lstm` width of the character embedding.
        context: unweighted leading characters of every training sequence
            (§5.4.2: 50 of 250); `seq_len` comes from the training config
            (default `default_seq_len`).
        sparse_init: sparse recurrent initialisation (15 incoming weights per unit).
        corpus: text file, directory or glob; empty: the standard library's source.
        tfds_name, data_dir, tfds_split, tfds_text_key: read a prepared TFDS
            text dataset instead.
        max_chars: characters read from the corpus (0: all).
        holdout_chars: the last this many characters are the held-out split;
            `None`: 10% of the corpus, at most 50,000.
        vocab_size: character ids including the unknown symbol (the thesis: 86).
        unroll: unroll the recurrence (faster for short sequences).
    """

    units: int = 256
    factors: int = 0
    embedding_dim: int = 64
    context: int = 50
    sparse_init: bool = True
    corpus: str = ""
    tfds_name: str = ""
    data_dir: str = ""
    tfds_split: str = "train"
    tfds_text_key: str = "text"
    max_chars: int = 2_000_000
    holdout_chars: int | None = None
    vocab_size: int = 96
    unroll: bool = False


default_seq_len = 100
"""Training sequence length when the training config leaves `seq_len` unset (thesis: 250)."""


def sparse_recurrent():
    """Sparse init: 15 N(0, 1/15) incoming weights per unit (thesis §5.4.2, §4.4)."""
    return Sparse(15, scale=15**-0.5)


def build_model(model_name, vocab_size, config=None, seed=None):
    """`rnnzoo.Model`: ids int32[b, t] -> next-character logits float32[b, t, vocab_size].

    The recurrent layer is named `recurrent`, the optional embedding
    `embedding`, the output layer `logits`; `TextModel` steps them one
    character at a time.
    """
    config = config or CharLMConfig()
    if model_name not in MODELS:
        raise ValueError(f"Unknown char-LM model {model_name!r}; choose one of: {', '.join(MODELS)}.")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    recurrent_init = sparse_recurrent() if config.sparse_init else "orthogonal"
    ids = keras.Input((None,), dtype="int32", name="ids")
    common = {"return_sequences": True, "unroll": config.unroll, "name": "recurrent"}
    if model_name == "char_mrnn":
        hidden = MRNN(
            config.units,
            factors=config.factors or config.units,
            input_dim=vocab_size,
            recurrent_initializer=recurrent_init,
            **common,
        )(ids)
    else:
        embedded = keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding")(ids)
        layer = keras.layers.SimpleRNN if model_name == "char_rnn" else keras.layers.LSTM
        hidden = layer(config.units, recurrent_initializer=recurrent_init, **common)(embedded)
    logits = keras.layers.Dense(vocab_size, name="logits")(hidden)
    return Model(ids, logits, name=model_name)


def loss():
    """Softmax cross-entropy on the logits: a matching loss, so Hessian-free trains it too."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@keras.saving.register_keras_serializable(package="rnnzoo")
class BitsPerCharacter(keras.metrics.MeanMetricWrapper):
    """Weighted mean of -log2 P(target): bits per predicted character (loss / ln 2)."""

    def __init__(self, name="bits_per_char", dtype=None):
        super().__init__(_bits, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def _bits(y_true, y_pred):
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True) / LN2


# ---------------------------------------------------------------- corpora


def corpus_from_config(config, vocabulary=None):
    """The `CharCorpus` that `config` names."""
    return load_corpus(
        corpus=config.corpus or None,
        tfds_name=config.tfds_name or None,
        data_dir=config.data_dir or None,
        tfds_split=config.tfds_split,
        tfds_text_key=config.tfds_text_key,
        max_chars=config.max_chars or None,
        holdout_chars=config.holdout_chars,
        vocab_size=config.vocab_size,
        vocabulary=vocabulary,
    )


def save_run_files(model_dir, vocabulary, model_name, config, seq_len):
    """Writes `vocabulary.json` and `char_lm.json` (what export needs besides `model.keras`)."""
    os.makedirs(model_dir, exist_ok=True)
    vocabulary.save(os.path.join(model_dir, VOCABULARY_FILE))
    with open(os.path.join(model_dir, CONFIG_FILE), "w") as f:
        json.dump({"model": model_name, "seq_len": seq_len, **dataclasses.asdict(config)}, f, indent=2)


def load_trained(model_dir):
    """`(keras model, Vocabulary, run dict)` of a trained char LM in `model_dir`."""
    paths = {name: os.path.join(model_dir, name) for name in ("model.keras", VOCABULARY_FILE, CONFIG_FILE)}
    missing = [name for name, path in paths.items() if not os.path.exists(path)]
    if missing:
        raise ValueError(
            f"{model_dir!r} is not a trained char LM: {', '.join(missing)} missing. Train one with "
            "`rnnzoo-train --model=char_mrnn --model_dir=DIR` (or rnnzoo.zoo.char_lm.fit)."
        )
    model = keras.saving.load_model(paths["model.keras"], compile=False)
    with open(paths[CONFIG_FILE]) as f:
        run = json.load(f)
    return model, Vocabulary.load(paths[VOCABULARY_FILE]), run


def heldout_dataset(corpus, seq_len, context, batch_size):
    """Finite `(x, y, weight)` batches covering every held-out character once (§5.4.1)."""
    x, y, w = corpus.heldout_windows(seq_len, context)
    return tf.data.Dataset.from_tensor_slices((x, y, w)).batch(batch_size)


# ------------------------------------------------------------ registry


def build(model_name, config, train_config):
    """`registry.Built` for `rnnzoo-train --model=char_mrnn|char_rnn|char_lstm`.

    The metric the training loop reports is the held-out bits per character
    (`bits_per_char`, lower is better). Writes the vocabulary next to the checkpoint so that
    `rnnzoo-export` can serve the model.
    """
    seq_len = train_config.seq_len or default_seq_len
    vocabulary = None
    vocabulary_path = os.path.join(train_config.model_dir, VOCABULARY_FILE)
    if train_config.model_dir and os.path.exists(vocabulary_path):
        vocabulary = Vocabulary.load(vocabulary_path)  # a resumed run keeps its ids
    corpus = corpus_from_config(config, vocabulary)
    if train_config.model_dir:
        save_run_files(train_config.model_dir, corpus.vocabulary, model_name, config, seq_len)
    x, y, w = corpus.heldout_windows(seq_len, config.context)

    def heldout_bits_per_char(y_true, y_pred):
        if np.shape(y_true) != y.shape:
            raise ValueError(f"expected held-out targets of shape {y.shape}, got {np.shape(y_true)}")
        return bits_per_char_of(y_pred, y_true, w)

    return registry.Built(
        model=build_model(model_name, corpus.vocabulary.size, config, seed=train_config.seed),
        loss=loss(),
        train_dataset=corpus.train_dataset(seq_len, config.context, train_config.batch_size, train_config.seed),
        test_dataset=tf.data.Dataset.from_tensor_slices((x, y, w)).batch(train_config.batch_size),
        metrics=(evaluation.Metric("bits_per_char", heldout_bits_per_char,
                                   description="held-out bits per character (thesis §5.4.1)"),),
        description=(
            f"{model_name} ({config.units} units) on {len(corpus.train_ids):,} characters, "
            f"{corpus.vocabulary.size} symbols; held-out bits per character "
            f"(unigram baseline {corpus.unigram_bits_per_char():.3f})"
        ),
    )


FAMILY = registry.register(
    registry.Family(
        name="char_lm",
        models=MODELS,
        config_class=CharLMConfig,
        build=build,
        tasks=(),
        default_task=None,
        recipes={model: {"clip_norm": 1.0} for model in MODELS},
        evaluate=lambda model_dir: evaluate_model_dir(model_dir),  # defined below
    )
)


# ------------------------------------------------------------ training on its own


class _WallClock(keras.callbacks.Callback):
    """Stops `fit` after `seconds` of training (evaluations excluded); records the held-out bpc curve."""

    def __init__(self, seconds, evaluate):
        super().__init__()
        self.seconds = seconds
        self.evaluate = evaluate
        self.curve = []
        self.steps = 0
        self.paused = 0.0

    def training_seconds(self):
        return time.monotonic() - self.start - self.paused

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == 1:  # the clock starts after the first step, which traces the graph
            self.start = time.monotonic()
        if self.seconds is not None and self.training_seconds() >= self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.evaluate is None:
            return
        seconds = self.training_seconds()
        begin = time.monotonic()
        self.curve.append({"seconds": round(seconds, 3), "steps": self.steps, "bits_per_char": self.evaluate()})
        self.paused += time.monotonic() - begin


def make_optimizer(name, learning_rate=None, momentum=0.99):
    """`adam`, `nag` (thesis eq. 7.12-7.13) or `hf` (Hessian-free with the §5.4.2 settings)."""
    from rnnzoo.optimizers import NAG, HessianFree

    if name == "adam":
        return keras.optimizers.Adam(learning_rate or 3e-3, clipnorm=1.0)
    if name == "nag":
        return NAG(learning_rate or 0.05, momentum=momentum, clipnorm=1.0)
    if name == "hf":
        # §5.4.2: at most 150 CG steps, structural damping 0.1, initial lambda 10.
        return HessianFree(damping=10.0, structural_damping=0.1, max_cg_iterations=150)
    raise ValueError(f"Unknown optimizer {name!r}; choose adam, nag or hf.")


def fit(
    model,
    corpus: CharCorpus,
    seq_len=default_seq_len,
    context=50,
    batch_size=32,
    optimizer="adam",
    learning_rate=None,
    seconds=None,
    steps=1000,
    eval_every=100,
    seed=0,
    verbose=1,
    callbacks=(),
):
    """Trains `model` on `corpus` with `model.fit` (NAG, Adam or HF) for `steps` or `seconds`.

    `seconds` counts training time only, from the end of the first step (which
    traces the graph) and without the held-out evaluations, so models compared
    at equal `seconds` got equal training time.

    Returns `{"steps", "seconds", "characters_per_second", "curve"}`:
    `curve` lists the held-out bits per character (and the training seconds
    and steps so far) every `eval_every` steps.
    """
    dataset = corpus.train_dataset(seq_len, context, batch_size, seed)
    opt = make_optimizer(optimizer, learning_rate) if isinstance(optimizer, str) else optimizer
    model.compile(optimizer=opt, loss=loss(), metrics=[BitsPerCharacter()])
    clock = _WallClock(seconds, lambda: bits_per_char(model, corpus, seq_len, context)["bits_per_char"])
    model.fit(
        dataset,
        steps_per_epoch=eval_every,
        epochs=math.ceil(steps / eval_every),
        callbacks=[clock, *callbacks],
        shuffle=False,  # the dataset draws random offsets itself
        verbose=verbose,
    )
    elapsed = clock.training_seconds()
    return {
        "steps": clock.steps,
        "seconds": elapsed,
        "characters_per_second": (clock.steps - 1) * batch_size * seq_len / max(elapsed, 1e-9),
        "curve": clock.curve,
    }


# ------------------------------------------------------------ evaluation


def bits_per_char_of(logits, targets, weights):
    """Weighted mean -log2 P(target) of numpy logits [..., V]: bits per character."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(-1))
    picked = np.take_along_axis(shifted, np.asarray(targets)[..., None].astype(np.int64), -1)[..., 0]
    nll = log_norm - picked
    weights = np.asarray(weights, np.float64)
    return float((nll * weights).sum() / weights.sum() / LN2)


def bits_per_char(model, corpus, seq_len=default_seq_len, context=50, batch_size=64):
    """Held-out bits per character (loss / ln 2) and perplexity per character (§5.4.1)."""
    total_nll, total_weight = 0.0, 0.0
    step = _weighted_nll_fn(model)
    for x, y, w in heldout_dataset(corpus, seq_len, context, batch_size):
        nll, weight = step(x, y, w)
        total_nll += float(nll)
        total_weight += float(weight)
    nats = total_nll / total_weight
    return {"bits_per_char": nats / LN2, "perplexity": math.exp(nats), "characters": int(total_weight)}


def _weighted_nll_fn(model):
    @tf.function(reduce_retracing=True)
    def step(x, y, w):
        logits = tf.cast(model(x, training=False), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        return tf.reduce_sum(nll * w), tf.reduce_sum(w)

    return step


class TextModel(tf.Module):
    """A trained char LM's text interface, in TensorFlow ops only (exportable, servable).

    - `encode(text)`: string[b] -> ids, ragged int32[b, (1 + chars)]: the start
      symbol (`START`, a newline) then one id per Unicode character; characters
      outside the vocabulary (and invalid UTF-8 bytes) become the unknown id 0.
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
        model: a model from `build_model` (layers `recurrent`, `logits`,
            optionally `embedding`).
        vocabulary: its `Vocabulary`.
        max_generate: largest accepted `max_length` (larger is INVALID_ARGUMENT).
    """

    def __init__(self, model, vocabulary, max_generate=4096):
        super().__init__(name="char_lm")
        self.model = model
        self.max_generate = int(max_generate)
        code_points = vocabulary.code_points()
        known = code_points[1:]
        order = np.argsort(known)
        self._sorted_code_points = known[order].astype(np.int32)
        self._sorted_ids = (order + 1).astype(np.int32)
        self._id_code_points = code_points.astype(np.int32)
        self._start_id = int(vocabulary.encode(START)[0])
        recurrent = model.get_layer("recurrent")
        self._cell = recurrent.cell
        self._embedding = model.get_layer("embedding") if _has_layer(model, "embedding") else None
        self._output = model.get_layer("logits")
        sizes = self._cell.state_size
        self._state_sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]

    # -------------------------------------------------------------- text <-> ids
    def encode(self, text):
        code_points = tf.strings.unicode_decode(text, "UTF-8", errors="replace")
        flat = code_points.flat_values
        table = tf.constant(self._sorted_code_points)
        position = tf.minimum(tf.searchsorted(table, flat, side="left"), tf.size(table) - 1)
        found = tf.equal(tf.gather(table, position), flat)
        ids = tf.where(found, tf.gather(tf.constant(self._sorted_ids), position), 0)
        start = tf.fill([tf.shape(text)[0], 1], tf.constant(self._start_id, tf.int32))
        return tf.concat([tf.RaggedTensor.from_tensor(start), code_points.with_flat_values(ids)], axis=1)

    def decode(self, ids):
        """ragged int32[b, (n)] -> string[b] (UTF-8)."""
        code_points = tf.gather(tf.constant(self._id_code_points), ids)
        return tf.strings.unicode_encode(code_points, "UTF-8")

    # -------------------------------------------------------------- scoring
    def score(self, text):
        ids = self.encode(text)
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
        tf.debugging.assert_non_negative(max_length, message="max_length must be >= 0")
        tf.debugging.assert_less_equal(
            max_length, self.max_generate, message=f"max_length must be <= {self.max_generate}"
        )
        tf.debugging.assert_greater_equal(
            temperature, 0.0, message="temperature must be >= 0 (0 = greedy) and not NaN"
        )
        for name, values in (("max_length", max_length), ("temperature", temperature), ("seed", seed)):
            tf.debugging.assert_equal(
                tf.shape(values)[0], tf.shape(prompt)[0],
                message=f"{name} needs one value per prompt",
            )
        context = self.encode(prompt)
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
                lambda: _sample(logits, temperature, seed, position),
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
        return {"text": tf.strings.join([prompt, self.decode(continuation)])}


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def _sample(logits, temperature, seed, position):
    """One draw per row from softmax(logits / temperature), seeded by (seed, position); argmax at 0."""
    greedy = tf.argmax(logits, -1, output_type=tf.int32)
    scaled = logits / tf.where(temperature > 0, temperature, 1.0)[:, None]
    seeds = tf.stack([seed, tf.cast(position, tf.int64)], axis=1)
    drawn = tf.vectorized_map(
        lambda row: tf.random.stateless_categorical(row[0][None], 1, seed=row[1], dtype=tf.int32)[0, 0],
        (scaled, seeds),
    )
    return tf.where(temperature > 0, drawn, greedy)


def _text_model(model, vocabulary):
    return model if isinstance(model, TextModel) else TextModel(model, vocabulary)


def sample(model, vocabulary, prompts, max_length=200, temperature=1.0, seed=0):
    """Samples a continuation of each prompt (thesis §5.5.1); returns prompt + continuation."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    n = len(prompts)
    generate = tf.function(_text_model(model, vocabulary).generate)  # a graph: 4x faster than eager
    result = generate(
        tf.constant(prompts),
        tf.constant(np.broadcast_to(max_length, n), tf.int32),
        tf.constant(np.broadcast_to(temperature, n), tf.float32),
        tf.constant(np.broadcast_to(seed, n), tf.int64),
    )
    return [t.decode("utf-8") for t in result["text"].numpy()]


def log_prob(model, vocabulary, texts):
    """`(log_prob nats, bits_per_char)` numpy arrays of each text under the model (`TextModel.score`)."""
    result = tf.function(_text_model(model, vocabulary).score)(tf.constant(list(texts)))
    return result["log_prob"].numpy(), result["bits_per_char"].numpy()


def complete(model, vocabulary, prefix, num_samples=5, max_length=60, temperature=1.0, seed=0, stop=START):
    """Structured completion (§5.5.2): `num_samples` continuations of `prefix`, each cut at `stop`."""
    texts = sample(model, vocabulary, [prefix] * num_samples, max_length, temperature, np.arange(num_samples) + seed)
    completions = [t[len(prefix) :] for t in texts]
    return [c.split(stop, 1)[0] if stop else c for c in completions]


def make_bags(text, num_bags, k=7, context_words=2, seed=0):
    """Random runs of `2 * context_words + k` consecutive words of `text` (§5.4.4: 2 + 7 + 2).

    Returns a list of word lists. Words are whitespace-separated.
    """
    words = text.split()
    span = k + 2 * context_words
    if len(words) < span:
        raise ValueError(f"the text has {len(words)} words, fewer than one bag of {span}")
    rng = np.random.default_rng(seed)
    starts = rng.choice(len(words) - span + 1, size=min(num_bags, len(words) - span + 1), replace=False)
    return [words[s : s + span] for s in sorted(starts)]


def debag(model, vocabulary, bags, k=7, context_words=2, batch_size=512):
    """The debagging problem (thesis §5.4.4), batched.

    For each run of words (`make_bags`), the middle `k` words are a bag; every
    distinct ordering of the bag, between the `context_words` words on each
    side, is scored in batches of `batch_size` strings (all orderings have the
    same characters, hence the same length). A bag counts as debagged when the
    true order has the highest log-probability (ties count against it).

    Returns `{"accuracy", "bags", "k", "orderings"}`.
    """
    text_model = _text_model(model, vocabulary)
    score = tf.function(text_model.score, reduce_retracing=True)
    correct = 0
    orderings = math.factorial(k)
    for words in bags:
        if len(words) != k + 2 * context_words:
            raise ValueError(f"a bag needs {k + 2 * context_words} words, got {len(words)}: {words!r}")
        left, middle, right = words[:context_words], words[context_words : context_words + k], words[context_words + k :]
        truth = " ".join(words)
        candidates = sorted({" ".join(left + list(p) + right) for p in itertools.permutations(middle)} - {truth})
        strings = [truth] + candidates
        scores = []
        for begin in range(0, len(strings), batch_size):
            chunk = tf.constant(strings[begin : begin + batch_size])
            scores.append(score(chunk)["log_prob"].numpy())
        scores = np.concatenate(scores)
        correct += int(len(scores) == 1 or scores[0] > scores[1:].max())
    return {"accuracy": correct / max(len(bags), 1), "bags": len(bags), "k": k, "orderings": orderings}


def config_of_run(run):
    """The `CharLMConfig` stored in a run's `char_lm.json`."""
    fields = {f.name for f in dataclasses.fields(CharLMConfig)}
    return CharLMConfig(**{k: v for k, v in run.items() if k in fields})


def evaluate_model_dir(
    model_dir,
    prompts=("def ", "import "),
    temperature=0.8,
    sample_length=200,
    completion_prefixes=("def __init__(self, ", "    return ", "raise ValueError("),
    num_completions=5,
    debag_bags=20,
    debag_k=5,
    seed=0,
):
    """All chapter-5 evaluations of the char LM trained in `model_dir`, as a JSON-able dict.

    `bits_per_char` and `perplexity` on the run's held-out split (§5.4.1),
    `samples` from each prompt (§5.5.1), `completions` of each prefix
    (§5.5.2) and `debagging` accuracy on bags of `debag_k` held-out words
    (§5.4.4).
    """
    model, vocabulary, run = load_trained(model_dir)
    config = config_of_run(run)
    corpus = corpus_from_config(config, vocabulary)
    seq_len = run.get("seq_len") or default_seq_len
    text_model = TextModel(model, vocabulary)
    heldout_text = vocabulary.decode(corpus.heldout_ids)
    bags = make_bags(heldout_text, debag_bags, k=debag_k, seed=seed)
    return {
        "model": run.get("model"),
        **bits_per_char(model, corpus, seq_len, config.context),
        "unigram_bits_per_char": corpus.unigram_bits_per_char(),
        "samples": dict(zip(prompts, sample(text_model, vocabulary, list(prompts), sample_length, temperature, seed))),
        "completions": {
            prefix: complete(text_model, vocabulary, prefix, num_completions, 60, temperature, seed)
            for prefix in completion_prefixes
        },
        "debagging": debag(text_model, vocabulary, bags, k=debag_k),
    }


# ------------------------------------------------------------ demo


class _TimeProgress(keras.callbacks.Callback):
    """A progress bar over a training-time budget, showing the running training bpc."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.bar = keras.utils.Progbar(int(seconds), unit_name="s", stateful_metrics=["bits_per_char", "steps"])
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps % 10 == 0:
            elapsed = min(int(time.monotonic() - self.start), int(self.seconds))
            bits = float((logs or {}).get("bits_per_char", float("nan")))
            self.bar.update(elapsed, [("bits_per_char", bits), ("steps", self.steps)])

    def on_train_end(self, logs=None):
        self.bar.update(int(self.seconds), [("steps", self.steps)], finalize=True)


def demo(minutes=3.0, units=128, seq_len=100, batch_size=32, max_chars=1_000_000, export_base=None,
         prompt="def ", seed=0, out=sys.stdout):
    """Trains a small char_mrnn on the standard library's source for `minutes`, exports, serves, queries.

    Progress bar while training; then `rnnzoo.export.export_char_lm` writes a
    SavedModel, the in-process `rnnzoo.serving.ModelServer` serves it, and
    `rnnzoo.serving.Client` generates a sample from `prompt` and scores it.
    Returns `{"sample", "bits_per_char", "heldout_bits_per_char", "export_dir"}`.
    """
    import tempfile

    from rnnzoo.export.char_lm import export_char_lm
    from rnnzoo.serving import Client, ModelServer, ServerOptions

    config = CharLMConfig(units=units, max_chars=max_chars, holdout_chars=20_000)
    corpus = corpus_from_config(config)
    print(f"corpus: {len(corpus.train_ids):,} training characters of the Python standard library, "
          f"{corpus.vocabulary.size} symbols; unigram baseline "
          f"{corpus.unigram_bits_per_char():.2f} bits/char", file=out, flush=True)
    model = build_model("char_mrnn", corpus.vocabulary.size, config, seed=seed)
    run = fit(model, corpus, seq_len, config.context, batch_size, "adam", seconds=minutes * 60,
              steps=10**9, eval_every=10**9, seed=seed, verbose=0, callbacks=[_TimeProgress(minutes * 60)])
    heldout = bits_per_char(model, corpus, seq_len, config.context)
    print(f"trained {run['steps']} steps in {run['seconds']:.0f} s; held-out "
          f"{heldout['bits_per_char']:.3f} bits/char", file=out, flush=True)
    base = export_base or tempfile.mkdtemp(prefix="char_mrnn_")
    export_dir = export_char_lm(model, corpus.vocabulary, base)
    server = ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="char_lm",
                                       model_base_path=base, file_system_poll_wait_seconds=0)).start()
    try:
        with Client(f"127.0.0.1:{server.grpc_port}") as client:
            client.wait_until_available("char_lm")
            text = client.generate("char_lm", [prompt], max_length=300, temperature=0.8, seed=seed)[0]
            scored = client.score("char_lm", [text])
    finally:
        server.stop()
    bpc = float(scored["bits_per_char"][0])
    print(f"--- sample (temperature 0.8) ---\n{text}\n--- {bpc:.3f} bits/char under the served model ---",
          file=out, flush=True)
    return {"sample": text, "bits_per_char": bpc, "heldout_bits_per_char": heldout["bits_per_char"],
            "export_dir": export_dir}
