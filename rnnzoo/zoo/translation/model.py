"""The translation family's model, data, decoding and evaluation (the family: `rnnzoo.zoo.translation`)."""

import dataclasses
import math
import re

import keras
import tensorflow as tf

from rnnzoo.data.parallel_batches import encode_pairs, pair_batches, pairs_within
from rnnzoo.data.parallel_corpus import load_parallel_corpus
from rnnzoo.data.subword_tokenizer import SubwordTokenizer, train_sentencepiece
from rnnzoo.decoding.translator import Translator
from rnnzoo.layers import MRNN, ResRNN, ReversePadded
from rnnzoo.model import Model
from rnnzoo.training import evaluation, registry
from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.zoo.translation.meteor import meteor, wordnet_reader
from rnnzoo.zoo.translation.scores import score_translations

MODELS = ("seq2seq",)
TOKENIZER_FILE = "sentencepiece.model"
"""The run directory's asset holding the SentencePiece model (`RunDirectory.save_asset`)."""
EVAL_BATCH = 64


def _rnn(cell, units, name):
    common = {"return_sequences": True, "return_state": True, "name": name}
    layers = {
        "lstm": lambda: keras.layers.LSTM(units, **common),
        "gru": lambda: keras.layers.GRU(units, **common),
        "rnn": lambda: keras.layers.SimpleRNN(units, **common),
        "mrnn": lambda: MRNN(units, factors=units, **common),
        "resrnn": lambda: ResRNN(units, **common),
    }
    if cell not in layers:
        raise ValueError(f"Unknown cell {cell!r} (--cell); choose one of: {', '.join(layers)}.")
    return layers[cell]()


CELLS = ("lstm", "gru", "rnn", "mrnn", "resrnn")


@dataclasses.dataclass
class Seq2SeqConfig:
    """Corpus, model and evaluation settings of the `seq2seq` family.

    Attributes:
        corpus: `gettext:LANG` (English -> LANG from the system's catalogs), a TSV file, two
            aligned files `source,target`, or `tfds:NAME` (`rnnzoo.data.parallel_corpus`).
        data_dir: TFDS data directory for `tfds:` corpora.
        target_language: the target's language code; "" infers it (`target_language`). An
            English target (`en`) adds the `meteor` metric.
        vocab_size: SentencePiece pieces (shared by source and target).
        max_tokens: pairs with more pieces on either side are left out of training.
        test_max_tokens: test pairs with more pieces on either side are left out of the evaluation
            (loss and BLEU; 0: every test pair is evaluated).
        cell: recurrent cell of encoder and decoder (`lstm`, `gru`, `rnn`, `mrnn`, `resrnn`).
        layers: depth of each stack.
        units: width of every recurrent layer.
        embedding_dim: width of the source and target piece embeddings.
        dropout: dropout between stacked layers (training only).
        reverse_source: the encoder reads the source reversed (Sutskever et al. 2014).
        pretrain_steps: batches of layer-wise autoencoder pretraining per layer (0: none).
        eval_beam_width, eval_length_penalty: the beam search the `bleu` metric decodes with
            (`bleu_greedy` decodes with width 1).
        eval_sentences: test sentences decoded per evaluation (0: the whole test split).
        eval_decodings: further decodings of the same test sentences by the same model,
            `WIDTH:ALPHA,...` (e.g. `1:0,2:0,12:0.6`), each scored as the metric
            `bleu_beamWIDTH_alphaALPHA` (`decoding_metric`) at every evaluation.
        max_beam_width, max_decode_length: largest beam width and target length the exported
            `translate` accepts.
    """

    corpus: str = "gettext:fr"
    data_dir: str = ""
    target_language: str = ""
    vocab_size: int = 4000
    max_tokens: int = 48
    test_max_tokens: int = 0
    cell: str = "lstm"
    layers: int = 2
    units: int = 256
    embedding_dim: int = 256
    dropout: float = 0.0
    reverse_source: bool = True
    pretrain_steps: int = 0
    eval_beam_width: int = 4
    eval_length_penalty: float = 0.6
    eval_sentences: int = 0
    eval_decodings: str = ""
    max_beam_width: int = 16
    max_decode_length: int = 128


