"""A batched, differentiable two-joint planar arm driven by joint torques (thesis §6.3, §6.5-6.6).

State `x = [theta_shoulder, theta_elbow, dtheta_shoulder, dtheta_elbow]` (rad, rad/s), torque
`u = [tau_shoulder, tau_elbow]` (N m). The dynamics are the standard two-link model of Li &
Todorov (2004) in the horizontal plane (no gravity):

    M(phi) theta'' + C(theta', phi) + B theta' = tau,
    a1 = I1 + I2 + m2 l1^2,  a2 = m2 l1 s2,  a3 = I2,
    M = [[a1 + 2 a2 cos phi, a3 + a2 cos phi], [a3 + a2 cos phi, a3]],
    C = a2 sin phi [-phi' (2 theta_s' + phi'), theta_s'^2],

with `phi` the elbow angle. The thesis takes its constants "from the monkey limb" without listing
them; `ArmConfig`'s defaults are Li & Todorov's. One step is the thesis's discretisation
`x_{t+1} = f(x_t, u_t (1 + xi^u_t) + d_t) + xi^f_t` with dt = 0.01 s and no sub-steps, `f` one
semi-implicit (symplectic) Euler step: the velocity is advanced with the acceleration at `x_t`,
the angles with the new velocity. Every operation is a core TF op on batched tensors, so
gradients (and forward-mode derivatives) pass through it and it exports to stock TF Serving.
"""

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class ArmConfig:
    """Constants of the two-link arm (Li & Todorov 2004; SI units).

    Attributes:
        m1, m2: upper-arm and forearm masses (kg).
        l1, l2: segment lengths (m).
        s1, s2: distances of the segments' centres of mass from their proximal joint (m);
            `s1` enters only through `i1`, which is given directly.
        i1, i2: segment moments of inertia about their centres of mass as used in the model's
            `a1 = i1 + i2 + m2 l1^2`, `a3 = i2` (kg m^2).
        b11, b12, b22: the symmetric viscous friction matrix `B = [[b11, b12], [b12, b22]]`
            (kg m^2 / s); zeros make the arm conservative.
        dt: Euler step (s); the thesis's losses are defined at 0.01.
    """

    m1: float = 1.4
    m2: float = 1.0
    l1: float = 0.30
    l2: float = 0.33
    s1: float = 0.11
    s2: float = 0.16
    i1: float = 0.025
    i2: float = 0.045
    b11: float = 0.05
    b12: float = 0.025
    b22: float = 0.05
    dt: float = 0.01

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"ArmConfig.{field.name} must be a number, got {value!r}.")
        for name in ("m1", "m2", "l1", "l2", "s1", "s2", "i1", "i2", "dt"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"ArmConfig.{name} must be > 0, got {getattr(self, name)!r}; pass a positive "
                    "physical constant (defaults: Li & Todorov 2004)."
                )
        if not (self.b11 >= 0 and self.b22 >= 0 and self.b11 * self.b22 >= self.b12 ** 2):
            raise ValueError(
                f"Friction B = [[{self.b11}, {self.b12}], [{self.b12}, {self.b22}]] is not "
                "positive semi-definite, so it would add energy; use b11, b22 >= 0 and "
                "b12^2 <= b11 b22 (default [[0.05, 0.025], [0.025, 0.05]])."
            )


STATE_SIZE = 4
"""`[theta_shoulder, theta_elbow, dtheta_shoulder, dtheta_elbow]`."""
TORQUE_SIZE = 2
"""`[tau_shoulder, tau_elbow]`."""


def _check_last_dim(name, tensor, size):
    if tensor.shape.rank is not None and tensor.shape.rank >= 1 and tensor.shape[-1] is not None:
        if tensor.shape[-1] != size:
            raise ValueError(
                f"`{name}` must have {size} entries in its last dimension, got shape "
                f"{tuple(tensor.shape)}; the arm's state is [theta_shoulder, theta_elbow, "
                "dtheta_shoulder, dtheta_elbow] and its torque [tau_shoulder, tau_elbow]."
            )


