"""Task registry, seeded pipelines, error rates on hand-made cases, bad parameters."""

import numpy as np
import pytest

from rnnzoo.data import LAST_STEP_CLASSIFICATION, REGRESSION, get_task, task_names


def _first(dataset, count=1):
    return [tuple(t.numpy() for t in batch) for batch in dataset.take(count)]


def test_training_stream_is_seeded_fresh_and_separate_from_the_test_set():
    task = get_task("addition", seq_len=30, seed=11)
    one, two = _first(task.train_dataset(batch_size=8), 2)
    again = _first(get_task("addition", seq_len=30, seed=11).train_dataset(batch_size=8), 2)
    np.testing.assert_array_equal(one[0], again[0][0])
    np.testing.assert_array_equal(two[1], again[1][1])
    assert not np.array_equal(one[0], two[0]), "every batch holds fresh sequences"
    other = _first(get_task("addition", seq_len=30, seed=12).train_dataset(batch_size=8))[0]
    assert not np.array_equal(one[0], other[0]), "different seeds differ"
    (test_x, _), = _first(task.test_dataset(batch_size=8, size=8))
    assert not np.array_equal(one[0], test_x)


def test_test_set_is_fixed_and_independent_of_batch_size():
    for name in ["addition", "addition_thesis"]:
        task = get_task(name, seq_len=20, seed=4)
        small = [y for _, y in _first(task.test_dataset(batch_size=7, size=50), 100)]
        large = [y for _, y in _first(task.test_dataset(batch_size=50, size=50), 100)]
        np.testing.assert_array_equal(np.concatenate(small), np.concatenate(large))
        assert sum(len(y) for y in small) == 50


def test_regression_error_rate_uses_the_004_tolerance():
    task = get_task("addition", seq_len=10)
    y_true = np.array([[1.0], [0.5], [1.5], [0.2]])
    y_pred = np.array([[1.039], [0.459], [1.5], [0.2]])  # only 0.041 off is wrong
    assert task.error_rate(y_true, y_pred) == 0.25
    assert task.error_rate(y_true, y_pred[:, 0]) == 0.25
    assert task.error_rate(y_true, y_true) == 0.0
    assert task.success_error_rate == 0.01


def test_last_step_classification_error_rate_from_scores_or_labels():
    task = get_task("xor", seq_len=10)
    y_true = np.array([0, 1, 1, 0])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert task.error_rate(y_true, scores) == 0.5
    assert task.error_rate(y_true, np.array([0, 1, 1, 1])) == 0.25


def test_error_rate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"y_pred has shape \(3, 1\)"):
        get_task("addition", seq_len=10).error_rate(np.zeros((4, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"y_pred has shape \(3,\)"):
        get_task("xor", seq_len=10).error_rate(np.zeros(4), np.zeros(3))


def test_unknown_task_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match=r"Unknown task 'adition'; did you mean 'addition'"):
        get_task("adition", seq_len=10)
    with pytest.raises(ValueError, match="choose one of: .*temporal_order"):
        get_task("nope", seq_len=10)


@pytest.mark.parametrize(
    "name, seq_len, minimum",
    [
        ("addition", 1, 2),
        ("addition_thesis", 9, 10),
        ("addition_layerwise", 9, 10),
        ("multiplication", 5, 10),
        ("multiplication_longer_rnns", 1, 2),
        ("xor", 3, 10),
        ("addition", None, 2),
        ("addition", 12.0, 2),
    ],
)
def test_too_short_or_missing_seq_len(name, seq_len, minimum):
    with pytest.raises(ValueError, match=rf"seq_len={seq_len!r} is invalid .*seq_len >= {minimum}"):
        get_task(name, seq_len=seq_len)


def test_numpy_integers_are_accepted_as_python_ints():
    task = get_task("addition", seq_len=np.int64(12), seed=np.int32(3))
    assert type(task.seq_len) is int and type(task.seed) is int and task.time_steps == 12


def test_bad_seed_option_and_batch_arguments():
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        get_task("addition", seq_len=10, seed=-1)
    with pytest.raises(ValueError, match="has no option 'binarize'"):
        get_task("addition", seq_len=10, binarize=True)
    task = get_task("addition", seq_len=10)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        task.train_dataset(0)
    with pytest.raises(ValueError, match="size must be a positive integer, got -5"):
        task.test_dataset(10, size=-5)


@pytest.mark.parametrize("name", task_names())
def test_every_task_matches_its_declared_shapes_and_is_seeded(name):
    seq_len = None if name == "digits" else 20
    task = get_task(name, seq_len=seq_len, seed=1)
    batch = _first(task.train_dataset(batch_size=6))[0]
    again = _first(get_task(name, seq_len=seq_len, seed=1).train_dataset(batch_size=6))[0]
    other = _first(get_task(name, seq_len=seq_len, seed=2).train_dataset(batch_size=6))[0]
    for a, b in zip(batch, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(batch[0], other[0])
    x, y = batch[:2]
    assert x.shape[0] == 6 and x.shape[2] == task.input_dim
    assert task.time_steps in (None, x.shape[1])
    if task.output_kind == REGRESSION:
        assert y.shape == (6, task.output_dim) and y.dtype == np.float32
    elif task.output_kind == LAST_STEP_CLASSIFICATION:
        assert y.shape == (6,) and 0 <= y.min() and y.max() < task.output_dim
    else:
        assert y.shape == x.shape[:2] and batch[2].shape == y.shape
        assert 0 <= y.min() and y.max() < task.output_dim
    assert task.output_activation == ("linear" if task.output_kind == REGRESSION else "softmax")
    assert task.baseline().error_rate >= 0.5
