"""The reaching tasks of thesis §6.3 and §6.7 as seeded generators of batches, with their losses.

    task = CenterOut()                       # or Postural(), DDN(), or make_task("ddn", ...)
    batch = task.batch(np.random.default_rng(0))      # a ReachBatch of numpy float32 arrays
    out = rollout(controller, TwoLinkArm(task.arm_config), batch, delay=task.delay)
    loss = task.loss(out.trajectory, out.commands, batch.target)         # (B,), thesis loss

Targets are target *states* `x* = [theta_s*, theta_e*, 0, 0]` (joint angles, zero velocity): the
thesis's losses are written on the state `x` (§6.3), and the controller receives `x*` as its 4
target inputs. Every task writes its loss as `sum(residuals^2) / 2` of a residual vector per
example (`residuals`), the form whose Gauss-Newton matrix Hessian-free uses (thesis §4.2.2).
Effort weights are given, as in the thesis, as `alpha = effort * dt`.

Constants the thesis leaves open are arguments (and `rnnzoo-train` flags of the `arm_controller`
family), with these documented defaults (docs/arm_control.md):

- centre-out: start posture shoulder 45 deg, elbow 90 deg (hand 0.45 m in front of the
  shoulder), targets on a circle of `target_radius` = 0.10 m around the start hand position;
- postural: postures on the 3 x 3 grid shoulder {30, 60, 90} deg x elbow {60, 90, 120} deg,
  8 constant hand forces of `force` = 2 N in 8 directions (joint torques `J(theta*)^T F`, on for
  the whole trial);
- DDN: start and target angles uniform in shoulder [30, 90] deg x elbow [60, 120] deg,
  disturbance torques with standard deviation `disturbance_std` = 0.2 N m per joint from an onset
  uniform in the first half to the end, multiplicative torque noise with standard deviation
  `torque_noise` = 0.1.
"""

import abc
import dataclasses
import math

import numpy as np
import tensorflow as tf

from rnnzoo.control.arm import ArmConfig, TwoLinkArm

_DEG = math.pi / 180


@dataclasses.dataclass(frozen=True)
class ReachBatch:
    """One batch of reaches (float32 numpy arrays or tensors).

    Attributes:
        initial_state: `x_0`, `(B, 4)`.
        target: target states `x*`, `(B, 4)`.
        disturbance: external joint torques `d_t`, `(B, T, 2)`.
        torque_noise: multiplicative torque noise `xi^u_t`, `(B, T, 2)`.
    """

    initial_state: object
    target: object
    disturbance: object
    torque_noise: object


