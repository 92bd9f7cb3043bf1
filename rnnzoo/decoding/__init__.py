"""Decoding in TensorFlow ops, shared by evaluation and export: seeded sampling, the
character language model's text interface and left-to-right beam search."""

from rnnzoo.decoding.beam_search import BeamSearchOutput, beam_search, length_penalty
from rnnzoo.decoding.sampling import sample_next
from rnnzoo.decoding.text_model import TextModel

__all__ = ["BeamSearchOutput", "TextModel", "beam_search", "length_penalty", "sample_next"]
