"""Hundreds of malformed REST bodies and gRPC requests: each gets the right error, the server stays up."""

import json
import random

import grpc
import numpy as np
import requests
import tensorflow as tf
from conftest import WEIGHTS, predict_request
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

X = np.array([[1.0, 2.0, 3.0]], np.float32)


def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2**70, 1.5, float("inf")])
    if kind == 2:
        return rng.choice(["", "x", "\u00e9\u4e2d", "a" * 300])
    if kind == 3:
        return {"b64": rng.choice(["!!", "YQ==", 3])}
    if kind == 4:
        return []
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(1, 4))]
    if kind == 6:
        return {rng.choice(["x", "text", "instances", "inputs", "b64"]): _random_json(rng, depth + 1)}
    return [[rng.random() for _ in range(rng.randrange(1, 5))] for _ in range(rng.randrange(1, 3))]


def _malformed_bodies(n: int, seed: int = 0):
    rng = random.Random(seed)
    valid = json.dumps({"instances": X.tolist()}).encode()
    for i in range(n):
        kind = i % 4
        if kind == 0:  # random bytes
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        elif kind == 1:  # truncated valid JSON
            yield valid[: rng.randrange(0, len(valid) - 1)]
        elif kind == 2:  # well-formed JSON of the wrong structure
            key = rng.choice(["instances", "inputs", "signature_name", "examples"])
            yield json.dumps({key: _random_json(rng), "signature_name": rng.choice(["", "text", 5, "nope"])}).encode()
        else:  # wrong types inside a plausible request
            row = [rng.choice([1.0, "a", None, [1.0], {"b64": "YQ=="}]) for _ in range(3)]
            yield json.dumps({rng.choice(["instances", "inputs"]): [row]}).encode()


def test_malformed_rest_bodies_get_400_and_server_keeps_serving(toy_server):
    base = f"http://127.0.0.1:{toy_server.rest_port}/v1/models/toy"
    session = requests.Session()
    statuses = []
    for i, body in enumerate(_malformed_bodies(240)):
        verb = ["predict", "classify", "regress"][i % 3]
        response = session.post(f"{base}:{verb}", data=body, timeout=30)
        statuses.append(response.status_code)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error and "Traceback" not in error
    assert len(statuses) == 240
    good = session.post(f"{base}:predict", json={"instances": X.tolist()}, timeout=30).json()
    np.testing.assert_allclose(good["predictions"][0]["y"], (X @ WEIGHTS + 1.0)[0], rtol=1e-6)


def _random_tensor(rng: random.Random):
    """A TensorProto for input x, and whether TF Serving would accept it."""
    dtype = rng.choice([types_pb2.DT_FLOAT] * 3 + [types_pb2.DT_INT32, types_pb2.DT_STRING, types_pb2.DT_RESOURCE, 0, 99])
    rank = rng.choice([0, 1, 2, 2, 2, 3])
    dims = [rng.choice([0, 1, 2, 3, 3, -1, 2**40]) for _ in range(rank)]
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    count = int(np.prod(dims)) if dims else 1
    style = rng.randrange(3)
    if style == 0:
        proto.tensor_content = bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 4 * max(0, min(count, 9))])))
    elif style == 1:
        proto.float_val.extend(rng.random() for _ in range(rng.randrange(0, 10)))
    good_shape = rank == 2 and dims[1] == 3 and 0 <= dims[0] <= 3
    if style == 0:
        good_values = len(proto.tensor_content) == 4 * count
    elif style == 1:
        good_values = len(proto.float_val) <= count
    else:
        good_values = True
    return proto, dtype == types_pb2.DT_FLOAT and good_shape and good_values


def test_malformed_grpc_requests_get_invalid_argument_and_server_keeps_serving(toy_server, prediction_stub, channel):
    rng = random.Random(1)
    accepted = rejected = 0
    for _ in range(200):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "toy"
        proto, valid = _random_tensor(rng)
        request.inputs["x"].CopyFrom(proto)
        try:
            response = prediction_stub.Predict(request, timeout=30)
        except grpc.RpcError as error:
            assert not valid, (proto, error.details())
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (proto, error.code(), error.details())
            assert "Traceback" not in error.details()
            rejected += 1
        else:
            assert valid, proto
            x = tf.make_ndarray(proto)
            np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), x @ WEIGHTS + 1.0, rtol=1e-5)
            accepted += 1
    assert accepted >= 5 and rejected >= 150

    # undecodable bytes on the wire: gRPC refuses them, the server stays up
    raw = channel.unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=lambda b: b,
        response_deserializer=predict_pb2.PredictResponse.FromString,
    )
    for i in range(50):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        try:
            raw(junk, timeout=30)
        except grpc.RpcError as error:
            assert error.code() != grpc.StatusCode.UNAVAILABLE
    response = prediction_stub.Predict(predict_request("toy", X), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), X @ WEIGHTS + 1.0, rtol=1e-6)
