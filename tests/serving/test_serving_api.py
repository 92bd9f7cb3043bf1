"""gRPC and REST Predict / Classify / Regress / metadata / status against a real server."""

import base64

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import WEIGHTS, predict_request
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

X = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]], np.float32)
Y = X @ WEIGHTS + 1.0  # version 1 has bias 1


def rest(server, path):
    return f"http://127.0.0.1:{server.rest_port}{path}"


def call_code(fn, request):
    with pytest.raises(grpc.RpcError) as info:
        fn(request, timeout=30)
    return info.value.code(), info.value.details()


# ---- gRPC Predict ------------------------------------------------------------------------------
def test_grpc_predict_returns_typed_values_and_serving_version(prediction_stub):
    response = prediction_stub.Predict(predict_request("toy", X), timeout=30)
    assert response.model_spec.name == "toy"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    y = response.outputs["y"]
    assert y.dtype == types_pb2.DT_FLOAT and not y.tensor_content and len(y.float_val) == 4
    np.testing.assert_allclose(tf.make_ndarray(y), Y, rtol=1e-6)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["bias"]), [1.0, 1.0])


def test_grpc_predict_accepts_typed_fields_and_tensor_content(prediction_stub):
    typed = predict_request("toy", X)
    typed.inputs["x"].Clear()
    typed.inputs["x"].dtype = types_pb2.DT_FLOAT
    for size in X.shape:
        typed.inputs["x"].tensor_shape.dim.add(size=size)
    typed.inputs["x"].float_val.extend(X.ravel().tolist())
    packed = predict_request("toy", X)
    assert packed.inputs["x"].tensor_content  # make_tensor_proto packs floats
    a = tf.make_ndarray(prediction_stub.Predict(typed, timeout=30).outputs["y"])
    b = tf.make_ndarray(prediction_stub.Predict(packed, timeout=30).outputs["y"])
    np.testing.assert_array_equal(a, b)


def test_grpc_output_filter_and_explicit_version(prediction_stub):
    request = predict_request("toy", X, version=1)
    request.output_filter.append("y")
    response = prediction_stub.Predict(request, timeout=30)
    assert list(response.outputs) == ["y"]
    assert response.model_spec.version.value == 1


def test_grpc_string_signature(prediction_stub):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = "text"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.array([b"abc", b"\xffz"], dtype=object)))
    response = prediction_stub.Predict(request, timeout=30)
    assert list(response.outputs["upper_bytes"].string_val) == [b"ABC", b"\xffZ"]
    assert list(response.outputs["length"].int_val) == [3, 2]


def _bad_tensor(**fields):
    proto = tensor_pb2.TensorProto(**fields)
    return proto


@pytest.mark.parametrize(
    "mutate, code, fragment",
    [
        (lambda r: setattr(r.model_spec, "name", "nope"), grpc.StatusCode.NOT_FOUND, "Latest(nope)"),
        (lambda r: r.model_spec.version.__setattr__("value", 7), grpc.StatusCode.NOT_FOUND, "Specific(toy, 7)"),
        (lambda r: setattr(r.model_spec, "version_label", "stable"), grpc.StatusCode.INVALID_ARGUMENT, "label: stable"),
        (lambda r: setattr(r.model_spec, "signature_name", "nope"), grpc.StatusCode.FAILED_PRECONDITION, '"nope" not found'),
        (lambda r: r.inputs["z"].CopyFrom(r.inputs["x"]), grpc.StatusCode.INVALID_ARGUMENT, "Sent extra: ['z']"),
        (lambda r: r.inputs.pop("x"), grpc.StatusCode.INVALID_ARGUMENT, "Missing but required: ['x']"),
        (lambda r: r.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((2, 3), np.int32))), grpc.StatusCode.INVALID_ARGUMENT, "to be float but int32"),
        (lambda r: r.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((2, 4), np.float32))), grpc.StatusCode.INVALID_ARGUMENT, "expects [?,3]"),
        (lambda r: setattr(r.inputs["x"], "tensor_content", b"abc"), grpc.StatusCode.INVALID_ARGUMENT, "tensor_content holds 3 bytes"),
        (lambda r: r.inputs["x"].tensor_shape.dim[0].__setattr__("size", -2), grpc.StatusCode.INVALID_ARGUMENT, "negative dimension"),
        (lambda r: r.output_filter.append("nope"), grpc.StatusCode.INVALID_ARGUMENT, "output tensor alias not found"),
        (lambda r: r.inputs["x"].CopyFrom(_bad_tensor(dtype=types_pb2.DT_RESOURCE)), grpc.StatusCode.INVALID_ARGUMENT, "cannot be sent"),
    ],
)
def test_grpc_predict_errors(prediction_stub, mutate, code, fragment):
    request = predict_request("toy", X)
    mutate(request)
    got_code, details = call_code(prediction_stub.Predict, request)
    assert got_code == code
    assert fragment in details
    assert "Traceback" not in details


