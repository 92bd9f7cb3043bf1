"""gRPC limits under hostile traffic: element caps, call and message limits, batching config (issue 14)."""

import os

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import WEIGHTS, install, predict_request, start_server, wait_for
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from rnnzoo.serving import ServerOptions
from rnnzoo.serving.config import DEFAULT_MAX_REQUEST_ELEMENTS

X = np.array([[1.0, 2.0, 3.0]], np.float32)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def huge_request(rows: int) -> predict_pb2.PredictRequest:
    """A ~40-byte request declaring shape [rows, 3] with a single float_val."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    proto = request.inputs["x"]
    proto.dtype = types_pb2.DT_FLOAT
    proto.tensor_shape.dim.add(size=rows)
    proto.tensor_shape.dim.add(size=3)
    proto.float_val.append(1.0)
    return request


def test_a_short_value_list_for_a_huge_shape_is_refused_before_allocating(toy_server, prediction_stub):
    assert DEFAULT_MAX_REQUEST_ELEMENTS <= 16_777_216
    before = rss_bytes()
    with pytest.raises(grpc.RpcError) as info:
        prediction_stub.Predict(huge_request(20_000_000), timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "60000000" in info.value.details() and "--max_request_elements" in info.value.details()
    assert rss_bytes() - before < 50 * 2**20  # 60M floats would be 240 MB
    # a short value list within the cap still repeats its last value, as TF Serving does
    response = prediction_stub.Predict(huge_request(4), timeout=60)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), np.ones((4, 3)) @ WEIGHTS + 1.0, rtol=1e-6)


def test_the_element_cap_counts_every_input_of_a_request(toy_versions, tmp_path):
    install(toy_versions[1], str(tmp_path / "toy"), 1)
    server = start_server(model_name="toy", model_base_path=str(tmp_path / "toy"), max_request_elements=30)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            ok = stub.Predict(predict_request("toy", np.ones((10, 3), np.float32)), timeout=30)
            assert tf.make_ndarray(ok.outputs["y"]).shape == (10, 2)
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(predict_request("toy", np.ones((11, 3), np.float32)), timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "33" in info.value.details()
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict"
        response = requests.post(url, json={"instances": np.ones((11, 3)).tolist()}, timeout=30)
        assert response.status_code == 400 and "--max_request_elements" in response.json()["error"]
    finally:
        server.stop()


def test_batching_serves_calls_sent_without_a_deadline(toy_versions, tmp_path):
    install(toy_versions[1], str(tmp_path / "toy"), 1)
    server = start_server(model_name="toy", model_base_path=str(tmp_path / "toy"), enable_batching=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(predict_request("toy", X))  # no timeout: the usual client
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), X @ WEIGHTS + 1.0, rtol=1e-6)
    finally:
        server.stop()


def gate_request(tmp_path, i):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "gate"
    request.inputs["entered"].CopyFrom(tf.make_tensor_proto(str(tmp_path / f"entered-{i}")))
    request.inputs["release"].CopyFrom(tf.make_tensor_proto(str(tmp_path / "release")))
    return request


def test_calls_beyond_the_concurrency_limit_are_refused_not_queued(toy_versions, tmp_path):
    install(toy_versions[1], str(tmp_path / "toy"), 1)
    server = start_server(model_name="toy", model_base_path=str(tmp_path / "toy"), grpc_max_threads=2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            calls = [stub.Predict.future(gate_request(tmp_path, i), timeout=60) for i in range(2)]
            wait_for(lambda: all(os.path.exists(tmp_path / f"entered-{i}") for i in range(2)), what="2 calls running")
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(predict_request("toy", X), timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            open(tmp_path / "release", "w").close()
            assert [call.result().outputs["spins"].int_val[0] >= 0 for call in calls] == [True, True]
            stub.Predict(predict_request("toy", X), timeout=30)  # capacity is back
    finally:
        server.stop()


def test_grpc_channel_arguments_bound_the_message_size(toy_versions, tmp_path):
    install(toy_versions[1], str(tmp_path / "toy"), 1)
    server = start_server(model_name="toy", model_base_path=str(tmp_path / "toy"),
                          grpc_channel_arguments="grpc.max_receive_message_length=2000")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            stub.Predict(predict_request("toy", np.ones((10, 3), np.float32)), timeout=30)
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(predict_request("toy", np.ones((400, 3), np.float32)), timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        server.stop()


def test_the_default_message_limit_is_bounded():
    from rnnzoo.serving.grpc_options import grpc_server_options

    options = dict(grpc_server_options(""))
    assert 0 < options["grpc.max_receive_message_length"] <= 2**28
    assert dict(grpc_server_options("grpc.max_receive_message_length=-1"))["grpc.max_receive_message_length"] == -1
    with pytest.raises(ValueError, match="key=value"):
        grpc_server_options("grpc.max_receive_message_length")


def test_batching_parameters_with_tf_servings_newer_fields_split_large_requests(toy_versions, tmp_path):
    install(toy_versions[1], str(tmp_path / "toy"), 1)
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 8 } enable_large_batch_splitting { value: true } "
                      "max_execution_batch_size { value: 2 } batch_timeout_micros { value: 0 }")
    server = start_server(model_name="toy", model_base_path=str(tmp_path / "toy"), enable_batching=True,
                          batching_parameters_file=str(params))
    try:
        x = np.arange(15, dtype=np.float32).reshape(5, 3)
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict"
        outputs = requests.post(url, json={"inputs": {"x": x.tolist()}}, timeout=60).json()["outputs"]
        np.testing.assert_allclose(outputs["y"], x @ WEIGHTS + 1.0, rtol=1e-6)
        assert server.metrics.processed_batch_size.value("toy", "serving_default", "1") + \
            server.metrics.processed_batch_size.value("toy", "serving_default", "2") >= 3
    finally:
        server.stop()


def test_a_batching_parameters_file_without_enable_batching_is_an_error(tmp_path):
    from rnnzoo.serving import ModelServer

    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 8 }")
    with pytest.raises(ValueError, match="--enable_batching"):
        ModelServer(ServerOptions(port=0, rest_api_port=0, model_base_path=str(tmp_path), batching_parameters_file=str(params)))


def test_an_empty_model_name_is_invalid_argument(prediction_stub):
    with pytest.raises(grpc.RpcError) as info:
        prediction_stub.Predict(predict_request("", X), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_outputs_can_be_sent_as_tensor_content(toy_versions, tmp_path):
    install(toy_versions[1], str(tmp_path / "toy"), 1)
    server = start_server(model_name="toy", model_base_path=str(tmp_path / "toy"),
                          enable_serialization_as_tensor_content=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                predict_request("toy", X), timeout=30)
        y = response.outputs["y"]
        assert y.tensor_content and not y.float_val
        np.testing.assert_allclose(tf.make_ndarray(y), X @ WEIGHTS + 1.0, rtol=1e-6)
    finally:
        server.stop()


def test_typed_outputs_of_every_wire_dtype_round_trip():
    from rnnzoo.serving.tensors import to_ndarray, to_tensor_proto

    rng = np.random.default_rng(0)
    arrays = [
        rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(2,)).astype(np.float64),
        rng.integers(-2**31, 2**31 - 1, size=(4,)).astype(np.int32), np.array([-1, 2**40, -2**62], np.int64),
        np.array([True, False, True]), np.array([0, 255], np.uint8), np.array([2**32 - 1, 0], np.uint32),
        np.array([2**64 - 1, 1], np.uint64), np.array([1.5, -2.0], np.float16),
        np.array([1 + 2j, -3j], np.complex64), np.array([[b"a", b"\xff"]], dtype=object),
        np.array(7.5, np.float32),
    ]
    for array in arrays:
        for packed in (False, True):
            proto = to_tensor_proto(array, tensor_content=packed)
            assert isinstance(proto, tensor_pb2.TensorProto)
            np.testing.assert_array_equal(tf.make_ndarray(proto), array)
            np.testing.assert_array_equal(to_ndarray(proto, "a", max_elements=100), array)
