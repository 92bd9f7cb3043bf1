"""Char-LM SavedModel export: TF Serving layout, signatures, fresh-process parity, warmup, parity check, serving."""

import json
import os
import subprocess
import sys
import textwrap
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.export import (
    ServingParityError,
    check_serving_parity,
    next_version,
    read_warmup_requests,
    save_for_serving,
)
from rnnzoo.zoo.char_lm import export_char_lm, export_model_dir
from rnnzoo.zoo.char_lm import text_evaluation
from rnnzoo.data.char_tokenizer import START
from tests.char_lm_runs import train_char_lm

TEXT = "the cat sat on the mat. a dog ran to the log. "


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def trained(run_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(TEXT * 40, encoding="utf-8")
    model, vocabulary, _ = train_char_lm(run_dir, path, steps=60, units=24, holdout_chars=200)
    return model, vocabulary


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    model, vocabulary = trained
    base = str(tmp_path_factory.mktemp("exports"))
    return export_char_lm(model, vocabulary, base)


def keras_log_softmax(model, ids):
    logits = np.asarray(model(np.asarray(ids, np.int32)[None], training=False), np.float64)[0]
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def context_ids(vocabulary, text):
    return [int(vocabulary.encode(START)[0])] + vocabulary.encode(text).tolist()


def greedy_reference(model, vocabulary, prompt, length):
    ids = context_ids(vocabulary, prompt)
    for _ in range(length):
        ids.append(int(np.argmax(keras_log_softmax(model, ids)[-1])))
    return prompt + vocabulary.decode(ids[len(ids) - length :])


def keras_log_prob(model, vocabulary, text):
    ids = context_ids(vocabulary, text)
    return sum(keras_log_softmax(model, ids[:-1])[i, ids[i + 1]] for i in range(len(text)))


def test_versions_follow_tf_serving_layout(trained, tmp_path):
    model, vocabulary = trained
    base = str(tmp_path / "char_lm")
    assert next_version(base) == 1
    first = export_char_lm(model, vocabulary, base)
    assert first == os.path.join(base, "1") and os.path.exists(os.path.join(first, "saved_model.pb"))
    assert export_char_lm(model, vocabulary, base, version=5) == os.path.join(base, "5")
    assert next_version(base) == 6
    with pytest.raises(ValueError, match=r"5 exists already; pass another --version \(next free: 6\)"):
        export_char_lm(model, vocabulary, base, version=5)
    assert sorted(os.listdir(base)) == ["1", "5"]  # no staging directories left behind


def test_signatures_are_the_contract(exported):
    loaded = tf.saved_model.load(exported)
    assert set(loaded.signatures) == {"serving_default", "generate", "score"}
    for name in ("serving_default", "generate"):
        inputs = loaded.signatures[name].structured_input_signature[1]
        assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
            "prompt": (tf.string, [None]), "max_length": (tf.int32, [None]),
            "temperature": (tf.float32, [None]), "seed": (tf.int64, [None]),
        }
        outputs = loaded.signatures[name].structured_outputs
        assert {k: v.dtype for k, v in outputs.items()} == {"text": tf.string}
    outputs = loaded.signatures["score"].structured_outputs
    assert {k: v.dtype for k, v in outputs.items()} == {"bits_per_char": tf.float32, "log_prob": tf.float32}


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (as TF Serving links it)
    loaded = tf.saved_model.load(sys.argv[1])
    request = json.loads(sys.argv[2])
    generate = loaded.signatures["generate"](
        prompt=tf.constant(request["prompt"]),
        max_length=tf.constant(request["max_length"], tf.int32),
        temperature=tf.constant(request["temperature"], tf.float32),
        seed=tf.constant(request["seed"], tf.int64))
    default = loaded.signatures["serving_default"](
        prompt=tf.constant(request["prompt"]),
        max_length=tf.constant(request["max_length"], tf.int32),
        temperature=tf.constant(request["temperature"], tf.float32),
        seed=tf.constant(request["seed"], tf.int64))
    score = loaded.signatures["score"](text=tf.constant(request["text"]))
    assert not any(m == "rnnzoo" or m.startswith("rnnzoo.") for m in sys.modules), "rnnzoo was imported"
    print(json.dumps({
        "text": [t.decode("utf-8") for t in generate["text"].numpy()],
        "default": [t.decode("utf-8") for t in default["text"].numpy()],
        "log_prob": score["log_prob"].numpy().tolist(),
        "bits_per_char": score["bits_per_char"].numpy().tolist(),
    }))
    """
)


def test_fresh_process_without_rnnzoo_reproduces_the_keras_model(trained, exported, tmp_path):
    model, vocabulary = trained
    request = {
        "prompt": ["the cat ", "", "d€g", "a dog ", "the"],
        "max_length": [12, 6, 4, 0, 20],
        "temperature": [0.0, 0.0, 0.0, 1.0, 0.9],
        "seed": [1, 2, 3, 4, 5],
        "text": ["the cat sat", "", "ü is unknown", "a dog ran to the log."],
    }
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([sys.executable, str(script), exported, json.dumps(request)], capture_output=True,
                            text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["default"] == served["text"]
    for i in range(3):  # greedy rows: the Keras model's own argmax decoding
        assert served["text"][i] == greedy_reference(model, vocabulary, request["prompt"][i], request["max_length"][i])
    assert served["text"][3] == "a dog "  # max_length 0
    sampled = text_evaluation.sample(model, vocabulary, request["prompt"], request["max_length"], request["temperature"],
                             request["seed"])
    assert served["text"] == sampled
    assert len(served["text"][4]) == 23
    for text, log_prob, bits in zip(request["text"], served["log_prob"], served["bits_per_char"]):
        expected = keras_log_prob(model, vocabulary, text)
        assert log_prob == pytest.approx(expected, abs=1e-4)
        assert bits == pytest.approx(-expected / np.log(2) / len(text) if text else 0.0, abs=1e-5)


def test_warmup_records_replay_through_every_signature(exported):
    requests = read_warmup_requests(exported)
    assert [r.model_spec.signature_name for r in requests] == ["serving_default", "generate", "score"]
    loaded = tf.saved_model.load(exported)
    for request in requests:
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert all(v.shape[0] == inputs[next(iter(inputs))].shape[0] for v in outputs.values())
    generate = requests[1]
    assert tf.make_ndarray(generate.inputs["prompt"]).tolist()[1] == b""
    assert tf.make_ndarray(generate.inputs["max_length"]).tolist()[2] == 0


def planted(body):
    """A module whose one signature computes `body(x)`."""

    class Planted(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": body(x)}

    return Planted()


def test_parity_check_catches_a_planted_py_function(tmp_path):
    module = planted(lambda x: tf.py_function(lambda v: v * 2.0, [x], tf.float32))
    with pytest.raises(ServingParityError, match=r"EagerPyFunc \(tf.py_function / tf.numpy_function\).*no Python"):
        save_for_serving(module, str(tmp_path / "py"), {"serving_default": module.serve})
    module = planted(lambda x: tf.numpy_function(lambda v: v * 2.0, [x], tf.float32))
    with pytest.raises(ServingParityError, match=r"op PyFunc"):
        save_for_serving(module, str(tmp_path / "np"), {"serving_default": module.serve})


def test_parity_check_catches_float16_at_the_signature_boundary(tmp_path):
    module = planted(lambda x: tf.cast(x, tf.float16))
    with pytest.raises(ServingParityError, match=r"signature 'serving_default' output 'y' is float16"):
        save_for_serving(module, str(tmp_path / "half"), {"serving_default": module.serve})
    module = planted(lambda x: tf.cast(tf.cast(x, tf.float16) * 2, tf.float32))  # inside the graph: fine
    assert save_for_serving(module, str(tmp_path / "ok"), {"serving_default": module.serve}) == str(tmp_path / "ok")


def test_parity_check_catches_ops_tf_serving_does_not_link(tmp_path):
    import tensorflow_text as text

    class Binarize(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def bits(self, t):
            return {"bits": text.utf8_binarize(t)}

    module = Binarize()
    with pytest.raises(ServingParityError, match=r"op TFText>Utf8Binarize in .* not a core TensorFlow op nor a tf-text op"):
        save_for_serving(module, str(tmp_path / "b"), {"serving_default": module.bits})
    check_serving_parity(str(tmp_path / "b"), extra_ops=["TFText>Utf8Binarize"])  # a build that links it


def test_parity_check_catches_untracked_resources(tmp_path):
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(["a"], [1]), default_value=0)

    class Untracked(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="k")])
        def lookup(self, k):
            return {"v": table.lookup(k)}

    module = Untracked()
    with pytest.raises(ServingParityError, match="resource no exported object tracks"):
        save_for_serving(module, str(tmp_path / "u"), {"serving_default": module.lookup})


def test_parity_check_on_a_directory_without_a_saved_model(tmp_path):
    with pytest.raises(ServingParityError, match="holds no saved_model.pb"):
        check_serving_parity(str(tmp_path))


def run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "rnnzoo.cli.export", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_rnnzoo_export_cli(trained, run_dir, tmp_path):
    model, vocabulary = trained
    base = tmp_path / "serving"
    first = run_cli(f"--model_dir={run_dir}", f"--export_base={base}")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.strip().splitlines()[-1] == str(base / "1")
    loaded = tf.saved_model.load(str(base / "1"))
    text = loaded.signatures["generate"](prompt=tf.constant(["the cat "]), max_length=tf.constant([8]),
                                         temperature=tf.constant([0.0]), seed=tf.constant([0], tf.int64))["text"]
    assert text.numpy()[0].decode() == greedy_reference(model, vocabulary, "the cat ", 8)
    again = run_cli(f"--model_dir={run_dir}", f"--export_base={base}", "--version=1")
    assert again.returncode == 1 and "exists already" in again.stderr
    with pytest.raises(ValueError, match="is no trained char LM"):
        export_model_dir(str(tmp_path / "nothing"), str(base))


def test_served_by_rnnzoo_serve_through_client_and_rest(trained, exported):
    from rnnzoo.serving import Client, ModelServer, ServerOptions

    model, vocabulary = trained
    base = os.path.dirname(exported)
    server = ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="char_lm",
                                       model_base_path=base, file_system_poll_wait_seconds=0)).start()
    try:
        with Client(f"127.0.0.1:{server.grpc_port}") as client:
            client.wait_until_available("char_lm")
            texts = client.generate("char_lm", ["the cat ", "a dog"], max_length=[10, 15], temperature=0.7, seed=[3, 4])
            assert texts == text_evaluation.sample(model, vocabulary, ["the cat ", "a dog"], [10, 15], 0.7, [3, 4])
            scored = client.score("char_lm", ["the cat sat", "ü"])
            np.testing.assert_allclose(
                scored["log_prob"], [keras_log_prob(model, vocabulary, t) for t in ["the cat sat", "ü"]], atol=1e-4
            )
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/char_lm:predict"

        def post(body):
            request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())

        row = post({"signature_name": "generate", "instances": [
            {"prompt": "the cat ", "max_length": 9, "temperature": 0.0, "seed": 1}]})
        columnar = post({"inputs": {"prompt": ["the cat "], "max_length": [9], "temperature": [0.0], "seed": [1]}})
        expected = greedy_reference(model, vocabulary, "the cat ", 9)
        assert row["predictions"] == [expected]
        assert columnar["outputs"] == [expected]
        with pytest.raises(urllib.error.HTTPError) as error:
            post({"signature_name": "generate", "instances": [
                {"prompt": "x", "max_length": -1, "temperature": 0.0, "seed": 1}]})
        assert error.value.code == 400  # INVALID_ARGUMENT from the graph's assertion
        assert "max_length must be >= 0" in json.loads(error.value.read())["error"]
    finally:
        server.stop()
