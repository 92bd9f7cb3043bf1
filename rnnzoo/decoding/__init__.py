"""Decoding in TensorFlow ops, shared by evaluation and export: seeded sampling and the
character language model's text interface (beam search joins here with translation)."""

from rnnzoo.decoding.sampling import sample_next
from rnnzoo.decoding.text_model import TextModel

__all__ = ["TextModel", "sample_next"]