def check_config(config):
    """Raises a ValueError naming the first invalid field."""
    if config.cell not in CELLS:
        raise ValueError(f"Unknown cell {config.cell!r} (--cell); choose one of: {', '.join(CELLS)}.")
    for name in ("vocab_size", "max_tokens", "layers", "units", "embedding_dim", "eval_beam_width",
                 "max_beam_width", "max_decode_length"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r} (--{name}).")
    if isinstance(config.test_max_tokens, bool) or not isinstance(config.test_max_tokens, int) \
            or config.test_max_tokens < 0:
        raise ValueError(f"test_max_tokens must be an integer >= 0 (0: every test pair), got "
                         f"{config.test_max_tokens!r} (--test_max_tokens).")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout!r} (--dropout).")
    if config.eval_beam_width > config.max_beam_width:
        raise ValueError(f"eval_beam_width={config.eval_beam_width} exceeds max_beam_width="
                         f"{config.max_beam_width}; raise --max_beam_width.")
    parse_decodings(config.eval_decodings, config.max_beam_width)
    if config.pretrain_steps and config.cell != "lstm":
        raise ValueError(f"layer-wise pretraining (--pretrain_steps={config.pretrain_steps}) trains LSTM "
                         f"autoencoders; use --cell=lstm or --pretrain_steps=0 (got --cell={config.cell}).")


def parse_decodings(text, max_beam_width):
    """`[(beam width, length penalty alpha)]` of `--eval_decodings` (`"WIDTH:ALPHA,..."`)."""
    decodings = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            width, alpha = item.split(":")
            width, alpha = int(width), float(alpha)
        except ValueError:
            raise ValueError(f"eval_decodings item {item!r} is not WIDTH:ALPHA; write e.g. "
                             "--eval_decodings=1:0,4:0.6,12:0.6") from None
        if not 1 <= width <= max_beam_width:
            raise ValueError(f"eval_decodings item {item!r}: beam width {width} is outside 1..max_beam_width="
                             f"{max_beam_width}; use a width in that range or raise --max_beam_width.")
        if not alpha >= 0 or math.isinf(alpha):
            raise ValueError(f"eval_decodings item {item!r}: length penalty alpha {alpha} must be finite "
                             "and >= 0 (0: no penalty).")
        decodings.append((width, alpha))
    return decodings


def target_language(config):
    """The target's language code: `config.target_language`, else LANG of `gettext:LANG`
    (English -> LANG), else the second language of `tfds:NAME/xx-yy` (TFDS translation configs
    name source-target, e.g. `wmt14_translate/fr-en`); "" when the corpus does not say."""
    if config.target_language:
        return config.target_language
    if config.corpus.startswith("gettext:"):
        return config.corpus.removeprefix("gettext:")
    match = re.fullmatch(r"tfds:.*/(\w+)-(\w+)", config.corpus)
    return match.group(2) if match else ""


def meteor_offered(config):
    """METEOR is meaningful for English targets only (its WordNet synonym stage is English)."""
    return re.split(r"[_-]", target_language(config))[0].lower() == "en"


def decoding_metric(width, alpha):
    """The metric name of an `eval_decodings` entry, e.g. `bleu_beam12_alpha0.6`."""
    return f"bleu_beam{width}_alpha{alpha:g}"


def build_encoder(vocab_size, config):
    """Source ids int32[b, s] (0-padded) -> each layer's final state, flattened, as a Keras model."""
    source = keras.Input((None,), dtype="int32", name="source")
    x = keras.layers.Embedding(vocab_size, config.embedding_dim, mask_zero=True, name="source_embedding")(source)
    if config.reverse_source:
        x = ReversePadded(name="reverse_source")(x)
    states = []
    for index in range(config.layers):
        if index and config.dropout:
            x = keras.layers.Dropout(config.dropout, name=f"encoder_dropout_{index}")(x)
        outputs = _rnn(config.cell, config.units, f"source_rnn_{index + 1}")(x)
        x, layer_states = outputs[0], list(outputs[1:])
        states += layer_states
    return keras.Model(source, states, name="encoder")


def build_model(vocab_size, config, seed=None):
    """The training model: `[source, target_in]` int32 ids -> next-piece logits float32[b, t, vocab]."""
    check_config(config)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    source = keras.Input((None,), dtype="int32", name="source")
    target_in = keras.Input((None,), dtype="int32", name="target_in")
    encoder = build_encoder(vocab_size, config)
    states = encoder(source)
    per_layer = len(states) // config.layers
    x = keras.layers.Embedding(vocab_size, config.embedding_dim, mask_zero=True, name="target_embedding")(target_in)
    for index in range(config.layers):
        if index and config.dropout:
            x = keras.layers.Dropout(config.dropout, name=f"decoder_dropout_{index}")(x)
        initial = states[index * per_layer:(index + 1) * per_layer]
        x = _rnn(config.cell, config.units, f"target_rnn_{index + 1}")(x, initial_state=initial)[0]
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return Model([source, target_in], logits, name="seq2seq")


