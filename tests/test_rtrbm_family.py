"""The rtrbm/trbm zoo family: bouncing-balls videos, the CD train step in the shared loop
(checkpoints, resume, metrics), and the export answering next_frame / generate_frames in
process and over gRPC."""

import dataclasses
import os
import subprocess
import sys

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.bouncing_balls import BouncingBalls, render, trajectory, video
from rnnzoo.training import registry
from rnnzoo.zoo.rtrbm.model import RTRBMConfig, build_model
from rnnzoo.training.loop import TrainConfig, evaluate_checkpoint, train

TINY = dict(units=12, pretrain_steps=3, pretrain_sequences=2, pretrain_batch_size=10, initial_cd_updates=2,
            initial_cd_steps=1, cd_steps=2, prediction_gibbs_steps=2)
FAST = dict(model="rtrbm", optimizer="momentum", batch_size=2, seq_len=8, test_size=2, eval_every=2, verbose=0)


def test_videos_follow_sutskevers_generator():
    rng = np.random.default_rng(0)
    positions = trajectory(rng, 200, balls=3)
    steps = np.sum(np.square(np.diff(positions, axis=0)), axis=(1, 2))
    # speeds are conserved (walls and equal-mass collisions swap or mirror velocities): a frame
    # without an event moves the balls by 2 x 0.5 v, and |v| = 0.5 over the whole array
    assert np.median(steps) == pytest.approx(0.25, abs=1e-9)
    assert positions.min() > 1.2 - 0.6 and positions.max() < 10 - 1.2 + 0.6
    frame = render(np.array([[[5.0, 2.5]]]), resolution=30)[0].reshape(30, 30)
    centres = (np.arange(30) + 0.5) / 3
    row, col = 7, 15  # y = 2.5, x = 5.1667: rows index y, columns x
    d2 = (centres[col] - 5.0) ** 2 + (centres[row] - 2.5) ** 2
    assert frame[row, col] == pytest.approx(np.exp(-((d2 / 1.2**2) ** 4)), rel=1e-6)
    assert frame[row, col] == frame.max() and frame[row, 0] < 1e-6
    first = video(3, 5)
    assert first.shape == (100, 900) and first.dtype == np.float32 and 0 <= first.min() and first.max() <= 1
    np.testing.assert_array_equal(first, video(3, 5))
    assert not np.array_equal(first, video(3, 6)) and not np.array_equal(first, video(4, 5))


def test_training_streams_are_fresh_or_a_fixed_set_and_bad_sizes_are_named():
    fresh = BouncingBalls(frames=5, resolution=8, seed=1).train_dataset(2)
    batches = [b.numpy() for b in fresh.take(2)]
    assert batches[0].shape == (2, 5, 64) and not np.array_equal(batches[0], batches[1])
    np.testing.assert_allclose(batches[1][0], video(1, 2, frames=5, resolution=8), rtol=1e-7, atol=1e-30)  # denormals flushed
    fixed = BouncingBalls(frames=5, resolution=8, seed=1, train_size=2).train_dataset(1)
    assert len({b.numpy().tobytes() for b in fixed.take(6)}) == 2
    test = BouncingBalls(frames=5, resolution=8, seed=1).test_videos(2)
    assert not any(np.array_equal(test[0], b) for b in batches[0])  # test and training streams differ
    with pytest.raises(ValueError, match="resolution must be an integer >= 1, got 0"):
        BouncingBalls(resolution=0)
    with pytest.raises(ValueError, match="prediction_expectation='mode'; choose one of gibbs, mean_field"):
        RTRBMConfig(prediction_expectation="mode").check()


