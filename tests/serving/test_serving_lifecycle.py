"""Model config files, version policies, labels, hot reload, broken versions and warmup."""

import os
import shutil
import threading

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import WEIGHTS, install, predict_request, start_server, version_states, wait_for, write_warmup
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

X = np.array([[1.0, 2.0, 3.0]], np.float32)


def expected(bias):
    return X @ WEIGHTS + bias


@pytest.fixture
def stubs():
    channels = []

    def make(server):
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        channels.append(channel)
        return (
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel),
        )

    yield make
    for channel in channels:
        channel.close()


CONFIG = """
model_config_list {{
  config {{
    name: "a"
    base_path: "{a}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{
    name: "b"
    base_path: "{b}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 }} }}
  }}
  config {{
    name: "c"
    base_path: "{c}"
    model_version_policy {{ latest {{ num_versions: 1 }} }}
  }}
}}
"""


def test_model_config_file_policies_and_labels(toy_versions, tmp_path, stubs):
    for name in "abc":
        install(toy_versions[1], str(tmp_path / name), 1)
        install(toy_versions[2], str(tmp_path / name), 2)
    config_file = tmp_path / "models.config"
    config_file.write_text(CONFIG.format(a=tmp_path / "a", b=tmp_path / "b", c=tmp_path / "c"))
    server = start_server(model_config_file=str(config_file))
    try:
        predict, model = stubs(server)
        assert version_states(model, "a") == {2: ("AVAILABLE", 0), 1: ("AVAILABLE", 0)}
        assert version_states(model, "b") == {1: ("AVAILABLE", 0)}
        assert version_states(model, "c") == {2: ("AVAILABLE", 0)}
        for name, kwargs, version in [
            ("a", {}, 2), ("a", {"label": "stable"}, 1), ("a", {"label": "canary"}, 2), ("a", {"version": 1}, 1),
            ("b", {}, 1), ("c", {}, 2),
        ]:
            response = predict.Predict(predict_request(name, X, **kwargs), timeout=30)
            assert response.model_spec.version.value == version
            np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), expected(version), rtol=1e-6)
        with pytest.raises(grpc.RpcError) as info:
            predict.Predict(predict_request("b", X, version=2), timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/a/labels/stable"
        body = requests.post(url + ":predict", json={"instances": X.tolist()}, timeout=30).json()
        np.testing.assert_allclose(body["predictions"][0]["y"], expected(1)[0], rtol=1e-6)
        assert requests.get(url, timeout=30).json()["model_version_status"][0]["version"] == "1"
    finally:
        server.stop()


def test_bad_config_files_are_rejected_with_the_reason(tmp_path):
    from rnnzoo.serving.config import read_model_server_config

    bad = tmp_path / "bad.config"
    bad.write_text('model_config_list { config { name: "a" } }')
    with pytest.raises(ValueError, match="no base_path"):
        read_model_server_config(str(bad))
    bad.write_text("model_config_list { config { nme: 1 } }")
    with pytest.raises(ValueError, match="not a valid ModelServerConfig"):
        read_model_server_config(str(bad))
    with pytest.raises(ValueError, match="does not exist"):
        read_model_server_config(str(tmp_path / "missing.config"))


def test_hot_swap_has_no_failed_requests_and_a_corrupt_version_does_not_serve(toy_versions, tmp_path, stubs):
    base = str(tmp_path / "toy")
    install(toy_versions[1], base, 1)
    server = start_server(model_name="toy", model_base_path=base, file_system_poll_wait_seconds=0.1)
    predict, model = stubs(server)
    stop = threading.Event()
    failures, served = [], {1: 0, 2: 0}
    lock = threading.Lock()

    def grpc_client():
        while not stop.is_set():
            try:
                response = predict.Predict(predict_request("toy", X), timeout=30)
                version = response.model_spec.version.value
                np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), expected(version), rtol=1e-6)
                with lock:
                    served[version] += 1
            except Exception as error:  # any failure is recorded, not raised in the thread
                failures.append(repr(error))

    def rest_client():
        session = requests.Session()
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict"
        while not stop.is_set():
            try:
                response = session.post(url, json={"instances": X.tolist()}, timeout=30)
                assert response.status_code == 200, response.text
                bias = response.json()["predictions"][0]["bias"]
                np.testing.assert_allclose(response.json()["predictions"][0]["y"], expected(bias)[0], rtol=1e-6)
            except Exception as error:
                failures.append(repr(error))

    threads = [threading.Thread(target=f) for f in (grpc_client, grpc_client, rest_client)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: served[1] > 5, what="traffic on version 1")
        install(toy_versions[2], base, 2)
        wait_for(lambda: version_states(model, "toy") == {2: ("AVAILABLE", 0), 1: ("END", 0)}, what="swap to v2")
        with lock:
            seen_v2 = served[2]
        wait_for(lambda: served[2] > seen_v2 + 5, what="traffic on version 2")

        # a corrupt version 3: reported with its error, version 2 keeps serving
        os.makedirs(tmp_path / "v3")
        (tmp_path / "v3" / "saved_model.pb").write_bytes(b"\x08\x01garbage-not-a-saved-model")
        os.rename(tmp_path / "v3", os.path.join(base, "3"))
        wait_for(lambda: version_states(model, "toy").get(3, ("", 0))[0] == "END", what="v3 load failure")
        state, error_code = version_states(model, "toy")[3]
        assert error_code != 0
        assert version_states(model, "toy")[2] == ("AVAILABLE", 0)
        with lock:
            seen_v2 = served[2]
        wait_for(lambda: served[2] > seen_v2 + 5, what="traffic on version 2 after the bad v3")
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    assert failures == []
    assert served[1] > 0 and served[2] > 0


