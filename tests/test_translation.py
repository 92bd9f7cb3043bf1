"""The seq2seq family: source reversal, training through the shared loop, decoding that agrees
with the Keras model, export -> fresh process with only TF + tf-text -> rnnzoo-serve round trips."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.subword_tokenizer import BOS_ID, EOS_ID
from rnnzoo.export import export_run
from rnnzoo.export.parity import SERVING_TEXT_OPS
from rnnzoo.layers import ReversePadded
from rnnzoo.zoo import translation
from rnnzoo.training.loop import TrainConfig, train

PAIRS = [(f"the {c} file {n} is open", f"le fichier {c} {n} est ouvert")
         for n in ("one", "two", "three", "four", "five", "six") for c in ("red", "blue", "green", "black")]


def test_reverse_padded_reverses_only_the_real_steps():
    x = tf.constant([[[1.0], [2.0], [3.0], [0.0]], [[4.0], [5.0], [0.0], [0.0]]])
    mask = tf.constant([[True, True, True, False], [True, True, False, False]])
    np.testing.assert_array_equal(ReversePadded()(x, mask=mask)[..., 0], [[3, 2, 1, 0], [5, 4, 0, 0]])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq")
    corpus = root / "pairs.tsv"
    corpus.write_text("\n".join(f"{s}\t{t}" for s, t in PAIRS * 3), encoding="utf-8")
    model_dir = root / "run"
    metrics = train(TrainConfig(model="seq2seq", batch_size=16, train_steps=60, eval_every=30, learning_rate=0.02,
                                model_dir=str(model_dir), verbose=0),
                    corpus=str(corpus), vocab_size=40, units=24, embedding_dim=16, max_decode_length=24)
    return root, model_dir, metrics


def test_training_reports_bleu_higher_is_better_and_a_falling_loss(run):
    _, model_dir, metrics = run
    assert metrics["metric_directions"] == {"bleu": "higher", "bleu_greedy": "higher", "chrf": "higher",
                                            "token_perplexity": "lower"}
    first, last = metrics["history"]
    assert last["test_loss"] < first["test_loss"]
    assert last["token_perplexity"] == pytest.approx(np.exp(last["test_loss"]))
    assert 0 <= last["bleu"] <= 100 and 0 < last["chrf"] <= 100
    assert {"checkpoint.json", "metrics.json", "model.keras", "sentencepiece.model"} <= set(os.listdir(model_dir))


@pytest.fixture(scope="module")
def trained(run):
    _, model_dir, _ = run
    model, tokenizer, config = translation.load_trained(str(model_dir))
    return model, tokenizer, translation.make_translator(model, tokenizer, config)


def keras_log_probs(model, tokenizer, source, hypothesis):
    """log P(hypothesis + EOS | source) per step from the training model (teacher forcing)."""
    source_ids = tokenizer.encode(tf.constant([source])).to_tensor()
    target_in = tf.constant([[BOS_ID, *hypothesis]], tf.int32)
    logits = model([source_ids, target_in], training=False)
    return tf.nn.log_softmax(logits)[0].numpy()


def test_greedy_and_beam_decoding_agree_with_the_keras_model(trained):
    model, tokenizer, translator = trained
    sources = [s for s, _ in PAIRS[:3]]
    out = translator.translate(tf.constant(sources), tf.constant([1, 3, 2]), tf.constant([0.0, 0.0, 0.6]),
                               tf.constant([0, 0, 0]))
    n_best, scores = out["n_best"].numpy(), out["scores"].numpy()
    assert list(out["translation"].numpy()) == list(n_best[:, 0]) and n_best.shape == scores.shape == (3, 3)
    assert n_best[0, 1] == b"" and np.isneginf(scores[0, 1:]).all() and np.isneginf(scores[2, 2])
    assert all(np.all(np.diff(row[np.isfinite(row)]) <= 0) for row in scores)
    for row, (source, alpha) in enumerate(zip(sources, [0.0, 0.0, 0.6])):
        for k in range(3):
            if not np.isfinite(scores[row, k]):
                continue
            pieces = tokenizer.encode(tf.constant([n_best[row, k]])).to_list()[0]
            log_p = keras_log_probs(model, tokenizer, source, pieces)
            log_prob = sum(log_p[i, p] for i, p in enumerate([*pieces, EOS_ID]))
            penalty = ((5.0 + len(pieces) + 1) / 6.0) ** alpha
            assert scores[row, k] == pytest.approx(log_prob / penalty, abs=1e-3)
            if row == 0:  # greedy: every piece is the Keras model's argmax
                assert list(np.argmax(log_p, axis=1)) == [*pieces, EOS_ID]


def test_bad_requests_are_invalid_arguments(trained):
    _, _, translator = trained
    good = dict(beam_width=tf.constant([2]), length_penalty=tf.constant([0.6]), max_length=tf.constant([0]))
    for name, value, message in (("beam_width", [0], "beam_width must be >= 1"),
                                 ("beam_width", [17], "beam_width must be <= 16"),
                                 ("length_penalty", [float("nan")], "length_penalty must be >= 0"),
                                 ("max_length", [25], "max_length must be <= 24"),
                                 ("max_length", [0, 1], "max_length needs one value per source")):
        arguments = {**good, name: tf.constant(value, good[name].dtype)}
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            translator.translate(tf.constant(["the red file"]), **arguments)


def test_every_allowed_tf_text_op_exists():
    from tensorflow.python.framework import op_def_registry
    import tensorflow_text  # noqa: F401  (registers its ops)

    assert [op for op in sorted(SERVING_TEXT_OPS) if op_def_registry.get(op) is None] == []


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (as TF Serving links it)
    loaded = tf.saved_model.load(sys.argv[1])
    request = json.loads(sys.argv[2])
    out = loaded.signatures["translate"](
        source=tf.constant(request["source"]), beam_width=tf.constant(request["beam_width"], tf.int32),
        length_penalty=tf.constant(request["length_penalty"], tf.float32),
        max_length=tf.constant(request["max_length"], tf.int32))
    assert not any(m == "rnnzoo" or m.startswith("rnnzoo.") for m in sys.modules), "rnnzoo was imported"
    print(json.dumps({"n_best": [[t.decode("utf-8") for t in row] for row in out["n_best"].numpy()],
                      "scores": out["scores"].numpy().tolist()}))
    """
)


