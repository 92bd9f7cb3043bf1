"""One loaded version of a model: a SavedModel, its SignatureDefs, and input checking.

The SignatureDefs are read from ``saved_model.pb`` itself, so GetModelMetadata returns exactly
what TensorFlow Serving would; requests are checked against them (aliases, dtype, shape) before
the signature's concrete function runs. Both are prepared once per version: each signature's
expected (dtype, dims) per input, and a flat call of its function (`flat_call.py`).
"""

import os

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from rnnzoo.serving import errors
from rnnzoo.serving.flat_call import make_call
from rnnzoo.serving.tensors import dtype_enum, dtype_name

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def _import_tf_text():
    """Register tf-text ops before loading, as TF Serving links them into its binary."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:  # tf-text is pinned; a missing install only matters for models using it
        pass


def has_saved_model(path: str) -> bool:
    return any(
        tf.io.gfile.exists(os.path.join(path, name)) for name in ("saved_model.pb", "saved_model.pbtxt")
    )


def read_meta_graph(path: str) -> meta_graph_pb2.MetaGraphDef:
    """The ``serve``-tagged MetaGraphDef of the SavedModel at `path`."""
    saved_model = saved_model_pb2.SavedModel()
    pb_path = os.path.join(path, "saved_model.pb")
    if tf.io.gfile.exists(pb_path):
        with tf.io.gfile.GFile(pb_path, "rb") as f:
            saved_model.ParseFromString(f.read())
    else:
        from google.protobuf import text_format

        with tf.io.gfile.GFile(os.path.join(path, "saved_model.pbtxt"), "r") as f:
            text_format.Parse(f.read(), saved_model)
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"SavedModel at {path} has no MetaGraphDef tagged '{SERVE_TAG}'")


def _input_specs(signature) -> dict:
    """{alias: (dtype enum, dims with -1 for free ones, or None for an unknown rank)}."""
    return {
        alias: (info.dtype, None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim))
        for alias, info in signature.inputs.items()
    }


def _shape_ok(expected, dims) -> bool:
    if expected is None:
        return True
    if len(expected) != len(dims):
        return False
    for e, d in zip(expected, dims):
        if e >= 0 and e != d:
            return False
    return True


def _shape_str(shape) -> str:
    if shape.unknown_rank:
        return "<unknown>"
    return "[" + ",".join("?" if d.size < 0 else str(d.size) for d in shape.dim) + "]"


class Servable:
    """A SavedModel version ready to run its signatures.

    Args:
      name: model name.
      version: integer version (the directory name under the model's base path).
      path: the version directory.
    """

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self.meta_graph = read_meta_graph(path)
        _import_tf_text()
        self._loaded = tf.saved_model.load(path, tags=[SERVE_TAG])
        self._functions = dict(self._loaded.signatures)
        # a plain dict: looking a name up in the protobuf map cost ~1 us, three times per Predict
        self._signatures = {name: self.signature_defs[name] for name in self._functions if name in self.signature_defs}
        self._input_specs = {name: _input_specs(signature) for name, signature in self._signatures.items()}
        self._input_dtypes = {name: {alias: spec[0] for alias, spec in specs.items()}
                              for name, specs in self._input_specs.items()}
        self._output_aliases = {name: tuple(sorted(self.signature_defs[name].outputs)) for name in self._input_specs}
        self._calls = {name: make_call(function) for name, function in self._functions.items()}
        self.batcher = None  # a batching.Batcher, set by the manager when batching is enabled

    @property
    def signature_defs(self):
        return self.meta_graph.signature_def

    def signature(self, name: str) -> meta_graph_pb2.SignatureDef:
        """The SignatureDef `name` ("" means serving_default); FAILED_PRECONDITION if absent."""
        name = name or DEFAULT_SIGNATURE
        signature = self._signatures.get(name)
        if signature is None:
            known = sorted(k for k in self._functions)
            raise errors.failed_precondition(
                f'Serving signature name: "{name}" not found in signature def; '
                f"model '{self.name}' version {self.version} has {known}"
            )
        return signature

    def input_dtypes(self, signature_name: str) -> dict:
        """{input alias: DataType enum} of a signature, read at load (FAILED_PRECONDITION if absent)."""
        self.signature(signature_name)
        return self._input_dtypes[signature_name or DEFAULT_SIGNATURE]

    def output_aliases(self, signature_name: str) -> tuple:
        """The sorted output aliases of a signature, worked out at load (not per request)."""
        self.signature(signature_name)
        return self._output_aliases[signature_name or DEFAULT_SIGNATURE]

    def check_inputs(self, signature_name: str, inputs: dict) -> meta_graph_pb2.SignatureDef:
        """Validate input aliases, dtypes and shapes against the SignatureDef."""
        signature = self.signature(signature_name)
        specs = self._input_specs[signature_name or DEFAULT_SIGNATURE]
        if inputs.keys() != specs.keys():
            expected, given = set(specs), set(inputs)
            missing = sorted(expected - given)
            extra = sorted(given - expected)
            raise errors.invalid_argument(
                f"input size does not match signature: {len(given)}!={len(expected)} "
                f"len({sorted(given)}) != len({sorted(expected)}). "
                f"Sent extra: {extra}. Missing but required: {missing}."
            )
        for alias, array in inputs.items():
            dtype, dims = specs[alias]
            got = dtype_enum(array.dtype)
            if got != dtype:
                raise errors.invalid_argument(
                    f"Expects arg '{alias}' to be {dtype_name(dtype)} but "
                    f"{dtype_name(got)} is provided"
                )
            if not _shape_ok(dims, array.shape):
                raise errors.invalid_argument(
                    f"input '{alias}' has shape {list(array.shape)} but the signature expects "
                    f"{_shape_str(signature.inputs[alias].tensor_shape)}"
                )
        return signature

    def run(self, signature_name: str, inputs: dict) -> dict:
        """Run a signature on checked numpy inputs now (blocking); returns {output alias: numpy array}.

        Request handlers reach it through the batcher or the model pool (`service.py`); warmup
        and Classify/Regress call it directly.
        """
        call = self._calls[signature_name or DEFAULT_SIGNATURE]
        try:
            return call(inputs)
        except Exception as error:  # op errors keep their canonical code
            raise errors.from_exception(error) from None
