"""`rnnzoo-export` of pathological, sequence-classifier and autoencoder runs: the `predict` contract
as `serving_default`, loaded in a process without rnnzoo, served by rnnzoo-serve, errors."""

import json
import dataclasses
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.export import ServingParityError, export_keras_model, export_run, run_family, write_export
from rnnzoo.training import registry
from rnnzoo.training.loop import TrainConfig, train
from rnnzoo.training.run_directory import RunDirectory

SEQ_LEN = 20


def cli(module, *args):
    """Runs a binary as a user would: without TF_CPP_MIN_LOG_LEVEL in the environment."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.fixture(scope="module")
def resrnn_run(tmp_path_factory):
    """The issue's done-when commands: rnnzoo-train a resrnn on addition, then rnnzoo-export it."""
    root = tmp_path_factory.mktemp("resrnn")
    run, base = root / "run", root / "serving"
    trained = cli("rnnzoo.cli.train", "--model=resrnn", "--task=addition", f"--seq_len={SEQ_LEN}",
                  "--train_steps=20", "--eval_every=10", "--batch_size=32", f"--model_dir={run}", "--verbose=0")
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported = cli("rnnzoo.cli.export", f"--model_dir={run}", f"--export_base={base}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert exported.stdout.strip().splitlines() == [str(base / "1")]
    # Quiet binaries: no TensorFlow start-up notices or SavedModel INFO lines.
    assert trained.stderr == "" and exported.stderr == "", (trained.stderr, exported.stderr)
    registry.load_families()  # rnnzoo's layers, for loading the Keras checkpoint here
    model = RunDirectory(run).load_model(compile=False)
    return run, base, model


def addition_inputs(rows, seed=0):
    """Addition-problem sequences (value, marker) with two marked steps per row."""
    rng = np.random.default_rng(seed)
    x = np.zeros((rows, SEQ_LEN, 2), np.float32)
    x[..., 0] = rng.uniform(-1, 1, (rows, SEQ_LEN))
    for row in range(rows):
        x[row, rng.choice(SEQ_LEN, 2, replace=False), 1] = 1.0
    return x


FRESH_PROCESS = textwrap.dedent(
    """
    import json, os, sys
    sys.modules["rnnzoo"] = None  # rnnzoo cannot be imported here: only TensorFlow serves the export
    sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "rnnzoo"))]
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    serve = loaded.signatures["serving_default"]
    x = np.asarray(json.loads(sys.argv[2]), np.float32)
    inputs = {k: (v.dtype.name, v.shape.as_list()) for k, v in serve.structured_input_signature[1].items()}
    print(json.dumps({"inputs": inputs, "output": serve(inputs=tf.constant(x))["output"].numpy().tolist()}))
    """
)


def test_done_when_a_process_with_only_tensorflow_loads_and_calls_the_resrnn_export(resrnn_run, tmp_path):
    _, base, model = resrnn_run
    x = addition_inputs(5)
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([sys.executable, str(script), str(base / "1"), json.dumps(x.tolist())],
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["inputs"] == {"inputs": ["float32", [None, SEQ_LEN, 2]]}
    expected = np.asarray(model(x, training=False))
    assert np.ptp(expected) > 1e-4  # the outputs depend on the inputs, so equality means something
    np.testing.assert_allclose(served["output"], expected, rtol=1e-5, atol=1e-6)


def test_export_serve_and_client_predict_round_trip(resrnn_run):
    from rnnzoo.serving import Client, ModelServer, ServerOptions

    _, base, model = resrnn_run
    x = addition_inputs(4, seed=1)
    expected = np.asarray(model(x, training=False))
    server = ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="addition",
                                       model_base_path=str(base), file_system_poll_wait_seconds=0)).start()
    try:
        with Client(f"127.0.0.1:{server.grpc_port}") as client:
            assert client.wait_until_available("addition") == 1
            np.testing.assert_allclose(client.predict("addition", {"inputs": x})["output"], expected,
                                       rtol=1e-5, atol=1e-6)
            # through the contract: lists become float32, the signature is serving_default
            called = client.call("addition", "predict", {"inputs": x.tolist()})
            np.testing.assert_allclose(called["output"], expected, rtol=1e-5, atol=1e-6)
            with pytest.raises(ValueError, match=r"predict input 'inputs' must be float32"):
                client.call("addition", "predict", {"inputs": [["a"]]})
    finally:
        server.stop()