def loss():
    """Softmax cross-entropy per target piece; padding has weight 0 (the batches' sample weights)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# ------------------------------------------------------------------ run files


def load_tokenizer(model_dir):
    """The `SubwordTokenizer` of the run in `model_dir`, or `None` when it has none yet."""
    model_proto = RunDirectory(model_dir).asset(TOKENIZER_FILE)
    return None if model_proto is None else SubwordTokenizer(model_proto)


def load_trained(model_dir, checkpoint="best"):
    """`(keras model, SubwordTokenizer, Seq2SeqConfig)` of the run in `model_dir`: its `checkpoint`
    (`"best"` or `"last"`, `RunDirectory.model_file`), its SentencePiece model and its config as its
    run directory records them."""
    run_dir = RunDirectory(model_dir)
    run_dir.require(TOKENIZER_FILE, kind="trained seq2seq run", model="seq2seq")
    return (run_dir.load_model(checkpoint, compile=False), load_tokenizer(model_dir),
            Seq2SeqConfig(**run_dir.model_config()))


def make_translator(model, tokenizer, config):
    return Translator(model, tokenizer, max_beam_width=config.max_beam_width,
                      max_decode_length=config.max_decode_length)


# ------------------------------------------------------------------ evaluation


def translate_all(translator, sources, beam_width, length_penalty, batch_size=EVAL_BATCH):
    """The best translation of every source sentence (list of str)."""
    translate = _compiled_translate(translator)
    results = []
    for start in range(0, len(sources), batch_size):
        chunk = sources[start:start + batch_size]
        n = len(chunk)
        out = translate(tf.constant(chunk), tf.fill([n], beam_width), tf.fill([n], float(length_penalty)),
                        tf.zeros([n], tf.int32))
        results += [t.decode("utf-8") for t in out["translation"].numpy()]
    return results


def _compiled_translate(translator):
    if not hasattr(translator, "_evaluation_translate"):
        translator._evaluation_translate = tf.function(translator.translate, input_signature=[
            tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)])
    return translator._evaluation_translate


def token_loss(model, batches):
    """Mean negative log-likelihood (nats) per target piece, EOS included, padding excluded."""
    total, count = 0.0, 0.0
    for x, y, weight in batches:
        logits = model(x, training=False)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.cast(logits, tf.float32))
        total += float(tf.reduce_sum(nll * weight))
        count += float(tf.reduce_sum(weight))
    return total / max(count, 1.0)


def make_evaluate(tokenizer, config, test_pairs, test_batches):
    """`evaluate(model)`: test loss, perplexity, BLEU (beam and greedy) and chrF of the test pairs."""
    translators = {}
    sentences = test_pairs[: config.eval_sentences or None]
    sources, references = [s for s, _ in sentences], [t for _, t in sentences]
    decodings = parse_decodings(config.eval_decodings, config.max_beam_width)
    with_meteor = meteor_offered(config)
    if with_meteor:
        wordnet_reader()  # fails now, naming the fix, rather than after training

    def evaluate(model):
        if id(model) not in translators:  # a resumed run evaluates the model it loaded
            translators.clear()
            translators[id(model)] = make_translator(model, tokenizer, config)
        translator = translators[id(model)]
        nll = token_loss(model, test_batches)
        decoded = {}  # (width, alpha) -> translations: each decoding runs once per evaluation

        def decode(width, alpha):
            if (width, alpha) not in decoded:
                decoded[width, alpha] = translate_all(translator, sources, width, alpha)
            return decoded[width, alpha]

        beam = decode(config.eval_beam_width, float(config.eval_length_penalty))
        scores = score_translations(beam, references)
        values = {"test_loss": nll, "token_perplexity": math.exp(min(nll, 700.0)), "bleu": scores["bleu"],
                  "bleu_greedy": score_translations(decode(1, 0.0), references)["bleu"], "chrf": scores["chrf"]}
        if with_meteor:
            values["meteor"] = meteor(beam, references)
        for width, alpha in decodings:
            values[decoding_metric(width, alpha)] = score_translations(decode(width, alpha), references)["bleu"]
        return values

    return evaluate


METEOR_METRIC = evaluation.Metric(
    "meteor", None, evaluation.HIGHER,
    "mean sentence METEOR x 100 (nltk, WordNet 3.0) of the beam-search translations; English targets only")

METRICS = (
    evaluation.Metric("bleu", None, evaluation.HIGHER,
                      "sacrebleu corpus BLEU of the beam-search translations of the test split "
                      "(rnn-critical-review §5.2)"),
    evaluation.Metric("bleu_greedy", None, evaluation.HIGHER, "corpus BLEU of greedy translations (beam width 1)"),
    evaluation.Metric("chrf", None, evaluation.HIGHER, "sacrebleu chrF of the beam-search translations"),
    evaluation.Metric("token_perplexity", None, evaluation.LOWER,
                      "exp(test loss): perplexity per target piece under teacher forcing"),
)


# ------------------------------------------------------------------ registry

RECIPE = {"clip_norm": 5.0, "learning_rate": 2e-3, "batch_size": 64, "train_steps": 2400, "eval_every": 1000}
"""How `rnnzoo-train --model=seq2seq` trains where its flags leave these out: Adam 2e-3 on batches of
64 pairs, gradients clipped at norm 5 (layer-wise §4.4), 2,400 steps (about 7.7 epochs of gettext
en->fr, 25 CPU-minutes or about 16 minutes of training on an idle 2-core machine; measured in
docs/translation.md), evaluated at steps 1,000, 2,000 and 2,400
(an evaluation of the whole test split costs about as much as 80 training steps)."""


def build(model_name, config, train_config):
    """`registry.Built` for `rnnzoo-train --model=seq2seq` (see the module docstring)."""
    check_config(config)
    corpus = load_parallel_corpus(config.corpus, data_dir=config.data_dir or None)
    # A resumed run keeps its pieces.
    tokenizer = load_tokenizer(train_config.model_dir) if train_config.model_dir else None
    if tokenizer is None:
        tokenizer = SubwordTokenizer(train_sentencepiece([text for pair in corpus.train for text in pair],
                                                         config.vocab_size))
    if train_config.model_dir:
        RunDirectory(train_config.model_dir).save_asset(TOKENIZER_FILE, tokenizer.model_proto)
    train_sources, train_targets = encode_pairs(corpus.train, tokenizer, config.max_tokens)
    test = pairs_within(corpus.test, tokenizer, config.test_max_tokens) if config.test_max_tokens else corpus.test
    test_sources, test_targets = encode_pairs(test, tokenizer)
    test_batches = pair_batches(test_sources, test_targets, EVAL_BATCH, repeat=False)
    model = build_model(tokenizer.vocab_size, config, seed=train_config.seed)
    pretrain = None
    if config.pretrain_steps:
        from rnnzoo.zoo.translation.pretraining import make_pretrain

        pretrain = make_pretrain(train_sources, train_targets, config)
    sizes = corpus.sizes()
    return registry.Built(
        model=model,
        loss=loss(),
        train_dataset=pair_batches(train_sources, train_targets, train_config.batch_size, seed=train_config.seed),
        test_dataset=None,
        metrics=METRICS + ((METEOR_METRIC,) if meteor_offered(config) else ()) + tuple(
            evaluation.Metric(decoding_metric(width, alpha), None, evaluation.HIGHER,
                              f"corpus BLEU with beam width {width} and length penalty alpha {alpha:g}")
            for width, alpha in parse_decodings(config.eval_decodings, config.max_beam_width)),
        evaluate=make_evaluate(tokenizer, config, test, test_batches),
        pretrain=pretrain,
        description=(
            f"seq2seq ({config.layers} x {config.units} {config.cell}, "
            f"{'reversed' if config.reverse_source else 'forward'} source) on {config.corpus}: "
            f"{len(train_sources):,} training pairs of <= {config.max_tokens} pieces "
            f"({sizes['train']:,} read), {len(test):,} test pairs"
            f"{f' of <= {config.test_max_tokens} pieces' if config.test_max_tokens else ''} "
            f"({sizes['test']:,} read), {tokenizer.vocab_size} pieces"
        ),
    )


def evaluate_model_dir(model_dir):
    """What `rnnzoo-evaluate` adds for a seq2seq run: sacrebleu's BLEU and chrF signatures and the
    first test sentences translated (beam and greedy)."""
    model, tokenizer, config = load_trained(model_dir)
    corpus = load_parallel_corpus(config.corpus, data_dir=config.data_dir or None)
    sources = [s for s, _ in corpus.test[:5]]
    translator = make_translator(model, tokenizer, config)
    beam = translate_all(translator, sources, config.eval_beam_width, config.eval_length_penalty)
    greedy = translate_all(translator, sources, 1, 0.0)
    scores = score_translations(beam, [t for _, t in corpus.test[:5]])
    return {
        "bleu_signature": scores["bleu_signature"],
        "chrf_signature": scores["chrf_signature"],
        "decoding": {"beam_width": config.eval_beam_width, "length_penalty": config.eval_length_penalty},
        "examples": [{"source": s, "reference": t, "beam": b, "greedy": g}
                     for (s, t), b, g in zip(corpus.test[:5], beam, greedy)],
    }


