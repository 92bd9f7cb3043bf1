"""REST front end with TensorFlow Serving's URLs and JSON formats.

``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:(predict|classify|regress)``,
``GET /v1/models/{name}[/versions/{v}|/labels/{l}][/metadata]`` and the Prometheus path of
``--monitoring_config_file``. Predict takes the row format (``instances``) or the columnar
format (``inputs``); binary strings travel as ``{"b64": ...}`` and outputs whose alias ends in
``_bytes`` are returned that way. Errors are ``{"error": "..."}`` with TF Serving's HTTP codes.
"""

import base64
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    regression_pb2,
)

from rnnzoo.serving import errors, inference
from rnnzoo.serving.servable import DEFAULT_SIGNATURE

_log = logging.getLogger("rnnzoo.serving")

_POST_URL = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.IGNORECASE
)
_GET_URL = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(/metadata)?", re.IGNORECASE)


# ---- JSON -> tensors ----------------------------------------------------------------------------
def _is_b64(value) -> bool:
    return isinstance(value, dict) and list(value) == ["b64"]


def _strings(value, where: str):
    """Nested JSON strings / {"b64": ...} objects -> nested bytes."""
    if isinstance(value, list):
        return [_strings(v, where) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value) and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise errors.invalid_argument(f"{where}: {value['b64']!r} is not valid base64") from None
    raise errors.invalid_argument(
        f"{where}: JSON value {json.dumps(value)[:80]} is not of expected type: string "
        f'(send a string or {{"b64": "<base64>"}})'
    )


def _nested_shape(value, where: str) -> tuple:
    """The rectangular shape of nested lists; INVALID_ARGUMENT when ragged."""
    if not isinstance(value, list):
        return ()
    shapes = {_nested_shape(v, where) for v in value}
    if len(shapes) > 1:
        raise errors.invalid_argument(f"{where}: nested lists have different lengths; tensors must be rectangular")
    return (len(value),) + (shapes.pop() if shapes else ())


def json_to_array(value, dtype_enum: int, where: str) -> np.ndarray:
    """A JSON value (scalar or nested lists) as an array of the signature's dtype."""
    shape = _nested_shape(value, where)
    if dtype_enum == types_pb2.DT_STRING:
        flat = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=object)
        data = _strings(value, where)
        flat[:] = np.array(data, dtype=object).reshape(-1) if shape else [data]
        return flat.reshape(shape)
    target = tf.dtypes.as_dtype(dtype_enum)
    try:
        array = np.array(value)
    except (ValueError, TypeError):
        array = np.array([], dtype=object)
    if array.dtype.kind not in "biuf" or (array.size == 0 and shape and shape[-1] != 0):
        raise errors.invalid_argument(
            f"{where}: JSON value {json.dumps(value)[:80]} is not of expected type: {target.name}"
        )
    if target.is_bool:
        if array.dtype.kind != "b":
            raise errors.invalid_argument(f"{where}: expected true/false values for a bool tensor")
    elif target.is_integer:
        if array.dtype.kind == "f" and not np.all(np.equal(np.mod(array, 1), 0)):
            raise errors.invalid_argument(f"{where}: non-integer value for a {target.name} tensor")
        if array.size and (array.min() < target.min or array.max() > target.max):
            raise errors.invalid_argument(f"{where}: value out of range for a {target.name} tensor")
    elif array.dtype.kind == "b":
        raise errors.invalid_argument(f"{where}: true/false given for a {target.name} tensor")
    return array.astype(target.as_numpy_dtype)


def _signature_inputs(servable, signature_name):
    return servable.signature(signature_name).inputs


def _row_inputs(instances, infos) -> dict:
    if not isinstance(instances, list) or not instances:
        raise errors.invalid_argument("'instances' must be a non-empty list, one entry per example")
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not named:
        if len(infos) != 1:
            raise errors.invalid_argument(
                "instances is a plain list, but expecting list of objects as multiple input tensors "
                f"required as per tensorinfo_map ({sorted(infos)})"
            )
        alias = next(iter(infos))
        return {alias: json_to_array(instances, infos[alias].dtype, f"input '{alias}' of 'instances'")}
    keys = set(instances[0])
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict) or _is_b64(instance) or set(instance) != keys:
            raise errors.invalid_argument(
                f"Failed to process element: {i} of 'instances' list. Every instance must be an object "
                f"with the same keys {sorted(keys)}"
            )
    unknown = keys - set(infos)
    if unknown:
        raise errors.invalid_argument(f"instances name unknown inputs {sorted(unknown)}; the signature takes {sorted(infos)}")
    return {
        alias: json_to_array([inst[alias] for inst in instances], infos[alias].dtype, f"input '{alias}' of 'instances'")
        for alias in keys
    }


