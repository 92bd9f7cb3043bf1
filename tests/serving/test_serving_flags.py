"""tensorflow_model_server's parity and security flags (issue 14, part 2).

tests/serving/data/ holds a self-signed server certificate (CN localhost, for 127.0.0.1) and a
self-signed client certificate, made with `openssl req -x509 -days 36500`, for the TLS tests.
"""

import json
import logging
import os

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import WEIGHTS, install, predict_request, start_server, version_states
from tensorflow_serving.apis import (
    classification_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

X = np.array([[1.0, 2.0, 3.0]], np.float32)
DATA = os.path.join(os.path.dirname(__file__), "data")


def pem(name: str) -> str:
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def ssl_config_file(tmp_path, client_verify: bool) -> str:
    """An SSLConfig text proto (PEM strings, quoted and escaped as JSON strings are)."""
    lines = [f"server_key: {json.dumps(pem('server.key'))}", f"server_cert: {json.dumps(pem('server.crt'))}"]
    if client_verify:
        lines += [f"custom_ca: {json.dumps(pem('client.crt'))}", "client_verify: true"]
    path = tmp_path / "ssl.config"
    path.write_text("\n".join(lines))
    return str(path)


def secure_stub(port: int, client_cert: bool):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pem("server.crt").encode(),
        private_key=pem("client.key").encode() if client_cert else None,
        certificate_chain=pem("client.crt").encode() if client_cert else None,
    )
    channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
    return channel, prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture
def toy_base(toy_versions, tmp_path):
    base = str(tmp_path / "toy")
    install(toy_versions[1], base, 1)
    return base


def test_ssl_config_file_serves_grpc_over_tls_and_verifies_clients(toy_base, tmp_path):
    server = start_server(model_name="toy", model_base_path=toy_base,
                          ssl_config_file=ssl_config_file(tmp_path, client_verify=True))
    try:
        channel, stub = secure_stub(server.grpc_port, client_cert=True)
        with channel:
            response = stub.Predict(predict_request("toy", X), timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), X @ WEIGHTS + 1.0, rtol=1e-6)
        channel, stub = secure_stub(server.grpc_port, client_cert=False)
        with channel, pytest.raises(grpc.RpcError) as info:
            stub.Predict(predict_request("toy", X), timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake is refused
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as plain, pytest.raises(grpc.RpcError):
            prediction_service_pb2_grpc.PredictionServiceStub(plain).Predict(predict_request("toy", X), timeout=30)
    finally:
        server.stop()


def test_an_ssl_config_without_a_certificate_is_refused(toy_base, tmp_path):
    (tmp_path / "ssl.config").write_text('server_key: "x"')
    with pytest.raises(ValueError, match="server_cert"):
        start_server(model_name="toy", model_base_path=toy_base, ssl_config_file=str(tmp_path / "ssl.config"))


def test_grpc_socket_path_serves_on_a_unix_socket(toy_base, tmp_path):
    socket_path = str(tmp_path / "serving.sock")
    server = start_server(model_name="toy", model_base_path=toy_base, grpc_socket_path=socket_path)
    try:
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                predict_request("toy", X), timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), X @ WEIGHTS + 1.0, rtol=1e-6)
    finally:
        server.stop()


def test_a_changed_model_config_file_is_applied_and_a_broken_one_ignored(toy_versions, tmp_path):
    install(toy_versions[1], str(tmp_path / "a"), 1)
    install(toy_versions[2], str(tmp_path / "b"), 2)
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "a" base_path: "{tmp_path / "a"}" }} }}')
    server = start_server(model_config_file=str(config), model_base_path="/ignored/as/in/tf/serving")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            model = model_service_pb2_grpc.ModelServiceStub(channel)
            assert version_states(model, "a") == {1: ("AVAILABLE", 0)}
            assert not server.reload_config_file()  # unchanged
            config.write_text(f'model_config_list {{ config {{ name: "b" base_path: "{tmp_path / "b"}" }} }}')
            assert server.reload_config_file()
            assert version_states(model, "a") == {} and version_states(model, "b") == {2: ("AVAILABLE", 0)}
            config.write_text("model_config_list { config { nme: 1 } }")
            assert not server.reload_config_file()
            assert version_states(model, "b") == {2: ("AVAILABLE", 0)}
    finally:
        server.stop()


def test_a_failed_load_is_retried_max_num_load_retries_times(toy_versions, tmp_path, caplog):
    base = tmp_path / "toy"
    install(toy_versions[1], str(base), 1)
    server = start_server(model_name="toy", model_base_path=str(base), max_num_load_retries=2,
                          load_retry_interval_micros=0)
    try:
        os.makedirs(tmp_path / "v2")
        (tmp_path / "v2" / "saved_model.pb").write_bytes(b"\x08\x01not a saved model")
        os.rename(tmp_path / "v2", base / "2")
        caplog.set_level(logging.ERROR, logger="rnnzoo.serving")
        server.manager.poll()
        attempts = [r.getMessage() for r in caplog.records if "Loading servable toy version 2 failed" in r.getMessage()]
        assert len(attempts) == 3 and "attempt 3 of 3" in attempts[-1]
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            states = version_states(model_service_pb2_grpc.ModelServiceStub(channel), "toy")
        assert states[2][0] == "END" and states[2][1] != 0 and states[1] == ("AVAILABLE", 0)
    finally:
        server.stop()


def classify_request(signature: str):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", signature
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.append(0.0)
    return request


def test_method_name_check_is_off_by_default_and_on_with_the_flag(toy_base):
    for check in (False, True):
        server = start_server(model_name="toy", model_base_path=toy_base, enable_signature_method_name_check=check)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                assert len(stub.Classify(classify_request("classify"), timeout=30).result.classifications) == 1
                # the 'regress' signature carries the regress method_name, not the classify one
                if not check:
                    with pytest.raises(grpc.RpcError) as info:  # no classes/scores output, but not refused for its method
                        stub.Classify(classify_request("regress"), timeout=30)
                    assert "method_name" not in info.value.details()
                else:
                    with pytest.raises(grpc.RpcError) as info:
                        stub.Classify(classify_request("regress"), timeout=30)
                    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert "method_name" in info.value.details()
        finally:
            server.stop()


def test_rest_api_timeout_bounds_a_running_request(toy_base, tmp_path):
    server = start_server(model_name="toy", model_base_path=toy_base, rest_api_timeout_in_ms=300)
    try:
        body = {"signature_name": "gate", "inputs": {"entered": str(tmp_path / "entered"), "release": str(tmp_path / "release")}}
        response = requests.post(f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict", json=body, timeout=30)
        assert response.status_code == 504 and "--rest_api_timeout_in_ms" in response.json()["error"]
    finally:
        open(tmp_path / "release", "w").close()  # lets the abandoned signature call finish
        server.stop()
