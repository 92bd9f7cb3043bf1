"""The char-LM family's models, corpus handling and evaluations (the family: `rnnzoo.zoo.char_lm`)."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.data.char_corpus import Vocabulary, load_corpus
from rnnzoo.decoding import TextModel
from rnnzoo.initializers import Sparse
from rnnzoo.layers import MRNN
from rnnzoo.model import Model
from rnnzoo.training import evaluation, registry
from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.zoo.char_lm.text_evaluation import (
    DEFAULT_SEQ_LEN,
    bits_per_char,
    bits_per_char_of,
    complete,
    debag,
    make_bags,
    sample,
)

MODELS = ("char_mrnn", "char_rnn", "char_lstm")
VOCABULARY_FILE = "vocabulary.json"
"""The run directory's asset holding the vocabulary (`RunDirectory.save_asset`)."""


@dataclasses.dataclass
class CharLMConfig:
    """Hyperparameters and corpus of the character language models.

    Attributes:
        units: hidden units (the thesis: 1500).
        factors: `char_mrnn` factors F; 0 means `units` (the thesis: 1500).
        embedding_dim: `char_rnn` / `char_lstm` width of the character embedding.
        context: unweighted leading characters of every training sequence
            (§5.4.2: 50 of 250); `seq_len` comes from the training config
            (default `DEFAULT_SEQ_LEN`).
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
    """Softmax cross-entropy on the logits, averaged over the weighted (predicted) positions.

    `mean_with_sample_weight` divides by the weight sum, so the loss is the
    mean negative log-likelihood per predicted character (§5.3) whatever
    `context` leaves unweighted; Keras's default would divide by every
    position. A matching loss, so Hessian-free trains it too.
    """
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                      reduction="mean_with_sample_weight")


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


def load_vocabulary(model_dir):
    """The `Vocabulary` of the run in `model_dir`, or `None` when it has none yet."""
    stored = RunDirectory(model_dir).asset(VOCABULARY_FILE)
    return None if stored is None else Vocabulary.from_json(stored.decode("utf-8"))


def load_trained(model_dir, checkpoint="best"):
    """`(keras model, Vocabulary, run dict)` of the char LM trained in `model_dir`: its `checkpoint`
    (`"best"` or `"last"`, `RunDirectory.model_file`), its vocabulary, and the run's `model` name,
    `seq_len` and `CharLMConfig` fields as its run directory records them."""
    run_dir = RunDirectory(model_dir)
    run_dir.require(VOCABULARY_FILE, kind="trained char LM", model="char_mrnn")
    train_config = run_dir.train_config()
    run = {"model": train_config["model"], "seq_len": train_config["seq_len"] or DEFAULT_SEQ_LEN,
           **run_dir.model_config()}
    return run_dir.load_model(checkpoint, compile=False), load_vocabulary(model_dir), run


# ------------------------------------------------------------ registry

MRNN_RECIPE = {"learning_rate": 3e-3, "lr_decay_steps": 1000, "clip_norm": 1.0}
"""`char_mrnn`'s first-order settings (Adam): learning rate 3e-3 / (1 + step / 1000), clipped at 1.

At a constant learning rate Adam's per-coordinate steps (about the learning rate
in every weight, also where the gradient is only noise) keep inflating the
synthesised transition `W_hf diag(W_fv v_t) W_fh` (eq. 5.4): its largest
singular value grows about linearly with the step count, ever more hidden units
saturate, and held-out bits per character stop improving and then get worse
(docs/char_lm.md). The inverse-time decay keeps the sum of squared steps bounded
(that growth stops) while their sum still diverges (learning goes on), and it
needs no run length: a run stopped by `max_seconds` at any step has followed the
same schedule.
"""


def build(model_name, config, train_config):
    """`registry.Built` for `rnnzoo-train --model=char_mrnn|char_rnn|char_lstm`.

    The metric the training loop reports is the held-out bits per character
    (`bits_per_char`, lower is better). Writes the vocabulary into the run directory
    (`VOCABULARY_FILE`) so that `rnnzoo-export` can serve the model.
    """
    seq_len = train_config.seq_len or DEFAULT_SEQ_LEN
    vocabulary = load_vocabulary(train_config.model_dir) if train_config.model_dir else None
    corpus = corpus_from_config(config, vocabulary)  # a resumed run keeps its ids
    if train_config.model_dir:
        vocabulary_json = corpus.vocabulary.to_json().encode("utf-8")
        RunDirectory(train_config.model_dir).save_asset(VOCABULARY_FILE, vocabulary_json)
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


def config_of_run(run):
    """The `CharLMConfig` of a run dict (`load_trained`)."""
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
    seq_len = run.get("seq_len") or DEFAULT_SEQ_LEN
    text_model = TextModel(model, vocabulary)
    heldout_text = vocabulary.decode(corpus.heldout_ids)
    bags = make_bags(heldout_text, debag_bags, k=debag_k, seed=seed)
    return {
        "model": run.get("model"),
        **bits_per_char(model, corpus, seq_len, config.context),
        "unigram_bits_per_char": corpus.unigram_bits_per_char(),
        "samples": dict(zip(prompts, sample(text_model, vocabulary, list(prompts), sample_length,
                                            temperature, seed))),
        "completions": {
            prefix: complete(text_model, vocabulary, prefix, num_completions, 60, temperature, seed)
            for prefix in completion_prefixes
        },
        "debagging": debag(text_model, vocabulary, bags, k=debag_k),
    }