class ReachTask(abc.ABC):
    """Common part of the reaching tasks: horizon, delay, effort weight, batches and loss.

    Attributes:
        name: `center_out`, `postural` or `ddn`.
        steps: the horizon `T`.
        delay: feedback delay in steps.
        alpha: effort weight of `alpha sum_t |u_t|^2 / 2` (thesis: a multiple of dt).
        batch_size: examples per training batch.
        arm_config: the plant's `ArmConfig`.
    """

    name = ""

    def __init__(self, steps, delay, effort, batch_size, arm_config=None):
        for label, value, low in (("steps", steps, 1), ("delay", delay, 0),
                                  ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{self.name} task: `{label}` must be an integer >= {low}, "
                                 f"got {value!r}.")
        if not effort >= 0:
            raise ValueError(f"{self.name} task: `effort` must be >= 0, got {effort!r}.")
        self.steps = int(steps)
        self.delay = int(delay)
        self.arm_config = ArmConfig() if arm_config is None else arm_config
        self.arm = TwoLinkArm(self.arm_config)
        self.alpha = float(effort) * self.arm_config.dt
        self.batch_size = int(batch_size)

    @abc.abstractmethod
    def batch(self, rng, size=None):
        """A `ReachBatch` drawn with the numpy Generator `rng` (`size`: the task's default)."""

    def batches(self, seed, size=None):
        """Endless seeded generator of training batches (`size`: the task's default)."""
        rng = np.random.default_rng(seed)
        while True:
            yield self.batch(rng, size)

    def test_batch(self, seed, size=None):
        """The fixed evaluation batch of `seed` (a stream apart from the training batches')."""
        return self.batch(np.random.default_rng([seed, 1]), size)

    def state_residuals(self, trajectory, target):
        """The task's state-error residuals `(B, K_x)`; the loss adds `|.|^2 / 2` of them."""
        return trajectory[:, -1] - tf.cast(target, trajectory.dtype)

    def state_weights(self):
        """`W`, `(T, 4)`: the state loss is `sum_t sum_i W[t-1, i] (x_t - x*)_i^2 / 2` over
        `x_1 ... x_T` (targets are at rest); here 1 on `x_T` only (iLQR's running costs)."""
        weights = np.zeros((self.steps, 4))
        weights[-1] = 1
        return weights

    def residuals(self, trajectory, commands, target):
        """`[state residuals, sqrt(alpha) u_1 ... u_T]`, `(B, K)`: loss = `sum(r^2) / 2`."""
        effort = math.sqrt(self.alpha) * tf.reshape(commands, [tf.shape(commands)[0], -1])
        return tf.concat([self.state_residuals(trajectory, target), effort], -1)

    def residual_size(self):
        """`K`, the static length of `residuals`."""
        return self.state_residual_size() + 2 * self.steps

    def state_residual_size(self):
        """The static length of `state_residuals`."""
        return 4

    def loss(self, trajectory, commands, target):
        """The thesis's loss of each reach, `(B,)`."""
        return 0.5 * tf.reduce_sum(tf.square(self.residuals(trajectory, commands, target)), -1)

    def _batch_size(self, size):
        size = self.batch_size if size is None else size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"Batch size must be a positive integer, got {size!r}.")
        return int(size)

    def _zeros(self, size):
        return np.zeros((size, self.steps, 2), np.float32)


def _at_rest(angles):
    angles = np.asarray(angles, np.float32)
    return np.concatenate([angles, np.zeros_like(angles)], -1)


class CenterOut(ReachTask):
    """Centre-out reaching (thesis §6.3, §6.7): `targets` reaches from one posture to targets
    evenly spaced on a circle around its hand position; loss `|x_T - x*|^2 / 2 + alpha sum |u|^2
    / 2`, `alpha = 1e-2 dt`, `T = 40`, no delay, noise or disturbance. Every batch is the same
    `targets` reaches (the task is deterministic)."""

    name = "center_out"

    def __init__(self, target_radius=0.10, targets=64, steps=40, effort=1e-2,
                 start=(45 * _DEG, 90 * _DEG), arm_config=None):
        super().__init__(steps, 0, effort, targets, arm_config)
        if not target_radius > 0:
            raise ValueError(f"center_out: `target_radius` must be > 0 metres, got "
                             f"{target_radius!r}.")
        self.target_radius = float(target_radius)
        self.start = _at_rest(start)
        centre = self.arm.hand_position(self.start[None]).numpy()[0]
        angle = 2 * np.pi * np.arange(targets) / targets
        hands = centre + self.target_radius * np.stack([np.cos(angle), np.sin(angle)], -1)
        self.targets = _at_rest(self.arm.joint_angles(hands.astype(np.float32)).numpy())

    def batch(self, rng, size=None):
        size = self._batch_size(size)
        index = np.arange(size) % len(self.targets)
        return ReachBatch(np.repeat(self.start[None], size, 0), self.targets[index],
                          self._zeros(size), self._zeros(size))


