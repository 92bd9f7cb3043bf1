"""Character-level language models (thesis ch. 5): training, bpc, sampling, scoring, completion, debagging."""

import itertools
import json
import math
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.char_corpus import load_corpus
from rnnzoo.zoo import char_lm
from rnnzoo.zoo.char_lm import text_evaluation
from rnnzoo.data.char_tokenizer import START
from rnnzoo.decoding import TextModel
from rnnzoo.zoo.char_lm.model import CharLMConfig
from tests.char_lm_runs import train_char_lm

SENTENCES = "the cat sat on the mat. a dog ran to the log. "
SEQ_LEN, CONTEXT = 40, 10
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(SENTENCES * 60, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(corpus_path):
    return load_corpus(str(corpus_path), holdout_chars=460)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def trained(corpus_path, run_dir):
    model, _, metrics = train_char_lm(
        run_dir, corpus_path, steps=300, eval_every=100, seq_len=SEQ_LEN,
        context=CONTEXT, units=48, holdout_chars=460)
    return model, metrics


def untrained(name, corpus, units=16):
    return char_lm.build_model(name, corpus.vocabulary.size, CharLMConfig(units=units, embedding_dim=8), seed=1)


def keras_log_softmax(model, ids):
    logits = np.asarray(model(np.asarray(ids, np.int32)[None], training=False), np.float64)[0]
    return logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(
        -1, keepdims=True
    )


def greedy_reference(model, vocabulary, ids, length):
    """Argmax decoding with the Keras model, re-reading the whole sequence every step."""
    ids = list(ids)
    for _ in range(length):
        ids.append(int(np.argmax(keras_log_softmax(model, ids)[-1])))
    return vocabulary.decode(ids[len(ids) - length :])


def context_ids(vocabulary, text):
    return [int(vocabulary.encode(START)[0])] + vocabulary.encode(text).tolist()


def test_tiny_corpus_overfits_far_below_the_unigram_entropy(corpus, trained):
    model, run = trained
    unigram = corpus.unigram_bits_per_char()
    result = text_evaluation.bits_per_char(model, corpus, SEQ_LEN, CONTEXT)
    assert unigram > 3.0
    assert result["bits_per_char"] < 0.1 * unigram
    assert result["perplexity"] == pytest.approx(2 ** result["bits_per_char"])
    assert result["characters"] == 460
    assert [h["step"] for h in run["history"]] == [100, 200, 300]
    assert run["history"][-1]["bits_per_char"] == pytest.approx(result["bits_per_char"], rel=1e-4)


def test_heldout_bits_per_char_equals_numpy_reference(corpus):
    model = untrained("char_lstm", corpus)
    x, y, w = corpus.heldout_windows(SEQ_LEN, CONTEXT)
    logits = np.concatenate([np.asarray(model(x[i : i + 7])) for i in range(0, len(x), 7)])
    log_p = np.take_along_axis(
        np.asarray([keras_log_softmax(model, row) for row in x]), y[..., None], -1
    )[..., 0]
    expected = -(log_p * w).sum() / w.sum() / math.log(2)
    assert text_evaluation.bits_per_char(model, corpus, SEQ_LEN, CONTEXT)["bits_per_char"] == pytest.approx(expected, rel=1e-5)
    assert text_evaluation.bits_per_char_of(logits, y, w) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", char_lm.MODELS)
def test_temperature_zero_is_argmax_decoding_of_the_keras_model(corpus, name):
    model = untrained(name, corpus)
    vocabulary = corpus.vocabulary
    prompts, lengths = ["the ", "", "d€g"], [12, 7, 5]
    texts = text_evaluation.sample(model, vocabulary, prompts, lengths, 0.0, seed=[5, 6, 7])
    for prompt, length, text in zip(prompts, lengths, texts):
        assert text == prompt + greedy_reference(model, vocabulary, context_ids(vocabulary, prompt), length)


def test_trained_model_continues_the_corpus_greedily(corpus, trained):
    model, _ = trained
    prompt = "a dog ran to the log. the cat "
    assert text_evaluation.sample(model, corpus.vocabulary, prompt, 16, 0.0)[0] == prompt + "sat on the mat. "


@pytest.mark.parametrize("name", ["char_mrnn", "char_lstm"])
def test_score_is_the_keras_models_log_probability(corpus, name):
    model = untrained(name, corpus)
    vocabulary = corpus.vocabulary
    texts = ["the cat", "", "ü?x", "a dog ran to the log."]
    log_prob, bits = text_evaluation.log_prob(model, vocabulary, texts)
    for text, lp, b in zip(texts, log_prob, bits):
        ids = context_ids(vocabulary, text)
        expected = sum(keras_log_softmax(model, ids[:-1])[i, ids[i + 1]] for i in range(len(text)))
        assert lp == pytest.approx(expected, abs=1e-4)
        assert b == pytest.approx(-expected / math.log(2) / len(text) if text else 0.0, abs=1e-5)


def test_sampling_is_deterministic_per_row_whatever_the_batch(corpus):
    model = untrained("char_mrnn", corpus)
    vocabulary = corpus.vocabulary
    alone = text_evaluation.sample(model, vocabulary, ["the"], 30, 1.0, seed=11)[0]
    again = text_evaluation.sample(model, vocabulary, ["the"], 30, 1.0, seed=11)[0]
    batched = text_evaluation.sample(model, vocabulary, ["a much longer prompt", "the", ""], [3, 30, 9], [0.0, 1.0, 2.0],
                             seed=[1, 11, 2])
    other_seed = text_evaluation.sample(model, vocabulary, ["the"], 30, 1.0, seed=12)[0]
    assert alone == again == batched[1]
    assert other_seed != alone
    assert len(alone) == 33


def test_samples_follow_softmax_of_logits_over_temperature(corpus):
    model = untrained("char_rnn", corpus, units=8)
    vocabulary = corpus.vocabulary
    logits = np.asarray(model(np.asarray([context_ids(vocabulary, "th")], np.int32)))[0, -1].astype(np.float64)
    n = 3000
    for temperature in (0.5, 2.0):
        texts = text_evaluation.sample(model, vocabulary, ["th"] * n, 1, temperature, seed=np.arange(n))
        drawn = vocabulary.encode("".join(t[2] for t in texts))
        counts = np.bincount(drawn, minlength=vocabulary.size)
        p = np.exp(logits / temperature - (logits / temperature).max())
        p /= p.sum()
        # Each frequency within 4.5 binomial standard deviations (plus a floor for tiny p).
        tolerance = 4.5 * np.sqrt(p * (1 - p) / n) + 2.0 / n
        np.testing.assert_array_less(np.abs(counts / n - p), tolerance)


def test_prompt_edge_cases_behave_as_documented(corpus):
    model = untrained("char_mrnn", corpus)
    vocabulary = corpus.vocabulary
    text_model = TextModel(model, vocabulary)
    prompts = tf.constant([b"", "tü€x".encode(), b"caf\xe9", b"abc"])
    out = text_model.generate(prompts, tf.constant([4, 3, 2, 0]), tf.constant([0.0, 0.0, 0.0, 1.0]),
                              tf.constant([0, 0, 0, 0], tf.int64))["text"].numpy()
    # Empty prompt: the continuation alone, read after the start symbol.
    assert out[0].decode() == greedy_reference(model, vocabulary, context_ids(vocabulary, ""), 4)
    # Characters outside the vocabulary are read as the unknown id 0; the prompt is echoed verbatim.
    unknown = context_ids(vocabulary, "t") + [0, 0] + vocabulary.encode("x").tolist()
    assert out[1].decode() == "tü€x" + greedy_reference(model, vocabulary, unknown, 3)
    # Invalid UTF-8 bytes are echoed and read as unknown characters.
    assert out[2].startswith(b"caf\xe9") and len(out[2]) == 4 + len(out[2][4:].decode())
    # max_length 0: the prompt, unchanged.
    assert out[3] == b"abc"
    # Only empty texts: zero log-probability and zero bits per character.
    empty = text_model.score(tf.constant(["", ""]))
    assert empty["log_prob"].numpy().tolist() == [0.0, 0.0] and empty["bits_per_char"].numpy().tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "max_length, temperature, seed, message",
    [
        ([-1], [1.0], [0], "max_length must be >= 0"),
        ([5000], [1.0], [0], "max_length must be <= 4096"),
        ([3], [-0.5], [0], "temperature must be >= 0"),
        ([3], [float("nan")], [0], "temperature must be >= 0"),
        ([3, 4], [1.0], [0], "max_length needs one value per prompt"),
    ],
)
def test_invalid_generate_arguments_are_invalid_argument(corpus, max_length, temperature, seed, message):
    text_model = TextModel(untrained("char_mrnn", corpus), corpus.vocabulary)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        text_model.generate(tf.constant(["ab"]), tf.constant(max_length), tf.constant(temperature),
                            tf.constant(seed, tf.int64))


