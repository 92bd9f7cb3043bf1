"""Iterative LQR per reach: the thesis's gold standard of open-loop torques (§6.7.1).

For each reach of a batch, iLQR (Li & Todorov 2004; Tassa, Erez & Todorov 2012) optimises
the open-loop torques `u_0 ... u_{T-1}` of the task's loss

    J(u) = sum_{t=1}^{T} (x_t - x*)^T W_t (x_t - x*) / 2 + alpha sum_t |u_t|^2 / 2,
    x_{t+1} = f(x_t, u_t),

`W_t = diag(task.state_weights()[t - 1])`: `W_T = I` and no running state cost for the
final-state tasks `center_out` and `ddn`; the angle error at every step and the velocity in the
second half for `postural`. The batch's disturbances (postural's constant forces, DDN's
disturbance and torque noise) are its known realisation: iLQR plans with them in advance, no
feedback delay applies. All reaches run at once, batched. Each iteration:

1. linearise the plant along the nominal trajectory: `A_t = df/dx`, `B_t = df/du` of
   `TwoLinkArm.step`, one `batch_jacobian` over all reaches and steps (TF autodiff);
2. regularised backward pass (Gauss-Newton: no second derivatives of `f`), from
   `V_x = x_T - x*`, `V_xx = I`:

       Q_u = alpha u_t + B^T V_x,  Q_uu = alpha I + B^T V_xx B,  Q_ux = B^T V_xx A,
       k = -(Q_uu + mu I)^-1 Q_u,  K = -(Q_uu + mu I)^-1 Q_ux,
       V_x = A^T V_x + K^T Q_uu k + K^T Q_u + Q_ux^T k,
       V_xx = A^T V_xx A + K^T Q_uu K + K^T Q_ux + Q_ux^T K      (Tassa et al. 2012, eq. 11)

   with a Levenberg-Marquardt parameter `mu` per reach on `Q_uu`; the running state cost
   adds `W_t (x_t - x*)` to `V_x` and `W_t` to `V_xx` at every step (`V_x = W_T (x_T - x*)`,
   `V_xx = W_T` at `T`);
3. forward pass with a backtracking line search, all step sizes `a = 1, 1/2, ..., 2^-9` at
   once: `u_t = u_t + a k_t + K_t (x_t^new - x_t)`; a reach takes the largest `a` whose
   decrease is at least `1e-4` of the predicted `-(a k^T Q_u + a^2 k^T Q_uu k / 2)` summed
   over t (Armijo on the model), then `mu <- mu / 10` (floored to 0 below `mu_min`); no step
   accepted: the torques stay and `mu <- max(10 mu, mu_min)`.

A reach stops once its relative decrease falls below `tolerance`, or its `mu` exceeds
`mu_max`. At a fixed point `k = 0`, so `Q_u = dJ/du_t = 0`: the result is a stationary point
of the open-loop cost (checked against TF autodiff in `tests/test_ilqr.py`).
"""

import dataclasses

import numpy as np
import tensorflow as tf


STEP_SIZES = tuple(0.5**i for i in range(10))


@dataclasses.dataclass
class ILQRResult:
    """`torques (B, T, 2)`, `trajectory (B, T + 1, 4)`, `loss (B,)` (the task's), the
    `iterations` run and `history`, the mean loss before each iteration and at the end."""

    torques: np.ndarray
    trajectory: np.ndarray
    loss: np.ndarray
    iterations: int
    history: list


def open_loop_rollout(arm, batch, torques):
    """The trajectory `(B, T + 1, 4)` of open-loop `torques (B, T, 2)` from the batch's start."""
    dtype = tf.float64
    torques = tf.convert_to_tensor(torques, dtype)
    state = tf.constant(batch.initial_state, dtype)
    disturbance = tf.constant(batch.disturbance, dtype)
    noise = tf.constant(batch.torque_noise, dtype)
    states = [state]
    for t in range(torques.shape[1]):
        state = arm.step(state, torques[:, t], disturbance[:, t], noise[:, t])
        states.append(state)
    return tf.stack(states, 1)


def open_loop_loss(task, arm, batch, torques):
    """The task's loss `(B,)` of open-loop `torques` (float64)."""
    torques = tf.convert_to_tensor(torques, tf.float64)
    trajectory = open_loop_rollout(arm, batch, torques)
    return task.loss(trajectory, torques, tf.constant(batch.target, tf.float64))


