"""Spectral-radius scaling of any initializer (ESN-style; thesis §7.4.1)."""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="rnnzoo")
class SpectralRadius(keras.initializers.Initializer):
    """Draws a square matrix from `base` and rescales it to spectral radius `radius`.

    Thesis §7.4.1: recurrent weights "initialized with random sparse
    connectivity (so 15 incoming weights to each unit are sampled from a
    unit Gaussian and the rest are set to 0), which are then rescaled so that
    the absolute value of the largest eigenvalue of the recurrent weight
    matrix is equal to 1.2".

    Args:
        base: any Keras initializer (instance, name or config); default
            `Sparse(15)`.
        radius: target largest absolute eigenvalue (1.2 in the thesis).

    Usable by name: `recurrent_initializer="spectral_radius"` (sparse base,
    radius 1.2) or `"rnnzoo>SpectralRadius"`.
    """

    def __init__(self, base=None, radius=1.2):
        from rnnzoo.initializers.sparse import Sparse

        if not isinstance(radius, (int, float)) or isinstance(radius, bool) or radius <= 0:
            raise ValueError(
                f"`radius` must be a positive number, got {radius!r}. The thesis uses 1.2."
            )
        self.base = Sparse() if base is None else keras.initializers.get(base)
        self.radius = float(radius)

    def __call__(self, shape, dtype=None):
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(
                f"SpectralRadius needs a square matrix (units, units); got shape {tuple(shape)}. "
                "Use it as a recurrent_initializer."
            )
        matrix = ops.convert_to_tensor(self.base(shape, dtype=dtype))
        largest = tf.reduce_max(tf.abs(tf.linalg.eigvals(tf.cast(matrix, tf.float64))))
        if tf.executing_eagerly() and float(largest) == 0.0:
            raise ValueError(
                f"The base initializer {self.base!r} drew a matrix with spectral radius 0, which "
                "cannot be rescaled. Use a base with nonzero eigenvalues (e.g. Sparse)."
            )
        return matrix * ops.cast(self.radius / largest, matrix.dtype)

    def get_config(self):
        return {"base": keras.initializers.serialize(self.base), "radius": self.radius}