def test_the_train_step_applies_the_scaled_cd_gradient():
    model = build_model("rtrbm", RTRBMConfig(units=6, cd_steps=3, initial_cd_steps=1, initial_cd_updates=1),
                        pixels=16, lr_decay_steps=4, seed=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    frames = np.random.default_rng(0).random((2, 4, 16)).astype(np.float32)
    model.fit(frames, epochs=1, batch_size=2, verbose=0, shuffle=False)  # update 0: CD-1, full rate
    before = [np.asarray(w) for w in model.rbm.trainable_variables]
    with tf.GradientTape() as tape:  # update 1: CD-3, seed 2 * 1_000_000_007 + 1, rate x (1 - 1/4)
        loss, _ = model.rbm.cd_loss(frames, 3, tf.constant(2 * 1_000_000_007 + 1, tf.int64))
    gradients = tape.gradient(loss, model.rbm.trainable_variables)
    model.fit(frames, epochs=1, batch_size=2, verbose=0, shuffle=False)
    for old, new, gradient in zip(before, model.rbm.trainable_variables, gradients):
        np.testing.assert_allclose(np.asarray(new) - old, -0.1 * 0.75 * np.asarray(gradient), rtol=1e-4, atol=1e-7)
    assert int(model.cd_steps_at(tf.constant(0, tf.int64))) == 1 and int(model.cd_steps_at(tf.constant(1, tf.int64))) == 3


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtrbm")
    config = TrainConfig(train_steps=4, model_dir=str(root / "run"), **FAST)
    first = train(config, **TINY)
    return root, config, first


def test_the_family_trains_through_the_shared_loop_and_resumes(trained_run):
    root, config, first = trained_run
    assert registry.get_family("trbm").name == "rtrbm"
    assert first["step"] == 4 and not first["diverged"]
    assert first["metric_directions"] == {"next_frame_mse": "lower", "copy_last_frame_mse": "lower"}
    assert 0 < first["next_frame_mse"] < 1 and first["pretraining"]["pretrain_steps"] == 3
    assert [h["step"] for h in first["history"]] == [2, 4]
    resumed = train(dataclasses.replace(config, train_steps=6), **TINY)
    assert [h["step"] for h in resumed["history"]] == [2, 4, 6]
    assert os.path.exists(os.path.join(config.model_dir, "tensorboard"))
    trbm = train(dataclasses.replace(config, model="trbm", model_dir=str(root / "trbm"), train_steps=2), **TINY)
    assert trbm["step"] == 2 and trbm["next_frame_mse"] is not None
    evaluated = evaluate_checkpoint(config.model_dir, seq_len=12)  # rnnzoo-evaluate, on longer videos
    assert evaluated["step"] == 6 and evaluated["seq_len"] == 12 and 0 < evaluated["next_frame_mse"] < 1
    with pytest.raises(ValueError, match="train on bouncing_balls only; got task 'addition'"):
        train(dataclasses.replace(config, task="addition", model_dir=str(root / "x")), **TINY)


def exported(trained_run):
    from rnnzoo.export import export_run

    root, config, _ = trained_run
    base = root / "serving"
    if not (base / "1").exists():
        export_run(config.model_dir, str(base), max_frames=50)
    from rnnzoo.training.run_directory import RunDirectory

    return base, RunDirectory(config.model_dir).load_model().rbm


def test_a_resumed_run_decays_its_learning_rate_to_its_own_train_steps(tmp_path):
    # Plain SGD: a step moves the weights only by the decayed CD gradient. The first invocation
    # (2 updates) decays to 0 at update 2; resumed to 4, update 3 must still learn.
    fields, options = registry.get_family("rtrbm").smallest(str(tmp_path))
    config = TrainConfig(**{**fields, "optimizer": "sgd"}, train_steps=2, eval_every=1, test_size=2, verbose=0,
                         model_dir=str(tmp_path / "run"))
    train(config, **options)
    before = keras.saving.load_model(str(tmp_path / "run" / "model.keras"), compile=False).get_weights()
    train(dataclasses.replace(config, train_steps=4), **options)
    after = keras.saving.load_model(str(tmp_path / "run" / "model.keras"), compile=False)
    assert after.lr_decay_steps == 4
    assert max(float(np.abs(a - b).max()) for a, b in zip(after.get_weights(), before)) > 1e-6


def test_the_export_predicts_and_generates_as_the_layer(trained_run):
    base, rbm = exported(trained_run)
    loaded = tf.saved_model.load(str(base / "1"))
    assert set(loaded.signatures) == {"next_frame", "generate_frames", "serving_default"}
    frames = BouncingBalls(frames=5, resolution=30, seed=9).test_videos(2)
    rows = tf.zeros([2], tf.int64)
    served = loaded.signatures["next_frame"](frames=tf.constant(frames))["probabilities"]
    np.testing.assert_allclose(served, rbm.predict_next(frames, 2, seed=rows), atol=1e-6)
    generated = loaded.signatures["generate_frames"](seed=tf.constant([4, 5], tf.int64),
                                                     num_frames=tf.constant([3, 1], tf.int32),
                                                     prefix=tf.constant(frames[:, :2]))["frames"].numpy()
    expected = np.asarray(rbm.generate(3, prefix=frames[:, :2], gibbs_steps=2, seed=tf.constant([4, 5], tf.int64)))
    assert generated.shape == (2, 3, 900)
    np.testing.assert_allclose(generated[0], expected[0], atol=1e-6)
    np.testing.assert_allclose(generated[1, :1], expected[1, :1], atol=1e-6)
    assert not generated[1, 1:].any()  # beyond the row's num_frames: zeros


def test_the_export_answers_over_grpc(trained_run):
    from rnnzoo.serving import Client, ModelServer, ServerOptions

    base, rbm = exported(trained_run)
    frames = BouncingBalls(frames=4, resolution=30, seed=10).test_videos(2)
    server = ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="balls",
                                       model_base_path=str(base), file_system_poll_wait_seconds=0)).start()
    try:
        with Client(f"127.0.0.1:{server.grpc_port}") as client:
            client.wait_until_available("balls")
            predicted = client.call("balls", "next_frame", {"frames": frames.tolist()})["probabilities"]
            np.testing.assert_allclose(predicted, rbm.predict_next(frames, 2, seed=tf.zeros([2], tf.int64)),
                                       atol=1e-6)
            generated = client.call("balls", "generate_frames",
                                    {"seed": [4, 5], "num_frames": [2, 2], "prefix": frames[:, :1]})["frames"]
            expected = rbm.generate(2, prefix=frames[:, :1], gibbs_steps=2, seed=tf.constant([4, 5], tf.int64))
            np.testing.assert_allclose(generated, expected, atol=1e-6)
            with pytest.raises(grpc.RpcError) as error:
                client.predict("balls", {"seed": np.array([1], np.int64), "num_frames": np.array([51], np.int32),
                                         "prefix": np.zeros((1, 1, 900), np.float32)}, signature="generate_frames")
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "num_frames must be <= 50" in error.value.details()
    finally:
        server.stop()