# ---- metadata, status, health ------------------------------------------------------------------
def test_grpc_metadata_is_the_saved_model_signature_map(prediction_stub, toy_server):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "toy"
    response = prediction_stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    saved = saved_model_pb2.SavedModel()
    with open(f"{toy_server.manager.resolve('toy').path}/saved_model.pb", "rb") as f:
        saved.ParseFromString(f.read())
    assert dict(signature_map.signature_def) == dict(saved.meta_graphs[0].signature_def)
    x_info = signature_map.signature_def["serving_default"].inputs["x"]
    assert x_info.dtype == types_pb2.DT_FLOAT and [d.size for d in x_info.tensor_shape.dim] == [-1, 3]

    request.ClearField("metadata_field")
    assert call_code(prediction_stub.GetModelMetadata, request)[0] == grpc.StatusCode.INVALID_ARGUMENT
    request.metadata_field.append("bogus")
    assert call_code(prediction_stub.GetModelMetadata, request)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_model_status(model_stub):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "toy"
    response = model_stub.GetModelStatus(request, timeout=30)
    (status,) = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0
    request.model_spec.version.value = 9
    assert call_code(model_stub.GetModelStatus, request)[0] == grpc.StatusCode.NOT_FOUND
    request.model_spec.name = "nope"
    request.model_spec.ClearField("version")
    assert call_code(model_stub.GetModelStatus, request)[0] == grpc.StatusCode.NOT_FOUND


