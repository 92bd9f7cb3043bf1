"""Keras 3 recurrent layers and cells of the papers.

Each layer is a `keras.layers.RNN` over a public cell, with Keras's RNN
arguments (`return_sequences`, `return_state`, `go_backwards`, `stateful`,
`unroll`), masking and `initial_state`:

- `MRNN` / `MRNNCell`: multiplicative RNN (thesis eq. 5.4-5.7).
- `TensorRNN` / `TensorRNNCell`: bilinear tensor RNN, full or CP rank (thesis eq. 5.3).
- `ResRNN` / `ResRNNCell`: residual RNN (longer-rnns §3).
- `ScopedRNN` / `ScopedRNNCell`: VL-iRNN with untied time scopes (longer-rnns §2).
- `RTRBM`, `TRBM`: recurrent temporal RBM and simplified temporal RBM (thesis ch. 3); not
  `keras.layers.RNN`s: calling them gives the mean-field chain, their methods train (CD-k),
  predict and generate frames.
- `ReversePadded`: reverses each masked sequence's real steps (seq2seq source reversal).

`forward_mode_recurrence()` makes non-unrolled layers differentiable by
`tf.autodiff.ForwardAccumulator`.
"""

import rnnzoo.initializers  # noqa: F401  (registers "sparse" and "spectral_radius")
from rnnzoo.layers.mrnn import MRNN, MRNNCell
from rnnzoo.layers.recurrence import (
    forward_mode_recurrence,
    forward_mode_recurrence_active,
    state_carrying_rnn,
    tensor_array_rnn,
)
from rnnzoo.layers.res_rnn import ResRNN, ResRNNCell
from rnnzoo.layers.reverse_padded import ReversePadded
from rnnzoo.layers.rtrbm import RTRBM, TRBM
from rnnzoo.layers.scoped_rnn import ScopedRNN, ScopedRNNCell, paper_penalty_schedule
from rnnzoo.layers.tensor_rnn import TensorRNN, TensorRNNCell

__all__ = [
    "MRNN",
    "MRNNCell",
    "ResRNN",
    "ResRNNCell",
    "ReversePadded",
    "RTRBM",
    "TRBM",
    "ScopedRNN",
    "ScopedRNNCell",
    "TensorRNN",
    "TensorRNNCell",
    "forward_mode_recurrence",
    "forward_mode_recurrence_active",
    "paper_penalty_schedule",
    "state_carrying_rnn",
    "tensor_array_rnn",
]