def _columnar_inputs(inputs, infos) -> dict:
    if isinstance(inputs, dict) and not _is_b64(inputs):
        unknown = set(inputs) - set(infos)
        if unknown:
            raise errors.invalid_argument(f"inputs name unknown inputs {sorted(unknown)}; the signature takes {sorted(infos)}")
        return {alias: json_to_array(v, infos[alias].dtype, f"input '{alias}'") for alias, v in inputs.items()}
    if len(infos) != 1:
        raise errors.invalid_argument(
            f"'inputs' is a single value but the signature takes {len(infos)} inputs {sorted(infos)}; "
            f"send an object keyed by input name"
        )
    alias = next(iter(infos))
    return {alias: json_to_array(inputs, infos[alias].dtype, f"input '{alias}'")}


# ---- tensors -> JSON ----------------------------------------------------------------------------
def _json_value(array: np.ndarray, alias: str):
    if array.dtype == object or array.dtype.kind == "S":
        if alias.endswith("_bytes"):
            convert = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
        else:
            convert = lambda b: b.decode("utf-8", "replace")  # noqa: E731
        flat = [convert(b) for b in array.ravel()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    if array.dtype in (np.float32, np.float16):
        # shortest decimal that round-trips the float32 value (0.1, not 0.10000000149011612)
        flat = [float(str(v)) for v in array.astype(np.float32).ravel()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    return array.tolist()


def _row_outputs(outputs: dict):
    sizes = {alias: (value.shape[0] if value.ndim else None) for alias, value in outputs.items()}
    batch = next(iter(sizes.values()))
    for alias, size in sizes.items():
        if size is None or size != batch:
            raise errors.invalid_argument(
                f"Tensor name: {alias} has inconsistent batch size: {size} expecting: {batch}; "
                f"use the columnar 'inputs' format for outputs without a shared batch dimension"
            )
    columns = {alias: _json_value(value, alias) for alias, value in outputs.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    return [{alias: columns[alias][i] for alias in columns} for i in range(batch)]


def _columnar_outputs(outputs: dict):
    columns = {alias: _json_value(value, alias) for alias, value in outputs.items()}
    return next(iter(columns.values())) if len(columns) == 1 else columns


# ---- tf.Example JSON for classify / regress ----------------------------------------------------
def _feature(value, where: str) -> feature_pb2.Feature:
    values = value if isinstance(value, list) else [value]
    feature = feature_pb2.Feature()
    if all(isinstance(v, bool) for v in values) and values:
        feature.int64_list.value.extend(int(v) for v in values)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(values)
    elif all(isinstance(v, str) or _is_b64(v) for v in values):
        feature.bytes_list.value.extend(_strings(values, where))
    else:
        raise errors.invalid_argument(f"{where}: feature values must be all numbers or all strings, got {json.dumps(value)[:80]}")
    return feature


def _example(obj, where: str) -> example_pb2.Example:
    if not isinstance(obj, dict):
        raise errors.invalid_argument(f"{where} must be an object mapping feature names to values")
    example = example_pb2.Example()
    for name, value in obj.items():
        example.features.feature[name].CopyFrom(_feature(value, f"{where} feature '{name}'"))
    return example


def _example_input(body: dict) -> input_pb2.Input:
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise errors.invalid_argument("'examples' must be a non-empty list of objects")
    result = input_pb2.Input()
    if "context" in body:
        target = result.example_list_with_context
        target.context.CopyFrom(_example(body["context"], "'context'"))
    else:
        target = result.example_list
    for i, obj in enumerate(examples):
        target.examples.add().CopyFrom(_example(obj, f"example {i}"))
    return result


# ---- the HTTP server ---------------------------------------------------------------------------
def _model_spec(name: str, version, label, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name), signature_name=signature_name)
    if version is not None:
        spec.version.value = int(version)
    elif label is not None:
        spec.version_label = urllib.parse.unquote(label)
    return spec


class RestApi:
    """Routes REST requests onto `ServingHandlers`."""

    def __init__(self, handlers, metrics_path: str | None, timeout_ms: int):
        self.handlers = handlers
        self.metrics_path = metrics_path
        self.timeout_ms = timeout_ms

    def handle(self, method: str, path: str, body: bytes):
        """(http status, content type, body bytes) for one request."""
        try:
            if method == "GET" and self.metrics_path and path == self.metrics_path:
                return 200, "text/plain; version=0.0.4", self.handlers.metrics.exposition().encode()
            result = self._route(method, path, body)
            return 200, "application/json", json.dumps(result).encode()
        except errors.ServingError as error:
            return error.http_status, "application/json", json.dumps({"error": error.message}).encode()
        except Exception as error:
            _log.exception("unexpected error serving %s %s", method, path)
            failure = errors.from_exception(error)
            return failure.http_status, "application/json", json.dumps({"error": failure.message}).encode()

    def _route(self, method, path, body):
        if method == "POST":
            match = _POST_URL.fullmatch(path)
            if match:
                return self._post(*match.groups(), body)
        elif method == "GET":
            match = _GET_URL.fullmatch(path)
            if match:
                name, version, label, metadata = match.groups()
                if metadata:
                    return self._metadata(_model_spec(name, version, label))
                request = get_model_status_pb2.GetModelStatusRequest(model_spec=_model_spec(name, version, label))
                return json_format.MessageToDict(
                    self.handlers.get_model_status(request),
                    preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
                )
        raise errors.not_found(f"Malformed request: {method} {path}")

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

    def _post(self, name, version, label, verb, body):
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise errors.invalid_argument(f"JSON Parse error: {error}") from None
        if not isinstance(parsed, dict):
            raise errors.invalid_argument("JSON Parse error: the request body must be a JSON object")
        signature_name = parsed.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise errors.invalid_argument("'signature_name' must be a string")
        spec = _model_spec(name, version, label, signature_name)
        deadline = time.monotonic() + self.timeout_ms / 1000 if self.timeout_ms > 0 else None
        verb = verb.lower()
        if verb == "predict":
            return self.handlers.measured("Predict", "REST", spec.name, lambda: self._predict(spec, parsed, deadline))
        if verb == "classify":
            request = classification_pb2.ClassificationRequest(model_spec=spec, input=_example_input(parsed))
            response = self.handlers.classify(request, "REST", deadline)
            return {"result": [[[c.label, c.score] for c in cl.classes] for cl in response.result.classifications]}
        request = regression_pb2.RegressionRequest(model_spec=spec, input=_example_input(parsed))
        response = self.handlers.regress(request, "REST", deadline)
        return {"result": [r.value for r in response.result.regressions]}

    def _predict(self, spec, body, deadline):
        has_instances, has_inputs = "instances" in body, "inputs" in body
        if has_instances == has_inputs:
            raise errors.invalid_argument(
                "Missing 'inputs' or 'instances' key" if not has_instances else
                "Not both 'inputs' and 'instances' may be given; use one format"
            )
        servable = self.handlers.resolve(spec)
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        infos = _signature_inputs(servable, signature_name)
        if has_instances:
            inputs = _row_inputs(body["instances"], infos)
        else:
            inputs = _columnar_inputs(body["inputs"], infos)
        outputs = inference.run_predict(servable, signature_name, inputs, (), deadline)
        if has_instances:
            return {"predictions": _row_outputs(outputs)}
        return {"outputs": _columnar_outputs(outputs)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rnnzoo-serve"
    timeout = 60  # idle keep-alive connections close after a minute

    def setup(self):
        super().setup()
        # headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every keep-alive response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self, method):
        server = self.server
        with server.inflight_lock:
            if server.stopping:  # a keep-alive connection outliving shutdown gets a clean refusal
                self.close_connection = True
                self.send_error(503, "server is shutting down")
                return
            server.inflight += 1
        try:
            length = self.headers.get("Content-Length")
            try:
                body = self.rfile.read(int(length)) if length else b""
            except ValueError:
                status, ctype, data = 400, "application/json", b'{"error": "invalid Content-Length"}'
            else:
                path = urllib.parse.urlsplit(self.path).path
                status, ctype, data = server.api.handle(method, path, body)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            with server.inflight_lock:
                server.inflight -= 1
                server.inflight_lock.notify_all()

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def log_message(self, format, *args):  # route access logs to logging, not stderr
        _log.debug("%s - %s", self.address_string(), format % args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the stdlib's backlog of 5 resets connections under a burst of clients


class RestFrontEnd:
    """A threading HTTP server; `stop` refuses new connections and waits for in-flight requests."""

    def __init__(self, api: RestApi, host: str, port: int):
        self.httpd = _HttpServer((host, port), _Handler)
        self.httpd.api = api
        self.httpd.inflight = 0
        self.httpd.stopping = False
        self.httpd.inflight_lock = threading.Condition()
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float) -> None:
        with self.httpd.inflight_lock:
            self.httpd.stopping = True
        self.httpd.shutdown()
        self.httpd.server_close()
        deadline = time.monotonic() + grace
        with self.httpd.inflight_lock:
            self.httpd.inflight_lock.wait_for(lambda: self.httpd.inflight == 0, max(0.0, deadline - time.monotonic()))
