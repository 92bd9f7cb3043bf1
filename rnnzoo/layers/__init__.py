"""Keras 3 recurrent layers and cells of the papers."""

from rnnzoo.layers.mrnn import MRNN, MRNNCell
from rnnzoo.layers.recurrence import (
    forward_mode_recurrence,
    forward_mode_recurrence_active,
    state_carrying_rnn,
)

__all__ = [
    "MRNN",
    "MRNNCell",
    "forward_mode_recurrence",
    "forward_mode_recurrence_active",
    "state_carrying_rnn",
]
