"""`Client`: a gRPC client for rnnzoo-serve and stock TensorFlow Serving alike.

`predict` is generic (any signature, inputs as numpy arrays / lists / strings). Typed helpers
wrap the zoo's signature contracts (docs/serving.md, "Signature contracts"):

* ``generate``: prompt string[b], max_length int32[b], temperature float32[b], seed int64[b]
  -> text string[b] (thesis ch. 5 sampling).
* ``score``: text string[b] -> bits_per_char float32[b], log_prob float32[b].
* ``translate``: source string[b] -> translations string[b, k], scores float32[b, k]
  (the k beam-search hypotheses, best first; Sutskever et al. 2014 in rnn-critical-review §2.5).
* ``control``: observation float32[b, 4] (shoulder/elbow angles and velocities),
  target float32[b, 4], state float32[b, s] -> torque float32[b, 2], state float32[b, s]
  (one step of the thesis ch. 6 RNN controller; the recurrent state travels with the request
  because TF Serving keeps no per-client state).
"""

import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def _holds_text(value) -> bool:
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (str, bytes))


def _as_array(value) -> np.ndarray:
    """A request value as a numpy array; text (str or bytes, nested lists too) becomes bytes objects."""
    array = np.asarray(value, dtype=object) if _holds_text(value) else np.asarray(value)
    if array.dtype.kind in "US":
        array = array.astype(object)
    if array.dtype == object and array.size:
        array = np.vectorize(lambda v: v.encode("utf-8") if isinstance(v, str) else v, otypes=[object])(array)
    return array


def _batch(values, name: str) -> list:
    values = [values] if isinstance(values, (str, bytes)) else list(values)
    if not values:
        raise ValueError(f"{name} is empty; pass at least one value")
    return values


def _column(value, size: int, name: str) -> list:
    """Broadcast a scalar argument to one value per row, or check a per-row list's length."""
    if np.ndim(value) == 0:
        return [value] * size
    value = list(value)
    if len(value) != size:
        raise ValueError(f"{name} has {len(value)} values for {size} rows; pass one value or one per row")
    return value


