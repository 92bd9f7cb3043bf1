"""Tiny SavedModels in TF Serving's layout and in-process servers for the serving tests."""

import os
import shutil
import socket
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from rnnzoo.serving import ModelServer, ServerOptions

WEIGHTS = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)


class Toy(tf.Module):
    """y = x W + bias; string ops; a tf.Example classifier/regressor; a file gate."""

    def __init__(self, bias: float):
        super().__init__()
        self.w = tf.Variable(WEIGHTS)
        self.bias = tf.Variable(bias, dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def affine(self, x):
        return {"y": tf.matmul(x, self.w) + self.bias, "bias": tf.fill(tf.shape(x)[:1], self.bias)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def text(self, text):
        return {"upper_bytes": tf.strings.upper(text), "length": tf.strings.length(text)}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids")])
    def ids(self, ids):
        return {"total": tf.reduce_sum(ids, axis=1)}

    def _x(self, inputs):
        features = tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        return features["x"][:, 0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        p = tf.sigmoid(self._x(inputs))
        n = tf.shape(p)[0]
        return {"scores": tf.stack([1 - p, p], axis=1), "classes": tf.tile([["neg", "pos"]], [n, 1])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": 2.0 * self._x(inputs) + self.bias}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="entered"), tf.TensorSpec([], tf.string, name="release")])
    def gate(self, entered, release):
        """Writes `entered`, then spins until a file matching `release` exists."""
        with tf.control_dependencies([tf.io.write_file(entered, "in")]):
            start = tf.constant(0)

        def waiting(i):
            pattern = release + tf.strings.substr(tf.strings.as_string(i), 0, 0)
            return tf.equal(tf.size(tf.io.matching_files(pattern)), 0)

        (spins,) = tf.while_loop(waiting, lambda i: (i + 1,), [start])
        return {"spins": spins}


def save_toy(path: str, bias: float, warmup_requests=()) -> str:
    """Export a Toy to `path` (a version directory), with classify/regress method names."""
    module = Toy(bias)
    signatures = {
        "serving_default": module.affine,
        "text": module.text,
        "ids": module.ids,
        "classify": module.classify,
        "regress": module.regress,
        "gate": module.gate,
    }
    tf.saved_model.save(module, path, signatures=signatures)
    pb_path = os.path.join(path, "saved_model.pb")
    saved = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        saved.ParseFromString(f.read())
    defs = saved.meta_graphs[0].signature_def
    defs["classify"].method_name = "tensorflow/serving/classify"
    defs["regress"].method_name = "tensorflow/serving/regress"
    with open(pb_path, "wb") as f:
        f.write(saved.SerializeToString())
    if warmup_requests:
        write_warmup(path, warmup_requests)
    return path


def write_warmup(version_path: str, requests) -> None:
    os.makedirs(os.path.join(version_path, "assets.extra"), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(version_path, "assets.extra", "tf_serving_warmup_requests")) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


@pytest.fixture(scope="session")
def toy_versions(tmp_path_factory):
    """{bias: exported version dir} for biases 1 and 2, exported once per session."""
    root = tmp_path_factory.mktemp("toy_exports")
    return {bias: save_toy(str(root / f"bias{bias}"), float(bias)) for bias in (1, 2)}


def install(template: str, base: str, version: int) -> str:
    """Copy an export into `base/version` atomically (copy aside, then rename), as deployments should."""
    os.makedirs(base, exist_ok=True)
    staging = os.path.join(base, f".staging-{version}")
    shutil.copytree(template, staging)
    target = os.path.join(base, str(version))
    os.rename(staging, target)
    return target


def start_server(**options) -> ModelServer:
    defaults = dict(port=0, rest_api_port=0, host="127.0.0.1", file_system_poll_wait_seconds=0, max_num_load_retries=0,
                    settle_heap=False)  # a full collection per load would slow the suite (test_serving_heap.py)
    defaults.update(options)
    return ModelServer(ServerOptions(**defaults)).start()


@pytest.fixture(scope="module")
def toy_server(toy_versions, tmp_path_factory):
    """A server for model 'toy' with version 1 (bias 1), gRPC + REST, metrics enabled."""
    base = str(tmp_path_factory.mktemp("toy_base"))
    install(toy_versions[1], base, 1)
    monitoring = os.path.join(base, "..", "monitoring.config")
    with open(monitoring, "w") as f:
        f.write('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
    server = start_server(model_name="toy", model_base_path=base, monitoring_config_file=monitoring)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def channel(toy_server):
    with grpc.insecure_channel(f"127.0.0.1:{toy_server.grpc_port}") as ch:
        yield ch


@pytest.fixture(scope="module")
def prediction_stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def predict_request(model: str, x, signature: str = "", version=None, label=None) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    return request


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    """Poll `condition()` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def version_states(stub, model: str) -> dict:
    """{version: (state name, error code)} from GetModelStatus; {} if the model has no versions."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    try:
        response = stub.GetModelStatus(request, timeout=10)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return {}
        raise
    State = get_model_status_pb2.ModelVersionStatus.State
    return {s.version: (State.Name(s.state), s.status.error_code) for s in response.model_version_status}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
