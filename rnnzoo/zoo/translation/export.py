"""SavedModel export of a seq2seq translation model for TensorFlow Serving (rnn-critical-review §5.3).

`export_translator(model, tokenizer, export_base)` writes `export_base/N/` through the generic
writer (`rnnzoo.export.writer`: versions, staging and atomic rename, serving-parity and
signature-contract checks, warmup records) with the `translate` contract
(`rnnzoo.serving.signatures`), also served as `serving_default`:

    source string[b], beam_width int32[b], length_penalty float32[b], max_length int32[b]
    -> translation string[b], n_best string[b, K], scores float32[b, K]

Semantics are `rnnzoo.decoding.Translator`'s: SentencePiece tokenisation and detokenisation in
the graph (tf-text ops TF Serving links), the encoder, and the beam search in one
`tf.while_loop` carrying the decoder's (h, c) per layer explicitly; bad values are
INVALID_ARGUMENT.
"""

import numpy as np
import tensorflow as tf

from rnnzoo.export.warmup import predict_request
from rnnzoo.export.writer import write_export
from rnnzoo.zoo.translation.model import Seq2SeqConfig, load_trained, make_translator


def serving_functions(translator):
    """{contract name: function}: the `translate` signature of a `Translator`."""

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="source"),
        tf.TensorSpec([None], tf.int32, name="beam_width"),
        tf.TensorSpec([None], tf.float32, name="length_penalty"),
        tf.TensorSpec([None], tf.int32, name="max_length"),
    ])
    def translate(source, beam_width, length_penalty, max_length):
        return translator.translate(source, beam_width, length_penalty, max_length)

    return {"translate": translate}


def warmup_requests():
    """Warmup PredictRequests: beam and greedy rows, an empty source, an explicit max length."""
    inputs = {
        "source": ["Open the file", "", "Save all changes before closing"],
        "beam_width": np.array([4, 1, 2], np.int32),
        "length_penalty": np.array([0.6, 0.0, 1.0], np.float32),
        "max_length": np.array([0, 5, 0], np.int32),
    }
    return [predict_request("translate", inputs), predict_request("serving_default", inputs)]


def export_translator(model, tokenizer, export_base, version=None, max_beam_width=16, max_decode_length=128):
    """Writes the model as `export_base/<version>/` and returns that path (see the module docstring).

    Raises:
        ValueError: `version` exists already or is not a positive integer.
        ServingParityError: the graph would not run on stock TF Serving.
    """
    config = Seq2SeqConfig(max_beam_width=max_beam_width, max_decode_length=max_decode_length)
    translator = make_translator(model, tokenizer, config)
    return write_export(translator, serving_functions(translator), export_base, version, default="translate",
                        warmup_requests=warmup_requests())


def export_model_dir(model_dir, export_base, version=None, max_beam_width=None, max_decode_length=None,
                     checkpoint="best"):
    """Exports the seq2seq run in `model_dir` (its `checkpoint`, best or last, and `sentencepiece.model`);
    the limits default to the run's `max_beam_width` and `max_decode_length`."""
    model, tokenizer, config = load_trained(model_dir, checkpoint)
    return export_translator(model, tokenizer, export_base, version, max_beam_width or config.max_beam_width,
                             max_decode_length or config.max_decode_length)
