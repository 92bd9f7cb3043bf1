"""Server-side batching: batches form under concurrency, results split back exactly, queue limits."""

import threading

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import WEIGHTS, install, predict_request, start_server, wait_for
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def batching_server(toy_versions, tmp_path, params: str, **options):
    base = str(tmp_path / "toy")
    install(toy_versions[1], base, 1)
    (tmp_path / "batching.config").write_text(params)
    (tmp_path / "monitoring.config").write_text('prometheus_config { enable: true path: "/metrics" }')
    return start_server(
        model_name="toy", model_base_path=base, enable_batching=True,
        batching_parameters_file=str(tmp_path / "batching.config"),
        monitoring_config_file=str(tmp_path / "monitoring.config"), **options,
    )


def batch_sizes(server) -> dict:
    """{processed batch size: count} for the serving_default signature, from the metrics page."""
    text = requests.get(f"http://127.0.0.1:{server.rest_port}/metrics", timeout=30).text
    prefix = ':tensorflow:serving:batching:processed_batch_size_v2{model_name="toy",op_name="serving_default",batch_size="'
    sizes = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            size, count = line[len(prefix):].split('"} ')
            sizes[int(size)] = int(count)
    return sizes


def concurrent(n, fn):
    results, errors = [None] * n, []

    def run(i):
        try:
            results[i] = fn(i)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_concurrent_requests_form_one_batch_and_get_their_own_rows(toy_versions, tmp_path):
    # a long timeout: the batch only runs once all 8 single-row requests have joined it
    server = batching_server(
        toy_versions, tmp_path,
        "max_batch_size { value: 8 } batch_timeout_micros { value: 20000000 } num_batch_threads { value: 1 }",
    )
    try:
        xs = np.random.default_rng(0).normal(size=(8, 1, 3)).astype(np.float32)
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            results, errors = concurrent(8, lambda i: stub.Predict(predict_request("toy", xs[i]), timeout=60))
        assert errors == []
        for x, response in zip(xs, results):
            np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), x @ WEIGHTS + 1.0, rtol=1e-6)
        assert batch_sizes(server) == {8: 1}
    finally:
        server.stop()


def test_allowed_batch_sizes_pad_and_full_queue_is_unavailable(toy_versions, tmp_path):
    server = batching_server(
        toy_versions, tmp_path,
        "max_batch_size { value: 4 } batch_timeout_micros { value: 30000000 } max_enqueued_batches { value: 1 } "
        "num_batch_threads { value: 1 } allowed_batch_sizes: 2 allowed_batch_sizes: 4",
    )
    try:
        batcher = server.manager.resolve("toy").batcher
        x3 = np.arange(9, dtype=np.float32).reshape(3, 3)
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            waiting = {}
            thread = threading.Thread(target=lambda: waiting.update(r=stub.Predict(predict_request("toy", x3), timeout=60)))
            thread.start()
            wait_for(lambda: batcher.queued_rows() == 3, what="3 rows queued")
            # the open batch has room for 1 row; 2 more rows need a second batch, beyond max_enqueued_batches
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(predict_request("toy", np.ones((2, 3), np.float32)), timeout=60)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(predict_request("toy", np.ones((5, 3), np.float32)), timeout=60)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "maximum batch size 4" in info.value.details()
            # one more row fills the batch (3 + 1 = 4) and both requests complete
            x1 = np.ones((1, 3), np.float32)
            last = stub.Predict(predict_request("toy", x1), timeout=60)
            thread.join()
        np.testing.assert_allclose(tf.make_ndarray(waiting["r"].outputs["y"]), x3 @ WEIGHTS + 1.0, rtol=1e-6)
        np.testing.assert_allclose(tf.make_ndarray(last.outputs["y"]), x1 @ WEIGHTS + 1.0, rtol=1e-6)
        assert batch_sizes(server) == {4: 1}
    finally:
        server.stop()