def test_rnnzoo_train_defaults_to_the_thesis_recipe_unless_flags_say_otherwise(tmp_path):
    from rnnzoo.cli import train as train_cli

    try:
        train_cli.FLAGS(["rnnzoo-train", "--model=trbm", f"--model_dir={tmp_path}"])
        config, options = train_cli.config_from_flags()
        assert (config.task, config.optimizer, config.momentum, config.batch_size) == (
            "bouncing_balls", "momentum", 0.9, 1)
        assert registry.make_config(registry.get_family("trbm"), **options) == RTRBMConfig()  # 400 units, CD-10 then 25
        train_cli.FLAGS.unparse_flags()
        train_cli.FLAGS(["rnnzoo-train", "--model=rtrbm", "--optimizer=adam", "--batch_size=4",
                         f"--model_dir={tmp_path}"])
        config, _ = train_cli.config_from_flags()
        assert (config.optimizer, config.batch_size) == ("adam", 4)
        train_cli.FLAGS.unparse_flags()
        train_cli.FLAGS(["rnnzoo-train", "--model=irnn", f"--model_dir={tmp_path}"])
        assert train_cli.config_from_flags()[0].optimizer == "adam"  # other families keep the loop's
    finally:
        train_cli.FLAGS.unparse_flags()


@pytest.mark.slow
def test_the_binaries_train_and_export_a_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}

    def cli(module, *args):
        return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600,
                              env=env)

    flags = [f"--{k}={v}" for k, v in {**TINY, "seq_len": 6, "train_steps": 2, "eval_every": 2,
                                        "test_size": 1}.items()]
    trained = cli("rnnzoo.cli.train", "--model=rtrbm", "--task=bouncing_balls",
                  f"--model_dir={tmp_path / 'run'}", "--verbose=0", *flags)
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported_ = cli("rnnzoo.cli.export", f"--model_dir={tmp_path / 'run'}", f"--export_base={tmp_path / 'base'}")
    assert exported_.returncode == 0, exported_.stderr[-3000:]
    assert exported_.stdout.strip().splitlines() == [str(tmp_path / "base" / "1")]


LOAD_AND_CALL = """
import json, os, sys
sys.modules["rnnzoo"] = None  # only TensorFlow, as TF Serving has
sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "rnnzoo"))]
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
frames = tf.constant(np.asarray(json.loads(sys.argv[2]), np.float32))
predicted = loaded.signatures["next_frame"](frames=frames)["probabilities"]
generated = loaded.signatures["generate_frames"](
    seed=tf.constant([4, 5], tf.int64), num_frames=tf.constant([3, 2], tf.int32), prefix=frames[:, :2])["frames"]
print(json.dumps({"version": tf.__version__, "probabilities": predicted.numpy().tolist(),
                  "frames": generated.numpy().tolist()}))
"""


@pytest.mark.slow
def test_the_export_gives_the_same_outputs_under_the_tensorflow_tf_serving_links(trained_run, tmp_path):
    import json

    from tests.test_export_serving_tf_version import SERVING_TF, outputs_under_serving_tf_and_ours

    base, _ = exported(trained_run)
    frames = json.dumps(BouncingBalls(frames=4, resolution=30, seed=11).test_videos(2).tolist())
    outputs = outputs_under_serving_tf_and_ours(LOAD_AND_CALL, [str(base / "1"), frames], tmp_path)
    serving, ours = outputs
    assert serving["version"].rsplit(".", 1)[0] == SERVING_TF != ours["version"].rsplit(".", 1)[0]
    np.testing.assert_allclose(serving["probabilities"], ours["probabilities"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(serving["frames"], ours["frames"], rtol=1e-5, atol=1e-6)
