"""Symbol problems (thesis §4.4.2-4.4.5) against the thesis's definitions."""

import numpy as np
import pytest

from rnnzoo.data import LAST_STEP_CLASSIFICATION, PER_STEP_CLASSIFICATION, get_task


def _test_set(task, size):
    (batch,) = list(task.test_dataset(batch_size=size, size=size))
    return tuple(t.numpy() for t in batch)


def _symbols(x):
    """1-based symbols of valid one-hot inputs."""
    assert set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_array_equal(x.sum(axis=-1), 1.0)
    return np.argmax(x, axis=-1) + 1


@pytest.mark.parametrize(
    "name, ranges",
    [
        ("temporal_order", [(5, 10), (25, 30)]),
        ("temporal_order_3bit", [(5, 10), (15, 20), (30, 35)]),
    ],
)
def test_temporal_order(name, ranges):
    # T = 50: 1-based ranges i[T/10, 2T/10] = [5, 10], i[3T/10, 4T/10] = [15, 20], ...
    task = get_task(name, seq_len=50, seed=1)
    classes = 2 ** len(ranges)
    assert (task.input_dim, task.output_dim) == (6, classes)
    assert task.output_kind == LAST_STEP_CLASSIFICATION
    x, y = _test_set(task, 4000)
    symbols = _symbols(x)
    assert x.shape == (4000, 50, 6)
    special = symbols <= 2
    assert np.all(special.sum(axis=1) == len(ranges))
    assert set(np.unique(symbols[~special])) == {3, 4, 5, 6}
    steps = np.argwhere(special)[:, 1].reshape(4000, len(ranges)) + 1  # 1-based, sorted
    label = np.zeros(4000, int)
    for k, (lo, hi) in enumerate(ranges):
        assert steps[:, k].min() == lo and steps[:, k].max() == hi
        label = 2 * label + symbols[np.arange(4000), steps[:, k] - 1] - 1
    np.testing.assert_array_equal(y, label)
    counts = np.bincount(y, minlength=classes) / 4000
    np.testing.assert_allclose(counts, 1 / classes, atol=0.03)
    assert task.baseline().accuracy == pytest.approx(1 / classes)


def test_random_permutation():
    task = get_task("random_permutation", seq_len=30, seed=2)
    assert task.output_kind == PER_STEP_CLASSIFICATION and task.return_sequences
    assert task.relevant_steps == (-2,)
    x, y, w = _test_set(task, 2000)
    symbols = _symbols(x)
    assert x.shape == (2000, 30, 100) and y.shape == w.shape == (2000, 30)
    np.testing.assert_array_equal(symbols[:, 0], symbols[:, -1])
    assert set(np.unique(symbols[:, 0])) == {1, 2}
    assert symbols[:, 1:-1].min() == 3 and symbols[:, 1:-1].max() == 100
    np.testing.assert_array_equal(y[:, :-1], symbols[:, 1:] - 1)  # next symbol
    np.testing.assert_array_equal(w[:, :-1], 1.0)
    np.testing.assert_array_equal(w[:, -1], 0.0)
    assert np.mean(y[:, -2]) == pytest.approx(0.5, abs=0.04)


@pytest.mark.parametrize("name, count, values", [("memorization_5bit", 5, 2), ("memorization_20bit", 10, 5)])
def test_memorization(name, count, values):
    seq_len = 12
    task = get_task(name, seq_len=seq_len, seed=3)
    length = seq_len + 2 * count
    assert task.time_steps == length
    assert (task.input_dim, task.output_dim) == (values + 2, values + 1)
    assert task.relevant_steps == tuple(range(-count, 0)) and task.error_unit == "symbol"
    x, y, w = _test_set(task, 1000)
    symbols = _symbols(x)
    constant, trigger = values + 1, values + 2
    memorised = symbols[:, :count]
    assert set(np.unique(memorised)) == set(range(1, values + 1))
    # Inputs: memorised symbols, constant, trigger at 1-based step T + m, constant.
    np.testing.assert_array_equal(symbols[:, count : seq_len + count - 1], constant)
    np.testing.assert_array_equal(symbols[:, seq_len + count - 1], trigger)
    np.testing.assert_array_equal(symbols[:, seq_len + count :], constant)
    # Targets: constant up to step T + m, then the memorised symbols.
    np.testing.assert_array_equal(y[:, : seq_len + count], constant - 1)
    np.testing.assert_array_equal(y[:, seq_len + count :], memorised - 1)
    np.testing.assert_array_equal(w, 1.0)
    assert task.baseline().error_rate == pytest.approx(1 - 1 / values)


def test_five_bit_memorization_covers_all_32_patterns():
    x, _, _ = _test_set(get_task("memorization_5bit", seq_len=5, seed=0), 2000)
    patterns = {tuple(row) for row in _symbols(x)[:, :5]}
    assert len(patterns) == 32


def test_per_step_error_rates_score_only_relevant_steps():
    perm = get_task("random_permutation", seq_len=4)
    y_true = np.array([[5, 6, 0, 0], [7, 8, 1, 0]])
    # Wrong everywhere except step -2 in row 0; row 1 wrong at step -2.
    y_pred = np.array([[9, 9, 0, 9], [7, 8, 0, 0]])
    assert perm.error_rate(y_true, y_pred) == 0.5
    scores = np.eye(100)[y_pred]
    assert perm.error_rate(y_true, scores) == 0.5

    mem = get_task("memorization_5bit", seq_len=1)
    y_true = np.full((2, 11), 2)
    y_true[:, -5:] = [[0, 1, 0, 1, 0], [1, 1, 1, 1, 1]]
    y_pred = y_true.copy()
    y_pred[:, :6] = 0  # wrong constant predictions do not count
    y_pred[0, -1] = 1  # one wrong recalled bit out of 10
    assert mem.error_rate(y_true, y_pred) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "name, seq_len, minimum",
    [
        ("temporal_order", 9, 10),
        ("temporal_order_3bit", 5, 10),
        ("random_permutation", 2, 3),
        ("memorization_5bit", 0, 1),
        ("memorization_20bit", -3, 1),
    ],
)
def test_bad_lengths(name, seq_len, minimum):
    with pytest.raises(ValueError, match=rf"seq_len={seq_len} is invalid .*seq_len >= {minimum}"):
        get_task(name, seq_len=seq_len)