class TwoLinkArm:
    """The two-joint arm of thesis §6.3 as batched TF functions of `(..., 4)` states.

        arm = TwoLinkArm()                          # Li & Todorov constants, dt = 0.01
        x1 = arm.step(x0, u)                        # x0 (B, 4), u (B, 2)
        hand = arm.hand_position(x1)                # (B, 2), metres, shoulder at the origin

    All methods take and return tensors in the state's dtype and work in any batch shape.
    """

    def __init__(self, config=None):
        self.config = ArmConfig() if config is None else config
        if not isinstance(self.config, ArmConfig):
            raise ValueError(
                f"config must be an ArmConfig, got {type(self.config).__name__}; build one "
                "with rnnzoo.control.ArmConfig(...)."
            )
        c = self.config
        self.a1 = c.i1 + c.i2 + c.m2 * c.l1 ** 2
        self.a2 = c.m2 * c.l1 * c.s2
        self.a3 = c.i2

    def inertia(self, state):
        """`M(phi)`, shape `(..., 2, 2)` (symmetric positive definite for every elbow angle)."""
        state = tf.convert_to_tensor(state)
        cos = tf.cos(state[..., 1])
        m11 = self.a1 + 2 * self.a2 * cos
        m12 = self.a3 + self.a2 * cos
        m22 = tf.fill(tf.shape(cos), tf.constant(self.a3, state.dtype))
        return tf.stack([tf.stack([m11, m12], -1), tf.stack([m12, m22], -1)], -2)

    def coriolis(self, state):
        """`C = a2 sin phi [-phi' (2 theta_s' + phi'), theta_s'^2]`, shape `(..., 2)`."""
        state = tf.convert_to_tensor(state)
        sin = tf.sin(state[..., 1])
        ds, de = state[..., 2], state[..., 3]
        return self.a2 * sin[..., None] * tf.stack([-de * (2 * ds + de), tf.square(ds)], -1)

    def friction(self, state):
        """`B theta'`, shape `(..., 2)`."""
        state = tf.convert_to_tensor(state)
        c = self.config
        ds, de = state[..., 2], state[..., 3]
        return tf.stack([c.b11 * ds + c.b12 * de, c.b12 * ds + c.b22 * de], -1)

    def acceleration(self, state, torque):
        """`theta'' = M^{-1} (tau - C - B theta')` (closed-form 2x2 inverse), shape `(..., 2)`.

        Written out on unstacked components (few graph ops per step).
        """
        state = tf.convert_to_tensor(state)
        torque = tf.convert_to_tensor(torque, state.dtype)
        _check_last_dim("state", state, STATE_SIZE)
        _check_last_dim("torque", torque, TORQUE_SIZE)
        c = self.config
        _, elbow, ds, de = tf.unstack(state, STATE_SIZE, axis=-1)
        tau_s, tau_e = tf.unstack(torque, TORQUE_SIZE, axis=-1)
        a2_cos, a2_sin = self.a2 * tf.cos(elbow), self.a2 * tf.sin(elbow)
        m11 = self.a1 + 2 * a2_cos
        m12 = self.a3 + a2_cos
        rhs_s = tau_s + a2_sin * de * (2 * ds + de) - (c.b11 * ds + c.b12 * de)
        rhs_e = tau_e - a2_sin * ds * ds - (c.b12 * ds + c.b22 * de)
        det = self.a3 * m11 - m12 * m12
        return tf.stack([(self.a3 * rhs_s - m12 * rhs_e) / det, (m11 * rhs_e - m12 * rhs_s) / det],
                        -1)

    def step(self, state, torque, disturbance=None, torque_noise=None, state_noise=None):
        """One step `x_{t+1} = f(x_t, u_t (1 + xi^u_t) + d_t) + xi^f_t` (thesis §6.5-6.6).

        Args:
            state: `x_t`, `(..., 4)`.
            torque: the controller's command `u_t`, `(..., 2)`.
            disturbance: `d_t`, external joint torques `(..., 2)`; `None`: none.
            torque_noise: `xi^u_t`, the signal-dependent (multiplicative) torque noise
                `(..., 2)`; `None`: none.
            state_noise: `xi^f_t`, additive state noise `(..., 4)`; `None`: none.

        Returns:
            `x_{t+1}`, `(..., 4)`: semi-implicit Euler with dt = `config.dt`.
        """
        applied = self.applied_torque(state, torque, disturbance, torque_noise)
        return self.integrate(state, applied, state_noise)

    def integrate(self, state, applied_torque, state_noise=None):
        """`f(x_t, tau_t) + xi^f_t` for the torque the joints receive (see `step`)."""
        state = tf.convert_to_tensor(state)
        _check_last_dim("state", state, STATE_SIZE)
        applied = tf.convert_to_tensor(applied_torque, state.dtype)
        angles, velocity = tf.split(state, 2, axis=-1)
        velocity = velocity + self.config.dt * self.acceleration(state, applied)
        angles = angles + self.config.dt * velocity
        following = tf.concat([angles, velocity], -1)
        if state_noise is not None:
            state_noise = tf.convert_to_tensor(state_noise, state.dtype)
            _check_last_dim("state_noise", state_noise, STATE_SIZE)
            following = following + state_noise
        return following

    def applied_torque(self, state, torque, disturbance=None, torque_noise=None):
        """The torque the joints receive: `u (1 + xi^u) + d`, in the state's dtype."""
        dtype = tf.convert_to_tensor(state).dtype
        torque = tf.convert_to_tensor(torque, dtype)
        _check_last_dim("torque", torque, TORQUE_SIZE)
        if torque_noise is not None:
            torque_noise = tf.convert_to_tensor(torque_noise, dtype)
            _check_last_dim("torque_noise", torque_noise, TORQUE_SIZE)
            torque = torque * (1 + torque_noise)
        if disturbance is not None:
            disturbance = tf.convert_to_tensor(disturbance, dtype)
            _check_last_dim("disturbance", disturbance, TORQUE_SIZE)
            torque = torque + disturbance
        return torque

    def hand_position(self, state):
        """Forward kinematics: the hand `(x, y)` in metres, shoulder at the origin, `(..., 2)`.

        `x = l1 cos theta_s + l2 cos(theta_s + theta_e)`, `y` likewise with sines.
        """
        state = tf.convert_to_tensor(state)
        c = self.config
        shoulder, elbow = state[..., 0], state[..., 0] + state[..., 1]
        return tf.stack(
            [c.l1 * tf.cos(shoulder) + c.l2 * tf.cos(elbow),
             c.l1 * tf.sin(shoulder) + c.l2 * tf.sin(elbow)], -1
        )

    def hand_jacobian(self, state):
        """`d hand / d theta`, shape `(..., 2, 2)`; `J^T F` maps a hand force to joint torques."""
        state = tf.convert_to_tensor(state)
        c = self.config
        shoulder, elbow = state[..., 0], state[..., 0] + state[..., 1]
        s1, s12 = tf.sin(shoulder), tf.sin(elbow)
        c1, c12 = tf.cos(shoulder), tf.cos(elbow)
        return tf.stack([
            tf.stack([-c.l1 * s1 - c.l2 * s12, -c.l2 * s12], -1),
            tf.stack([c.l1 * c1 + c.l2 * c12, c.l2 * c12], -1),
        ], -2)

    def kinetic_energy(self, state):
        """`theta'^T M(phi) theta' / 2` (J): the arm's whole energy, as it moves in the plane."""
        state = tf.convert_to_tensor(state)
        velocity = state[..., 2:]
        return 0.5 * tf.einsum("...i,...ij,...j->...", velocity, self.inertia(state), velocity)

    def joint_angles(self, hand):
        """Inverse kinematics: the elbow-flexed (`theta_e >= 0`) joint angles reaching `hand`.

        Raises:
            ValueError (eagerly) for a hand position out of reach, `|hand|` not within
            `[|l1 - l2|, l1 + l2]`.
        """
        hand = tf.convert_to_tensor(hand)
        c = self.config
        x, y = hand[..., 0], hand[..., 1]
        cos_elbow = (tf.square(x) + tf.square(y) - c.l1 ** 2 - c.l2 ** 2) / (2 * c.l1 * c.l2)
        if tf.executing_eagerly() and not bool(tf.reduce_all(tf.abs(cos_elbow) <= 1)):
            raise ValueError(
                f"Hand position(s) out of the arm's reach: distances from the shoulder must lie "
                f"in [{abs(c.l1 - c.l2):.3f}, {c.l1 + c.l2:.3f}] m; got "
                f"{tf.norm(hand, axis=-1).numpy()}. Move the targets or shrink their radius."
            )
        elbow = tf.acos(tf.clip_by_value(cos_elbow, -1.0, 1.0))
        shoulder = tf.atan2(y, x) - tf.atan2(c.l2 * tf.sin(elbow), c.l1 + c.l2 * tf.cos(elbow))
        return tf.stack([shoulder, elbow], -1)
