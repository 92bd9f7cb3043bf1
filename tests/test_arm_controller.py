"""The thesis's arm controller (§6.4), its closed loop through the plant and its Gauss-Newton
matrix (what Hessian-free trains it with), its save/load round trip and its training."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.cli import train as train_cli
from rnnzoo.control import TwoLinkArm, make_task, rollout
from rnnzoo.optimizers import gauss_newton_product
from rnnzoo.zoo.arm_controller.model import ArmControllerConfig, task_options
from rnnzoo.zoo.arm_controller.closed_loop import ArmController, ClosedLoop, closed_loop_model
from rnnzoo.training.loop import TrainConfig, build_run


def _inputs(layer, size, seed=0, dtype=np.float32):
    batch = layer.task.batch(np.random.default_rng(seed), size)
    return {f.name: np.asarray(getattr(batch, f.name), dtype)
            for f in dataclasses.fields(batch)}


def test_controller_step_is_the_two_layer_network_with_skip_connections():
    controller = ArmController(5)
    rng = np.random.default_rng(0)
    obs, target = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    state = rng.normal(size=(3, 10))
    torque, new_state = controller.step(obs.astype("float32"), target.astype("float32"),
                                        state.astype("float32"))
    w = {v.name: v.numpy().astype(np.float64) for v in controller.weights}
    i = np.concatenate([obs, target], -1)
    h1 = np.tanh(i @ w["w1"] + state[:, :5] @ w["u1"] + w["b1"])
    h2 = np.tanh(h1 @ w["w2"] + i @ w["s2"] + state[:, 5:] @ w["u2"] + w["b2"])
    np.testing.assert_allclose(torque.numpy(), h2 @ w["v"] + w["c"], atol=1e-5)
    np.testing.assert_allclose(new_state.numpy(), np.concatenate([h1, h2], -1), atol=1e-5)
    assert controller.state_size == 10 and len(controller.trainable_weights) == 9


@pytest.mark.parametrize("task", ["center_out", "postural", "ddn"])
def test_mean_squared_output_is_the_thesis_loss(task):
    layer = ClosedLoop(4, task, {"steps": 6})
    model = closed_loop_model(layer)
    x = _inputs(layer, 5)
    outputs = model(x)
    assert outputs.shape == (5, layer.task.residual_size())
    result = tf.function(lambda: rollout(layer.controller, TwoLinkArm(), delay=layer.task.delay,
                                         **x))()
    thesis = layer.task.loss(result.trajectory, result.commands, x["target"])
    mse = keras.losses.MeanSquaredError()(tf.zeros_like(outputs), outputs)
    np.testing.assert_allclose(float(mse), float(tf.reduce_mean(thesis)), rtol=1e-5)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf_function"])
def test_gauss_newton_product_is_j_transpose_j_of_the_residuals(float64, graph):
    """G v = J^T (2 / (B K)) J v with J the Jacobian of [errors, torques] through the plant.

    Inside a `tf.function` the rollout is a `tf.while_loop` and `J v` the transpose of its
    backward pass (reverse over reverse through the loop); eagerly the loop runs step by step.
    The explicit Jacobian is taken eagerly."""
    layer = ClosedLoop(2, "ddn", {"steps": 3, "delay": 1})
    model = closed_loop_model(layer)
    x = _inputs(layer, 2, dtype=np.float64)
    variables = model.trainable_variables
    rng = np.random.default_rng(1)
    vectors = [tf.constant(rng.normal(size=v.shape)) for v in variables]
    if graph:
        product = tf.function(lambda x, vectors: gauss_newton_product(model, "mse", x, vectors))(
            {k: tf.constant(v) for k, v in x.items()}, vectors)
    else:
        product = gauss_newton_product(model, "mse", x, vectors)
    with tf.GradientTape(persistent=True) as tape:
        outputs = tf.reshape(model(x), [-1])
    jacobian = np.concatenate(
        [tf.reshape(j, [outputs.shape[0], -1]).numpy() for j in tape.jacobian(outputs, variables)],
        -1)
    v = np.concatenate([t.numpy().ravel() for t in vectors])
    expected = jacobian.T @ jacobian @ v * 2 / outputs.shape[0]
    got = np.concatenate([p.numpy().ravel() for p in product])
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_keras_save_load_round_trip(tmp_path):
    layer = ClosedLoop(3, "postural", {"steps": 4, "force": 1.5}, name="closed_loop")
    model = closed_loop_model(layer)
    x = _inputs(layer, 4)
    path = str(tmp_path / "arm.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(x).numpy(), model(x).numpy(), rtol=1e-6)
    assert restored.get_layer("closed_loop").task.force == 1.5


def test_family_options_reach_the_task():
    config = ArmControllerConfig(delay=3, force=4.0, target_radius=0.05)
    assert task_options("postural", config, 20) == {"steps": 20, "force": 4.0, "delay": 3}
    assert make_task("postural", **task_options("postural", config)).delay == 3
    with pytest.raises(ValueError, match="does not apply to center_out"):
        task_options("center_out", config)
    with pytest.raises(ValueError, match="train on center_out, postural, ddn only"):
        build_run(TrainConfig(model="arm_controller", task="addition", model_dir="/tmp/x"))
    with pytest.raises(ValueError, match="drop --mixed_precision"):
        build_run(TrainConfig(model="arm_controller", mixed_precision=True, model_dir="/tmp/x"),
                  units=2)
    with pytest.raises(ValueError, match="pass --hf_structural_damping=0"):
        build_run(TrainConfig(model="arm_controller", optimizer="hf", hf_structural_damping=0.3,
                              model_dir="/tmp/x"), units=2)


@pytest.fixture
def parse_flags():
    def parse(*args):
        return train_cli.FLAGS(["rnnzoo-train", *args])

    yield parse
    train_cli.FLAGS.unparse_flags()


def _train(parse_flags, capsys, model_dir, *flags):
    train_cli.main(parse_flags("--model=arm_controller", "--units=4", "--seq_len=4",
                               "--batch_size=8", "--test_size=8", "--verbose=0",
                               f"--model_dir={model_dir}", *flags))
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(os.path.join(model_dir, "metrics.json")) as f:
        assert json.load(f)["step"] == printed["step"]
    return printed


def test_cli_trains_center_out_with_adam_and_resumes(tmp_path, parse_flags, capsys):
    model_dir = str(tmp_path / "co")
    first = _train(parse_flags, capsys, model_dir, "--task=center_out", "--optimizer=adam",
                   "--learning_rate=0.001", "--train_steps=4", "--eval_every=2")
    assert first["step"] == 4 and first["metric_directions"] == {"final_hand_error": "lower"}
    losses = [h["test_loss"] for h in json.load(open(os.path.join(model_dir, "metrics.json")))[
        "history"]]
    assert losses[-1] < losses[0]
    train_cli.FLAGS.unparse_flags()
    resumed = _train(parse_flags, capsys, model_dir, "--task=center_out", "--optimizer=adam",
                     "--learning_rate=0.001", "--train_steps=6", "--eval_every=2")
    assert resumed["step"] == 6 and resumed["test_loss"] < first["test_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("task, optimizer", [("center_out", "hf"), ("postural", "hf"),
                                             ("ddn", "hf"), ("postural", "nag"),
                                             ("ddn", "adam")])
def test_cli_trains_every_task(tmp_path, parse_flags, capsys, task, optimizer):
    extra = ["--hf_max_cg_iterations=10"] if optimizer == "hf" else ["--learning_rate=0.01"]
    result = _train(parse_flags, capsys, str(tmp_path / "run"), f"--task={task}",
                    f"--optimizer={optimizer}", "--train_steps=3", "--eval_every=3", *extra)
    history = result["test_loss"], result["final_hand_error"]
    assert all(np.isfinite(history)) and not result["diverged"]
