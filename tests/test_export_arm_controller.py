"""Arm-controller exports (thesis ch. 6): `control_step` and `control_sequence` against the Keras
model, served by rnnzoo-serve stepping a plant over gRPC, `rnnzoo-query control`, and stock TF
Serving's TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap

import grpc
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.control import TwoLinkArm, rollout
from rnnzoo.export import export_run, read_warmup_requests
from rnnzoo.serving import Client, ModelServer, ServerOptions
from rnnzoo.zoo.arm_controller import closed_loop_layer
from rnnzoo.training.loop import TrainConfig, train
from rnnzoo.training.run_directory import RunDirectory

UNITS, STEPS, DELAY = 4, 6, 2
START = np.array([[0.785, 1.571, 0.0, 0.0], [0.6, 1.2, 0.1, -0.2]], np.float32)
TARGET = np.array([[0.9, 1.4, 0.0, 0.0], [0.5, 1.7, 0.0, 0.0]], np.float32)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A postural run (feedback delay 2) trained for two Adam steps."""
    model_dir = str(tmp_path_factory.mktemp("arm") / "run")
    train(TrainConfig(model="arm_controller", task="postural", seq_len=STEPS, optimizer="adam",
                      learning_rate=0.01, train_steps=2, eval_every=2, model_dir=model_dir,
                      verbose=0), units=UNITS, delay=DELAY)
    model = RunDirectory(model_dir).load_model(compile=False)
    return model_dir, closed_loop_layer(model)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    return export_run(run[0], str(tmp_path_factory.mktemp("serving") / "arm"))


def keras_rollout(layer):
    result = rollout(layer.controller, TwoLinkArm(), initial_state=START, target=TARGET,
                     steps=STEPS, delay=DELAY)
    return result.torques.numpy(), result.trajectory.numpy()


def test_signatures_reproduce_the_keras_controller_and_closed_loop(run, exported):
    _, layer = run
    assert os.path.basename(exported) == "1"
    loaded = tf.saved_model.load(exported)
    assert set(loaded.signatures) == {"control_step", "control_sequence"}
    state = np.random.default_rng(0).normal(size=(2, 2 * UNITS)).astype(np.float32)
    served = loaded.signatures["control_step"](observation=tf.constant(START),
                                               target=tf.constant(TARGET), state=tf.constant(state))
    torque, following = layer.controller.step(START, TARGET, state)
    np.testing.assert_allclose(served["torque"].numpy(), torque.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served["state"].numpy(), following.numpy(), rtol=1e-5, atol=1e-6)
    sequence = loaded.signatures["control_sequence"](initial_state=tf.constant(START),
                                                     target=tf.constant(TARGET))
    torques, trajectory = keras_rollout(layer)
    assert sequence["torques"].shape == (2, STEPS, 2)
    assert sequence["trajectory"].shape == (2, STEPS + 1, 4)
    np.testing.assert_allclose(sequence["trajectory"].numpy()[:, 0], START)
    np.testing.assert_allclose(sequence["torques"].numpy(), torques, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sequence["trajectory"].numpy(), trajectory, rtol=1e-5, atol=1e-6)
    assert np.ptp(torques) > 0  # the controller does something
    assert {r.model_spec.signature_name for r in read_warmup_requests(exported)} == {
        "control_step", "control_sequence"}


@pytest.fixture(scope="module")
def server(exported):
    server = ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="arm",
                                       model_base_path=os.path.dirname(exported),
                                       file_system_poll_wait_seconds=0)).start()
    yield server
    server.stop()