@pytest.fixture(scope="module")
def exported(run):
    root, model_dir, _ = run
    return export_run(str(model_dir), str(root / "export"))


def test_fresh_process_with_only_tensorflow_translates_like_the_translator(trained, exported, tmp_path):
    _, _, translator = trained
    request = {"source": ["the red file one is open", "", "the black file six is open"],
               "beam_width": [4, 1, 2], "length_penalty": [0.6, 0.0, 1.0], "max_length": [0, 3, 5]}
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([sys.executable, str(script), exported, json.dumps(request)], capture_output=True,
                            text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    ours = translator.translate(tf.constant(request["source"]), tf.constant(request["beam_width"]),
                                tf.constant(request["length_penalty"]), tf.constant(request["max_length"]))
    assert served["n_best"] == [[t.decode("utf-8") for t in row] for row in ours["n_best"].numpy()]
    np.testing.assert_allclose(served["scores"], ours["scores"].numpy(), rtol=1e-5)
    assert all(len(t.split()) <= 5 for t in served["n_best"][2])  # max_length 5 pieces


def test_served_by_rnnzoo_serve_through_the_client(trained, exported):
    from rnnzoo.serving import Client, ModelServer, ServerOptions

    _, _, translator = trained
    server = ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="seq2seq",
                                       model_base_path=os.path.dirname(exported),
                                       file_system_poll_wait_seconds=0)).start()
    try:
        with Client(f"127.0.0.1:{server.grpc_port}") as client:
            client.wait_until_available("seq2seq")
            sources = ["the green file two is open", "the blue file five is open"]
            n_best = client.translate("seq2seq", sources, beam_width=[3, 1])
            expected = translator.translate(tf.constant(sources), tf.constant([3, 1]), tf.constant([0.6, 0.6]),
                                            tf.constant([0, 0]))
            for row, hypotheses in enumerate(n_best):
                texts = [t.decode("utf-8") for t in expected["n_best"].numpy()[row] if t]
                assert [t for t, _ in hypotheses] == texts
                np.testing.assert_allclose([s for _, s in hypotheses],
                                           expected["scores"].numpy()[row][: len(texts)], rtol=1e-5)
            with pytest.raises(Exception, match="beam_width must be >= 1"):
                client.translate("seq2seq", ["the red file"], beam_width=0)
    finally:
        server.stop()


