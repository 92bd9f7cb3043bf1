"""The thesis's recurrent arm controller and its closed loop through the plant (thesis §6.4-6.6).

`ArmController` is the controller of §6.4: two layers of `units` tanh units, each recurrent
within itself, the inputs feeding the first layer and (skip connections) the second, the first
feeding the second, and two linear torque outputs read from the second:

    i_t  = [observation_t, target]                       (4 + 4 inputs)
    h1_t = tanh(W1 i_t + U1 h1_{t-1} + b1)
    h2_t = tanh(W2 h1_t + S2 i_t + U2 h2_{t-1} + b2)
    u_t  = V h2_t + c

Its state is `[h1, h2]` (`2 units` numbers), passed explicitly (`step`), so a served controller
can drive a real plant one tick per request.

`ClosedLoop` runs the controller through `rnnzoo.control.TwoLinkArm` on a task's batch
(`rnnzoo.control.rollout`, one `tf.while_loop` over the static horizon) and outputs the task's residual
vector `r` (final state error, or the postural task's per-step errors, and `sqrt(alpha) u_t`)
scaled by `sqrt(K / 2)`, `K = len(r)`: the mean squared error of these outputs against zeros is
exactly the thesis's loss `sum(r^2) / 2`, averaged over the batch. That makes the whole closed
loop an ordinary Keras model with linear outputs and a matching loss (`"mse"`), so every rnnzoo
optimizer trains it, Hessian-free included: its Gauss-Newton matrix `J^T J` (thesis §4.2.2) is
that of the residuals, `J` the Jacobian of the scaled `[errors, torques]` with respect to the
controller's weights through the plant (`rnnzoo.optimizers.gauss_newton_operator`).
"""

import math

import keras
import tensorflow as tf

from rnnzoo.control import STATE_SIZE, TORQUE_SIZE, ArmConfig, TwoLinkArm, make_task, rollout

INPUT_NAMES = ("initial_state", "target", "disturbance", "torque_noise")
"""The closed loop's inputs, the fields of `rnnzoo.control.ReachBatch`."""


@keras.saving.register_keras_serializable(package="rnnzoo")
class ArmController(keras.layers.Layer):
    """The two-layer recurrent controller of thesis §6.4 (see the module docstring).

    Initialisation (the thesis leaves it open; it is the same for every optimizer): input and
    feed-forward kernels Glorot-uniform, recurrent kernels orthogonal with gain
    `recurrent_gain`, zero biases, output kernel N(0, `output_scale`^2).

    Call it on `(observation, target, state)` for one step, or use `step` / `initial_state`
    (the interface `rnnzoo.control.rollout` drives).
    """

    def __init__(self, units=100, recurrent_gain=0.5, output_scale=0.01, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"ArmController: units must be a positive integer, got {units!r}.")
        self.units = units
        self.recurrent_gain = float(recurrent_gain)
        self.output_scale = float(output_scale)
        self.state_size = 2 * units

    def build(self, input_shape=None):
        inputs, units = 2 * STATE_SIZE, self.units

        def weight(name, shape, initializer):
            return self.add_weight(name=name, shape=shape, initializer=initializer)

        recurrent = keras.initializers.Orthogonal(gain=self.recurrent_gain)
        self.w1 = weight("w1", (inputs, units), "glorot_uniform")
        self.u1 = weight("u1", (units, units), recurrent)
        self.b1 = weight("b1", (units,), "zeros")
        self.w2 = weight("w2", (units, units), "glorot_uniform")
        self.s2 = weight("s2", (inputs, units), "glorot_uniform")
        self.u2 = weight("u2", (units, units), recurrent)
        self.b2 = weight("b2", (units,), "zeros")
        self.v = weight("v", (units, TORQUE_SIZE),
                        keras.initializers.RandomNormal(stddev=self.output_scale))
        self.c = weight("c", (TORQUE_SIZE,), "zeros")
        super().build(input_shape)

    def initial_state(self, batch_size, dtype="float32"):
        """Zero hidden states, `(batch_size, 2 units)`."""
        return tf.zeros([batch_size, self.state_size], dtype)

    def step(self, observation, target, state):
        """One control step: `(torque (B, 2), state (B, 2 units))`."""
        if not self.built:
            self.build()
        inputs = tf.concat([observation, target], -1)
        previous1, previous2 = tf.split(state, 2, axis=-1)
        h1 = tf.tanh(tf.matmul(inputs, self.w1) + tf.matmul(previous1, self.u1) + self.b1)
        h2 = tf.tanh(tf.matmul(h1, self.w2) + tf.matmul(inputs, self.s2)
                     + tf.matmul(previous2, self.u2) + self.b2)
        return tf.matmul(h2, self.v) + self.c, tf.concat([h1, h2], -1)

    def call(self, inputs):
        observation, target, state = inputs
        return self.step(observation, target, state)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "recurrent_gain": self.recurrent_gain, "output_scale": self.output_scale}


