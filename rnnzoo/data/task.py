"""The `Task` a data pipeline hands to a model: shapes, loss, success criterion.

Every sequence problem of the papers is described by the same small record:
what goes in (`input_dim`), what comes out and where (`output_dim`,
`output_kind`, `relevant_steps`), the Keras loss to train with, the paper's
success criterion (`error_rate`, success when below `success_error_rate`)
and the trivial input-independent baseline (`baseline`).

The success criterion is the one of Hochreiter and Schmidhuber (1997) used in
thesis §4.4: a test sequence is misclassified when, for a continuous target,
the absolute prediction error exceeds 0.04, or, for a discrete target, any
relevant symbol is predicted wrongly; a run succeeds when fewer than 1% of the
test sequences are misclassified (`sequence_error_rate`). For the memorisation
problems the thesis (ch. 7, table 7.3) reports instead the fraction of wrongly
recalled symbols (`error_unit="symbol"`, `error_rate`); their success is still
decided on sequences.

A non-finite prediction (NaN or infinite, as a diverged model gives) is always
wrong: `abs(nan - y) > tolerance` is False, so without that rule NaN would pass.
"""

import dataclasses
from typing import Any

import numpy as np

from rnnzoo.data.source import PAD_VALUE

REGRESSION = "regression"
"""One real-valued target at the last step (`y`: `(batch, output_dim)`)."""
LAST_STEP_CLASSIFICATION = "last_step_classification"
"""One class label at the last step (`y`: `(batch,)` int32)."""
PER_STEP_CLASSIFICATION = "per_step_classification"
"""A class label at every step (`y`, `sample_weight`: `(batch, time)`)."""

OUTPUT_KINDS = (REGRESSION, LAST_STEP_CLASSIFICATION, PER_STEP_CLASSIFICATION)