def test_versions_warmup_and_errors_of_run_exports(resrnn_run, tmp_path):
    run, base, model = resrnn_run
    assert run_family(str(run)) == "pathological"
    second = export_run(str(run), str(tmp_path / "b"), version=2)
    assert second == str(tmp_path / "b" / "2")
    with pytest.raises(ValueError, match=r"exists already; pass another --version \(next free: 3\)"):
        export_run(str(run), str(tmp_path / "b"), version=2)
    with pytest.raises(ValueError, match="max_generate does not apply to pathological runs"):
        export_run(str(run), str(tmp_path / "b"), max_generate=10)
    assert sorted(os.listdir(tmp_path / "b")) == ["2"]  # no staging directory left behind
    with pytest.raises(ValueError, match=r"is no rnnzoo training run.*rnnzoo-train --model=\.\.\. --model_dir"):
        export_run(str(tmp_path / "nothing"), str(tmp_path / "b"))
    from rnnzoo.export import read_warmup_requests

    (warmup,) = read_warmup_requests(str(base / "1"))
    assert warmup.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(warmup.inputs["inputs"]).shape == (2, SEQ_LEN, 2)


def test_a_family_without_exporter_is_named(resrnn_run, tmp_path, monkeypatch):
    run, _, _ = resrnn_run
    family = registry.get_family("resrnn")
    monkeypatch.setitem(registry._FAMILIES, "pathological", dataclasses.replace(family, export=None))
    with pytest.raises(ValueError, match=r"family 'pathological'.*no exporter yet; declare one as its Family's `export`"):
        export_run(str(run), str(tmp_path / "b"))


def test_a_failing_check_leaves_no_version_behind(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def half(x):
        return {"y": tf.cast(x, tf.float16)}

    base = tmp_path / "b"
    with pytest.raises(ServingParityError, match="signature 'serving_default' output 'y' is float16"):
        write_export(tf.Module(), {"predict": half}, str(base))
    assert os.listdir(base) == []


@pytest.mark.parametrize("model_name, task, options", [
    ("deep_lstm", "addition", {"units": 6, "layers": 2}),
    ("deep_autoencoder", "digits", {"encoder_sizes": "16,4"}),
])
def test_sequence_classifier_and_autoencoder_runs_export_their_forward_pass(tmp_path, model_name, task, options):
    run = tmp_path / "run"
    config = TrainConfig(model=model_name, task=task, seq_len=8 if task == "addition" else None, batch_size=8,
                         train_steps=2, eval_every=2, test_size=16, model_dir=str(run), verbose=0)
    train(config, **options)
    family = {"deep_lstm": "sequence_classifier", "deep_autoencoder": "autoencoder"}[model_name]
    assert run_family(str(run)) == family
    export_dir = export_run(str(run), str(tmp_path / "serving"))
    model = RunDirectory(run).load_model(compile=False)
    (name,) = [t.name for t in model.inputs]
    x = np.random.default_rng(0).uniform(0, 1, (3, *model.inputs[0].shape[1:])).astype(np.float32)
    (outputs,) = tf.saved_model.load(export_dir).signatures["serving_default"](**{name: tf.constant(x)}).values()
    np.testing.assert_allclose(outputs.numpy(), np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-6)


def test_export_keras_model_in_python(tmp_path):
    inputs = keras.Input((4, 3), name="frames")
    model = keras.Model(inputs, keras.layers.Dense(2, name="scores")(keras.layers.LSTM(5)(inputs)))
    export_dir = export_keras_model(model, str(tmp_path / "b"))
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    x = np.random.default_rng(1).normal(size=(2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(serve(frames=tf.constant(x))["scores"], model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_name", ["vlirnn", "mrnn"])
def test_custom_layers_and_masked_variable_length_inputs_export(tmp_path, model_name):
    from rnnzoo.training.loop import build_run

    _, built = build_run(TrainConfig(model=model_name, task="addition_thesis", seq_len=20, batch_size=4, test_size=8), units=8)
    x = next(iter(built.test_dataset))[0][:3].numpy()  # padded to 11T/10 steps behind a Masking layer
    serve = tf.saved_model.load(export_keras_model(built.model, str(tmp_path))).signatures["serving_default"]
    assert serve.structured_input_signature[1]["inputs"].shape.as_list() == [None, 22, 2]
    np.testing.assert_allclose(serve(inputs=tf.constant(x))["output"], built.model(x), rtol=1e-5, atol=1e-6)
