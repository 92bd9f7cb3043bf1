"""SavedModel export of a character language model for TensorFlow Serving (thesis ch. 5).

`export_char_lm(model, vocabulary, export_base)` writes `export_base/N/` through the
generic writer (`rnnzoo.export.writer`: versions, staging and atomic rename, the
serving-parity and signature-contract checks, warmup records) with the contracts
(`rnnzoo.serving.signatures`):

- `generate` (also `serving_default`): `prompt` string[b], `max_length`
  int32[b], `temperature` float32[b], `seed` int64[b] -> `text` string[b],
  the prompt followed by up to `max_length` sampled characters (UTF-8);
- `score`: `text` string[b] -> `bits_per_char` float32[b], `log_prob` float32[b].

Semantics are those of `rnnzoo.decoding.TextModel`: tokenisation by
`tf.strings.unicode_decode` (core TF), sampling in a `tf.while_loop` carrying
the recurrent state, stateless random ops seeded per row (the same inputs give
the same text, whatever else is in the batch), temperature 0 = greedy, every
input batched so that REST row and columnar requests both work.
"""

import numpy as np
import tensorflow as tf

from rnnzoo.decoding import TextModel
from rnnzoo.export.warmup import predict_request
from rnnzoo.export.writer import write_export
from rnnzoo.zoo.char_lm.model import load_trained


def serving_functions(text_model):
    """{contract name: function}: the `generate` and `score` signatures of a `TextModel`."""

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([None], tf.int32, name="max_length"),
        tf.TensorSpec([None], tf.float32, name="temperature"),
        tf.TensorSpec([None], tf.int64, name="seed"),
    ])
    def generate(prompt, max_length, temperature, seed):
        return text_model.generate(prompt, max_length, temperature, seed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def score(text):
        return text_model.score(text)

    return {"generate": generate, "score": score}


def warmup_requests():
    """Warmup PredictRequests: generate (sampled and greedy, an empty prompt, max_length 0) and score."""
    generate = {
        "prompt": ["def ", "", "import"],
        "max_length": np.array([8, 4, 0], np.int32),
        "temperature": np.array([0.8, 0.0, 1.0], np.float32),
        "seed": np.array([1, 2, 3], np.int64),
    }
    return [
        predict_request("serving_default", generate),
        predict_request("generate", generate),
        predict_request("score", {"text": ["import os\n", ""]}),
    ]


def export_char_lm(model, vocabulary, export_base, version=None, max_generate=4096):
    """Writes the model as `export_base/<version>/` and returns that path (see the module docstring).

    Raises:
        ValueError: `version` exists already or is not a positive integer.
        ServingParityError: the graph would not run on stock TF Serving.
    """
    text_model = TextModel(model, vocabulary, max_generate=max_generate)
    return write_export(text_model, serving_functions(text_model), export_base, version, default="generate",
                        warmup_requests=warmup_requests())


def export_model_dir(model_dir, export_base, version=None, max_generate=4096, checkpoint="best"):
    """Exports the char LM trained in `model_dir` (its `checkpoint`, best or last, + `vocabulary.json`)."""
    model, vocabulary, _ = load_trained(model_dir, checkpoint)
    return export_char_lm(model, vocabulary, export_base, version, max_generate)
