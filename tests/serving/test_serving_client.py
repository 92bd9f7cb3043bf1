"""`rnnzoo.serving.Client` and `rnnzoo-query` against models implementing the zoo's signature contracts."""

import json
import math
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from conftest import WEIGHTS, install, start_server

from rnnzoo.serving import Client

rng = np.random.default_rng(0)
W_V = rng.normal(scale=0.5, size=(8, 3)).astype(np.float32)  # [observation; target] -> hidden
W_H = rng.normal(scale=0.5, size=(3, 3)).astype(np.float32)  # hidden -> hidden
W_U = rng.normal(scale=0.5, size=(3, 2)).astype(np.float32)  # hidden -> torque


class ContractModel(tf.Module):
    """A uniform character LM over {a, b}, a word-reversing 'translator' and a tanh RNN controller."""

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"), tf.TensorSpec([None], tf.int32, name="max_length"),
        tf.TensorSpec([None], tf.float32, name="temperature"), tf.TensorSpec([None], tf.int64, name="seed"),
    ])
    def generate(self, prompt, max_length, temperature, seed):
        def one(args):
            p, m, s = args
            draws = tf.random.stateless_uniform([m], seed=tf.stack([s, tf.constant(0, tf.int64)]), maxval=2, dtype=tf.int32)
            return p + tf.strings.reduce_join(tf.gather(tf.constant(["a", "b"]), draws))

        return {"text": tf.map_fn(one, (prompt, max_length, seed), fn_output_signature=tf.string)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def score(self, text):
        n = tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.float32)
        return {"bits_per_char": tf.ones_like(n), "log_prob": -n * math.log(2.0)}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="source"), tf.TensorSpec([None], tf.int32, name="beam_width"),
        tf.TensorSpec([None], tf.float32, name="length_penalty"), tf.TensorSpec([None], tf.int32, name="max_length"),
    ])
    def translate(self, source, beam_width, length_penalty, max_length):
        """n-best: the words reversed (score -0.5 - length_penalty), then the source (-1.5 - max_length) if
        beam_width > 1, else an empty slot scored -inf."""
        words = tf.strings.split(source)
        reversed_words = tf.strings.reduce_join(tf.reverse(words.to_tensor(""), [1]), axis=1, separator=" ")
        reversed_words = tf.strings.strip(reversed_words)
        wide = beam_width > 1
        n_best = tf.stack([reversed_words, tf.where(wide, source, "")], axis=1)
        second = tf.where(wide, -1.5 - tf.cast(max_length, tf.float32), -float("inf"))
        return {"translation": reversed_words, "n_best": n_best, "scores": tf.stack([-0.5 - length_penalty, second], 1)}

    @tf.function(input_signature=[
        tf.TensorSpec([None, 4], tf.float32, name="observation"), tf.TensorSpec([None, 4], tf.float32, name="target"),
        tf.TensorSpec([None, 3], tf.float32, name="state"),
    ])
    def control_step(self, observation, target, state):
        """thesis eq. in §6.5: h_t = tanh(W_hv [x_t; c_t] + W_hh h_{t-1}), u_t = tanh(W_hu h_t)."""
        h = tf.tanh(tf.concat([observation, target], 1) @ W_V + state @ W_H)
        return {"torque": tf.tanh(h @ W_U), "state": h}


