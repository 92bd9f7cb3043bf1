"""Two-marker problems (addition, multiplication, XOR) against their papers' definitions."""

import numpy as np
import pytest

from rnnzoo.data import REGRESSION, get_task


def _batches(dataset):
    xs, ys = [], []
    for x, y in dataset:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return xs, ys


def _marker_positions(x):
    markers = x[:, :, 1]
    assert set(np.unique(markers)) <= {0.0, 1.0}
    assert np.all(markers.sum(axis=1) == 2), "exactly two marked steps per sequence"
    positions = np.sort(np.argwhere(markers == 1.0)[:, 1].reshape(-1, 2), axis=1)
    return positions[:, 0], positions[:, 1]


def _marked_values(x):
    first, second = _marker_positions(x)
    rows = np.arange(len(x))
    return x[rows, first, 0], x[rows, second, 0]


def test_addition_longer_rnns_definition():
    task = get_task("addition", seq_len=50, seed=3)
    assert (task.input_dim, task.output_dim, task.output_kind) == (2, 1, REGRESSION)
    assert task.loss == "mean_squared_error" and task.time_steps == 50
    (x,), (y,) = _batches(task.test_dataset(batch_size=4000, size=4000))
    assert x.shape == (4000, 50, 2) and y.shape == (4000, 1)
    assert 0.0 <= x[:, :, 0].min() and x[:, :, 0].max() <= 1.0
    a, b = _marked_values(x)
    np.testing.assert_allclose(y[:, 0], a + b, rtol=1e-6)
    first, second = _marker_positions(x)
    # Markers anywhere in the sequence: both ends are reached.
    assert first.min() == 0 and second.max() == 49


def test_addition_baseline_is_the_target_variance():
    task = get_task("addition", seq_len=20, seed=0)
    baseline = task.baseline()
    assert baseline.mse == pytest.approx(1.0 / 6.0)
    assert "0.1767" in baseline.description
    (_,), (y,) = _batches(task.test_dataset(batch_size=40000, size=40000))
    assert np.mean((y - 1.0) ** 2) == pytest.approx(baseline.mse, rel=0.02)
    assert task.error_rate(y, np.ones_like(y)) == pytest.approx(baseline.error_rate, abs=0.01)


def test_layerwise_markers_in_first_and_last_tenth():
    task = get_task("addition_layerwise", seq_len=200, seed=1)
    (x,), (y,) = _batches(task.test_dataset(batch_size=3000, size=3000))
    first, second = _marker_positions(x)
    assert first.min() == 0 and first.max() == 19
    assert second.min() == 180 and second.max() == 199
    a, b = _marked_values(x)
    np.testing.assert_allclose(y[:, 0], a + b, rtol=1e-6)