def ilqr(task, arm, batch, iterations=200, tolerance=1e-10, mu_min=1e-12, mu_max=1e10,
         initial_torques=None):
    """Open-loop torques per reach of `batch` by iLQR (see the module docstring).

    Args:
        task: a `ReachTask` (`center_out`, `postural`, `ddn`).
        arm: the `TwoLinkArm`.
        batch: a `ReachBatch` of the task.
        iterations: cap on iLQR iterations.
        tolerance: a reach stops once `(J_old - J_new) / J_old` falls below it.
        mu_min, mu_max: range of the Levenberg-Marquardt parameter.
        initial_torques: `(B, T, 2)`; `None`: zeros.

    Returns:
        An `ILQRResult`.

    Raises:
        ValueError: a bad argument.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}.")
    if not 0 < mu_min < mu_max:
        raise ValueError(f"need 0 < mu_min < mu_max, got mu_min={mu_min!r}, mu_max={mu_max!r}.")
    size, steps = batch.initial_state.shape[0], task.steps
    alpha = task.alpha
    dtype = tf.float64
    target = tf.constant(batch.target, dtype)
    torques = tf.zeros([size, steps, 2], dtype) if initial_torques is None else tf.constant(
        initial_torques, dtype)
    disturbance = tf.constant(batch.disturbance, dtype)
    noise = tf.constant(batch.torque_noise, dtype)
    eye_u = tf.eye(2, dtype=dtype)
    weights = task.state_weights()  # rows: x_1 ... x_T
    # the running weights of x_0 ... x_{T-1} (x_0 is not in the loss)
    running = tf.constant(np.concatenate([np.zeros((1, 4)), weights[:-1]]), dtype)
    final = tf.constant(weights[-1], dtype)
    tiled = dataclasses.replace(
        batch, **{name: np.tile(getattr(batch, name), [len(STEP_SIZES)] + [1] * (
            getattr(batch, name).ndim - 1))
            for name in ("initial_state", "target", "disturbance", "torque_noise")})

    @tf.function
    def linearise(trajectory, torques):
        z = tf.reshape(tf.concat([trajectory[:, :-1], torques], -1), [-1, 6])
        with tf.GradientTape() as tape:
            tape.watch(z)
            following = arm.step(z[:, :4], z[:, 4:], tf.reshape(disturbance, [-1, 2]),
                                 tf.reshape(noise, [-1, 2]))
        jacobian = tf.reshape(tape.batch_jacobian(following, z), [size, steps, 4, 6])
        return jacobian[..., :4], jacobian[..., 4:]

    def time_major(tensor):
        return tf.transpose(tensor, [1, 0] + list(range(2, tensor.shape.rank)))

    @tf.function
    def backward(trajectory, torques, a, b, mu):
        def step(carry, inputs):
            v_x, v_xx, linear, quadratic, _, _ = carry
            a_t, b_t, u_t, x_t, w_t = inputs
            bt_vxx = tf.linalg.matmul(b_t, v_xx, transpose_a=True)
            q_u = alpha * u_t + tf.linalg.matvec(b_t, v_x, transpose_a=True)
            q_uu = alpha * eye_u + tf.matmul(bt_vxx, b_t)
            q_ux = tf.matmul(bt_vxx, a_t)
            regularised = q_uu + mu[:, None, None] * eye_u
            k = -tf.linalg.solve(regularised, q_u[..., None])[..., 0]
            gain = -tf.linalg.solve(regularised, q_ux)
            v_x = (tf.linalg.matvec(a_t, v_x, transpose_a=True)
                   + tf.linalg.matvec(gain, tf.linalg.matvec(q_uu, k), transpose_a=True)
                   + tf.linalg.matvec(gain, q_u, transpose_a=True)
                   + tf.linalg.matvec(q_ux, k, transpose_a=True))
            v_xx = (tf.matmul(tf.matmul(a_t, v_xx, transpose_a=True), a_t)
                    + tf.matmul(tf.matmul(gain, q_uu, transpose_a=True), gain)
                    + tf.matmul(gain, q_ux, transpose_a=True)
                    + tf.matmul(q_ux, gain, transpose_a=True))
            v_xx = 0.5 * (v_xx + tf.linalg.matrix_transpose(v_xx))
            v_x = v_x + w_t * (x_t - target)  # the running state cost at x_t
            v_xx = v_xx + tf.linalg.diag(tf.broadcast_to(w_t, tf.shape(v_x)))
            linear = linear + tf.reduce_sum(k * q_u, -1)
            quadratic = quadratic + 0.5 * tf.reduce_sum(k * tf.linalg.matvec(q_uu, k), -1)
            return v_x, v_xx, linear, quadratic, k, gain

        start = (final * (trajectory[:, -1] - target),
                 tf.linalg.diag(tf.broadcast_to(final, [size, 4])),
                 tf.zeros([size], dtype), tf.zeros([size], dtype), tf.zeros([size, 2], dtype),
                 tf.zeros([size, 2, 4], dtype))
        _, _, linear, quadratic, gains, feedback = tf.scan(
            step, (time_major(a), time_major(b), time_major(torques),
                   time_major(trajectory[:, :-1]), running), start, reverse=True)
        # The sums accumulate from t = T - 1 down: the totals are at t = 0.
        return time_major(gains), time_major(feedback), linear[0], quadratic[0]

    @tf.function
    def forward(trajectory, torques, gains, feedback):
        count = len(STEP_SIZES)
        scales = tf.repeat(tf.constant(STEP_SIZES, dtype), size)[:, None]

        def tile(tensor):
            return time_major(tf.tile(tensor, [count] + [1] * (tensor.shape.rank - 1)))

        def step(state, inputs):
            nominal_x, nominal_u, gain, feedback_t, disturbance_t, noise_t = inputs
            u = nominal_u + scales * gain + tf.linalg.matvec(feedback_t, state - nominal_x)
            return arm.step(state, u, disturbance_t, noise_t), u

        states, commands = tf.scan(
            lambda carry, inputs: step(carry[0], inputs),
            (tile(trajectory[:, :-1]), tile(torques), tile(gains), tile(feedback),
             tile(disturbance), tile(noise)),
            (tf.tile(trajectory[:, 0], [count, 1]), tf.zeros([count * size, 2], dtype)),
        )
        new_trajectory = tf.concat([tf.tile(trajectory[:, :1], [count, 1, 1]),
                                    time_major(states)], 1)
        new_torques = time_major(commands)
        losses = task.loss(new_trajectory, new_torques, tf.constant(tiled.target))
        return (tf.reshape(new_trajectory, [count, size, steps + 1, 4]),
                tf.reshape(new_torques, [count, size, steps, 2]), tf.reshape(losses, [count, size]))

    trajectory = open_loop_rollout(arm, batch, torques)
    loss = task.loss(trajectory, torques, target)
    mu = tf.zeros([size], dtype)
    active = tf.ones([size], tf.bool)
    history = [float(tf.reduce_mean(loss))]
    scales = tf.constant(STEP_SIZES, dtype)[:, None]
    iteration = 0
    for iteration in range(1, iterations + 1):
        a, b = linearise(trajectory, torques)
        gains, feedback, linear, quadratic = backward(trajectory, torques, a, b, mu)
        trajectories, candidates, losses = forward(trajectory, torques, gains, feedback)
        predicted = -(scales * linear + scales**2 * quadratic)  # > 0: the model's decrease
        acceptable = ((loss - losses) >= 1e-4 * predicted) & (predicted > 0) & (losses < loss)
        first = tf.argmax(tf.cast(acceptable, tf.int32), axis=0, output_type=tf.int32)
        accepted = tf.reduce_any(acceptable, 0) & active
        pick = tf.stack([first, tf.range(size)], -1)
        new_loss = tf.where(accepted, tf.gather_nd(losses, pick), loss)
        torques = tf.where(accepted[:, None, None], tf.gather_nd(candidates, pick), torques)
        trajectory = tf.where(accepted[:, None, None], tf.gather_nd(trajectories, pick),
                              trajectory)
        mu = tf.where(accepted, tf.where(mu / 10 < mu_min, tf.zeros_like(mu), mu / 10),
                      tf.where(active, tf.maximum(10 * mu, mu_min), mu))
        converged = accepted & ((loss - new_loss) < tolerance * loss)
        active = active & ~converged & (mu <= mu_max)
        loss = new_loss
        history.append(float(tf.reduce_mean(loss)))
        if not bool(tf.reduce_any(active)):
            break
    return ILQRResult(torques.numpy(), trajectory.numpy(), loss.numpy(), iteration, history)