def reference_control(observation, target, state):
    h = np.tanh(np.concatenate([observation, target], 1) @ W_V + state @ W_H)
    return np.tanh(h @ W_U), h


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory, toy_versions):
    root = tmp_path_factory.mktemp("contract")
    module = ContractModel()
    tf.saved_model.save(module, str(root / "export"), signatures={
        "generate": module.generate, "score": module.score, "translate": module.translate,
        "control_step": module.control_step,
    })
    install(str(root / "export"), str(root / "zoo"), 1)
    install(toy_versions[1], str(root / "toy"), 1)
    (root / "models.config").write_text(
        f'model_config_list {{ config {{ name: "zoo" base_path: "{root / "zoo"}" }} '
        f'config {{ name: "toy" base_path: "{root / "toy"}" }} }}'
    )
    server = start_server(model_config_file=str(root / "models.config"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(contract_server):
    with Client(f"127.0.0.1:{contract_server.grpc_port}") as c:
        yield c


def test_generic_predict_status_and_signatures(client):
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    outputs = client.predict("toy", {"x": x})
    np.testing.assert_allclose(outputs["y"], x @ WEIGHTS + 1.0, rtol=1e-6)
    assert client.last_model_spec.version.value == 1
    text = client.predict("toy", {"text": ["ab", b"\xff"]}, signature="text", output_filter=["upper_bytes"])
    assert list(text) == ["upper_bytes"] and text["upper_bytes"].tolist() == [b"AB", b"\xff"]
    assert client.model_status("toy") == [{"version": 1, "state": "AVAILABLE", "error_code": 0, "error_message": ""}]
    assert client.wait_until_available("zoo", timeout=10) == 1
    assert set(client.signatures("zoo")) >= {"generate", "score", "translate", "control_step"}
    with pytest.raises(grpc.RpcError) as info:
        client.predict("nope", {"x": x})
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(ValueError, match="not both"):
        client.predict("toy", {"x": x}, version=1, label="stable")


def test_generate_passes_prompt_length_and_seed(client):
    texts = client.generate("zoo", ["ab", "b"], max_length=[5, 9], temperature=0.7, seed=3)
    assert [len(t) for t in texts] == [7, 10]
    assert texts[0].startswith("ab") and texts[1].startswith("b")
    assert set("".join(texts)) <= {"a", "b"}
    assert client.generate("zoo", "x", max_length=40, seed=11) == client.generate("zoo", "x", max_length=40, seed=11)
    assert client.generate("zoo", "x", max_length=40, seed=11) != client.generate("zoo", "x", max_length=40, seed=12)
    assert len(client.generate("zoo", "x", max_length=4, temperature=0.0)[0]) == 5  # 0 = greedy
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="temperature must be >= 0"):
            client.generate("zoo", "x", temperature=bad)
    with pytest.raises(ValueError, match="2 values for 1 rows"):
        client.generate("zoo", "x", max_length=[1, 2])


def test_score_translate_control(client):
    scores = client.score("zoo", ["abba", "\u00e9t\u00e9"])
    np.testing.assert_allclose(scores["bits_per_char"], [1.0, 1.0])
    np.testing.assert_allclose(scores["log_prob"], [-4 * math.log(2), -3 * math.log(2)], rtol=1e-6)
    beams = client.translate("zoo", ["open the file", "hello"])  # the contract's defaults: alpha 0.6, max_length 0
    assert [[t for t, _ in beam] for beam in beams] == [["file the open", "open the file"], ["hello", "hello"]]
    np.testing.assert_allclose([[s for _, s in beam] for beam in beams], [[-1.1, -1.5]] * 2, rtol=1e-6)
    narrow = client.translate("zoo", "open the file", beam_width=1, length_penalty=0.0)
    assert narrow == [[("file the open", -0.5)]]  # the empty slot (score -inf) is left out
    assert client.translate("zoo", ["a", "b"], max_length=[3, 4])[1][1] == ("b", -5.5)
    with pytest.raises(ValueError, match=r"beam_width must be >= 1 \(beam width; 1 decodes greedily\), got 0"):
        client.translate("zoo", "a", beam_width=0)
    observation = np.array([[0.1, 0.2, 0.0, 0.0], [1.0, -1.0, 0.5, 0.5]], np.float32)
    target = np.array([[0.5, 1.2, 0.0, 0.0]] * 2, np.float32)
    torque, state = client.control_step("zoo", observation, target)  # zero initial state, sized from the signature
    want_torque, want_state = reference_control(observation, target, np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(torque, want_torque, rtol=1e-5, atol=1e-6)
    torque2, _ = client.control_step("zoo", observation, target, state)
    np.testing.assert_allclose(torque2, reference_control(observation, target, want_state)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"observation has shape \[1, 2\]; the control_step contract wants \[b, 4\]"):
        client.control_step("zoo", [[0.0, 0.0]], [[0.0, 0.0]])
    with pytest.raises(ValueError, match="target has 1 values for 2 rows"):
        client.control_step("zoo", observation, target[:1])


def test_rnnzoo_query_cli(contract_server):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = f"--server=127.0.0.1:{contract_server.grpc_port}"
    out = subprocess.run(
        [sys.executable, "-m", "rnnzoo.cli.query", server, "--model=zoo", "generate", "--prompt=ab", "--prompt=b",
         "--max_length=4", "--seed=5"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert out.returncode == 0, out.stderr
    texts = json.loads(out.stdout)["text"]
    assert [len(t) for t in texts] == [6, 5] and texts[0].startswith("ab")
    refused = subprocess.run(
        [sys.executable, "-m", "rnnzoo.cli.query", server, "--model=nope", "status"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert refused.returncode == 1 and "NOT_FOUND" in refused.stderr


def test_rnnzoo_query_translate_takes_text_or_source(contract_server, client):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    expected = [[{"text": t, "score": s} for t, s in beam] for beam in client.translate("zoo", ["open the file"])]
    for flag in ("--text", "--source"):
        out = subprocess.run(
            [sys.executable, "-m", "rnnzoo.cli.query", f"--server=127.0.0.1:{contract_server.grpc_port}",
             "--model=zoo", "translate", f"{flag}=open the file"],
            capture_output=True, text=True, timeout=120, env=env,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["translations"] == expected