def test_rnnzoo_export_sets_the_translate_size_caps(run):
    root, model_dir, _ = run
    base = root / "capped"
    result = subprocess.run([sys.executable, "-m", "rnnzoo.cli.export", f"--model_dir={model_dir}",
                             f"--export_base={base}", "--max_beam_width=3", "--max_decode_length=7"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    translate = tf.saved_model.load(result.stdout.strip().splitlines()[-1]).signatures["translate"]
    source, alpha = tf.constant(["the red file"]), tf.constant([0.6])
    translate(source=source, beam_width=tf.constant([3]), length_penalty=alpha, max_length=tf.constant([7]))
    for beam_width, max_length, message in ((4, 7, "beam_width must be <= 3"), (3, 8, "max_length must be <= 7")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            translate(source=source, beam_width=tf.constant([beam_width]), length_penalty=alpha,
                      max_length=tf.constant([max_length]))


@pytest.mark.slow
def test_layerwise_pretraining_trains_every_lstm_of_both_stacks(run, tmp_path):
    root, _, _ = run
    config = dict(corpus=str(root / "pairs.tsv"), vocab_size=40, units=16, embedding_dim=8)
    runs = {}
    for steps in (0, 6):  # the same initialisation and supervised step, with and without pretraining
        metrics = train(TrainConfig(model="seq2seq", batch_size=8, train_steps=1, eval_every=1,
                                    model_dir=str(tmp_path / str(steps)), verbose=0), pretrain_steps=steps, **config)
        runs[steps] = translation.load_trained(str(tmp_path / str(steps)))[0], metrics
    stats = runs[6][1]["pretraining"]
    assert "pretraining" not in runs[0][1]
    assert [s["layer"] for s in stats["encoder"]] == [1, 2] and [s["layer"] for s in stats["decoder"]] == [1, 2]
    assert all(s["steps"] == 6 and np.isfinite(s["last_loss"]) for s in stats["encoder"] + stats["decoder"])
    for name in ("source_rnn_1", "source_rnn_2", "target_rnn_1", "target_rnn_2"):
        kernels = [(m.get_layer("encoder") if name.startswith("source") else m).get_layer(name).get_weights()[0]
                   for m, _ in runs.values()]
        assert kernels[0].shape == kernels[1].shape and not np.allclose(kernels[0], kernels[1])


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "resrnn"])
def test_other_cells_train_and_translate(run, tmp_path, cell):
    root, _, _ = run
    model_dir = tmp_path / cell
    train(TrainConfig(model="seq2seq", batch_size=8, train_steps=4, eval_every=4, model_dir=str(model_dir),
                      verbose=0), corpus=str(root / "pairs.tsv"), vocab_size=40, units=12, embedding_dim=8, cell=cell)
    model, tokenizer, config = translation.load_trained(str(model_dir))
    out = translation.make_translator(model, tokenizer, config).translate(
        tf.constant(["the red file one is open"]), tf.constant([2]), tf.constant([0.6]), tf.constant([4]))
    assert out["n_best"].shape == (1, 2) and np.isfinite(out["scores"].numpy()[0, 0])


def test_eval_decodings_score_one_model_under_every_decoding(run, trained):
    root, model_dir, _ = run
    _, tokenizer, config = translation.load_trained(str(model_dir))
    model = trained[0]
    config.eval_decodings = "1:0,4:0.6,4:0,12:1"
    test = PAIRS[:10]
    evaluate = translation.make_evaluate(tokenizer, config, test, [])
    values = evaluate(model)
    assert values["bleu_beam1_alpha0"] == values["bleu_greedy"]
    assert values["bleu_beam4_alpha0.6"] == values["bleu"]  # the default eval decoding
    translator = trained[2]
    sources, references = [s for s, _ in test], [t for _, t in test]
    for width, alpha in ((4, 0.0), (12, 1.0)):
        expected = translation.scores.score_translations(
            translation.translate_all(translator, sources, width, alpha), references)["bleu"]
        assert values[translation.decoding_metric(width, alpha)] == pytest.approx(expected)


@pytest.mark.parametrize("text, fix", [("4", "WIDTH:ALPHA"), ("0:0.6", "1..max_beam_width=16"),
                                       ("17:0", "raise --max_beam_width"), ("4:-1", ">= 0"),
                                       ("4:nan", ">= 0")])
def test_bad_eval_decodings_name_the_item_and_the_fix(text, fix):
    with pytest.raises(ValueError, match=fix) as error:
        translation.check_config(translation.Seq2SeqConfig(eval_decodings=text))
    assert repr(text) in str(error.value)


@pytest.mark.parametrize("value", [-1, 2.5, True])
def test_bad_test_max_tokens_names_the_value_and_the_flag(value):
    with pytest.raises(ValueError, match=rf"got {value!r} \(--test_max_tokens\)"):
        translation.check_config(translation.Seq2SeqConfig(test_max_tokens=value))


@pytest.mark.skipif(not os.path.exists("/usr/share/wordnet/data.noun"),
                    reason="WordNet 3.0 is not installed (apt-get install wordnet-base wordnet-sense-index)")
def test_an_english_target_adds_meteor_of_the_beam_translations(run, trained):
    from rnnzoo.zoo.translation.meteor import meteor

    _, model_dir, metrics = run
    assert "meteor" not in metrics  # a TSV corpus does not say its target is English
    _, tokenizer, config = translation.load_trained(str(model_dir))
    config.target_language = "en"
    test = PAIRS[:10]
    values = translation.make_evaluate(tokenizer, config, test, [])(trained[0])
    beam = translation.translate_all(trained[2], [s for s, _ in test], config.eval_beam_width,
                                     config.eval_length_penalty)
    assert values["meteor"] == pytest.approx(meteor(beam, [t for _, t in test]))
    assert 0 <= values["meteor"] <= 100
