"""tf.distribute in the shared training loop: mirrored replicas and two local workers agree
with one device, first-order and Hessian-free, trained, checkpointed by the chief, resumed."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.training import distribution
from rnnzoo.training.loop import TrainConfig, check_config
from rnnzoo.training.run_directory import RunDirectory
from tests import distributed_runs

RUNS_SCRIPT = os.path.join(os.path.dirname(__file__), "distributed_runs.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 600


def _environment(**extra):
    return {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _start(case, directory, **environment):
    """`tests/distributed_runs.py CASE DIRECTORY` in a process of its own."""
    return subprocess.Popen([sys.executable, RUNS_SCRIPT, case, str(directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_environment(**environment))


def _result(process):
    out, err = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _assert_same_trajectory(got, expected, rtol):
    assert got.keys() == expected.keys()
    for name in expected:
        steps, losses = zip(*got[name])
        expected_steps, expected_losses = zip(*expected[name])
        assert steps == expected_steps, name
        np.testing.assert_allclose(losses, expected_losses, rtol=rtol, err_msg=name)


# Hessian-free's discrete decisions (CG's stopping rule, backtracking, the damping update)
# amplify the different summation order of the replicas' mean: its first iterations agree to
# float precision, later ones to rtol 1e-3 here. First-order steps agree to float precision.
RTOL = {"momentum": 1e-5, "hf": 1e-3, "hf_resumed": 1e-3}


def _assert_matches_single_device(got, expected):
    for name, tolerance in RTOL.items():
        _assert_same_trajectory({name: got[name]}, {name: expected[name]}, tolerance)
    assert got["hf"] == got["hf_resumed"][: len(got["hf"])]  # the resumed run kept its history


@pytest.mark.distributed
def test_mirrored_replicas_on_two_cpu_devices_train_like_one_device(tmp_path):
    result = _result(_start("mirrored", tmp_path))
    _assert_matches_single_device(result["mirrored"], result["default"])
    assert result["mirrored"]["hf"][0][1] == pytest.approx(result["default"]["hf"][0][1], rel=1e-6)


@pytest.mark.distributed
def test_mirrored_hf_backtracks_on_each_replicas_curvature_batch_like_one_device(tmp_path):
    """`evaluation_batch="curvature"` under a strategy: the curvature losses (backtracking, rho)
    are the replicas' mean over their shards' heads; with the same sequences there as the one
    device's curvature batch, losses and rho agree to float precision."""
    result = _result(_start("curvature_evaluation", tmp_path))
    for key in ("loss", "rho"):
        np.testing.assert_allclose(result["mirrored"][key], result["default"][key], rtol=1e-5)
    assert result["default"]["loss"][-1] < 0.5 * result["default"]["loss"][0]


@pytest.mark.distributed
def test_clipping_with_loss_scaling_is_refused_under_a_strategy_naming_the_fix(tmp_path):
    """Each replica would clip its own scaled partial gradient: refused before any step."""
    result = _result(_start("clipping_with_loss_scaling", tmp_path))
    assert result["error"] is not None
    assert "gradient clipping with loss scaling" in result["error"]
    assert "drop --clip_norm or --mixed_precision" in result["error"]
    assert result["weights_finite"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_two_local_workers_train_checkpoint_once_resume_and_agree_with_one_process(tmp_path):
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    base = tmp_path / "multi_worker"
    processes = [
        _start("multi_worker", base, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        ))
        for index in range(2)
    ]
    try:
        results = [_result(process) for process in processes]
    finally:
        for process in processes:
            process.kill()
    single = distributed_runs.histories(str(tmp_path / "single"), "default")
    assert results[0] == results[1]  # both workers hold the same model at every step
    _assert_matches_single_device(results[0], single)
    for run in ("momentum", "hf"):  # one checkpoint, written by the chief only
        assert sorted(os.listdir(base / run)) == ["best_model.keras", "checkpoint.json", "metrics.json",
                                                  "model.keras", "tensorboard"]
        assert RunDirectory(base / run).state()["step"] == {"momentum": 4, "hf": 4}[run]


