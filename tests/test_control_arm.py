"""The two-link arm (thesis §6.3, Li & Todorov 2004) against an independent numpy model."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.control import ArmConfig, TwoLinkArm

C = ArmConfig()


def numpy_step(x, u, c=C):
    """Li & Todorov's arm written out: M theta'' + C + B theta' = tau, semi-implicit Euler."""
    th1, th2, d1, d2 = x
    a1 = c.i1 + c.i2 + c.m2 * c.l1 ** 2
    a2 = c.m2 * c.l1 * c.s2
    a3 = c.i2
    m = np.array([[a1 + 2 * a2 * np.cos(th2), a3 + a2 * np.cos(th2)],
                  [a3 + a2 * np.cos(th2), a3]])
    cor = np.array([-d2 * (2 * d1 + d2), d1 ** 2]) * a2 * np.sin(th2)
    b = np.array([[c.b11, c.b12], [c.b12, c.b22]])
    acc = np.linalg.solve(m, np.asarray(u) - cor - b @ np.array([d1, d2]))
    vel = np.array([d1, d2]) + c.dt * acc
    return np.concatenate([np.array([th1, th2]) + c.dt * vel, vel])


def numpy_hand(x, c=C):
    return np.array([c.l1 * np.cos(x[0]) + c.l2 * np.cos(x[0] + x[1]),
                     c.l1 * np.sin(x[0]) + c.l2 * np.sin(x[0] + x[1])])


def test_default_constants_are_li_todorov():
    assert (C.m1, C.m2, C.l1, C.l2, C.s1, C.s2, C.i1, C.i2) == (
        1.4, 1.0, 0.30, 0.33, 0.11, 0.16, 0.025, 0.045)
    assert (C.b11, C.b12, C.b22, C.dt) == (0.05, 0.025, 0.05, 0.01)


def test_step_matches_numpy_over_a_trajectory():
    rng = np.random.default_rng(0)
    arm = TwoLinkArm()
    x = np.concatenate([rng.uniform(0, 2, (8, 2)), rng.normal(0, 2, (8, 2))], -1)
    u = rng.normal(0, 1, (30, 8, 2))
    xs, ref = tf.constant(x, tf.float64), x.copy()
    for t in range(30):
        xs = arm.step(xs, u[t])
        ref = np.stack([numpy_step(ref[i], u[t, i]) for i in range(8)])
    np.testing.assert_allclose(xs.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(arm.hand_position(xs).numpy(),
                               np.stack([numpy_hand(r) for r in ref]), atol=1e-12)


def test_float32_step_matches_float64():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(0, 2, (5, 2)), rng.normal(0, 1, (5, 2))], -1)
    u = rng.normal(0, 1, (5, 2))
    arm = TwoLinkArm()
    single = arm.step(tf.constant(x, tf.float32), u.astype(np.float32))
    assert single.dtype == tf.float32
    np.testing.assert_allclose(single.numpy(), arm.step(tf.constant(x), u).numpy(), atol=1e-5)


def test_noise_and_disturbance_enter_as_in_the_thesis():
    """x_{t+1} = f(x_t, u_t (1 + xi^u_t) + d_t) + xi^f_t."""
    arm = TwoLinkArm()
    x = tf.constant([[0.5, 1.2, 0.3, -0.4]], tf.float64)
    u, xi, d, xf = [[0.3, -0.2]], [[0.1, -0.5]], [[0.05, 0.02]], [[1e-3, 0, -1e-3, 2e-3]]
    applied = np.array(u) * (1 + np.array(xi)) + np.array(d)
    expected = numpy_step(x.numpy()[0], applied[0]) + np.array(xf[0])
    got = arm.step(x, u, disturbance=d, torque_noise=xi, state_noise=xf)
    np.testing.assert_allclose(got.numpy()[0], expected, rtol=1e-12)


def test_inertia_matrix_is_positive_definite_over_the_joint_range():
    arm = TwoLinkArm()
    grid = np.stack(np.meshgrid(np.linspace(-np.pi, np.pi, 41), np.linspace(-np.pi, np.pi, 41)),
                    -1).reshape(-1, 2)
    states = np.concatenate([grid, np.zeros_like(grid)], -1)
    m = arm.inertia(tf.constant(states)).numpy()
    np.testing.assert_allclose(m, np.swapaxes(m, -1, -2))
    eigenvalues = np.linalg.eigvalsh(m)
    # det M = a1 a3 - a3^2 - a2^2 cos^2 phi >= a1 a3 - a3^2 - a2^2 = 0.002871 > 0.
    assert eigenvalues.min() > 5e-3
    np.testing.assert_allclose(np.linalg.det(m).min(), 0.16 * 0.045 - 0.045 ** 2 - 0.048 ** 2,
                               rtol=1e-6)


def test_acceleration_solves_the_equation_of_motion():
    rng = np.random.default_rng(2)
    arm = TwoLinkArm()
    x = tf.constant(np.concatenate([rng.uniform(-2, 2, (6, 2)), rng.normal(0, 2, (6, 2))], -1))
    tau = tf.constant(rng.normal(0, 1, (6, 2)))
    acc = arm.acceleration(x, tau)
    residual = (tf.linalg.matvec(arm.inertia(x), acc) + arm.coriolis(x) + arm.friction(x) - tau)
    np.testing.assert_allclose(residual.numpy(), 0, atol=1e-12)


def _energy_deviation(dt, seconds=1.0):
    """Largest relative change of the energy over `seconds` of free, frictionless motion."""
    arm = TwoLinkArm(dataclasses.replace(C, b11=0.0, b12=0.0, b22=0.0, dt=dt))
    x0 = tf.constant([[0.3, 1.0, 2.0, -3.0], [1.0, 0.4, -1.5, 2.5]], tf.float64)
    e0 = arm.kinetic_energy(x0)

    @tf.function
    def worst():
        x, deviation = x0, tf.constant(0.0, tf.float64)
        for _ in tf.range(int(round(seconds / dt))):
            x = arm.step(x, tf.zeros([2, 2], tf.float64))
            change = tf.reduce_max(tf.abs(arm.kinetic_energy(x) - e0) / e0)
            deviation = tf.maximum(deviation, change)
        return deviation

    return float(worst())


def test_energy_is_conserved_to_first_order_without_friction_or_torque():
    coarse, fine = _energy_deviation(0.01), _energy_deviation(0.001)
    assert coarse < 0.05  # a few per cent over 1 s at the thesis's dt
    assert 5 < coarse / fine < 20  # first-order method: error ~ dt


def test_friction_dissipates_energy():
    arm = TwoLinkArm()
    x = tf.constant([[0.3, 1.0, 2.0, -3.0]], tf.float64)
    energies = [arm.kinetic_energy(x).numpy()[0]]
    for _ in range(50):
        x = arm.step(x, tf.zeros([1, 2], tf.float64))
        energies.append(arm.kinetic_energy(x).numpy()[0])
    assert energies[-1] < 0.7 * energies[0]


def test_inverse_kinematics_round_trips():
    arm = TwoLinkArm()
    angles = np.array([[0.3, 1.2], [1.0, 0.5], [-0.4, 2.5]])
    hand = arm.hand_position(np.concatenate([angles, np.zeros_like(angles)], -1))
    np.testing.assert_allclose(arm.joint_angles(hand).numpy(), angles, atol=1e-10)
    with pytest.raises(ValueError, match="out of the arm's reach"):
        arm.joint_angles(tf.constant([[0.7, 0.0]]))


def test_hand_jacobian_matches_finite_differences():
    arm = TwoLinkArm()
    x = np.array([0.7, 1.1, 0.0, 0.0])
    eps = 1e-6
    numeric = np.stack([
        (arm.hand_position(x + eps * np.eye(4)[j]).numpy()
         - arm.hand_position(x - eps * np.eye(4)[j]).numpy()) / (2 * eps) for j in range(2)], -1)
    np.testing.assert_allclose(arm.hand_jacobian(x).numpy(), numeric, atol=1e-8)


def test_gradients_match_finite_differences():
    arm = TwoLinkArm()
    x0 = tf.constant([[0.5, 1.3, 0.2, -0.1]], tf.float64)
    u = tf.constant([[0.4, -0.3]], tf.float64)

    def final_x(u):
        x = x0
        for _ in range(10):
            x = arm.step(x, u)
        return tf.reduce_sum(arm.hand_position(x))

    with tf.GradientTape() as tape:
        tape.watch(u)
        value = final_x(u)
    grad = tape.gradient(value, u).numpy()
    eps = 1e-6
    numeric = [(final_x(u + eps * np.eye(2)[j]) - final_x(u - eps * np.eye(2)[j])).numpy()
               / (2 * eps) for j in range(2)]
    np.testing.assert_allclose(grad[0], numeric, rtol=1e-6)


@pytest.mark.parametrize("field, value, match", [
    ("m2", 0.0, "m2 must be > 0"),
    ("dt", -0.01, "dt must be > 0"),
    ("b12", 0.1, "not positive semi-definite"),
])
def test_bad_constants_raise(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(C, **{field: value})


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="must have 2 entries"):
        TwoLinkArm().step(tf.zeros([3, 4]), tf.zeros([3, 3]))
    with pytest.raises(ValueError, match="must have 4 entries"):
        TwoLinkArm().step(tf.zeros([3, 5]), tf.zeros([3, 2]))