class Client:
    """Talks to a TF Serving gRPC endpoint (``host:port``).

    Args:
      target: server address, e.g. ``"localhost:8500"``.
      timeout: per-call deadline in seconds.
    """

    def __init__(self, target: str = "localhost:8500", timeout: float = 30.0):
        self.target = target
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target, options=_OPTIONS)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _spec(spec, model: str, signature: str | None, version: int | None, label: str | None):
        if version is not None and label is not None:
            raise ValueError(f"pass version={version} or label={label!r}, not both")
        spec.name = model
        if signature is not None:
            spec.signature_name = signature
        if version is not None:
            spec.version.value = int(version)
        elif label is not None:
            spec.version_label = label

    # ---- generic calls ---------------------------------------------------------------------
    def predict(self, model: str, inputs: dict, signature: str = "serving_default", version: int | None = None,
                label: str | None = None, output_filter=()) -> dict:
        """Run `signature` of `model`; returns {output alias: numpy array}.

        Strings come back as numpy object arrays of bytes. Raises `grpc.RpcError` with the
        server's status code (NOT_FOUND, INVALID_ARGUMENT, ...) when the server refuses.
        """
        if not inputs:
            raise ValueError("inputs is empty; pass a dict {input alias: value}")
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, signature, version, label)
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(_as_array(value)))
        request.output_filter.extend(output_filter)
        response = self._predict.Predict(request, timeout=self.timeout)
        self.last_model_spec = response.model_spec
        return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}

    def model_status(self, model: str, version: int | None = None, label: str | None = None) -> list:
        """[{"version", "state", "error_code", "error_message"}], newest version first."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, None, version, label)
        response = self._models.GetModelStatus(request, timeout=self.timeout)
        names = get_model_status_pb2.ModelVersionStatus.State
        return [
            {"version": s.version, "state": names.Name(s.state), "error_code": s.status.error_code,
             "error_message": s.status.error_message}
            for s in response.model_version_status
        ]

    def signatures(self, model: str, version: int | None = None, label: str | None = None) -> dict:
        """{signature name: SignatureDef} of the version that would serve the request."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, None, version, label)
        response = self._predict.GetModelMetadata(request, timeout=self.timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    def wait_until_available(self, model: str, timeout: float = 60.0) -> int:
        """Poll GetModelStatus until a version is AVAILABLE; returns that version."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                for status in self.model_status(model):
                    if status["state"] == "AVAILABLE":
                        return status["version"]
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"model {model!r} has no AVAILABLE version at {self.target} after {timeout} s")
            time.sleep(0.1)

    # ---- typed helpers for the zoo's signatures ----------------------------------------------
    def generate(self, model: str, prompts, max_length=100, temperature=1.0, seed=0, signature: str = "generate",
                 version: int | None = None, label: str | None = None) -> list:
        """Sample text after each prompt; scalars apply to every prompt. Returns a list of str.

        `temperature` 0 decodes greedily (the export contract of `rnnzoo-export`).
        """
        prompts = _batch(prompts, "prompts")
        n = len(prompts)
        inputs = {
            "prompt": _as_array(prompts),
            "max_length": np.asarray(_column(max_length, n, "max_length"), np.int32),
            "temperature": np.asarray(_column(temperature, n, "temperature"), np.float32),
            "seed": np.asarray(_column(seed, n, "seed"), np.int64),
        }
        if np.any(inputs["max_length"] < 0):
            raise ValueError(f"max_length must be >= 0, got {inputs['max_length'].tolist()}")
        if not np.all(inputs["temperature"] >= 0):
            raise ValueError(
                f"temperature must be >= 0 (0 = greedy), got {inputs['temperature'].tolist()}"
            )
        outputs = self.predict(model, inputs, signature, version, label, output_filter=["text"])
        return [t.decode("utf-8", "replace") for t in outputs["text"].reshape(-1)]

    def score(self, model: str, texts, signature: str = "score", version: int | None = None,
              label: str | None = None) -> dict:
        """{"bits_per_char": float32[b], "log_prob": float32[b]} of each text under the model."""
        outputs = self.predict(model, {"text": _as_array(_batch(texts, "texts"))}, signature, version, label)
        return {"bits_per_char": outputs["bits_per_char"], "log_prob": outputs["log_prob"]}

    def translate(self, model: str, sources, signature: str = "translate", version: int | None = None,
                  label: str | None = None) -> list:
        """For each source sentence, the beam's [(translation, score)], best first."""
        outputs = self.predict(model, {"source": _as_array(_batch(sources, "sources"))}, signature, version, label)
        translations = np.asarray(outputs["translations"])
        scores = np.asarray(outputs["scores"])
        if translations.ndim == 1:
            translations, scores = translations[:, None], scores[:, None]
        return [
            [(t.decode("utf-8", "replace"), float(s)) for t, s in zip(row_t, row_s)]
            for row_t, row_s in zip(translations, scores)
        ]

    def control(self, model: str, observation, target, state=None, signature: str = "control",
                version: int | None = None, label: str | None = None):
        """One controller step: returns (torque float32[b, 2], next state float32[b, s]).

        `state=None` starts from the zero state, sized from the signature's ``state`` input.
        """
        observation = np.atleast_2d(np.asarray(observation, np.float32))
        target = np.atleast_2d(np.asarray(target, np.float32))
        if observation.shape != target.shape or observation.shape[1:] != (4,):
            raise ValueError(
                f"observation {observation.shape} and target {target.shape} must both be [batch, 4] "
                f"(shoulder angle, elbow angle, and their velocities)"
            )
        if state is None:
            info = self.signatures(model, version, label)[signature].inputs["state"]
            size = info.tensor_shape.dim[-1].size
            if size < 0:
                raise ValueError(f"the '{signature}' signature does not fix the state size; pass state explicitly")
            state = np.zeros((observation.shape[0], size), np.float32)
        inputs = {"observation": observation, "target": target, "state": np.asarray(state, np.float32)}
        outputs = self.predict(model, inputs, signature, version, label)
        return outputs["torque"], outputs["state"]