def test_structured_completion_follows_the_prefix(corpus, trained):
    model, _ = trained
    completions = text_evaluation.complete(model, corpus.vocabulary, "the cat sat on the mat. a dog ", num_samples=4,
                                   max_length=12, temperature=0.3, seed=0)
    assert len(completions) == 4
    assert all(c.startswith("ran to") for c in completions)


def test_debagging_equals_one_ordering_at_a_time(corpus, trained):
    model, _ = trained
    text = (SENTENCES * 3).strip()
    bags = text_evaluation.make_bags(text, num_bags=4, k=3, context_words=2, seed=1)
    assert all(len(b) == 7 for b in bags)
    result = text_evaluation.debag(model, corpus.vocabulary, bags, k=3, batch_size=4)
    score = tf.function(TextModel(model, corpus.vocabulary).score)
    correct = 0
    for words in bags:
        truth = " ".join(words)
        others = {" ".join(words[:2] + list(p) + words[5:]) for p in itertools.permutations(words[2:5])} - {truth}
        truth_score = score(tf.constant([truth]))["log_prob"].numpy()[0]
        best_other = max(score(tf.constant([o]))["log_prob"].numpy()[0] for o in others)
        correct += truth_score > best_other
    assert result == {"accuracy": correct / 4, "bags": 4, "k": 3, "orderings": 6}
    assert result["accuracy"] >= 0.75  # the model has memorised these sentences


