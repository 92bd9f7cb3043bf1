"""Bad configuration raises ValueError naming the argument and the fix."""

import numpy as np
import pytest

from rnnzoo.layers import MRNN, ResRNN, ScopedRNN, TensorRNN


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MRNN(0, 4), "`units` must be a positive integer"),
        (lambda: MRNN(-3, 4), "`units`"),
        (lambda: MRNN(4, 0), "`factors` must be a positive integer"),
        (lambda: MRNN(4, 2.5), "`factors`"),
        (lambda: TensorRNN(4, rank=0), "`rank` must be a positive integer"),
        (lambda: ResRNN(0), "`units`"),
        (lambda: ScopedRNN(4, num_scopes=0, scope_length=3), "`num_scopes`"),
        (lambda: ScopedRNN(4, num_scopes=2, scope_length=0), "`scope_length`"),
        (lambda: ScopedRNN(4, 2, 3, penalty=-1.0), "`penalty`"),
        (lambda: MRNN(4, 4, input_dim=0), "`input_dim`"),
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_token_ids_without_input_dim():
    with pytest.raises(ValueError, match="input_dim"):
        MRNN(4, 4)(np.zeros((2, 5), dtype="int32"))


@pytest.mark.parametrize("shape", [(2,), (2, 3, 4, 5)])
def test_wrong_input_rank(shape):
    with pytest.raises(ValueError, match="rank"):
        ResRNN(4)(np.zeros(shape, dtype="float32"))


def test_float_rank_two_and_integer_rank_three_inputs():
    with pytest.raises(ValueError, match="token ids"):
        MRNN(4, 4, input_dim=5)(np.zeros((2, 5), dtype="float32"))
    with pytest.raises(ValueError, match="token ids must have shape"):
        MRNN(4, 4, input_dim=5)(np.zeros((2, 5, 5), dtype="int32"))


def test_one_hot_width_must_match_input_dim():
    with pytest.raises(ValueError, match="input_dim=5"):
        TensorRNN(4, rank=2, input_dim=5)(np.zeros((2, 3, 7), dtype="float32"))
