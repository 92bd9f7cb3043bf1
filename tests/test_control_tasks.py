"""The reaching tasks (thesis §6.3, §6.7) and the closed-loop rollout through the arm."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.control import DDN, CenterOut, Postural, TwoLinkArm, make_task, rollout
from tests.test_control_arm import numpy_hand, numpy_step


def float64(batch):
    return dataclasses.replace(batch, **{f.name: np.asarray(getattr(batch, f.name), np.float64)
                                         for f in dataclasses.fields(batch)})


class PDController:
    """u = K (x*_angles - obs_angles) - D obs_velocity, with a step counter as its state."""

    def __init__(self, k=2.0, d=0.3):
        self.k = tf.Variable(k, dtype=tf.float64)
        self.d = d

    def initial_state(self, batch_size, dtype):
        return tf.zeros([batch_size, 1], dtype)

    def step(self, observation, target, state):
        torque = self.k * (target[:, :2] - observation[:, :2]) - self.d * observation[:, 2:]
        return torque, state + 1


def numpy_pd_rollout(x0, target, k, d, steps, delay, disturbance, noise):
    xs, commands, torques = [x0], [], []
    for t in range(steps):
        obs = xs[max(t - delay, 0)]
        u = k * (target[:, :2] - obs[:, :2]) - d * obs[:, 2:]
        applied = u * (1 + noise[:, t]) + disturbance[:, t]
        xs.append(np.stack([numpy_step(x, a) for x, a in zip(xs[-1], applied)]))
        commands.append(u)
        torques.append(applied)
    return np.stack(commands, 1), np.stack(torques, 1), np.stack(xs, 1)


def test_center_out_targets_lie_on_a_circle_around_the_start():
    task = CenterOut()
    batch = task.batch(np.random.default_rng(0))
    assert batch.initial_state.shape == (64, 4) and batch.disturbance.shape == (64, 40, 2)
    assert (task.steps, task.delay, task.alpha) == (40, 0, pytest.approx(1e-4))
    start = numpy_hand(batch.initial_state[0])
    hands = np.stack([numpy_hand(t) for t in batch.target])
    np.testing.assert_allclose(np.linalg.norm(hands - start, axis=-1), 0.10, atol=1e-5)
    angles = np.arctan2(*(hands - start).T[::-1])
    np.testing.assert_allclose(np.diff(np.unwrap(angles)), 2 * np.pi / 64, atol=1e-4)
    assert np.all(batch.target[:, 2:] == 0) and np.all(batch.torque_noise == 0)
    np.testing.assert_array_equal(batch.target, task.batch(np.random.default_rng(5)).target)


def test_postural_forces_are_eight_directions_of_the_given_size_at_nine_postures():
    task = Postural(force=3.0)
    batch = task.batch(np.random.default_rng(0))
    assert batch.initial_state.shape == (72, 4) and batch.disturbance.shape == (72, 100, 2)
    assert (task.steps, task.delay, task.alpha) == (100, 10, pytest.approx(1e-8))
    np.testing.assert_array_equal(batch.initial_state, batch.target)
    assert len(np.unique(batch.initial_state, axis=0)) == 9
    np.testing.assert_array_equal(batch.disturbance, batch.disturbance[:, :1].repeat(100, 1))
    jacobian = TwoLinkArm().hand_jacobian(batch.initial_state.astype(np.float64)).numpy()
    torques = batch.disturbance[:, 0, :, None].astype(np.float64)
    forces = np.linalg.solve(np.swapaxes(jacobian, -1, -2), torques)[..., 0]
    angle = 2 * np.pi * np.tile(np.arange(8), 9) / 8
    np.testing.assert_allclose(forces, 3.0 * np.stack([np.cos(angle), np.sin(angle)], -1),
                               atol=1e-4)


def test_ddn_batches_are_seeded_with_held_disturbances_from_the_first_half():
    task = DDN()
    first = task.batch(np.random.default_rng(3))
    again = task.batch(np.random.default_rng(3))
    other = task.batch(np.random.default_rng(4))
    np.testing.assert_array_equal(first.disturbance, again.disturbance)
    assert not np.array_equal(first.target, other.target)
    assert first.initial_state.shape == (400, 4) and first.torque_noise.shape == (400, 60, 2)
    assert (task.steps, task.delay, task.alpha) == (60, 7, pytest.approx(1e-6))
    d = first.disturbance
    onset = np.argmax(np.any(d != 0, -1), 1)
    assert onset.max() < 30
    for i in range(20):
        np.testing.assert_array_equal(d[i, :onset[i]], 0)
        np.testing.assert_array_equal(d[i, onset[i]:], np.repeat(d[i, -1:], 60 - onset[i], 0))
    assert d[:, -1].std() == pytest.approx(0.2, rel=0.1)
    assert first.torque_noise.std() == pytest.approx(0.1, rel=0.05)
    assert not np.array_equal(task.test_batch(0).target, next(task.batches(0)).target)


@pytest.mark.parametrize("name", ["center_out", "postural", "ddn"])
def test_loss_is_half_the_squared_residuals_and_matches_numpy(name):
    task = make_task(name)
    rng = np.random.default_rng(0)
    batch = task.batch(rng, size=3)
    trajectory = rng.normal(size=(3, task.steps + 1, 4))
    commands = rng.normal(size=(3, task.steps, 2))
    target = batch.target.astype(np.float64)
    effort = task.alpha * np.sum(commands ** 2, (1, 2)) / 2
    if name == "postural":
        expected = (np.sum((trajectory[:, 1:, :2] - target[:, None, :2]) ** 2, (1, 2)) / 2
                    + np.sum(trajectory[:, 51:, 2:] ** 2, (1, 2)) / 2 + effort)
    else:
        expected = np.sum((trajectory[:, -1] - target) ** 2, -1) / 2 + effort
    np.testing.assert_allclose(task.loss(trajectory, commands, target).numpy(), expected)
    residuals = task.residuals(trajectory, commands, target)
    assert residuals.shape == (3, task.residual_size())


@pytest.mark.parametrize("name", ["center_out", "postural", "ddn"])
def test_state_weights_give_the_state_loss(name):
    """`sum_t W_t (x_t - x*)^2 / 2` over x_1..x_T is the loss without effort (iLQR's costs)."""
    task = make_task(name, steps=12)
    batch = task.batch(np.random.default_rng(0), 3)
    rng = np.random.default_rng(1)
    trajectory = rng.normal(size=(3, task.steps + 1, 4))
    target = batch.target.astype(np.float64)
    weights = task.state_weights()
    assert weights.shape == (12, 4) and set(np.unique(weights)) <= {0.0, 1.0}
    expected = 0.5 * np.sum(weights * (trajectory[:, 1:] - target[:, None]) ** 2, (1, 2))
    loss = task.loss(trajectory, np.zeros((3, task.steps, 2)), target).numpy()
    np.testing.assert_allclose(loss, expected, rtol=1e-12)


def test_rollout_matches_a_numpy_closed_loop_with_delay_noise_and_disturbance():
    task = DDN(steps=8, delay=3, batch_size=4)
    batch = float64(task.batch(np.random.default_rng(1)))
    controller = PDController()
    result = tf.function(lambda: rollout(controller, TwoLinkArm(), batch, delay=3))()
    reference = numpy_pd_rollout(batch.initial_state.astype(np.float64),
                                 batch.target.astype(np.float64), 2.0, 0.3, 8, 3,
                                 batch.disturbance, batch.torque_noise)
    for got, want in zip(result, reference):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    assert result.trajectory.shape == (4, 9, 4)


def test_rollout_gradient_matches_finite_differences():
    task = CenterOut(targets=4, steps=6)
    batch = float64(task.batch(np.random.default_rng(0)))
    controller = PDController()
    arm = TwoLinkArm()

    @tf.function
    def loss():
        out = rollout(controller, arm, batch)
        return tf.reduce_mean(task.loss(out.trajectory, out.commands, batch.target))

    with tf.GradientTape() as tape:
        value = loss()
    grad = tape.gradient(value, controller.k).numpy()
    eps = 1e-6
    controller.k.assign_add(eps)
    up = loss().numpy()
    controller.k.assign_sub(2 * eps)
    down = loss().numpy()
    assert grad == pytest.approx((up - down) / (2 * eps), rel=1e-5)


def test_rollout_graph_does_not_grow_with_the_horizon():
    """One `tf.while_loop`: tracing costs the same at T = 5 and T = 50 (no unrolled copies)."""
    controller, arm = PDController(), TwoLinkArm()

    def operations(steps):
        batch = float64(DDN(steps=steps, delay=3, batch_size=2).batch(np.random.default_rng(0)))
        graph = tf.function(lambda: rollout(controller, arm, batch, delay=3)
                            ).get_concrete_function().graph
        return len(graph.get_operations()), graph

    short, _ = operations(5)
    long, graph = operations(50)
    assert short == long
    assert any(op.type in ("While", "StatelessWhile") for op in graph.get_operations())


def test_bad_task_settings_raise():
    with pytest.raises(ValueError, match="Unknown arm task 'reach'"):
        make_task("reach")
    with pytest.raises(ValueError, match="does not take"):
        make_task("ddn", radius=1)
    with pytest.raises(ValueError, match="out of the arm's reach"):
        CenterOut(target_radius=0.5)
    with pytest.raises(ValueError, match="delay"):
        DDN(delay=-1)
    with pytest.raises(ValueError, match="ambiguous or missing"):
        rollout(PDController(), TwoLinkArm(), initial_state=tf.zeros([2, 4]),
                target=tf.zeros([2, 4]))
