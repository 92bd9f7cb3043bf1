"""Closed-loop rollout and gradient throughput of the arm controller (thesis ch. 6).

Times, on the centre-out task (batch 64, T = 40, the thesis's 100 + 100 tanh units):

- the closed loop (`rnnzoo.control.rollout`: controller -> plant -> controller, one
  `tf.while_loop` in a `tf.function`) forward, and forward + gradient of the task's loss w.r.t. the controller's weights;
- the anchor, in the same run: the same controller weights as a Keras `RNN` layer (its own loop)
  on the same inputs without the plant (the observations the closed loop produced fed open-loop,
  with the target), forward and forward + gradient of the mean squared torque.

Reports controller steps per second (batch x T per second) of each, and the closed loop's ratio
to the anchor (the plant's and the closed loop's price), plus each function's tracing
time (the closed loop traces once per training run).

    python benchmarks/arm_rollout.py --output benchmarks/results/arm_rollout.json
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from output import write_json  # noqa: E402  (benchmarks/output.py)

from rnnzoo.control import CenterOut, TwoLinkArm, rollout  # noqa: E402
from rnnzoo.zoo.arm_controller.closed_loop import ArmController  # noqa: E402

flags.DEFINE_integer("units", 100, "Units per controller layer (thesis §6.4: 100).")
flags.DEFINE_integer("steps", 40, "Horizon T (centre-out: 40).")
flags.DEFINE_integer("repeats", 20, "Timed calls per function (the median is reported).")
flags.DEFINE_string("output", None, "JSON path to write (printed either way).")
FLAGS = flags.FLAGS


class ControllerCell(keras.layers.Layer):
    """The controller's step as a Keras RNN cell (inputs: [observation, target])."""

    def __init__(self, controller):
        super().__init__()
        self.controller = controller
        self.state_size = controller.state_size
        self.output_size = 2

    def call(self, inputs, states):
        torque, state = self.controller.step(inputs[:, :4], inputs[:, 4:], states[0])
        return torque, [state]


def median_seconds(function, repeats):
    function()  # traced and warmed up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def traced_seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    task = CenterOut(steps=FLAGS.steps)
    batch = task.batch(None)
    arm = TwoLinkArm(task.arm_config)
    controller = ArmController(FLAGS.units)
    controller.build()
    weights = controller.trainable_weights

    @tf.function
    def closed_forward():
        result = rollout(controller, arm, batch)
        return tf.reduce_mean(task.loss(result.trajectory, result.commands, batch.target))

    @tf.function
    def closed_gradient():
        with tf.GradientTape() as tape:
            loss = closed_forward()
        return tape.gradient(loss, weights)

    trajectory = rollout(controller, arm, batch).trajectory.numpy()
    targets = np.repeat(batch.target[:, None], FLAGS.steps, 1)
    inputs = tf.constant(np.concatenate([trajectory[:, :-1], targets], -1), tf.float32)
    rnn = keras.layers.RNN(ControllerCell(controller))

    @tf.function
    def anchor_forward():
        return tf.reduce_mean(tf.square(rnn(inputs)))

    @tf.function
    def anchor_gradient():
        with tf.GradientTape() as tape:
            loss = anchor_forward()
        return tape.gradient(loss, weights)

    functions = {"closed_loop_forward": closed_forward, "closed_loop_gradient": closed_gradient,
                 "anchor_forward": anchor_forward, "anchor_gradient": anchor_gradient}
    tracing = {name: round(traced_seconds(f), 3) for name, f in functions.items()}
    controller_steps = len(batch.target) * FLAGS.steps
    rates = {name: controller_steps / median_seconds(f, FLAGS.repeats)
             for name, f in functions.items()}
    report = {
        "task": "center_out", "batch": len(batch.target), "steps": FLAGS.steps,
        "units": FLAGS.units, "repeats": FLAGS.repeats,
        "anchor": "the same controller as a keras.layers.RNN on the same inputs, no plant",
        "controller_steps_per_second": {k: round(v, 1) for k, v in rates.items()},
        "ratio_to_anchor": {
            "forward": round(rates["closed_loop_forward"] / rates["anchor_forward"], 3),
            "gradient": round(rates["closed_loop_gradient"] / rates["anchor_gradient"], 3),
        },
        "gradient_cost_in_forwards": {
            "closed_loop": round(rates["closed_loop_forward"] / rates["closed_loop_gradient"], 3),
            "anchor": round(rates["anchor_forward"] / rates["anchor_gradient"], 3),
        },
        "tracing_seconds": tracing,
        "tensorflow": tf.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    write_json(report, FLAGS.output)


if __name__ == "__main__":
    app.run(main)