def test_health_service_reports_serving(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tensorflow.serving.PredictionService"):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


# ---- Classify / Regress / MultiInference -------------------------------------------------------
def _examples(request_input, xs):
    for x in xs:
        example = request_input.example_list.examples.add()
        example.features.feature["x"].float_list.value.append(x)


def test_grpc_classify_regress_multi_inference(prediction_stub):
    xs = [0.0, 2.0, -1.0]
    p = 1 / (1 + np.exp(-np.array(xs)))
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "classify"
    _examples(request.input, xs)
    result = prediction_stub.Classify(request, timeout=30).result
    assert [[c.label for c in cl.classes] for cl in result.classifications] == [["neg", "pos"]] * 3
    np.testing.assert_allclose([cl.classes[1].score for cl in result.classifications], p, rtol=1e-6)

    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "regress"
    _examples(request.input, xs)
    values = [r.value for r in prediction_stub.Regress(request, timeout=30).result.regressions]
    np.testing.assert_allclose(values, 2 * np.array(xs) + 1.0)

    multi = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify", "tensorflow/serving/classify"), ("regress", "tensorflow/serving/regress")):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "toy", signature
    _examples(multi.input, xs)
    results = prediction_stub.MultiInference(multi, timeout=30).results
    assert len(results[0].classification_result.classifications) == 3
    np.testing.assert_allclose([r.value for r in results[1].regression_result.regressions], 2 * np.array(xs) + 1.0)

    # a predict signature is not a classify signature; an empty input is rejected
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "regress"
    _examples(request.input, xs)
    assert call_code(prediction_stub.Classify, request)[0] == grpc.StatusCode.INVALID_ARGUMENT
    request.input.Clear()
    request.model_spec.signature_name = "classify"
    code, details = call_code(prediction_stub.Classify, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Input is empty" in details


# ---- REST --------------------------------------------------------------------------------------
def test_rest_predict_row_and_columnar(toy_server):
    url = rest(toy_server, "/v1/models/toy:predict")
    row = requests.post(url, json={"instances": X.tolist()}, timeout=30)
    assert row.status_code == 200
    predictions = row.json()["predictions"]
    np.testing.assert_allclose([p["y"] for p in predictions], Y, rtol=1e-6)
    assert [p["bias"] for p in predictions] == [1.0, 1.0]
    columnar = requests.post(url, json={"inputs": {"x": X.tolist()}}, timeout=30).json()["outputs"]
    np.testing.assert_allclose(columnar["y"], Y, rtol=1e-6)
    single = requests.post(url, json={"inputs": X.tolist()}, timeout=30).json()["outputs"]
    assert single == columnar
    for path in ("/v1/models/toy/versions/1:predict", "/v1/models/toy/versions/1:PREDICT"):
        assert requests.post(rest(toy_server, path), json={"instances": X.tolist()}, timeout=30).json() == row.json()


def test_rest_strings_b64_in_and_out(toy_server):
    url = rest(toy_server, "/v1/models/toy:predict")
    body = {"signature_name": "text", "instances": ["abc", {"b64": base64.b64encode(b"\xffz").decode()}]}
    predictions = requests.post(url, json=body, timeout=30).json()["predictions"]
    assert [base64.b64decode(p["upper_bytes"]["b64"]) for p in predictions] == [b"ABC", b"\xffZ"]
    assert [p["length"] for p in predictions] == [3, 2]


def test_rest_status_and_metadata_json(toy_server):
    status = requests.get(rest(toy_server, "/v1/models/toy"), timeout=30)
    assert status.json() == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert requests.get(rest(toy_server, "/v1/models/toy/versions/1"), timeout=30).json() == status.json()
    metadata = requests.get(rest(toy_server, "/v1/models/toy/metadata"), timeout=30).json()
    assert metadata["model_spec"] == {"name": "toy", "signature_name": "", "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert signature["method_name"] == "tensorflow/serving/predict"


@pytest.mark.parametrize(
    "method, path, body, status, fragment",
    [
        ("post", "/v1/models/nope:predict", {"instances": [[1, 2, 3]]}, 404, "Latest(nope)"),
        ("post", "/v1/models/toy/versions/7:predict", {"instances": [[1, 2, 3]]}, 404, "Specific(toy, 7)"),
        ("post", "/v1/models/toy/labels/canary:predict", {"instances": [[1, 2, 3]]}, 400, "label: canary"),
        ("post", "/v1/models/toy:predict", {"signature_name": "nope", "instances": [[1, 2, 3]]}, 400, "not found"),
        ("post", "/v1/models/toy:predict", {"inputs": {"z": [[1, 2, 3]]}}, 400, "unknown inputs ['z']"),
        ("post", "/v1/models/toy:predict", {"inputs": {}}, 400, "Missing but required: ['x']"),
        ("post", "/v1/models/toy:predict", {"instances": [["a", "b", "c"]]}, 400, "not of expected type: float"),
        ("post", "/v1/models/toy:predict", {"instances": [[1, 2, 3, 4]]}, 400, "expects [?,3]"),
        ("post", "/v1/models/toy:predict", {"instances": [[1, 2, 3], [1, 2]]}, 400, "rectangular"),
        ("post", "/v1/models/toy:predict", {"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}, 400, "Not both"),
        ("post", "/v1/models/toy:predict", {"signature_name": "text", "instances": [{"b64": "!!"}]}, 400, "not valid base64"),
        ("post", "/v1/models/toy:predict", b"{not json", 400, "JSON Parse error"),
        ("post", "/v1/models/toy:predict", {}, 400, "Missing 'inputs' or 'instances'"),
        ("post", "/v1/models/toy:explode", {"instances": [[1, 2, 3]]}, 400, "Malformed request"),
        ("get", "/v1/nothing", None, 400, "Malformed request"),
        ("get", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("get", "/v1/models/toy/labels/canary", None, 400, "label: canary"),
    ],
)
def test_rest_errors(toy_server, method, path, body, status, fragment):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = getattr(requests, method)(rest(toy_server, path), timeout=30, **({} if body is None else kwargs))
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_rest_classify_and_regress(toy_server):
    body = {"signature_name": "classify", "examples": [{"x": 0.0}, {"x": 2.0}]}
    result = requests.post(rest(toy_server, "/v1/models/toy:classify"), json=body, timeout=30).json()["result"]
    assert [[label for label, _ in row] for row in result] == [["neg", "pos"], ["neg", "pos"]]
    np.testing.assert_allclose([row[1][1] for row in result], 1 / (1 + np.exp(-np.array([0.0, 2.0]))), rtol=1e-6)
    body = {"signature_name": "regress", "context": {"unused": 1}, "examples": [{"x": 0.5}, {"x": 2.0}]}
    result = requests.post(rest(toy_server, "/v1/models/toy:regress"), json=body, timeout=30).json()["result"]
    np.testing.assert_allclose(result, [2.0, 5.0])


# ---- metrics -----------------------------------------------------------------------------------
def _metric(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_prometheus_metrics_count_requests_by_status(toy_server, prediction_stub):
    url = rest(toy_server, "/monitoring/prometheus/metrics")
    ok = ':tensorflow:serving:request_count{model_name="toy",status="OK"}'
    bad = ':tensorflow:serving:request_count{model_name="toy",status="INVALID_ARGUMENT"}'
    rest_latency = ':tensorflow:serving:request_latency_count{model_name="toy",API="Predict",entrypoint="REST"}'
    before = requests.get(url, timeout=30).text
    for _ in range(3):
        prediction_stub.Predict(predict_request("toy", X), timeout=30)
    requests.post(rest(toy_server, "/v1/models/toy:predict"), json={"instances": X.tolist()}, timeout=30)
    bad_request = predict_request("toy", X)
    bad_request.inputs.pop("x")
    call_code(prediction_stub.Predict, bad_request)
    after = requests.get(url, timeout=30).text
    assert _metric(after, ok) - _metric(before, ok) == 4
    assert _metric(after, bad) - _metric(before, bad) == 1
    assert _metric(after, rest_latency) - _metric(before, rest_latency) == 1
    assert "# TYPE :tensorflow:serving:request_latency histogram" in after
