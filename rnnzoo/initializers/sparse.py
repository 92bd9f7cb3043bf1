"""Sparse initialisation (Martens 2010; thesis §4.4 and §7.3.1)."""

import keras
from keras import ops
from keras.src.initializers.random_initializers import RandomInitializer


def _seed_stream(seed):
    """A generator of fresh seeds: an int seed gives a reproducible stream."""
    return keras.random.SeedGenerator(seed) if isinstance(seed, int) else seed


@keras.saving.register_keras_serializable(package="rnnzoo")
class Sparse(RandomInitializer):
    """Each unit gets `num_nonzero` nonzero incoming weights drawn from N(0, 1) x scale.

    For a kernel of shape `(fan_in, units)` every column (unit) has exactly
    `min(num_nonzero, fan_in)` nonzero entries at uniformly random rows; the
    rest are zero, so the total input to a unit does not grow with the size
    of the previous layer (thesis §7.3.1: "for each neural unit, 15 randomly
    chosen incoming connection weights are initialized by a unit Gaussian
    draw, while the remaining ones are set to zero").

    Args:
        num_nonzero: incoming connections per unit (15 in the thesis).
        scale: multiplies the N(0, 1) draws (e.g. `15 ** -0.5` for the
            variance-1/15 weights of §4.4, 0.02 or 0.3 for the input weights
            of §7.4.1).
        tanh: the tanh variant of §7.3.1: weights further scaled by 0.25
            (pair it with a bias initializer of `Constant(-0.5)`).
        seed: int or `keras.random.SeedGenerator`, as for Keras initializers. The calls of one
            initializer continue one seeded stream, so a layer that initialises two kernels with
            it (the MRNN's W_fh and W_hf, eq. 5.5-5.6) gets two independent sparse matrices, not
            the same one twice; the same seed gives the same sequence of matrices.

    Usable by name: `kernel_initializer="sparse"` or `"rnnzoo>Sparse"`.
    """

    def __init__(self, num_nonzero=15, scale=1.0, tanh=False, seed=None):
        if isinstance(num_nonzero, bool) or not isinstance(num_nonzero, int) or num_nonzero <= 0:
            raise ValueError(
                f"`num_nonzero` must be a positive integer, got {num_nonzero!r}. "
                "The thesis uses 15 incoming connections per unit."
            )
        self.num_nonzero = num_nonzero
        self.scale = float(scale)
        self.tanh = bool(tanh)
        super().__init__(seed=seed)
        self._seeds = None

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(
                f"Sparse initializes 2-D kernels (fan_in, units); got shape {tuple(shape)}."
            )
        fan_in, units = shape
        if self._seeds is None:  # one stream per initializer: each call draws new weights
            self._seeds = _seed_stream(self.seed)
        seeds = self._seeds
        # Each unit keeps the rows with its `k` smallest random scores.
        k = min(self.num_nonzero, fan_in)
        scores = keras.random.uniform((units, fan_in), seed=seeds)
        threshold = ops.expand_dims(ops.sort(scores, axis=-1)[:, k - 1], -1)
        mask = ops.transpose(ops.cast(scores <= threshold, dtype or "float32"))
        values = keras.random.normal(shape, seed=seeds, dtype=dtype)
        scale = self.scale * (0.25 if self.tanh else 1.0)
        return values * mask * scale

    def get_config(self):
        return {
            **super().get_config(),
            "num_nonzero": self.num_nonzero,
            "scale": self.scale,
            "tanh": self.tanh,
        }
