"""The arm-control family's closed-loop model and data (the family: `rnnzoo.zoo.arm_controller`)."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.control import STATE_SIZE, TORQUE_SIZE
from rnnzoo.model import Model
from rnnzoo.training import evaluation, registry
from rnnzoo.zoo.arm_controller.closed_loop import INPUT_NAMES, ClosedLoop, closed_loop_model

TASKS = ("center_out", "postural", "ddn")
DDN_TEST_SIZE = 400


@dataclasses.dataclass
class ArmControllerConfig:
    """Hyperparameters of the arm controller and the task constants the thesis leaves open.

    Attributes:
        units: tanh units in each of the controller's two layers (thesis §6.4: 100).
        recurrent_gain: gain of the orthogonal recurrent initialisation.
        output_scale: standard deviation of the initial torque-output weights.
        delay: feedback delay in steps; -1: the task's (postural 10, DDN 7, centre-out 0).
        target_radius: `center_out`: radius of the target circle (m).
        force: `postural`: size of the constant hand forces (N).
        disturbance_std: `ddn`: standard deviation of the disturbance torques (N m).
        torque_noise: `ddn`: standard deviation of the multiplicative torque noise.
    """

    units: int = 100
    recurrent_gain: float = 0.5
    output_scale: float = 0.01
    delay: int = -1
    target_radius: float = 0.10
    force: float = 2.0
    disturbance_std: float = 0.2
    torque_noise: float = 0.1


def task_options(task, config, steps=None):
    """The `rnnzoo.control.make_task` options of `task` from `config` (and the horizon)."""
    options = {"steps": steps} if steps else {}
    if task == "center_out":
        options["target_radius"] = config.target_radius
    elif task == "postural":
        options["force"] = config.force
    else:
        options.update(disturbance_std=config.disturbance_std, torque_noise=config.torque_noise)
    if config.delay >= 0:
        if task == "center_out" and config.delay:
            raise ValueError(f"delay={config.delay} does not apply to center_out, which the "
                             "thesis runs without feedback delay; drop --delay.")
        if task != "center_out":
            options["delay"] = config.delay
    return options


def _features(batch):
    return {name: np.asarray(getattr(batch, name), np.float32) for name in INPUT_NAMES}


def _dataset(batches, residual_size, steps):
    """`(inputs, zeros)` batches from a generator of `ReachBatch`es."""
    signature = (
        {"initial_state": tf.TensorSpec((None, STATE_SIZE), tf.float32),
         "target": tf.TensorSpec((None, STATE_SIZE), tf.float32),
         "disturbance": tf.TensorSpec((None, steps, TORQUE_SIZE), tf.float32),
         "torque_noise": tf.TensorSpec((None, steps, TORQUE_SIZE), tf.float32)},
        tf.TensorSpec((None, residual_size), tf.float32),
    )

    def generate():
        for batch in batches:
            features = _features(batch)
            size = len(features["target"])
            yield features, np.zeros((size, residual_size), np.float32)

    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def closed_loop_layer(model):
    """The `ClosedLoop` layer of an `arm_controller` model."""
    return model.get_layer("closed_loop")


def final_hand_error(layer, batch):
    """Mean distance (m) between the hand at step T and the target's hand position."""
    result = layer.rollout(_features(batch))
    final = layer.arm.hand_position(result.trajectory[:, -1])
    goal = layer.arm.hand_position(tf.constant(batch.target, tf.float32))
    return float(tf.reduce_mean(tf.norm(final - goal, axis=-1)))


def build(model_name, config, train_config):
    """`Built` closed-loop controller of `train_config.task` (see the module docstring)."""
    if train_config.mixed_precision:
        raise ValueError(
            "mixed_precision does not apply to arm_controller: the arm is integrated through "
            "the controller's dtype, and float16 Euler steps lose the reach; drop "
            "--mixed_precision."
        )
    if train_config.optimizer == "hf" and train_config.hf_structural_damping:
        raise ValueError(
            f"hf_structural_damping={train_config.hf_structural_damping} does not apply to "
            "arm_controller: its closed loop has no Keras recurrent layers whose hidden states "
            "structural damping (thesis §4.2.3) would record; pass --hf_structural_damping=0."
        )
    layer = ClosedLoop(
        config.units, train_config.task, task_options(train_config.task, config,
                                                      train_config.seq_len),
        recurrent_gain=config.recurrent_gain, output_scale=config.output_scale,
        name="closed_loop",
    )
    model = closed_loop_model(layer, Model)
    task = layer.task
    size, steps = task.residual_size(), task.steps
    if train_config.task == "ddn":
        if train_config.test_size < 0:
            raise ValueError(f"test_size must be >= 0, got {train_config.test_size}.")
        train = _dataset(task.batches(train_config.seed, train_config.batch_size), size, steps)
        test_batch = task.test_batch(train_config.seed, train_config.test_size or DDN_TEST_SIZE)
    else:  # the whole fixed case set every step
        test_batch = task.batch(None)
        train = tf.data.Dataset.from_tensors(
            (_features(test_batch), np.zeros((len(test_batch.target), size), np.float32))
        ).repeat()
    test = _dataset([test_batch], size, steps)

    def evaluate(trained):
        return {"final_hand_error": final_hand_error(closed_loop_layer(trained), test_batch)}

    return registry.Built(
        model=model,
        loss=keras.losses.MeanSquaredError(),
        train_dataset=train,
        test_dataset=test,
        metrics=(evaluation.Metric(
            "final_hand_error", None,
            description="mean distance (m) of the hand at step T from the target's hand "
                        "position (thesis §6.7)"),),
        evaluate=evaluate,
        description=(
            f"arm_controller ({config.units}+{config.units} tanh units) on {task.name}: T = "
            f"{task.steps}, delay {task.delay}, alpha = {task.alpha:.3g} (thesis ch. 6)"
        ),
    )


