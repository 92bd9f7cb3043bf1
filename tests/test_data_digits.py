"""Sequential 8x8 digits: rows as steps, fixed stratified split, baseline."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from rnnzoo.data import get_task


def _all(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


def test_rows_are_time_steps_and_split_is_fixed():
    task = get_task("digits", seed=0)
    assert (task.seq_len, task.input_dim, task.output_dim) == (8, 8, 10)
    x, y = _all(task.test_dataset(batch_size=100))
    assert x.shape == (360, 8, 8) and task.train_size == 1437
    data = load_digits()
    # Every test sequence is one bundled image (rows in order), scaled to [0, 1].
    index = {img.tobytes(): i for i, img in enumerate((data.images / 16.0).astype(np.float32))}
    for xi, yi in zip(x, y):
        assert data.target[index[xi.tobytes()]] == yi
    # Stratified: each class keeps its share.
    np.testing.assert_allclose(np.bincount(y) / 360, np.bincount(data.target) / 1797, atol=0.01)
    # The split does not depend on the shuffling seed.
    x_again, _ = _all(get_task("digits", seed=5).test_dataset(batch_size=360))
    np.testing.assert_array_equal(x, x_again)
    x_other, _ = _all(get_task("digits", split_seed=1).test_dataset(batch_size=360))
    assert not np.array_equal(x, x_other)


def _one_epoch(task):
    (x, y), = [(x.numpy(), y.numpy()) for x, y in task.train_dataset(task.train_size).take(1)]
    return x, y


def test_train_epoch_and_test_split_partition_the_images():
    task = get_task("digits", seed=3, binarize=True)
    train_x, _ = _one_epoch(task)
    test_x, _ = _all(task.test_dataset(batch_size=360))
    assert set(np.unique(train_x)) == {0.0, 1.0}
    data = load_digits()
    every = sorted(img.tobytes() for img in (data.images / 16.0 >= 0.5).astype(np.float32))
    assert sorted(img.tobytes() for img in np.concatenate([train_x, test_x])) == every


def test_training_stream_is_seeded():
    first = [x.numpy() for x, _ in get_task("digits", seed=3).train_dataset(64).take(2)]
    again = [x.numpy() for x, _ in get_task("digits", seed=3).train_dataset(64).take(2)]
    other = [x.numpy() for x, _ in get_task("digits", seed=4).train_dataset(64).take(2)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], first[1])


def test_baseline_and_error_rate():
    task = get_task("digits")
    _, train_y = _one_epoch(task)
    _, y = _all(task.test_dataset(batch_size=360))
    majority = np.bincount(train_y).argmax()
    baseline = task.baseline()
    assert baseline.error_rate == pytest.approx(np.mean(y != majority))
    assert 0.88 < baseline.error_rate < 0.92
    assert task.error_rate(y, np.eye(10)[y]) == 0.0
    assert task.error_rate(y, np.eye(10)[(y + 1) % 10]) == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seq_len": 28}, r"seq_len=28 is invalid for task 'digits'.*seq_len=8"),
        ({"test_fraction": 1.5}, r"test_fraction=1.5 must lie strictly between 0 and 1"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_task("digits", **kwargs)


def test_test_size_larger_than_split():
    with pytest.raises(ValueError, match=r"size=400 exceeds the 360 test digits"):
        get_task("digits").test_dataset(batch_size=10, size=400)
