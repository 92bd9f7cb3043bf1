"""Running a feedback controller closed-loop through the arm (thesis §6.4-6.6).

    result = rollout(controller, arm, batch)          # inside a tf.function: one graph
    result.commands      # (B, T, 2) the controller's outputs u_t (what the effort cost charges)
    result.torques       # (B, T, 2) the torques the joints received, u_t (1 + xi^u_t) + d_t
    result.trajectory    # (B, T + 1, 4) states x_0 ... x_T

A controller is any object with `step(observation, target, state) -> (torque, state)` and
`initial_state(batch_size, dtype)`; at step `t` it observes the state delayed by `delay` steps,
`x_{max(t - delay, 0)}` (the thesis's feedback delay, §6.5-6.6: before the first delayed state
exists it sees the initial one), and the target. The loop is one `tf.while_loop` over the static
number of steps `T` (a graph the size of one step, whatever T): the last `delay + 1` states are
carried in the loop, the outputs written to TensorArrays. Reverse mode and reverse-over-reverse
(the Gauss-Newton products of `rnnzoo.optimizers.gauss_newton`, whose `J v` is the transpose of
a backward pass) differentiate it; forward mode (`tf.autodiff.ForwardAccumulator`) does not
pass through loops that accumulate outputs (ARCHITECTURE, "Measured facts"). Unrolling the T
steps in Python instead made tracing and graph optimisation the cost of training: about 140 s
(trace 81 s + first call 60 s) for one Hessian-free step of an 8-unit controller at T = 40, at
load 1-4 on 2 cores, against a loop whose graph does not grow with T.
"""

import collections

import tensorflow as tf

from rnnzoo.control.arm import STATE_SIZE, TORQUE_SIZE

Rollout = collections.namedtuple("Rollout", ["commands", "torques", "trajectory"])
Rollout.__doc__ = """A closed-loop rollout: `commands` u_t `(B, T, 2)`, `torques` applied
`(B, T, 2)`, `trajectory` x_0 ... x_T `(B, T + 1, 4)`."""


def _steps_of(name, tensor):
    if tensor.shape.rank != 3 or tensor.shape[1] is None:
        raise ValueError(
            f"`{name}` must have shape (batch, steps, {TORQUE_SIZE}) with a static number of "
            f"steps (the rollout runs over them), got {tuple(tensor.shape)}."
        )
    return tensor.shape[1]


@tf.autograph.experimental.do_not_convert
def rollout(controller, arm, batch=None, *, initial_state=None, target=None, steps=None,
            delay=0, disturbance=None, torque_noise=None, controller_state=None):
    """Runs `controller` closed-loop through `arm` for `T` steps; returns a `Rollout`.

    Args:
        controller: has `step(observation, target, state) -> (torque, state)` and
            `initial_state(batch_size, dtype)` (e.g. `rnnzoo.zoo.arm_controller.model.ArmController`).
        arm: a `rnnzoo.control.TwoLinkArm`.
        batch: a `rnnzoo.control.ReachBatch` (its task's `delay` must be passed separately),
            or `None` and the tensors below.
        initial_state: `x_0`, `(B, 4)`.
        target: the target state `(B, 4)` the controller is given every step.
        steps: `T`; `None`: the length of `disturbance` / `torque_noise`.
        delay: feedback delay in steps (>= 0).
        disturbance, torque_noise: `d_t`, `xi^u_t`, `(B, T, 2)`, or `None`.
        controller_state: the controller's initial state; `None`: `controller.initial_state`.

    Returns:
        `Rollout(commands, torques, trajectory)`. Call inside a `tf.function` to run the whole
        closed loop as one graph.
    """
    if batch is not None:
        initial_state, target = batch.initial_state, batch.target
        disturbance, torque_noise = batch.disturbance, batch.torque_noise
    if initial_state is None or target is None:
        raise ValueError("Pass `batch` or both `initial_state` and `target`.")
    state = tf.convert_to_tensor(initial_state)
    target = tf.convert_to_tensor(target, state.dtype)
    if state.shape.rank != 2 or state.shape[-1] != STATE_SIZE:
        raise ValueError(f"`initial_state` must have shape (batch, {STATE_SIZE}), got "
                         f"{tuple(state.shape)}.")
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        raise ValueError(f"`delay` must be an integer number of steps >= 0, got {delay!r}.")
    known = {}
    if disturbance is not None:
        disturbance = tf.convert_to_tensor(disturbance, state.dtype)
        known["disturbance"] = _steps_of("disturbance", disturbance)
    if torque_noise is not None:
        torque_noise = tf.convert_to_tensor(torque_noise, state.dtype)
        known["torque_noise"] = _steps_of("torque_noise", torque_noise)
    if steps is not None:
        known["steps"] = steps
    if not known or len(set(known.values())) != 1:
        raise ValueError(
            f"The number of steps is ambiguous or missing ({known or 'none given'}); pass "
            "`steps` and/or `disturbance`/`torque_noise` of that many steps."
        )
    steps = next(iter(known.values()))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive integer, got {steps!r}.")
    if controller_state is None:
        controller_state = controller.initial_state(tf.shape(state)[0], state.dtype)
    known_inputs = [tf.transpose(t, [1, 0, 2]) if t is not None else None
                    for t in (disturbance, torque_noise)]

    def body(t, state, controller_state, recent, commands, torques, trajectory):
        d, xi = (None if t_major is None else t_major[t] for t_major in known_inputs)
        command, controller_state = controller.step(recent[0], target, controller_state)
        applied = arm.applied_torque(state, command, d, xi)
        state = arm.integrate(state, applied)
        recent = tf.concat([recent[1:], state[None]], 0)  # x_{t+1-delay} ... x_{t+1}
        return (t + 1, state, controller_state, recent, commands.write(t, command),
                torques.write(t, applied), trajectory.write(t + 1, state))

    def array(size, width):
        return tf.TensorArray(state.dtype, size=size, element_shape=[state.shape[0], width])

    start = (tf.constant(0), state, controller_state, tf.repeat(state[None], delay + 1, 0),
             array(steps, TORQUE_SIZE), array(steps, TORQUE_SIZE),
             array(steps + 1, STATE_SIZE).write(0, state))
    *_, commands, torques, trajectory = tf.while_loop(
        lambda t, *_: t < steps, body, start, maximum_iterations=steps)

    def batch_major(array):
        return tf.transpose(array.stack(), [1, 0, 2])

    return Rollout(batch_major(commands), batch_major(torques), batch_major(trajectory))
