"""`Client`: a gRPC client for rnnzoo-serve and stock TensorFlow Serving alike.

`predict` is TF Serving's Predict on any signature (inputs as numpy arrays / lists / strings,
sent as given). `call(model, contract, inputs)` goes through a signature contract of
`rnnzoo.serving.signatures` (docs/serving.md, "Signature contracts"): it rejects unknown and
missing inputs, casts each input to the contract's dtype, checks fixed dimensions and minimums,
broadcasts a value given without the batch dimension to every row and fills the contract's
defaults. The typed helpers are `call` on one contract each:

* ``generate``: prompts -> texts (thesis ch. 5 sampling; temperature 0 decodes greedily).
* ``score``: texts -> bits_per_char, log_prob.
* ``translate``: sources -> the beam's n-best [(translation, score)], best first.
* ``control_step``: one step of the arm controller; the recurrent state travels with the request
  because TF Serving keeps no per-client state (`state=None` starts from zeros).
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

from rnnzoo.serving import signatures

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


def _cast(contract, tensor, alias, value) -> np.ndarray:
    """`value` as an array of the contract tensor's dtype, its minimum checked (NaN fails it)."""
    if tensor.dtype == "string":
        return _as_array(value)
    try:
        array = np.asarray(value, dtype=tensor.dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{contract.name} input {alias!r} must be {tensor.dtype} ({tensor.meaning}): {error}") from None
    if tensor.minimum is not None and not np.all(array >= tensor.minimum):
        raise ValueError(
            f"{alias} must be >= {tensor.minimum:g} ({tensor.meaning}), got {array.tolist()}"
        )
    return array


def _is_batched(contract, tensor, alias, array) -> bool:
    """Whether `array` has the batch dimension (without it, it applies to every row); raises on other shapes."""
    if Ellipsis in tensor.shape:  # the model's own dimensions: batch first, nothing to broadcast
        batched = fits = array.ndim >= 1
    else:
        batched = array.ndim == len(tensor.shape)
        row = array.shape[1:] if batched else array.shape
        fits = len(row) == len(tensor.shape) - 1 and all(want in (-1, got) for want, got in zip(tensor.shape[1:], row))
    if not fits:
        raise ValueError(
            f"{alias} has shape {list(array.shape)}; the {contract.name} contract wants "
            f"{signatures.describe_shape(tensor.shape)} (b = batch)"
        )
    return batched


def contract_inputs(contract, values: dict, served_dims=None) -> dict:
    """The request inputs of `values` ({alias: value}) under `contract` (see the module docstring).

    `served_dims(alias)` gives an input's dimensions as the served signature has them; it is only
    called to fill a default whose contract shape has free dimensions besides the batch (e.g. the
    controller's state size).

    Raises:
        ValueError: an unknown or missing input, a wrong dtype, shape or value, rows that disagree.
    """
    unknown = sorted(alias for alias in values if contract.input(alias) is None)
    if unknown:
        names = ", ".join(t.alias for t in contract.inputs)
        raise ValueError(f"the {contract.name} contract has no input {', '.join(unknown)}; its inputs are {names}")
    if not values and contract.inputs[0].alias == signatures.ANY_ALIAS:
        raise ValueError(f"inputs is empty; pass the model's inputs to {contract.name}, {{alias: value}}")
    arrays, rows = {}, None
    for alias, value in values.items():
        tensor = contract.input(alias)
        array = _cast(contract, tensor, alias, value)
        batched = _is_batched(contract, tensor, alias, array)
        if batched:
            if rows is None:
                rows = array.shape[0]
            elif array.shape[0] != rows:
                raise ValueError(f"{alias} has {array.shape[0]} values for {rows} rows; pass one value or one per row")
        arrays[alias] = (array, batched)
    rows = 1 if rows is None else rows
    if rows == 0:
        raise ValueError(f"the {contract.name} request has no rows; pass at least one value")
    request = {alias: array if batched else np.broadcast_to(array, (rows, *array.shape)).copy()
               for alias, (array, batched) in arrays.items()}
    for tensor in contract.inputs:
        if tensor.alias in request or tensor.alias == signatures.ANY_ALIAS:
            continue
        if tensor.default is None:
            raise ValueError(f"the {contract.name} contract needs input {tensor.alias!r} ({tensor.meaning})")
        dims = list(tensor.shape[1:])
        if -1 in dims:
            dims = [want if want != -1 else got for want, got in zip(dims, served_dims(tensor.alias)[1:])]
            if -1 in dims:
                raise ValueError(
                    f"the served signature leaves the size of {tensor.alias!r} free; pass {tensor.alias} explicitly"
                )
        request[tensor.alias] = _cast(contract, tensor, tensor.alias, np.full([rows, *dims], tensor.default, object))
    return request


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
        """Run `signature` of `model` (TF Serving's Predict); returns {output alias: numpy array}.

        Any signature; the inputs are sent as given (`call(model, "predict", inputs)` checks and
        casts them by the `predict` contract first, what rnnzoo's Keras exports serve as
        `serving_default`). Strings come back as numpy object arrays of bytes. Raises `grpc.RpcError` with the
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

    # ---- the zoo's signature contracts (rnnzoo.serving.signatures) ---------------------------
    def call(self, model: str, contract: str, inputs: dict, signature: str | None = None, version: int | None = None,
             label: str | None = None, output_filter=()) -> dict:
        """Run `model`'s signature of the contract named `contract`; returns {output alias: numpy array}.

        `inputs` ({alias: value}) are checked, cast and completed by the contract (`contract_inputs`:
        a value without the batch dimension applies to every row, a left-out input takes the
        contract's default). `signature` defaults to the contract's signature key (`predict` is
        served as `serving_default`).

        Raises:
            ValueError: an unknown contract, or inputs the contract does not take (before any request).
            grpc.RpcError: the server refused the request.
        """
        declared = signatures.get(contract)
        signature = signature or declared.signature_key

        def served_dims(alias):
            info = self.signatures(model, version, label)[signature].inputs[alias]
            return [d.size for d in info.tensor_shape.dim]

        request = contract_inputs(declared, inputs, served_dims)
        return self.predict(model, request, signature, version, label, output_filter)

    def generate(self, model: str, prompts, max_length=None, temperature=None, seed=None, signature: str = "generate",
                 version: int | None = None, label: str | None = None) -> list:
        """Sample text after each prompt (the `generate` contract); returns a list of str.

        `max_length`, `temperature` and `seed` are one value for every prompt or one per prompt;
        `None` takes the contract's default. `temperature` 0 decodes greedily.
        """
        inputs = {"prompt": [prompts] if isinstance(prompts, (str, bytes)) else list(prompts),
                  "max_length": max_length, "temperature": temperature, "seed": seed}
        outputs = self.call(model, "generate", _given(inputs), signature, version, label, output_filter=["text"])
        return [t.decode("utf-8", "replace") for t in outputs["text"].reshape(-1)]

    def score(self, model: str, texts, signature: str = "score", version: int | None = None,
              label: str | None = None) -> dict:
        """{"bits_per_char": float32[b], "log_prob": float32[b]} of each text (the `score` contract)."""
        texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
        return self.call(model, "score", {"text": texts}, signature, version, label)

    def translate(self, model: str, sources, beam_width=None, length_penalty=None, max_length=None,
                  signature: str = "translate", version: int | None = None, label: str | None = None) -> list:
        """For each source sentence, the beam's n-best [(translation, score)], best first (the `translate`
        contract; unused n-best slots are left out). `None` arguments take the contract's defaults."""
        inputs = {"source": [sources] if isinstance(sources, (str, bytes)) else list(sources),
                  "beam_width": beam_width, "length_penalty": length_penalty, "max_length": max_length}
        outputs = self.call(model, "translate", _given(inputs), signature, version, label,
                            output_filter=["n_best", "scores"])
        return [
            [(t.decode("utf-8", "replace"), float(s)) for t, s in zip(row_t, row_s) if s != -np.inf]
            for row_t, row_s in zip(outputs["n_best"], outputs["scores"])
        ]

    def control_step(self, model: str, observation, target, state=None, signature: str = "control_step",
                     version: int | None = None, label: str | None = None):
        """One controller step (the `control_step` contract): returns (torque float32[b, 2], state float32[b, s]).

        `state=None` starts from the zero state, sized from the served signature's ``state`` input.
        """
        inputs = _given({"observation": observation, "target": target, "state": state})
        outputs = self.call(model, "control_step", inputs, signature, version, label)
        return outputs["torque"], outputs["state"]


def _given(inputs: dict) -> dict:
    """`inputs` without the ones left as `None` (the contract's defaults fill them)."""
    return {alias: value for alias, value in inputs.items() if value is not None}
