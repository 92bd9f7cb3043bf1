"""Sparse and spectral-radius initializers: their statistics, and use by name."""

import numpy as np
import pytest
import keras

from rnnzoo.initializers import Sparse, SpectralRadius
from rnnzoo.layers import MRNN


def test_sparse_has_15_nonzero_incoming_weights_per_unit():
    weights = np.asarray(Sparse(seed=1)((200, 100)))
    np.testing.assert_array_equal((weights != 0).sum(axis=0), 15)
    nonzero = weights[weights != 0]
    assert abs(nonzero.mean()) < 0.1 and abs(nonzero.std() - 1.0) < 0.05


def test_sparse_scale_tanh_variant_and_small_fan_in():
    base = np.asarray(Sparse(seed=2)((50, 40)))
    np.testing.assert_allclose(np.asarray(Sparse(scale=0.3, seed=2)((50, 40))), 0.3 * base, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(Sparse(tanh=True, seed=2)((50, 40))), 0.25 * base, rtol=1e-6)
    np.testing.assert_array_equal((np.asarray(Sparse(seed=3)((6, 10))) != 0).sum(axis=0), 6)


def test_sparse_is_reproducible_per_seed():
    a, b, c = (np.asarray(Sparse(seed=s)((30, 20))) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_one_sparse_initializer_draws_new_matrices_and_the_mrnn_kernels_differ():
    """An MRNN initialises W_fh and W_hf with the same initializer (eq. 5.5-5.6): each call continues
    its seeded stream, so they are independent sparse matrices, reproducibly."""
    first, second = Sparse(15, seed=3), Sparse(15, seed=3)
    draws = [np.asarray(first((40, 30))) for _ in range(2)]
    assert not np.array_equal(*draws)
    np.testing.assert_array_equal(draws[0], np.asarray(second((40, 30))))
    keras.utils.set_random_seed(0)
    layer = MRNN(20, factors=20, recurrent_initializer="sparse")
    layer.build((None, 5, 3))
    kernels = [np.asarray(w) for w in (layer.cell.hidden_factor_kernel, layer.cell.factor_hidden_kernel)]
    assert not np.array_equal(*kernels) and all((k != 0).sum(0).tolist() == [15] * 20 for k in kernels)


@pytest.mark.parametrize("radius", [1.2, 0.9])
def test_spectral_radius_is_exact(radius):
    weights = np.asarray(SpectralRadius(Sparse(seed=4), radius=radius)((100, 100)))
    assert abs(np.abs(np.linalg.eigvals(weights)).max() - radius) < 1e-3
    np.testing.assert_array_equal((weights != 0).sum(axis=0), 15)


def test_spectral_radius_of_any_keras_initializer():
    weights = np.asarray(SpectralRadius("glorot_normal", radius=1.1)((64, 64)))
    assert abs(np.abs(np.linalg.eigvals(weights)).max() - 1.1) < 1e-3


def test_initializers_by_name_in_keras_and_rnnzoo_layers(tmp_path):
    dense = keras.layers.Dense(30, kernel_initializer="sparse")
    dense.build((None, 40))
    np.testing.assert_array_equal((np.asarray(dense.kernel) != 0).sum(axis=0), 15)
    rnn = keras.layers.SimpleRNN(50, recurrent_initializer="spectral_radius")
    rnn.build((None, None, 3))
    radius = np.abs(np.linalg.eigvals(np.asarray(rnn.cell.recurrent_kernel))).max()
    assert abs(radius - 1.2) < 1e-3
    model = keras.Sequential(
        [keras.Input((4, 3)), MRNN(20, 20, kernel_initializer=Sparse(scale=0.02), recurrent_initializer="sparse")]
    )
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(restored.layers[0].cell.kernel_initializer, Sparse)
    assert restored.layers[0].cell.kernel_initializer.scale == 0.02


def test_bad_initializer_arguments():
    with pytest.raises(ValueError, match="num_nonzero"):
        Sparse(num_nonzero=0)
    with pytest.raises(ValueError, match="radius"):
        SpectralRadius(radius=-1.0)
    with pytest.raises(ValueError, match="square"):
        SpectralRadius()((3, 4))
    with pytest.raises(ValueError, match="2-D"):
        Sparse()((2, 3, 4))
