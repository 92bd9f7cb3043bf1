"""SavedModel export of a trained arm controller (thesis ch. 6): `control_step` and `control_sequence`.

    rnnzoo-export --model_dir=/tmp/arm_co --export_base=/models/arm

writes `<export_base>/<version>/` through the generic writer (`rnnzoo.export.writer`: versions,
atomic rename, serving-parity and signature-contract checks, warmup records) with two
signatures (contracts in `rnnzoo.serving.signatures`), float32 throughout, `S = 2 units` static:

- `control_step(observation [b, 4], target [b, 4], state [b, S]) -> torque [b, 2], state [b, S]`:
  one tick of the controller (thesis §6.4) with its recurrent state passed explicitly, so a
  client steps a real plant one tick per request. The client sends the observation it has: a
  feedback delay (the task's, e.g. 10 steps for the postural task) is the client's business.
  A zero state starts a reach.
- `control_sequence(initial_state [b, 4], target [b, 4]) -> torques [b, T, 2], trajectory
  [b, T + 1, 4]`: the whole reach closed-loop through the exported plant
  (`rnnzoo.control.TwoLinkArm` with the run's constants, noise- and disturbance-free) with the
  run's horizon T and feedback delay; `torques` are the torques the plant received,
  `trajectory[:, 0]` the initial state.

Non-finite inputs are refused (INVALID_ARGUMENT, HTTP 400).
"""

import numpy as np
import tensorflow as tf

from rnnzoo.control import STATE_SIZE, rollout
from rnnzoo.export.warmup import predict_request
from rnnzoo.export.writer import write_export
from rnnzoo.training import registry
from rnnzoo.zoo.arm_controller.model import closed_loop_layer
from rnnzoo.training.run_directory import RunDirectory

WARMUP_STATE = [0.785, 1.571, 0.0, 0.0]
"""A resting arm (shoulder 45 deg, elbow 90 deg), the warmup requests' observation."""


class ControllerServable(tf.Module):
    """Tracks the trained model's variables for the serving functions."""

    def __init__(self, model):
        super().__init__(name="arm_controller")
        self.model = model


def _finite(tensor, name):
    return tf.debugging.check_numerics(
        tensor, f"{name} holds NaN or Inf; send finite arm states (rad, rad/s) and controller states"
    )


def serving_functions(layer):
    """{contract name: function} of a `rnnzoo.zoo.arm_controller.closed_loop.ClosedLoop` layer."""
    controller, arm, task = layer.controller, layer.arm, layer.task
    size = controller.state_size
    vector = tf.TensorSpec([None, STATE_SIZE], tf.float32, name="observation")

    @tf.function(input_signature=[
        vector, tf.TensorSpec([None, STATE_SIZE], tf.float32, name="target"),
        tf.TensorSpec([None, size], tf.float32, name="state"),
    ])
    def control_step(observation, target, state):
        torque, following = controller.step(
            _finite(observation, "observation"), _finite(target, "target"), _finite(state, "state")
        )
        return {"torque": tf.cast(torque, tf.float32), "state": tf.cast(following, tf.float32)}

    @tf.function(input_signature=[
        tf.TensorSpec([None, STATE_SIZE], tf.float32, name="initial_state"),
        tf.TensorSpec([None, STATE_SIZE], tf.float32, name="target"),
    ])
    def control_sequence(initial_state, target):
        result = rollout(controller, arm, initial_state=_finite(initial_state, "initial_state"),
                         target=_finite(target, "target"), steps=task.steps, delay=task.delay)
        return {"torques": tf.cast(result.torques, tf.float32),
                "trajectory": tf.cast(result.trajectory, tf.float32)}

    return {"control_step": control_step, "control_sequence": control_sequence}


def warmup_requests(layer, rows=2):
    """One request per signature: `rows` resting arms asked to stay where they are."""
    state = np.tile(np.asarray(WARMUP_STATE, np.float32), (rows, 1))
    zeros = np.zeros((rows, layer.controller.state_size), np.float32)
    return [
        predict_request("control_step", {"observation": state, "target": state, "state": zeros}),
        predict_request("control_sequence", {"initial_state": state, "target": state}),
    ]


def export_controller(model, export_base, version=None):
    """Writes an `arm_controller` model's signatures as `export_base/<version>/`; returns the path.

    Raises:
        ValueError: a bad or existing version.
        ServingParityError: the export would not run on stock TF Serving or breaks its contracts.
    """
    layer = closed_loop_layer(model)
    return write_export(ControllerServable(model), serving_functions(layer), export_base, version,
                        warmup_requests=warmup_requests(layer))


def export_model_dir(model_dir, export_base, version=None, checkpoint="best"):
    """Exports the arm-controller run in `model_dir` (its `checkpoint`, best or last, of rnnzoo-train)."""
    registry.load_families()  # registers the controller's layers for deserialisation
    return export_controller(RunDirectory(model_dir).load_model(checkpoint, compile=False), export_base, version)

