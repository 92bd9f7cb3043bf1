"""Sequential digits: scikit-learn's bundled 8x8 digit images, one row per step.

The offline stand-in for the layer-wise pretraining paper's sequential MNIST
(§4.2: "presenting the image to the LSTM row by row", pixels binarised):
each 8x8 image becomes 8 steps of 8 pixel intensities scaled to [0, 1], or,
with `binarize=True`, of bits `intensity >= 0.5`. The label (10 classes) is
predicted after the last row. The train/test split is stratified and fixed by
`split_seed`, independent of the pipeline `seed`, which only shuffles training
batches.
"""

import numpy as np
import tensorflow as tf

from rnnzoo.data import task as task_lib

ROWS = 8
MAX_INTENSITY = 16.0


class DigitsSource:
    """Train and test pipelines over a fixed split of the digits."""

    def __init__(self, train, test):
        self._train = train
        self._test = test
        self.train_size = len(train[1])

    def train_dataset(self, batch_size, seed):
        dataset = tf.data.Dataset.from_tensor_slices(self._train)
        dataset = dataset.shuffle(self.train_size, seed=seed, reshuffle_each_iteration=True)
        return dataset.repeat().batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def test_dataset(self, batch_size, size, seed):
        del seed  # the split is fixed by split_seed
        available = len(self._test[1])
        size = available if size is None else size
        if size > available:
            raise ValueError(
                f"size={size} exceeds the {available} test digits; pass size <= {available} "
                f"or size=None for all of them (or raise test_fraction)."
            )
        x, y = self._test
        return tf.data.Dataset.from_tensor_slices((x[:size], y[:size])).batch(batch_size)

    def baseline(self):
        train_labels, test_labels = self._train[1], self._test[1]
        majority = np.bincount(train_labels).argmax()
        return task_lib.Baseline(
            error_rate=float(np.mean(test_labels != majority)),
            mse=None,
            description=(
                f"Always predict the most frequent training class ({majority}): "
                "error rate on the test split (chance accuracy about 1/10)."
            ),
        )


def digits(seq_len, seed, binarize=False, test_fraction=0.2, split_seed=0):
    """Sequential 8x8 digits (`sklearn.datasets.load_digits`), 8 steps of 8 pixels.

    Args:
        seq_len: `None` or 8 (the number of rows).
        seed: shuffles the training stream.
        binarize: present pixels as bits `intensity / 16 >= 0.5`, as the
            layer-wise paper binarises MNIST.
        test_fraction: share of the 1,797 images held out, in (0, 1).
        split_seed: seed of the stratified train/test split.
    """
    from sklearn import datasets, model_selection

    if seq_len not in (None, ROWS):
        raise ValueError(
            f"seq_len={seq_len!r} is invalid for task 'digits': the images have {ROWS} rows; "
            f"pass seq_len=None or seq_len={ROWS}."
        )
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction={test_fraction!r} must lie strictly between 0 and 1; "
            "pass e.g. test_fraction=0.2."
        )
    data = datasets.load_digits()
    x = (data.images / MAX_INTENSITY).astype(np.float32)
    if binarize:
        x = (x >= 0.5).astype(np.float32)
    y = data.target.astype(np.int32)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, y, test_size=test_fraction, random_state=split_seed, stratify=y
    )
    return task_lib.Task(
        name="digits",
        seq_len=ROWS,
        time_steps=ROWS,
        input_dim=ROWS,
        output_dim=10,
        output_kind=task_lib.LAST_STEP_CLASSIFICATION,
        relevant_steps=(-1,),
        error_unit="sequence",
        seed=seed,
        reference="greedy-layerwise-lstm-pretraining §4.2 (8x8 digits in place of MNIST)",
        source=DigitsSource((x_train, y_train), (x_test, y_test)),
    )
