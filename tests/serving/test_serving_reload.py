"""ReloadConfig and file-system polling never drop a loaded model by accident (issue 14, 2 and 3)."""

import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from conftest import WEIGHTS, install, predict_request, start_server, version_states
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

X = np.array([[1.0, 2.0, 3.0]], np.float32)


@pytest.fixture
def served_a(toy_versions, tmp_path):
    """A server for model 'a' (version 1, bias 1) and its stubs; model 'b' (version 2) is on disk only."""
    install(toy_versions[1], str(tmp_path / "a"), 1)
    install(toy_versions[2], str(tmp_path / "b"), 2)
    server = start_server(model_name="a", model_base_path=str(tmp_path / "a"))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()
    server.stop()


def assert_a_serves(predict, model):
    assert version_states(model, "a") == {1: ("AVAILABLE", 0)}
    response = predict.Predict(predict_request("a", X), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), X @ WEIGHTS + 1.0, rtol=1e-6)


def reload_error(model, request):
    with pytest.raises(grpc.RpcError) as info:
        model.HandleReloadConfigRequest(request, timeout=60)
    return info.value.code(), info.value.details()


def test_an_empty_reload_request_is_invalid_and_unloads_nothing(served_a):
    _, predict, model = served_a
    code, details = reload_error(model, model_management_pb2.ReloadConfigRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "model_config_list" in details
    assert_a_serves(predict, model)


@pytest.mark.parametrize("base_path, code, words", [
    ("relative/b", grpc.StatusCode.INVALID_ARGUMENT, "absolute"),
    ("/nonexistent/rnnzoo/b", grpc.StatusCode.NOT_FOUND, "Could not find base path"),
])
def test_a_reload_naming_a_bad_base_path_fails_and_keeps_the_old_set(served_a, base_path, code, words):
    _, predict, model = served_a
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(name="b", base_path=base_path)
    got_code, details = reload_error(model, request)
    assert got_code == code and words in details and base_path in details
    assert_a_serves(predict, model)


def test_a_reload_with_a_bad_label_leaves_the_old_set_serving(served_a, tmp_path):
    _, predict, model = served_a
    request = model_management_pb2.ReloadConfigRequest()
    config = request.config.model_config_list.config.add(name="b", base_path=str(tmp_path / "b"))
    config.version_labels["stable"] = 7  # version 7 does not exist
    code, details = reload_error(model, request)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "version 7" in details
    assert_a_serves(predict, model)
    assert version_states(model, "b") == {}  # b's staged version 2 was unloaded again


def test_a_reload_whose_model_fails_to_load_reports_it_and_keeps_the_old_set(served_a, tmp_path):
    _, predict, model = served_a
    broken = tmp_path / "broken" / "1"
    os.makedirs(broken)
    (broken / "saved_model.pb").write_bytes(b"\x08\x01not a saved model")
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(name="broken", base_path=str(tmp_path / "broken"))
    code, details = reload_error(model, request)
    assert code == grpc.StatusCode.DATA_LOSS and "broken" in details
    assert_a_serves(predict, model)


def test_an_explicit_empty_model_list_unloads_every_model(served_a):
    _, predict, model = served_a
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.SetInParent()
    assert model.HandleReloadConfigRequest(request, timeout=60).status.error_code == 0
    assert version_states(model, "a") == {}


def test_a_base_path_that_vanishes_for_a_poll_keeps_serving(served_a, tmp_path):
    server, predict, model = served_a
    os.rename(tmp_path / "a", tmp_path / "a-moved")
    server.manager.poll()  # the poll that finds no base path
    assert_a_serves(predict, model)
    os.rename(tmp_path / "a-moved", tmp_path / "a")
    server.manager.poll()
    assert_a_serves(predict, model)


def test_an_emptied_base_path_still_unloads_as_in_tf_serving(served_a, tmp_path):
    server, predict, model = served_a
    os.rename(tmp_path / "a" / "1", tmp_path / "a-v1")
    server.manager.poll()
    assert version_states(model, "a") == {1: ("END", 0)}