def test_a_short_batch_is_padded_to_the_next_allowed_size(toy_versions, tmp_path):
    server = batching_server(
        toy_versions, tmp_path,
        "max_batch_size { value: 4 } batch_timeout_micros { value: 0 } allowed_batch_sizes: 2 allowed_batch_sizes: 4",
    )
    try:
        x3 = np.arange(9, dtype=np.float32).reshape(3, 3)
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict"
        outputs = requests.post(url, json={"inputs": {"x": x3.tolist()}}, timeout=60).json()["outputs"]
        np.testing.assert_allclose(outputs["y"], x3 @ WEIGHTS + 1.0, rtol=1e-6)
        assert len(outputs["bias"]) == 3
        assert batch_sizes(server) == {4: 1}
    finally:
        server.stop()


def test_pad_variable_length_inputs_batches_different_lengths(toy_versions, tmp_path):
    server = batching_server(
        toy_versions, tmp_path,
        "max_batch_size { value: 2 } batch_timeout_micros { value: 20000000 } num_batch_threads { value: 1 } "
        "pad_variable_length_inputs: true",
    )
    rows = [np.array([[0, 5]], np.int32), np.array([[0, 1, 2]], np.int32)]

    def call(i):
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "toy", "ids"
        request.inputs["ids"].CopyFrom(tf.make_tensor_proto(rows[i]))
        return stub.Predict(request, timeout=60)

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            results, errors = concurrent(2, call)
        assert errors == []
        # padding repeats each request's first element (0 here), so the sums are unchanged
        assert [list(r.outputs["total"].int_val) for r in results] == [[5], [3]]
        text = requests.get(f"http://127.0.0.1:{server.rest_port}/metrics", timeout=30).text
        assert 'op_name="ids",batch_size="2"} 1' in text
    finally:
        server.stop()


def test_a_rest_request_past_its_timeout_in_the_queue_answers_504_and_leaves_the_batch(toy_versions, tmp_path):
    # the batch only runs when full: --rest_api_timeout_in_ms passes while the request is queued
    server = batching_server(
        toy_versions, tmp_path,
        "max_batch_size { value: 4 } batch_timeout_micros { value: 600000000 } num_batch_threads { value: 1 }",
        rest_api_timeout_in_ms=300,
    )
    try:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict"
        response = requests.post(url, json={"instances": [[1.0, 1.0, 1.0]]}, timeout=30)
        assert response.status_code == 504
        assert "--rest_api_timeout_in_ms (300 ms)" in response.json()["error"]
        batcher = server.manager.resolve("toy").batcher
        wait_for(lambda: batcher.queued_rows() == 0, timeout=10, what="the expired request to leave the queue")
        xs = np.random.default_rng(2).normal(size=(4, 1, 3)).astype(np.float32)
        results, errors = concurrent(4, lambda i: requests.post(url, json={"instances": xs[i].tolist()}, timeout=30))
        assert errors == [] and [r.status_code for r in results] == [200] * 4
        for x, response in zip(xs, results):
            np.testing.assert_allclose(response.json()["predictions"][0]["y"], (x @ WEIGHTS + 1.0)[0], rtol=1e-5)
        assert batch_sizes(server) == {4: 1}  # the expired request took no row of the batch
    finally:
        server.stop()


def test_a_request_whose_deadline_passes_in_the_queue_fails_and_leaves_the_batch(toy_versions, tmp_path):
    # the batch only runs when full: the first request's deadline passes while it is queued
    server = batching_server(
        toy_versions, tmp_path,
        "max_batch_size { value: 4 } batch_timeout_micros { value: 600000000 } num_batch_threads { value: 1 }",
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as failure:
                stub.Predict(predict_request("toy", np.ones((1, 3), np.float32)), timeout=0.5)
            assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            batcher = server.manager.resolve("toy").batcher
            wait_for(lambda: batcher.queued_rows() == 0, timeout=10, what="the expired request to leave the queue")
            xs = np.random.default_rng(1).normal(size=(4, 1, 3)).astype(np.float32)
            results, errors = concurrent(4, lambda i: stub.Predict(predict_request("toy", xs[i]), timeout=60))
        assert errors == []
        for x, response in zip(xs, results):
            np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), x @ WEIGHTS + 1.0, rtol=1e-6)
        assert batch_sizes(server) == {4: 1}  # the expired request took no row of the batch
    finally:
        server.stop()

