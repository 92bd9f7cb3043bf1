"""Subword tokenisation in the graph: a SentencePiece unigram model run by tensorflow-text.

`train_sentencepiece(lines, vocab_size)` trains the model offline with the `sentencepiece`
package (seconds for tens of thousands of lines) and returns its serialized proto;
`SubwordTokenizer(model_proto)` keeps those bytes in the graph through
`tensorflow_text.SentencepieceTokenizer`, whose ops (`SentencepieceOp`,
`SentencepieceTokenizeOp`, `SentencepieceDetokenizeOp`) stock TF Serving links. Detokenisation
is lossless up to whitespace normalisation: case and accents survive (BERT-style WordPiece
lower-cases and strips accents).

Ids 0-3 are reserved: `PAD_ID` (padding, masked out), `UNK_ID`, `BOS_ID` (the decoder's first
input, rnn-critical-review §5.3) and `EOS_ID` (end of sentence).

tensorflow-text's SentencePiece resource is owned by the op kernel that created it, so
`tf.random.set_seed` (which clears TensorFlow's eager kernel cache, as `keras.utils.set_random_seed`
does) would delete it under an eager tokenizer. `SubwordTokenizer` names the resource after the
model's SHA-1 instead (`shared_name`): the resource manager keeps it, and equal models share it.
"""

import hashlib
import io

import tensorflow as tf
import tensorflow_text
from tensorflow.python.trackable import resource
from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentencepiece(lines, vocab_size=4000):
    """The serialized SentencePiece unigram model (bytes) trained on `lines`, deterministically.

    Raises:
        ValueError: no text, or `vocab_size` too small for the reserved ids.
    """
    import sentencepiece

    lines = [line for line in lines if line.strip()]
    if not lines:
        raise ValueError("no text to train the SentencePiece model on; the corpus's training split is empty")
    if vocab_size < 8:
        raise ValueError(f"vocab_size={vocab_size} is too small; use at least 8 (4 ids are reserved)")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, character_coverage=1.0,
        hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    return model.getvalue()


class _NamedSentencepieceModel(resource.TrackableResource):
    """The SentencePiece model resource under a name of its content (survives kernel-cache clears)."""

    def __init__(self, model_proto):
        super().__init__()
        self._model = model_proto
        self._shared_name = "rnnzoo_sentencepiece_" + hashlib.sha1(model_proto).hexdigest()
        _ = self.resource_handle

    def _create_resource(self):
        return gen_sentencepiece_tokenizer.sentencepiece_op(model=self._model, shared_name=self._shared_name)


class SubwordTokenizer(tf.Module):
    """Text <-> subword ids in TensorFlow ops (exportable): `encode(string[b]) -> int32 ragged[b, (n)]`,
    `decode(int32 ragged or dense [b, n]) -> string[b]` (padding, BOS and EOS ids are dropped;
    an unknown piece reads as " ⁇ ")."""

    def __init__(self, model_proto):
        super().__init__(name="subword_tokenizer")
        self.model_proto = bytes(model_proto)
        self._tokenizer = tensorflow_text.SentencepieceTokenizer(model=self.model_proto, out_type=tf.int32)
        self._tokenizer._model_resource = _NamedSentencepieceModel(self.model_proto)

    @property
    def vocab_size(self):
        return int(self._tokenizer.vocab_size())

    def encode(self, text):
        return self._tokenizer.tokenize(text)

    def decode(self, ids):
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        kept = tf.ragged.boolean_mask(ids, (ids != PAD_ID) & (ids != BOS_ID) & (ids != EOS_ID))
        return self._tokenizer.detokenize(kept)
