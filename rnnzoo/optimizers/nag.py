"""Nesterov's accelerated gradient with a momentum schedule (thesis eq. 7.12-7.13)."""

import keras
from keras import ops

from rnnzoo.optimizers.momentum import ScheduledMomentumOptimizer


@keras.saving.register_keras_serializable(package="rnnzoo")
class NAG(ScheduledMomentumOptimizer):
    """Nesterov's accelerated gradient, exact under a changing momentum.

    Thesis eq. 7.12-7.13, with step `t` counted from 0:

        v_{t+1}     = mu_t v_t - eps_t grad f(theta_t + mu_t v_t)     (7.12)
        theta_{t+1} = theta_t + v_{t+1}                                (7.13)

    As in Keras's `SGD(nesterov=True)`, the model's variables hold the
    look-ahead point `y_t = theta_t + mu_t v_t`, so the gradient Keras computes
    at the variables is the one eq. 7.12 needs. Moving from `y_t` to
    `y_{t+1} = theta_{t+1} + mu_{t+1} v_{t+1}` takes both `mu_t` and `mu_{t+1}`:

        y_{t+1} = y_t + (1 + mu_{t+1}) v_{t+1} - mu_t v_t

    Keras's `SGD(nesterov=True)` is this update only when `mu` is constant.
    The parameters `theta_t` differ from the variables by `mu_t v_t`.

    Args:
        learning_rate: a float or a `keras.optimizers.schedules` schedule
            (thesis §7.4.2 uses `PiecewiseConstantDecay`).
        momentum: a float in [0, 1) or a schedule called with the step, e.g.
            `rnnzoo.optimizers.schedules.NesterovMomentum(0.99)`.
        Other arguments: those of `keras.optimizers.Optimizer`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, name="nag", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, name=name, **kwargs)

    def momentum_at(self, step):
        """`mu_step` as a float32 tensor."""
        if callable(self.momentum):
            return ops.cast(self.momentum(step), "float32")
        return ops.convert_to_tensor(self.momentum, "float32")

    def apply(self, grads, trainable_variables=None):
        # mu_t and mu_{t+1}, computed once per step for all variables.
        self._momenta = (self.momentum_at(self.iterations), self.momentum_at(self.iterations + 1))
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        """Eq. 7.12-7.13 on the look-ahead variable (see the class docstring)."""
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        mu, mu_next = (ops.cast(m, dtype) for m in self._momenta)
        velocity = self.velocities[self._get_variable_index(variable)]
        new_velocity = ops.subtract(
            ops.multiply(velocity, mu), ops.multiply(gradient, learning_rate)
        )
        self.assign_add(
            variable,
            ops.subtract(ops.multiply(new_velocity, 1.0 + mu_next), ops.multiply(velocity, mu)),
        )
        self.assign(velocity, new_velocity)
