"""REST routing with TensorFlow Serving's URLs, onto the shared `ServingHandlers`.

``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:(predict|classify|regress)``,
``GET /v1/models/{name}[/versions/{v}|/labels/{l}][/metadata]`` and the Prometheus path of
``--monitoring_config_file``. Errors are ``{"error": "..."}`` with TF Serving's HTTP codes; an
unknown ``/v1/...`` path is 400 "Malformed request", as in TF Serving. JSON conversion lives in
`rest_json.py`, the HTTP server itself in `rest_server.py`.
"""

import functools
import json
import logging
import re
import urllib.parse

from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    regression_pb2,
)

from rnnzoo.serving import errors, rest_json
from rnnzoo.serving.servable import DEFAULT_SIGNATURE
from rnnzoo.serving.service import spec_version

_log = logging.getLogger("rnnzoo.serving")

_POST_URL = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.IGNORECASE
)
_GET_URL = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(/metadata)?", re.IGNORECASE)


def _spec(name: str, version: int | None, label: str | None, signature_name: str = "") -> model_pb2.ModelSpec:
    """The ModelSpec of a model name and a version number, a label or neither (the latest)."""
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    if version is not None:
        spec.version.value = version
    elif label is not None:
        spec.version_label = label
    return spec


def _model_spec(name: str, version, label) -> model_pb2.ModelSpec:
    """The ModelSpec named by a URL's matched text: the quoted name, the version digits, the quoted label."""
    return _spec(urllib.parse.unquote(name), None if version is None else int(version),
                 None if label is None else urllib.parse.unquote(label))


@functools.lru_cache(maxsize=1024)
def _post_target(path: str):
    """(model name, version, label, verb) a POST path names, or None when it names none.

    Parsed once per distinct path (a regex match, URL unquoting and a ModelSpec per request were
    ~5 us of the Predict path); a path that fails to parse raises each time, uncached.
    """
    match = _POST_URL.fullmatch(path)
    if match is None:
        return None
    name, version, label, verb = match.groups()
    spec = _model_spec(name, version, label)
    return (spec.name, *spec_version(spec), verb.lower())


def _json_response(status: int, payload) -> tuple:
    return status, "application/json", json.dumps(payload).encode()


class RestApi:
    """Routes REST requests onto `ServingHandlers` (coroutines on the serving loop).

    Args:
      handlers: `ServingHandlers`.
      metrics_path: the Prometheus path, or None when metrics are off.
    """

    def __init__(self, handlers, metrics_path: str | None):
        self.handlers = handlers
        self.metrics_path = metrics_path

    async def handle(self, method: str, path: str, body: bytes) -> tuple:
        """(http status, content type, body bytes) for one request.

        `RestFrontEnd` bounds the whole call by --rest_api_timeout_in_ms: a request past it is
        cancelled wherever it waits, which also takes it out of a batch queue.
        """
        try:
            if method == "GET" and self.metrics_path and path == self.metrics_path:
                return 200, "text/plain; version=0.0.4", self.handlers.metrics.exposition().encode()
            if method == "POST":
                target = _post_target(path)
                if target is not None:
                    return await self._post(*target, body)
            elif method == "GET":
                return _json_response(200, self._get(path))
            raise errors.invalid_argument(f"Malformed request: {method} {path}")
        except errors.ServingError as error:
            return _json_response(error.http_status, {"error": error.message})
        except RecursionError:
            return _json_response(400, {"error": "JSON Parse error: the request nests too deeply; tensors have at most 64 dimensions"})
        except Exception as error:
            _log.exception("unexpected error serving %s %s", method, path)
            failure = errors.from_exception(error)
            return _json_response(failure.http_status, {"error": failure.message})

    def _get(self, path):
        match = _GET_URL.fullmatch(path)
        if match is None:
            raise errors.invalid_argument(f"Malformed request: GET {path}")
        name, version, label, metadata = match.groups()
        if metadata:
            return self._metadata(_model_spec(name, version, label))
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=_model_spec(name, version, label))
        return json_format.MessageToDict(
            self.handlers.get_model_status(request),
            preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
        )

    def _metadata(self, spec):
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
        response = self.handlers.get_model_metadata(request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {
            "model_spec": json_format.MessageToDict(
                response.model_spec, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            ),
            "metadata": {"signature_def": json_format.MessageToDict(signature_map, preserving_proto_field_name=True)},
        }

    async def _post(self, name, version, label, verb, body) -> tuple:
        try:
            parsed = rest_json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise errors.invalid_argument(f"JSON Parse error: {error}") from None
        if not isinstance(parsed, dict):
            raise errors.invalid_argument("JSON Parse error: the request body must be a JSON object")
        signature_name = parsed.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise errors.invalid_argument("'signature_name' must be a string")
        if verb == "predict":  # numpy outputs, written by orjson
            data = await self.handlers.measured(
                "Predict", "REST", name, lambda: self._predict(name, version, label, signature_name, parsed))
            return 200, "application/json", data
        spec = _spec(name, version, label, signature_name)
        if verb == "classify":
            request = classification_pb2.ClassificationRequest(model_spec=spec, input=rest_json.example_input(parsed))
            response = await self.handlers.classify(request, "REST")
            return _json_response(200, {"result": [[[c.label, c.score] for c in cl.classes]
                                                   for cl in response.result.classifications]})
        request = regression_pb2.RegressionRequest(model_spec=spec, input=rest_json.example_input(parsed))
        response = await self.handlers.regress(request, "REST")
        return _json_response(200, {"result": [r.value for r in response.result.regressions]})

    async def _predict(self, name, version, label, signature_name, body) -> bytes:
        has_instances, has_inputs = "instances" in body, "inputs" in body
        if has_instances == has_inputs:
            raise errors.invalid_argument(
                "Missing 'inputs' or 'instances' key" if not has_instances else
                "Not both 'inputs' and 'instances' may be given; use one format"
            )
        servable = self.handlers.resolve_version(name, version, label)
        signature_name = signature_name or DEFAULT_SIGNATURE
        dtypes = servable.input_dtypes(signature_name)
        if has_instances:
            inputs = rest_json.row_inputs(body["instances"], dtypes)
        else:
            inputs = rest_json.columnar_inputs(body["inputs"], dtypes)
        outputs = await self.handlers.predict_arrays(servable, signature_name, inputs)
        return rest_json.predict_body(outputs, rows=has_instances)