class Postural(ReachTask):
    """Postural control against constant forces (thesis §6.7): 9 postures x 8 constant hand
    forces (72 cases per batch), feedback delay 10, `T = 100`, `alpha = 1e-6 dt`; the loss is the
    squared joint-angle error at every step plus the squared joint velocity in the second half,
    `sum_t |theta_t - theta*|^2 / 2 + sum_{t > T/2} |theta'_t|^2 / 2 + alpha sum |u|^2 / 2`."""

    name = "postural"

    def __init__(self, force=2.0, steps=100, delay=10, effort=1e-6, arm_config=None):
        super().__init__(steps, delay, effort, 72, arm_config)
        if not force >= 0:
            raise ValueError(f"postural: `force` must be >= 0 newtons, got {force!r}.")
        self.force = float(force)
        grid = np.array([(s, e) for s in (30, 60, 90) for e in (60, 90, 120)]) * _DEG
        postures = _at_rest(np.repeat(grid, 8, 0))
        direction = 2 * np.pi * np.tile(np.arange(8), 9) / 8
        forces = self.force * np.stack([np.cos(direction), np.sin(direction)], -1)
        jacobian = self.arm.hand_jacobian(postures).numpy()
        self.postures = postures
        self.torques = np.einsum("bij,bi->bj", jacobian, forces).astype(np.float32)

    def batch(self, rng, size=None):
        size = self._batch_size(size)
        index = np.arange(size) % len(self.postures)
        disturbance = np.repeat(self.torques[index][:, None], self.steps, 1)
        return ReachBatch(self.postures[index], self.postures[index], disturbance,
                          self._zeros(size))

    def state_residuals(self, trajectory, target):
        angles = trajectory[:, 1:, :2] - tf.cast(target, trajectory.dtype)[:, None, :2]
        velocity = trajectory[:, self.steps // 2 + 1:, 2:]
        size = tf.shape(trajectory)[0]
        return tf.concat([tf.reshape(angles, [size, -1]), tf.reshape(velocity, [size, -1])], -1)

    def state_residual_size(self):
        return 2 * self.steps + 2 * (self.steps - self.steps // 2)

    def state_weights(self):
        weights = np.zeros((self.steps, 4))
        weights[:, :2] = 1
        weights[self.steps // 2:, 2:] = 1  # x_t for t > T/2
        return weights


class DDN(ReachTask):
    """Reaching under delay, disturbances and noise (thesis §6.7, "DDN"): random start and target
    postures, feedback delay 7, `T = 60`, batches of 400, `alpha = 1e-4 dt`; each reach gets a
    disturbance torque `~ N(0, disturbance_std^2)` per joint, switched on at a step uniform in
    the first half and held to the end, and signal-dependent torque noise
    `xi^u_t ~ N(0, torque_noise^2)` per joint and step. Loss as centre-out."""

    name = "ddn"

    def __init__(self, disturbance_std=0.2, torque_noise=0.1, steps=60, delay=7, effort=1e-4,
                 batch_size=400, arm_config=None):
        super().__init__(steps, delay, effort, batch_size, arm_config)
        for label, value in (("disturbance_std", disturbance_std), ("torque_noise", torque_noise)):
            if not value >= 0:
                raise ValueError(f"ddn: `{label}` must be >= 0, got {value!r}.")
        self.disturbance_std = float(disturbance_std)
        self.torque_noise = float(torque_noise)
        self.low = np.array([30, 60]) * _DEG
        self.high = np.array([90, 120]) * _DEG

    def batch(self, rng, size=None):
        size = self._batch_size(size)
        start = _at_rest(rng.uniform(self.low, self.high, (size, 2)))
        target = _at_rest(rng.uniform(self.low, self.high, (size, 2)))
        torque = rng.normal(0, self.disturbance_std, (size, 1, 2))
        onset = rng.integers(0, max(self.steps // 2, 1), (size, 1, 1))
        on = np.arange(self.steps)[None, :, None] >= onset
        disturbance = (torque * on).astype(np.float32)
        noise = rng.normal(0, self.torque_noise, (size, self.steps, 2)).astype(np.float32)
        return ReachBatch(start, target, disturbance, noise)


TASKS = {"center_out": CenterOut, "postural": Postural, "ddn": DDN}


def make_task(name, **options):
    """The task `name` (`center_out`, `postural`, `ddn`) built with `options`.

    Raises:
        ValueError: an unknown task name or option, naming the valid ones.
    """
    if name not in TASKS:
        raise ValueError(f"Unknown arm task {name!r}; choose one of: {', '.join(TASKS)}.")
    try:
        return TASKS[name](**options)
    except TypeError as error:
        raise ValueError(f"Arm task {name!r} does not take these options: {error}") from None
