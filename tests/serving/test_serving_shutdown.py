"""`rnnzoo-serve` as a process: SIGTERM with requests in flight finishes them, then exits 0."""

import os
import signal
import subprocess
import sys
import threading

import grpc
import numpy as np
import requests
import tensorflow as tf
from conftest import WEIGHTS, free_port, install, predict_request, version_states, wait_for
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

X = np.array([[1.0, 2.0, 3.0]], np.float32)


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(toy_versions, tmp_path):
    base = str(tmp_path / "toy")
    install(toy_versions[1], base, 1)
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnzoo.cli.serve", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=toy", f"--model_base_path={base}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    try:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        model = model_service_pb2_grpc.ModelServiceStub(channel)

        def ready():
            assert process.poll() is None, process.stdout.read().decode()
            try:
                return version_states(model, "toy") == {1: ("AVAILABLE", 0)}
            except grpc.RpcError:
                return False

        wait_for(ready, timeout=120, what="rnnzoo-serve to load the model")

        release = str(tmp_path / "release")
        results = {}

        def grpc_gate():
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.signature_name = "toy", "gate"
            request.inputs["entered"].CopyFrom(tf.make_tensor_proto(str(tmp_path / "entered-grpc")))
            request.inputs["release"].CopyFrom(tf.make_tensor_proto(release))
            results["grpc"] = predict.Predict(request, timeout=120)

        def rest_gate():
            body = {"signature_name": "gate", "inputs": {"entered": str(tmp_path / "entered-rest"), "release": release}}
            results["rest"] = requests.post(f"http://127.0.0.1:{rest_port}/v1/models/toy:predict", json=body, timeout=120)

        threads = [threading.Thread(target=grpc_gate), threading.Thread(target=rest_gate)]
        for t in threads:
            t.start()
        wait_for(lambda: os.path.exists(tmp_path / "entered-grpc") and os.path.exists(tmp_path / "entered-rest"),
                 what="both requests to be running in the model")
        process.send_signal(signal.SIGTERM)

        def refused():
            try:
                predict.Predict(predict_request("toy", X), timeout=10)
                return False
            except grpc.RpcError as error:
                return error.code() == grpc.StatusCode.UNAVAILABLE

        wait_for(refused, what="new requests to be refused after SIGTERM")
        assert process.poll() is None  # still draining the in-flight requests
        open(release, "w").close()
        for t in threads:
            t.join(timeout=120)
        assert results["grpc"].outputs["spins"].int_val[0] >= 0
        assert results["rest"].status_code == 200 and results["rest"].json()["outputs"] >= 0  # a lone output is the value itself
        assert process.wait(timeout=120) == 0
    finally:
        channel.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_server_refuses_a_missing_model_path_with_a_clear_message(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "rnnzoo.cli.serve", "--port=0", "--rest_api_port=0"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert process.returncode != 0
    assert "--model_base_path" in process.stderr


def test_in_process_stop_drains_rest_and_unloads(toy_versions, tmp_path):
    from conftest import start_server

    base = str(tmp_path / "toy")
    install(toy_versions[1], base, 1)
    server = start_server(model_name="toy", model_base_path=base)
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict"
    body = requests.post(url, json={"instances": X.tolist()}, timeout=30).json()
    np.testing.assert_allclose(body["predictions"][0]["y"], (X @ WEIGHTS + 1.0)[0], rtol=1e-6)
    server.stop()
    assert server.wait(0)
    assert server.manager.model_names() == []
    try:
        requests.post(url, json={"instances": X.tolist()}, timeout=5)
        raise AssertionError("the REST port still answers after stop()")
    except requests.ConnectionError:
        pass