@keras.saving.register_keras_serializable(package="rnnzoo")
class ClosedLoop(keras.layers.Layer):
    """The controller run through the arm on a task's batch; outputs the scaled residuals.

    Args:
        units: units per controller layer (thesis: 100).
        task: `center_out`, `postural` or `ddn` (`rnnzoo.control.make_task`).
        task_options: the task's options (e.g. `{"target_radius": 0.1, "steps": 40}`).
        arm: `rnnzoo.control.ArmConfig` fields (empty: its defaults).
        recurrent_gain, output_scale: the controller's initialisation.

    Input: a dict of `INPUT_NAMES` (a `ReachBatch`'s arrays). Output: `(B, K)` residuals
    `r sqrt(K / 2)`, whose mean square is the task's loss.
    """

    def __init__(self, units=100, task="center_out", task_options=None, arm=None,
                 recurrent_gain=0.5, output_scale=0.01, **kwargs):
        super().__init__(**kwargs)
        self.task_name = task
        self.task_options = dict(task_options or {})
        self.arm_options = dict(arm or {})
        self.task = make_task(task, arm_config=ArmConfig(**self.arm_options), **self.task_options)
        self.arm = TwoLinkArm(self.task.arm_config)
        self.controller = ArmController(units, recurrent_gain, output_scale, name="controller")
        self.scale = math.sqrt(self.task.residual_size() / 2)

    def build(self, input_shape=None):
        self.controller.build()
        super().build(input_shape)

    def rollout(self, inputs):
        """`rnnzoo.control.Rollout` of the controller on `inputs` (dict or `ReachBatch`), with the
        task's feedback delay."""
        if isinstance(inputs, dict):
            inputs = {name: inputs[name] for name in INPUT_NAMES}
        else:
            inputs = {name: getattr(inputs, name) for name in INPUT_NAMES}
        return rollout(self.controller, self.arm, delay=self.task.delay, **inputs)

    def call(self, inputs):
        result = self.rollout(inputs)
        residuals = self.task.residuals(result.trajectory, result.commands, inputs["target"])
        return self.scale * residuals

    def compute_output_shape(self, input_shape):
        return (input_shape["initial_state"][0], self.task.residual_size())

    def get_config(self):
        return {**super().get_config(), "units": self.controller.units, "task": self.task_name,
                "task_options": self.task_options, "arm": self.arm_options,
                "recurrent_gain": self.controller.recurrent_gain,
                "output_scale": self.controller.output_scale}


def closed_loop_model(layer, model_class=keras.Model):
    """A functional model of `layer` (a `ClosedLoop`) on named `keras.Input`s of static shape."""
    steps = layer.task.steps
    shapes = {"initial_state": (STATE_SIZE,), "target": (STATE_SIZE,),
              "disturbance": (steps, TORQUE_SIZE), "torque_noise": (steps, TORQUE_SIZE)}
    inputs = {name: keras.Input(shapes[name], name=name) for name in INPUT_NAMES}
    return model_class(inputs, layer(inputs), name=f"arm_controller_{layer.task_name}")