@pytest.mark.parametrize("name", ["addition_thesis", "multiplication", "xor"])
def test_thesis_lengths_and_marker_ranges(name):
    seq_len = 40
    task = get_task(name, seq_len=seq_len, seed=2)
    assert task.time_steps is None
    xs, ys = _batches(task.test_dataset(batch_size=500, size=3000))
    assert sum(len(y) for y in ys) == 3000
    lengths = set()
    for x, y in zip(xs, ys):
        length = x.shape[1]
        lengths.add(length)
        first, second = _marker_positions(x)
        # 1-based I ~ i[1, T'/10] and J ~ i[T'/10, T'/2], I != J.
        assert np.all((first + 1 >= 1) & (first + 1 <= length // 10))
        assert np.all((second + 1 >= np.ceil(length / 10)) & (second + 1 <= length // 2))
        a, b = _marked_values(x)
        if name == "addition_thesis":
            np.testing.assert_allclose(y[:, 0], (a + b) / 2, rtol=1e-6)
        elif name == "multiplication":
            np.testing.assert_allclose(y[:, 0], a * b, rtol=1e-6)
        else:
            assert set(np.unique(x[:, :, 0])) == {0.0, 1.0}
            np.testing.assert_array_equal(y, (a != b).astype(np.int32))
    assert lengths == set(range(40, 45)), "T' ~ i[T, 11T/10]"


def test_thesis_shared_boundary_step_is_used_but_markers_never_coincide():
    # T' = 20: I ~ i[1, 2] and J ~ i[2, 10] without I (1-based), so index 1 is
    # a valid J exactly when I is index 0.
    task = get_task("addition_thesis", seq_len=20, seed=0)
    xs, _ = _batches(task.test_dataset(batch_size=6000, size=6000))
    (x,) = [x for x in xs if x.shape[1] == 20]
    first, second = _marker_positions(x)  # sorted, so first = I and second = J
    pairs = set(zip(first.tolist(), second.tolist()))
    assert (0, 1) in pairs
    assert {j for i, j in pairs if i == 1} == set(range(2, 10))
    assert {j for i, j in pairs if i == 0} == set(range(1, 10))


def test_multiplication_longer_rnns_values_and_baseline():
    task = get_task("multiplication_longer_rnns", seq_len=30, seed=5)
    (x,), (y,) = _batches(task.test_dataset(batch_size=40000, size=40000))
    assert x[:, :, 0].max() > 1.9 and x[:, :, 0].max() <= 2.0
    a, b = _marked_values(x)
    np.testing.assert_allclose(y[:, 0], a * b, rtol=1e-6)
    baseline = task.baseline()
    assert baseline.mse == pytest.approx(0.778, abs=5e-4)
    assert np.var(y) == pytest.approx(baseline.mse, rel=0.03)
    assert task.error_rate(y, np.ones_like(y)) == pytest.approx(baseline.error_rate, abs=0.01)


@pytest.mark.parametrize(
    "name, mean, mse", [("addition_thesis", 0.5, 1 / 24), ("multiplication", 0.25, 7 / 144)]
)
def test_thesis_regression_baselines_match_a_large_sample(name, mean, mse):
    task = get_task(name, seq_len=10, seed=7)
    _, ys = _batches(task.test_dataset(batch_size=40000, size=40000))
    y = np.concatenate(ys)
    assert task.baseline().mse == pytest.approx(mse)
    assert np.mean((y - mean) ** 2) == pytest.approx(mse, rel=0.03)
    measured = task.error_rate(y, np.full_like(y, mean))
    assert measured == pytest.approx(task.baseline().error_rate, abs=0.01)


def test_xor_classes_are_balanced():
    task = get_task("xor", seq_len=20, seed=0)
    _, ys = _batches(task.test_dataset(batch_size=5000, size=10000))
    assert np.mean(np.concatenate(ys)) == pytest.approx(0.5, abs=0.02)
    assert task.baseline().error_rate == 0.5


@pytest.mark.parametrize("name", ["addition_thesis", "multiplication", "xor"])
def test_padded_sequences_draw_their_own_length_and_are_pre_padded(name):
    seq_len = 40
    task = get_task(name, seq_len=seq_len, seed=3)
    assert task.max_time_steps == 44 and task.pad_value == -1.0
    train_x, _ = next(iter(task.train_dataset(batch_size=400, padded=True)))
    test = [(x.numpy(), y.numpy()) for x, y in task.test_dataset(256, size=2000, padded=True)]
    for x, y in [(train_x.numpy(), None), *test]:
        assert x.shape[1:] == (44, 2)
        padding = np.all(x == -1.0, axis=2)
        starts = padding.sum(axis=1)
        # Padding is a prefix, and T' = 44 - padding ~ i[40, 44] varies within a batch.
        np.testing.assert_array_equal(padding, np.arange(44)[None, :] < starts[:, None])
        assert set(44 - starts) == set(range(40, 45))
        for row, start in zip(x, starts):
            sequence = row[start:]
            first, second = np.flatnonzero(sequence[:, 1] == 1)
            length = len(sequence)
            assert 1 <= first + 1 <= length // 10
            assert np.ceil(length / 10) <= second + 1 <= length // 2
        if y is not None:
            a = x[np.arange(len(x)), starts + _marker_positions_padded(x, starts)[0], 0]
            b = x[np.arange(len(x)), starts + _marker_positions_padded(x, starts)[1], 0]
            if name == "addition_thesis":
                np.testing.assert_allclose(y[:, 0], (a + b) / 2, rtol=1e-6)
            elif name == "multiplication":
                np.testing.assert_allclose(y[:, 0], a * b, rtol=1e-6)
            else:
                np.testing.assert_array_equal(y, (a != b).astype(np.int32))
    again = next(iter(task.test_dataset(256, size=2000, padded=True)))[0].numpy()
    np.testing.assert_array_equal(again, test[0][0])  # the padded test set is fixed by the seed


def _marker_positions_padded(x, starts):
    positions = [np.flatnonzero(row[start:, 1] == 1) for row, start in zip(x, starts)]
    return np.array([p[0] for p in positions]), np.array([p[1] for p in positions])


def test_padding_does_not_apply_to_fixed_length_problems():
    task = get_task("addition", seq_len=12, seed=0)
    plain = next(iter(task.train_dataset(4)))[0].numpy()
    np.testing.assert_array_equal(next(iter(task.train_dataset(4, padded=True)))[0].numpy(), plain)
    assert task.max_time_steps == 12