def test_control_step_over_grpc_steps_a_plant_like_the_exported_closed_loop(run, server):
    """A client stepping its own plant one tick per request, the observation delayed as in
    training, reproduces the closed loop the export runs through its own plant."""
    _, layer = run
    arm = TwoLinkArm()
    with Client(f"127.0.0.1:{server.grpc_port}") as client:
        client.wait_until_available("arm")
        trajectory, state = [START.astype(np.float64)], None
        for t in range(STEPS):
            observation = trajectory[max(t - DELAY, 0)].astype(np.float32)
            torque, state = client.control_step("arm", observation, TARGET, state)
            assert torque.shape == (2, 2) and state.shape == (2, 2 * UNITS)
            trajectory.append(arm.step(trajectory[-1], torque.astype(np.float64)).numpy())
        _, expected = keras_rollout(layer)
        np.testing.assert_allclose(np.stack(trajectory, 1), expected, rtol=1e-4, atol=1e-6)
        sequence = client.call("arm", "control_sequence", {"initial_state": START, "target": TARGET})
        np.testing.assert_allclose(sequence["trajectory"], expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(grpc.RpcError) as info:
            client.control_step("arm", np.full((1, 4), np.nan, np.float32), TARGET[:1])
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "observation holds NaN or Inf" in info.value.details()
        with pytest.raises(ValueError, match="observation has shape"):
            client.control_step("arm", [[0.0, 0.0]], TARGET[:1])


@pytest.mark.slow  # a second process importing TensorFlow
def test_query_control_drives_the_local_plant_and_prints_the_final_error(run, server):
    _, layer = run
    result = subprocess.run(
        [sys.executable, "-m", "rnnzoo.cli.query", f"--server=127.0.0.1:{server.grpc_port}",
         "--model=arm", "control", f"--observation={json.dumps(START.tolist())}",
         f"--target={json.dumps(TARGET.tolist())}", f"--steps={STEPS}", f"--delay={DELAY}"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout)
    torques, trajectory = keras_rollout(layer)
    np.testing.assert_allclose(printed["trajectory"], trajectory, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(printed["torques"], torques, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(printed["final_error"],
                               np.linalg.norm(trajectory[:, -1] - TARGET, axis=-1), rtol=1e-4)
    arm = TwoLinkArm()
    hand = np.linalg.norm(arm.hand_position(trajectory[:, -1]) - arm.hand_position(TARGET), axis=-1)
    np.testing.assert_allclose(printed["final_hand_error"], hand, rtol=1e-4)


LOAD_AND_CALL = textwrap.dedent(
    """
    import json, os, sys
    sys.modules["rnnzoo"] = None  # only TensorFlow, as TF Serving has
    sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "rnnzoo"))]
    import numpy as np
    import tensorflow as tf
    export, request = sys.argv[1], json.loads(sys.argv[2])
    loaded = tf.saved_model.load(export)
    step = loaded.signatures["control_step"](
        observation=tf.constant(request["start"], tf.float32),
        target=tf.constant(request["target"], tf.float32),
        state=tf.constant(request["state"], tf.float32))
    sequence = loaded.signatures["control_sequence"](
        initial_state=tf.constant(request["start"], tf.float32),
        target=tf.constant(request["target"], tf.float32))
    print(json.dumps({"version": tf.__version__, "torque": step["torque"].numpy().tolist(),
                      "trajectory": sequence["trajectory"].numpy().tolist()}))
    """
)


@pytest.mark.slow
def test_export_gives_the_same_outputs_under_the_tensorflow_tf_serving_links(exported, tmp_path):
    from tests.test_export_serving_tf_version import SERVING_TF, outputs_under_serving_tf_and_ours

    request = json.dumps({"start": START.tolist(), "target": TARGET.tolist(),
                          "state": np.zeros((2, 2 * UNITS)).tolist()})
    outputs = outputs_under_serving_tf_and_ours(LOAD_AND_CALL, [exported, request], tmp_path)
    serving, ours = outputs
    assert serving["version"].rsplit(".", 1)[0] == SERVING_TF != ours["version"].rsplit(".", 1)[0]
    np.testing.assert_allclose(serving["torque"], ours["torque"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(serving["trajectory"], ours["trajectory"], rtol=1e-5, atol=1e-6)
