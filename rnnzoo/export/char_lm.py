"""SavedModel export of a character language model for TensorFlow Serving (thesis ch. 5).

`export_char_lm(model, vocabulary, export_base)` writes `export_base/N/`
(TF Serving's layout; N = the next free integer unless given) with:

- `generate` (also `serving_default`): `prompt` string[b], `max_length`
  int32[b], `temperature` float32[b], `seed` int64[b] -> `text` string[b],
  the prompt followed by up to `max_length` sampled characters (UTF-8);
- `score`: `text` string[b] -> `bits_per_char` float32[b], `log_prob` float32[b].

Semantics are those of `rnnzoo.decoding.TextModel`: tokenisation by
`tf.strings.unicode_decode` (core TF), sampling in a `tf.while_loop` carrying
the recurrent state, stateless random ops seeded per row (the same inputs give
the same text, whatever else is in the batch), temperature 0 = greedy, every
input batched so that REST row and columnar requests both work.
`assets.extra/tf_serving_warmup_requests` holds a few requests of each
signature, and `check_serving_parity` runs before the version appears.
"""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from rnnzoo.export.parity import ServingParityError, read_saved_model, save_for_serving
from rnnzoo.export.warmup import predict_request, write_warmup_requests
from rnnzoo.decoding import TextModel
from rnnzoo.zoo import char_lm

SIGNATURES = {
    "generate": (
        {"prompt": types_pb2.DT_STRING, "max_length": types_pb2.DT_INT32,
         "temperature": types_pb2.DT_FLOAT, "seed": types_pb2.DT_INT64},
        {"text": types_pb2.DT_STRING},
    ),
    "score": ({"text": types_pb2.DT_STRING}, {"bits_per_char": types_pb2.DT_FLOAT, "log_prob": types_pb2.DT_FLOAT}),
}
SIGNATURES["serving_default"] = SIGNATURES["generate"]


def serving_functions(text_model):
    """The `generate` and `score` signature functions of a `TextModel`."""

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

    return generate, score


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


def next_version(export_base):
    """1 + the largest integer version directory under `export_base` (1 if none)."""
    if not os.path.isdir(export_base):
        return 1
    versions = [int(name) for name in os.listdir(export_base) if name.isdigit()]
    return max(versions, default=0) + 1


def check_signatures(export_dir):
    """Raises `ServingParityError` unless the export has exactly the contracted signatures."""
    meta_graph = read_saved_model(export_dir).meta_graphs[0]
    found = []
    for name, (inputs, outputs) in SIGNATURES.items():
        if name not in meta_graph.signature_def:
            found.append(f"signature {name!r} is missing")
            continue
        signature = meta_graph.signature_def[name]
        for side, expected, actual in (("inputs", inputs, signature.inputs), ("outputs", outputs, signature.outputs)):
            got = {alias: info.dtype for alias, info in actual.items()}
            if got != expected:
                found.append(f"signature {name!r} {side} are {got}, expected {expected}")
            for alias, info in actual.items():
                dims = [d.size for d in info.tensor_shape.dim]
                if dims != [-1]:
                    found.append(f"signature {name!r} {alias!r} has shape {dims}, expected [batch] = [-1]")
    if found:
        raise ServingParityError(f"{export_dir}: " + "; ".join(found))


def export_char_lm(model, vocabulary, export_base, version=None, max_generate=4096):
    """Writes the model as `export_base/<version>/` and returns that path (see the module docstring).

    The version directory is written aside and renamed into place only after
    the serving-parity check passes, so a server polling `export_base` never
    sees a partial or failing export.

    Raises:
        ValueError: `version` exists already or is not a positive integer.
        ServingParityError: the graph would not run on stock TF Serving.
    """
    if version is None:
        version = next_version(export_base)
    if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    target = os.path.join(export_base, str(version))
    if os.path.exists(target):
        raise ValueError(
            f"{target} exists already; pass another --version (next free: {next_version(export_base)}) "
            "or remove it"
        )
    os.makedirs(export_base, exist_ok=True)
    text_model = TextModel(model, vocabulary, max_generate=max_generate)
    generate, score = serving_functions(text_model)
    staging = tempfile.mkdtemp(prefix=f".export-{version}-", dir=export_base)
    try:
        save_for_serving(
            text_model, staging, {"serving_default": generate, "generate": generate, "score": score}
        )
        check_signatures(staging)
        write_warmup_requests(staging, warmup_requests())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def export_model_dir(model_dir, export_base, version=None, max_generate=4096):
    """Exports the char LM trained in `model_dir` (`model.keras` + `vocabulary.json`)."""
    model, vocabulary, _ = char_lm.load_trained(model_dir)
    return export_char_lm(model, vocabulary, export_base, version, max_generate)