def test_make_bags_rejects_short_texts():
    with pytest.raises(ValueError, match="fewer than one bag of 11"):
        text_evaluation.make_bags("only five words are here", num_bags=1, k=7)


def test_nag_trains_the_char_rnn(corpus, corpus_path, tmp_path):
    before = text_evaluation.bits_per_char(untrained("char_rnn", corpus, units=32), corpus, SEQ_LEN,
                                           CONTEXT)["bits_per_char"]
    model, _, _ = train_char_lm(tmp_path, corpus_path, "char_rnn", steps=150, seq_len=SEQ_LEN,
                                context=CONTEXT, optimizer="nag", learning_rate=0.02,
                                training={"momentum": 0.99, "seed": 1}, units=32, embedding_dim=8,
                                holdout_chars=460)
    after = text_evaluation.bits_per_char(model, corpus, SEQ_LEN, CONTEXT)["bits_per_char"]
    assert after < 0.6 * before


def test_hessian_free_steps_lower_the_training_loss(corpus, corpus_path, tmp_path):
    x, y, w = next(iter(corpus.train_dataset(SEQ_LEN, CONTEXT, 32, seed=0)))
    loss = char_lm.loss()
    run = dict(steps=4, seq_len=SEQ_LEN, context=CONTEXT, batch_size=32, units=16, holdout_chars=460)
    start, _, _ = train_char_lm(tmp_path / "start", corpus_path, steps=1, learning_rate=1e-12,
                                **{k: v for k, v in run.items() if k != "steps"})
    before = float(loss(y, start(x), sample_weight=w))
    model, _, _ = train_char_lm(  # thesis §5.4.2: lambda_0 = 10, mu = 0.1, at most 150 CG steps
        tmp_path / "hf", corpus_path, optimizer="hf", training={
            "hf_damping": 10.0, "hf_structural_damping": 0.1, "hf_max_cg_iterations": 150}, **run)
    assert float(loss(y, model(x), sample_weight=w)) < 0.98 * before


