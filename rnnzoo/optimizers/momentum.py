"""Momentum optimizers driven by a momentum schedule (thesis ch. 7).

`ScheduledMomentumOptimizer` holds what classical momentum (eq. 7.1-7.2) and
Nesterov's accelerated gradient (eq. 7.12-7.13) share: a momentum that is a
float or a schedule called with the step, one velocity per variable, and
serialisation. `Momentum` is classical momentum; `NAG` lives in `nag.py`.
"""

import numbers

import keras
from keras import ops

from rnnzoo.optimizers.schedules import check_momentum


class ScheduledMomentumOptimizer(keras.optimizers.Optimizer):
    """Base of the momentum optimizers: `momentum` is a float in [0, 1) or a schedule.

    Args:
        learning_rate: a float or a Keras learning-rate schedule.
        momentum: a float in [0, 1) or a schedule called with the step
            (`rnnzoo.optimizers.schedules`).
        Other arguments: those of `keras.optimizers.Optimizer`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if isinstance(momentum, numbers.Real) and not isinstance(momentum, bool):
            check_momentum("momentum", float(momentum))
            momentum = float(momentum)
        elif not callable(momentum):
            raise ValueError(
                f"`momentum` must be a float in [0, 1) or a schedule called with the step, "
                f"got {momentum!r}. See rnnzoo.optimizers.schedules."
            )
        self.momentum = momentum

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def get_config(self):
        momentum = self.momentum
        if callable(momentum):
            momentum = keras.saving.serialize_keras_object(momentum)
        return {**super().get_config(), "momentum": momentum}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("momentum"), dict):
            config["momentum"] = keras.saving.deserialize_keras_object(
                config["momentum"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)


@keras.saving.register_keras_serializable(package="rnnzoo")
class Momentum(ScheduledMomentumOptimizer):
    """Classical momentum with a schedule for mu (thesis eq. 7.1-7.2):

        v_{t+1}     = mu_t v_t - eps_t grad f(theta_t)     (7.1)
        theta_{t+1} = theta_t + v_{t+1}                     (7.2)

    With a constant mu this is Keras's `SGD(momentum=mu)`; the thesis's
    momentum baselines (table 7.3) follow the same mu schedule as NAG, which
    Keras's SGD cannot take.

    Args:
        learning_rate: a float or a Keras learning-rate schedule.
        momentum: a float in [0, 1) or a schedule called with the step
            (`rnnzoo.optimizers.schedules`).
        Other arguments: those of `keras.optimizers.Optimizer`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, name="momentum", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        mu = self.momentum(self.iterations) if callable(self.momentum) else self.momentum
        mu = ops.cast(mu, dtype)
        velocity = self.velocities[self._get_variable_index(variable)]
        new_velocity = ops.subtract(
            ops.multiply(velocity, mu), ops.multiply(ops.cast(gradient, dtype), ops.cast(learning_rate, dtype))
        )
        self.assign(velocity, new_velocity)
        self.assign_add(variable, new_velocity)