SUCCESS_ERROR_RATE = 0.01
"""Thesis §4.4: a run succeeds when less than 1% of the test cases are wrong."""
TOLERANCE = 0.04
"""Thesis §4.4: a continuous prediction is wrong when |error| > 0.04."""


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The best a model can do without looking at the inputs.

    Attributes:
        error_rate: the task's `error_rate` of the trivial predictor (predict
            the target mean for regression, the most frequent class for
            symbols). `1 - error_rate` is the chance accuracy.
        mse: for regression, the mean squared error of predicting the target
            mean, i.e. the variance of the target; `None` for classification.
        description: how the numbers were obtained.
    """

    error_rate: float
    mse: float | None
    description: str

    @property
    def accuracy(self):
        """Chance accuracy, `1 - error_rate`."""
        return 1.0 - self.error_rate


@dataclasses.dataclass(frozen=True)
class Task:
    """A sequence problem with seeded train and test pipelines.

    Built by `rnnzoo.data.get_task`; see there for the task names.

    Attributes:
        name: registry name, e.g. `"addition"`.
        seq_len: the problem length `T` as the paper defines it (the actual
            number of time steps can differ, see `time_steps`).
        time_steps: number of input steps, or `None` when it varies between
            batches (the thesis's addition family, where T' ~ i[T, 11T/10]).
        input_dim: size of each input vector.
        output_dim: regression outputs, or number of classes.
        output_kind: `REGRESSION`, `LAST_STEP_CLASSIFICATION` or
            `PER_STEP_CLASSIFICATION`. Per-step tasks need a model that
            returns sequences; their datasets yield `(x, y, sample_weight)`,
            with weight 0 at steps that have no target.
        relevant_steps: time steps scored by `error_rate`, as negative
            offsets from the end (`(-1,)` = the last step).
        error_unit: `"sequence"` (a sequence is wrong if any relevant output
            is wrong) or `"symbol"` (fraction of wrong relevant outputs).
        seed: seed of both pipelines.
        reference: where the paper defines the problem.
        source: the generator behind the pipelines (see `rnnzoo.data.source`).
    """

    name: str
    seq_len: int
    time_steps: int | None
    input_dim: int
    output_dim: int
    output_kind: str
    relevant_steps: tuple
    error_unit: str
    seed: int
    reference: str
    source: Any = dataclasses.field(repr=False)
    tolerance: float = TOLERANCE
    success_error_rate: float = SUCCESS_ERROR_RATE

    @property
    def loss(self):
        """Keras loss name to train with: MSE for regression, else sparse cross-entropy."""
        if self.output_kind == REGRESSION:
            return "mean_squared_error"
        return "sparse_categorical_crossentropy"

    @property
    def output_activation(self):
        """Activation of the output layer (`"linear"` or `"softmax"`; `loss` expects probabilities)."""
        return "linear" if self.output_kind == REGRESSION else "softmax"

    @property
    def return_sequences(self):
        """Whether the model must emit an output at every step."""
        return self.output_kind == PER_STEP_CLASSIFICATION

    @property
    def max_time_steps(self):
        """The longest sequence: `time_steps`, or 11T/10 for the variable-length problems."""
        if self.time_steps is not None:
            return self.time_steps
        return self.source.lengths[1]

    @property
    def pad_value(self):
        """Every feature of a padding step of `padded` datasets (mask it with `keras.layers.Masking`)."""
        return PAD_VALUE

    @property
    def train_size(self):
        """Number of distinct training examples, `None` when unlimited."""
        return self.source.train_size

    def with_train_size(self, train_size):
        """This problem trained on a finite, seeded set of `train_size` sequences (`None`: endless).

        Raises:
            ValueError: `train_size` is not a positive integer, or the task's
                data is not generated (a fixed data set has its own size).
        """
        if train_size is not None:
            _check_count("train_size", train_size, "e.g. train_size=100000 (longer-rnns §5)")
        if not hasattr(self.source, "with_train_size"):
            raise ValueError(
                f"task {self.name!r} trains on a fixed data set of {self.train_size} examples; "
                "train_size applies to generated problems only: drop it."
            )
        return dataclasses.replace(self, source=self.source.with_train_size(train_size))

    def train_dataset(self, batch_size, padded=False):
        """Endless seeded `tf.data.Dataset` of training batches.

        Synthetic problems draw fresh sequences for every batch (as in the
        thesis, "every HF iteration used a fresh set of sequences"), or,
        with a `train_size` (`with_train_size`), cycle through a finite set
        drawn once and reshuffled every epoch; the stream is identical for
        the same seed and batch size.

        Args:
            batch_size: sequences per batch.
            padded: for a variable-length problem (`time_steps is None`),
                draw T' per sequence and pre-pad every sequence to
                `max_time_steps` with `pad_value` steps (see
                `rnnzoo.data.source`); no effect on fixed-length problems.
        """
        _check_count("batch_size", batch_size, "e.g. batch_size=100")
        if padded and self.time_steps is None:
            return self.source.train_dataset(batch_size, self.seed, padded=True)
        return self.source.train_dataset(batch_size, self.seed)

    def test_dataset(self, batch_size, size=None, padded=False):
        """Finite seeded test set, the same for every call with the same seed.

        Args:
            batch_size: examples per batch (the last batch may be smaller).
            size: number of test examples; `None` for the problem's default
                (10,000 synthetic sequences as in thesis §4.4, or the whole
                test split of a fixed data set).
            padded: as for `train_dataset`.
        """
        _check_count("batch_size", batch_size, "e.g. batch_size=100")
        if size is not None:
            _check_count("size", size, "e.g. size=10000")
        if padded and self.time_steps is None:
            return self.source.test_dataset(batch_size, size, self.seed, padded=True)
        return self.source.test_dataset(batch_size, size, self.seed)

    def error_rate(self, y_true, y_pred):
        """The paper's zero-one error (thesis §4.4; ch. 7 table 7.3).

        Args:
            y_true: targets as yielded by the datasets.
            y_pred: model outputs: regression values of the same shape as
                `y_true` (or `(batch,)`), class scores with a trailing class
                axis (argmax is taken), or predicted class labels.

        Returns:
            Fraction of wrong test cases (`error_unit="sequence"`) or of
            wrong relevant symbols (`error_unit="symbol"`), a Python float.
            Non-finite predictions count as wrong.
        """
        wrong = self._wrong(y_true, y_pred)
        if self.error_unit == "symbol":
            return float(np.mean(wrong))
        return float(np.mean(np.any(wrong, axis=1)))

    def sequence_error_rate(self, y_true, y_pred):
        """Fraction of test sequences with any wrong relevant output: thesis §4.4's
        success criterion (a run succeeds when it is below `success_error_rate`),
        whatever `error_unit` the task reports."""
        return float(np.mean(np.any(self._wrong(y_true, y_pred), axis=1)))

    def succeeded(self, y_true, y_pred):
        """Thesis §4.4: fewer than `success_error_rate` of the test sequences are wrong."""
        return self.sequence_error_rate(y_true, y_pred) < self.success_error_rate

    def _wrong(self, y_true, y_pred):
        """Boolean `(cases, relevant outputs)`: which relevant outputs are wrong."""
        y_true = np.asarray(y_true)
        y_pred = np.asarray(y_pred)
        if self.output_kind == REGRESSION:
            y_true = y_true.reshape(len(y_true), -1)
            if y_pred.shape[:1] != y_true.shape[:1] or y_pred.size != y_true.size:
                raise ValueError(
                    f"y_pred has shape {y_pred.shape} but y_true has shape {y_true.shape}; "
                    f"pass one prediction per target, shape {y_true.shape}."
                )
            # `not <=` rather than `>`: NaN compares False either way, so it counts as wrong.
            return ~(np.abs(y_pred.reshape(y_true.shape) - y_true) <= self.tolerance)
        labels = _labels(y_true, y_pred)
        if self.output_kind == LAST_STEP_CLASSIFICATION:
            return (labels != y_true)[:, None]
        steps = list(self.relevant_steps)
        return labels[:, steps] != y_true[:, steps]

    def baseline(self):
        """The trivial input-independent baseline, a `Baseline`."""
        return self.source.baseline()


def _labels(y_true, y_pred):
    """Predicted labels from scores (trailing class axis) or from labels; -1 (never a
    class) where any score is non-finite."""
    if y_pred.ndim == y_true.ndim + 1:
        finite = np.all(np.isfinite(y_pred), axis=-1)
        y_pred = np.where(finite, np.argmax(np.nan_to_num(y_pred), axis=-1), -1)
    if y_pred.shape != y_true.shape:
        raise ValueError(
            f"y_pred has shape {y_pred.shape} but y_true has shape {y_true.shape}; pass "
            f"class scores of shape {y_true.shape + (-1,)} or labels of shape {y_true.shape}."
        )
    return y_pred


def check_seq_len(name, seq_len, minimum, why):
    """Raise a ValueError naming `seq_len` unless it is an int >= `minimum`."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < minimum:
        raise ValueError(
            f"seq_len={seq_len!r} is invalid for task {name!r}: {why}; "
            f"pass an integer seq_len >= {minimum}."
        )


def _check_count(name, value, example):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}; pass {example}.")