def test_warmup_runs_before_a_version_is_available_and_bad_warmup_fails_the_load(toy_versions, tmp_path, stubs):
    base = str(tmp_path / "toy")
    marker = str(tmp_path / "warmed-v2")

    def gate_request(entered, release):
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = "gate"
        request.inputs["entered"].CopyFrom(tf.make_tensor_proto(entered))
        request.inputs["release"].CopyFrom(tf.make_tensor_proto(release))
        return request

    install(toy_versions[1], base, 1)
    server = start_server(model_name="toy", model_base_path=base, file_system_poll_wait_seconds=0.1)
    try:
        _, model = stubs(server)
        staging = str(tmp_path / "staging2")
        shutil.copytree(toy_versions[2], staging)
        write_warmup(staging, [gate_request(marker, os.path.join(staging, "..", "*"))])
        os.rename(staging, os.path.join(base, "2"))
        wait_for(lambda: version_states(model, "toy").get(2, ("", 0))[0] == "AVAILABLE", what="v2 available")
        assert os.path.exists(marker)  # the warmup request ran before AVAILABLE was reported

        broken = str(tmp_path / "staging3")
        shutil.copytree(toy_versions[1], broken)
        bad = predict_pb2.PredictRequest()
        bad.inputs["wrong_alias"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0, 3.0]]))
        write_warmup(broken, [bad])
        os.rename(broken, os.path.join(base, "3"))
        wait_for(lambda: version_states(model, "toy").get(3, ("", 0))[0] == "END", what="v3 warmup failure")
        assert version_states(model, "toy")[3][1] != 0
        statuses = requests.get(f"http://127.0.0.1:{server.rest_port}/v1/models/toy/versions/3", timeout=30).json()
        assert "warmup record 1" in statuses["model_version_status"][0]["status"]["error_message"]
        assert version_states(model, "toy")[2] == ("AVAILABLE", 0)
    finally:
        server.stop()


def test_reload_config_replaces_the_model_set(toy_versions, tmp_path, stubs):
    install(toy_versions[1], str(tmp_path / "a"), 1)
    install(toy_versions[2], str(tmp_path / "b"), 2)
    server = start_server(model_name="a", model_base_path=str(tmp_path / "a"))
    try:
        predict, model = stubs(server)
        request = model_management_pb2.ReloadConfigRequest()
        config = request.config.model_config_list.config.add(name="b", base_path=str(tmp_path / "b"))
        config.version_labels["stable"] = 2
        response = model.HandleReloadConfigRequest(request, timeout=60)
        assert response.status.error_code == 0
        assert version_states(model, "a") == {}
        assert version_states(model, "b") == {2: ("AVAILABLE", 0)}
        reply = predict.Predict(predict_request("b", X, label="stable"), timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(reply.outputs["y"]), expected(2), rtol=1e-6)
        with pytest.raises(grpc.RpcError) as info:
            predict.Predict(predict_request("a", X), timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        config.version_labels["stable"] = 5  # a label on a version that is not loaded
        with pytest.raises(grpc.RpcError) as info:
            model.HandleReloadConfigRequest(request, timeout=60)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "version 5" in info.value.details()
    finally:
        server.stop()