XLA_RUN = f"""
import json, sys
from rnnzoo.data.char_corpus import load_corpus
from rnnzoo.zoo import char_lm
corpus = load_corpus(sys.argv[1], holdout_chars=460)
model = char_lm.build_model("char_mrnn", corpus.vocabulary.size, char_lm.CharLMConfig(units=16), seed=0)
model.compile("adam", char_lm.loss(), jit_compile=True)
windows = corpus.train_dataset({SEQ_LEN}, {CONTEXT}, batch_size=8, seed=0)
assert windows.element_spec[0].shape[1] is None, windows.element_spec
history = model.fit(windows, steps_per_epoch=3, epochs=1, verbose=0)
print(json.dumps(history.history["loss"]))
"""


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def test_char_mrnn_trains_with_xla_on_windows_known_only_at_run_time(corpus_path):
    """`jit_compile=True`, Keras's choice on a GPU, with training windows of no static length.

    In a process of its own under an 8 GiB address-space limit: an XLA buffer
    sized by a loose loop cap fails to allocate and then aborts its process.
    """
    result = subprocess.run(
        [sys.executable, "-c", XLA_RUN, str(corpus_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, preexec_fn=_limit_address_space,
        env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    losses = json.loads(result.stdout.splitlines()[-1])
    assert losses and all(math.isfinite(loss) for loss in losses), losses


def test_models_use_sparse_recurrent_init_and_token_ids(corpus):
    model = char_lm.build_model("char_mrnn", corpus.vocabulary.size, CharLMConfig(units=40, factors=30), seed=0)
    cell = model.get_layer("recurrent").cell
    for kernel in (cell.hidden_factor_kernel, cell.factor_hidden_kernel):
        nonzero = (np.asarray(kernel) != 0).sum(axis=0)
        assert set(nonzero.tolist()) == {15}  # 15 incoming weights per unit (thesis §5.4.2)
    assert cell.kernel.shape == (corpus.vocabulary.size, 40)  # ids gather rows: no one-hot input
    assert model.input.dtype == "int32"
    with pytest.raises(ValueError, match="Unknown char-LM model 'char_gru'"):
        char_lm.build_model("char_gru", 10)


def test_registry_build_reports_heldout_bits_per_char(corpus, tmp_path):
    from rnnzoo.training.loop import TrainConfig

    path = tmp_path / "tiny.txt"
    path.write_text(SENTENCES * 40, encoding="utf-8")
    config = CharLMConfig(units=16, corpus=str(path), holdout_chars=200, context=10)
    built = char_lm.build("char_lstm", config, TrainConfig(model="char_lstm", model_dir=str(tmp_path / "run"),
                                                           seq_len=30, batch_size=8))
    assert os.path.exists(tmp_path / "run" / char_lm.VOCABULARY_FILE)
    ys, preds = [], []
    for x, y, w in built.test_dataset:
        ys.append(y.numpy())
        preds.append(np.asarray(built.model(x)))
    fresh = load_corpus(str(path), holdout_chars=200)
    expected = text_evaluation.bits_per_char(built.model, fresh, 30, 10)["bits_per_char"]
    (metric,) = built.metrics
    assert metric.name == "bits_per_char" and metric.direction == "lower"
    assert metric.compute(np.concatenate(ys), np.concatenate(preds)) == pytest.approx(expected, rel=1e-5)
    x, y, w = next(iter(built.train_dataset))
    assert x.shape == (8, 30) and float(w[0, :10].numpy().sum()) == 0.0


def test_evaluate_model_dir_runs_every_chapter_5_evaluation(corpus, trained, run_dir, tmp_path):
    model, _ = trained
    result = char_lm.evaluate_model_dir(str(run_dir), prompts=("the cat ",), temperature=0.5,
                                        sample_length=10, completion_prefixes=("a dog ",), num_completions=2,
                                        debag_bags=3, debag_k=3)
    assert result["bits_per_char"] == pytest.approx(text_evaluation.bits_per_char(model, corpus, SEQ_LEN, CONTEXT)["bits_per_char"])
    assert result["characters"] == 460
    assert len(result["samples"]["the cat "]) == 18
    assert len(result["completions"]["a dog "]) == 2
    assert result["debagging"]["bags"] == 3 and 0.0 <= result["debagging"]["accuracy"] <= 1.0
    with pytest.raises(ValueError, match=r"is no trained char LM \(checkpoint.json, model.keras, vocabulary.json missing\)"):
        char_lm.load_trained(str(tmp_path / "empty"))
