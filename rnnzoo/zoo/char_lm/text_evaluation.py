"""Evaluations of language models (thesis ch. 5): held-out bits per character, sampling,
structured completion and debagging.

- `bits_per_char`: held-out bits per character and perplexity (§5.4.1);
- `sample`: samples with a temperature from a prefix (§5.5.1);
- `log_prob`: log-probability and bits per character of texts;
- `complete`: several completions of a prefix (structured completion, §5.5.2);
- `make_bags`, `debag`: the "debagging" problem (§5.4.4).

All of them run a `rnnzoo.decoding.TextModel` (or a Keras char LM with its
`Vocabulary`), the graph the exports serve.
"""

import itertools
import math

import numpy as np
import tensorflow as tf

from rnnzoo.data.char_tokenizer import START
from rnnzoo.decoding import TextModel

LN2 = math.log(2.0)
DEFAULT_SEQ_LEN = 100
"""Training sequence length of a char LM whose run sets none (thesis: 250)."""


def heldout_dataset(corpus, seq_len, context, batch_size):
    """Finite `(x, y, weight)` batches covering every held-out character once (§5.4.1)."""
    x, y, w = corpus.heldout_windows(seq_len, context)
    return tf.data.Dataset.from_tensor_slices((x, y, w)).batch(batch_size)


def bits_per_char_of(logits, targets, weights):
    """Weighted mean -log2 P(target) of numpy logits [..., V]: bits per character."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(-1))
    picked = np.take_along_axis(shifted, np.asarray(targets)[..., None].astype(np.int64), -1)[..., 0]
    nll = log_norm - picked
    weights = np.asarray(weights, np.float64)
    return float((nll * weights).sum() / weights.sum() / LN2)


def bits_per_char(model, corpus, seq_len=DEFAULT_SEQ_LEN, context=50, batch_size=64):
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