def test_a_global_batch_is_split_into_contiguous_replica_shards():
    batches = tf.data.Dataset.range(16).batch(8).map(lambda x: (x, -x))
    # Worker 1 of two, each with two replicas: replicas 2 and 3 take rows 4-5 and 6-7.
    shards = list(distribution.replica_batches(batches, 4, first_replica=2, local_replicas=2))
    np.testing.assert_array_equal([x for x, _ in shards], [[4, 5], [6, 7], [12, 13], [14, 15]])
    np.testing.assert_array_equal([y for _, y in shards], [[-4, -5], [-6, -7], [-12, -13], [-14, -15]])


def test_bad_distribution_settings_name_the_value_and_the_fix(monkeypatch):
    with pytest.raises(ValueError, match="'ring'.*default, mirrored, multi_worker_mirrored"):
        distribution.make_strategy("ring")
    with pytest.raises(ValueError, match="apply to --distribution_strategy=mirrored only"):
        distribution.make_strategy("default", ["/gpu:0"])
    with pytest.raises(ValueError, match=r"devices \['/gpu:7'\] do not exist here"):
        distribution.make_strategy("mirrored", ["/gpu:7"])
    with pytest.raises(ValueError, match="batch_size=4 does not split into 3 equal replica batches"):
        distribution.replica_batches(tf.data.Dataset.range(4).batch(4, drop_remainder=True), 3, 0, 1)
    with pytest.raises(ValueError, match="batch_size=6 does not split into 4 equal replica batches"):
        distribution.replica_batches(tf.data.Dataset.range(4).batch(3), 4, 0, 1, batch_size=6)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    monkeypatch.setattr(distribution, "_multi_worker", None)
    with pytest.raises(ValueError, match="TF_CONFIG=.*is not a multi-worker configuration"):
        distribution.make_strategy("multi_worker_mirrored")
    config = TrainConfig(model="rnn", model_dir="/tmp/x", distribution_strategy="multi_worker_mirrored",
                         max_seconds=60)
    with pytest.raises(ValueError, match="max_seconds=60 cannot stop workers at the same step"):
        check_config(config)
    with pytest.raises(ValueError, match="distribution_strategy='ps' is none of"):
        check_config(TrainConfig(model="rnn", model_dir="/tmp/x", distribution_strategy="ps"))
    with pytest.raises(ValueError, match="logical CPU devices must be a positive integer"):
        distribution.use_logical_cpu_devices(0)


def test_an_own_step_optimizer_without_a_replicated_step_is_refused_under_a_strategy():
    import keras

    import rnnzoo
    from rnnzoo.optimizers import LBFGS

    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        inputs = keras.Input((3,))
        model = rnnzoo.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer=LBFGS(), loss="mse")
    data = tf.data.Dataset.from_tensors((tf.ones([4, 3]), tf.ones([4, 1])))
    with pytest.raises(ValueError, match="LBFGS has no replicated step.*--distribution_strategy=default"):
        model.fit(data, epochs=1, verbose=0)


# char_lstm and seq2seq train with their recipes' gradient clipping, which is active in these
# steps (with Keras's per-replica clipping their trajectories part after step 1).
# The RTRBM's replicas sample their own CD chains (the replica id is in the seed), so its
# trajectory is the single-device one in distribution, not in value.
FAMILY_RTOL = {"arm_controller_hf": 1e-3, "rtrbm": 0.05}


@pytest.mark.distributed
def test_every_family_trains_on_two_mirrored_replicas_like_one_device(tmp_path):
    result = _result(_start("families", tmp_path))
    assert set(result["mirrored"]) == set(distributed_runs.family_runs(str(tmp_path)))
    for name, history in result["default"].items():
        _assert_same_trajectory({name: result["mirrored"][name]}, {name: history},
                                FAMILY_RTOL.get(name, 1e-5))
        assert [step for step, _ in history] == [1, 2, 3] and np.all(np.isfinite([l for _, l in history]))
