"""Serving latency, throughput and memory: rnnzoo-serve (gRPC, REST) vs an in-process call.

The anchor is the same SavedModel signature called in-process (`tf.saved_model.load(...)
.signatures[...]`) from the same number of threads. For 1, 8 and 32 concurrent clients, with and
without server-side batching, it reports p50/p99 latency (ms) and requests/second, and the ratios
the serving targets are stated in:

* p50 overhead of one small request over the in-process call (target <= 1 ms);
* throughput with batching at 32 clients relative to the in-process call (target >= 0.9x);
* with --soak_seconds, server RSS after the full soak relative to after 1 minute (target <= 1.1x).

The server runs as a separate `rnnzoo-serve` process; clients are threads of this process, so
client-side Python cost is part of the measured latency, as it is for a Python user.

  .venv/bin/python benchmarks/serving.py --output benchmarks/results/serving.json
  .venv/bin/python benchmarks/serving.py --soak_seconds=600 --output benchmarks/results/serving_soak.json
"""

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from output import write_json  # noqa: E402  (benchmarks/output.py)
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from rnnzoo.serving import Client  # noqa: E402

_OUTPUT = flags.DEFINE_string("output", None, "Write the JSON here as well as to stdout.")
_SECONDS = flags.DEFINE_float("seconds", 3.0, "Measurement time per configuration.")
_CLIENTS = flags.DEFINE_list("clients", ["1", "8", "32"], "Concurrent client counts.")
_SOAK_SECONDS = flags.DEFINE_float("soak_seconds", 0, "If > 0, only run a memory soak of this length.")
_GENERATE_MODEL = flags.DEFINE_string(
    "generate_model_base_path", "", "Base path of a char-LM export with a 'generate' signature (optional)."
)


class Small(tf.Module):
    """A small request: y = tanh(x W + b) with x float32[batch, 16]."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32))
        self.b = tf.Variable(np.zeros(16, np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.tanh(x @ self.w + self.b)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(call, clients: int, seconds: float) -> dict:
    """Run `call()` from `clients` threads for `seconds`; latency percentiles and throughput."""
    latencies = [[] for _ in range(clients)]
    failures = []
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(i):
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                call()
            except Exception as error:  # counted, reported in the JSON
                failures.append(repr(error)[:200])
                continue
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    begin = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - begin
    flat = np.concatenate([np.asarray(l) for l in latencies]) if any(latencies) else np.array([np.nan])
    return {
        "clients": clients,
        "requests": int(sum(len(l) for l in latencies)),
        "failures": len(failures),
        "p50_ms": round(float(np.percentile(flat, 50)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(flat, 99)) * 1e3, 3),
        "requests_per_second": round(sum(len(l) for l in latencies) / elapsed, 1),
    }


class ServerProcess:
    def __init__(self, base_path: str, model_name: str, batching_file: str | None):
        self.grpc_port, self.rest_port = free_port(), free_port()
        argv = [sys.executable, "-m", "rnnzoo.cli.serve", f"--port={self.grpc_port}",
                f"--rest_api_port={self.rest_port}", f"--model_name={model_name}", f"--model_base_path={base_path}"]
        if batching_file:
            argv += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with Client(f"127.0.0.1:{self.grpc_port}") as client:
            client.wait_until_available(model_name, timeout=180)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def export_small(root: str) -> str:
    module = Small()
    tf.saved_model.save(module, os.path.join(root, "small", "1"), signatures={"serving_default": module.serve})
    return os.path.join(root, "small")


def run_matrix(base_path: str, model: str, signature: str, inputs: dict, batching_file: str) -> dict:
    seconds, counts = _SECONDS.value, [int(c) for c in _CLIENTS.value]
    loaded = tf.saved_model.load(os.path.join(base_path, sorted(os.listdir(base_path))[-1]))
    function = loaded.signatures[signature]
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    result = {"in_process": [measure(lambda: {k: v.numpy() for k, v in function(**tensors).items()}, n, seconds) for n in counts]}

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    rest_body = json.dumps({"signature_name": signature, "inputs": {
        k: (v.astype(str).tolist() if v.dtype == object else v.tolist()) for k, v in inputs.items()}})
    for batching in (False, True):
        server = ServerProcess(base_path, model, batching_file if batching else None)
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            local = threading.local()

            def rest_call():
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                response = local.session.post(f"http://127.0.0.1:{server.rest_port}/v1/models/{model}:predict",
                                              data=rest_body, timeout=60)
                if response.status_code != 200:
                    raise RuntimeError(response.text)

            key = "batching" if batching else "no_batching"
            result[f"grpc_{key}"] = [measure(lambda: stub.Predict(request, timeout=60), n, seconds) for n in counts]
            result[f"rest_{key}"] = [measure(rest_call, n, seconds) for n in counts]
            channel.close()
        finally:
            server.stop()
    anchor = {row["clients"]: row for row in result["in_process"]}
    one, most = counts[0], counts[-1]
    result["ratios"] = {
        f"grpc_p50_overhead_ms_{one}_client": round(result["grpc_no_batching"][0]["p50_ms"] - anchor[one]["p50_ms"], 3),
        f"rest_p50_overhead_ms_{one}_client": round(result["rest_no_batching"][0]["p50_ms"] - anchor[one]["p50_ms"], 3),
        f"grpc_batching_throughput_vs_in_process_{most}_clients": round(
            result["grpc_batching"][-1]["requests_per_second"] / anchor[most]["requests_per_second"], 3),
        f"rest_batching_throughput_vs_in_process_{most}_clients": round(
            result["rest_batching"][-1]["requests_per_second"] / anchor[most]["requests_per_second"], 3),
        f"grpc_no_batching_throughput_vs_in_process_{most}_clients": round(
            result["grpc_no_batching"][-1]["requests_per_second"] / anchor[most]["requests_per_second"], 3),
    }
    return result


def soak(base_path: str, seconds: float) -> dict:
    """Server RSS under continuous gRPC + REST load after 1 minute and at the end."""
    server = ServerProcess(base_path, "small", None)
    x = np.random.default_rng(1).normal(size=(1, 16)).astype(np.float32)
    stop = threading.Event()
    counts = {"grpc": 0, "rest": 0, "failures": 0}

    def grpc_load():
        with Client(f"127.0.0.1:{server.grpc_port}") as client:
            while not stop.is_set():
                try:
                    client.predict("small", {"x": x})
                    counts["grpc"] += 1
                except grpc.RpcError:
                    counts["failures"] += 1

    def rest_load():
        session = requests.Session()
        body = {"instances": x.tolist()}
        while not stop.is_set():
            ok = session.post(f"http://127.0.0.1:{server.rest_port}/v1/models/small:predict", json=body, timeout=60).ok
            counts["rest" if ok else "failures"] += 1

    threads = [threading.Thread(target=f) for f in (grpc_load, grpc_load, rest_load, rest_load)]
    for t in threads:
        t.start()
    start = time.monotonic()
    samples = []
    try:
        while time.monotonic() - start < seconds:
            time.sleep(min(10.0, seconds))
            samples.append({"seconds": round(time.monotonic() - start, 1), "rss_mib": round(rss_mib(server.process.pid), 1)})
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    after_one_minute = next((s["rss_mib"] for s in samples if s["seconds"] >= 60), samples[0]["rss_mib"])
    return {
        "soak_seconds": seconds,
        "requests": counts,
        "rss_mib_after_1_minute": after_one_minute,
        "rss_mib_at_end": samples[-1]["rss_mib"],
        "ratios": {"rss_end_vs_1_minute": round(samples[-1]["rss_mib"] / after_one_minute, 3)},
        "samples": samples,
    }


def main(argv):
    del argv
    root = tempfile.mkdtemp(prefix="rnnzoo-serving-bench-")
    base = export_small(root)
    report = {
        "benchmark": "serving",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__},
    }
    if _SOAK_SECONDS.value > 0:
        report["soak"] = soak(base, _SOAK_SECONDS.value)
    else:
        batching_file = os.path.join(root, "batching.config")
        with open(batching_file, "w") as f:
            f.write("max_batch_size { value: 32 } batch_timeout_micros { value: 2000 } "
                    "num_batch_threads { value: 2 } max_enqueued_batches { value: 100 }\n")
        report["batching_parameters"] = open(batching_file).read().strip()
        report["seconds_per_configuration"] = _SECONDS.value
        x = np.random.default_rng(1).normal(size=(1, 16)).astype(np.float32)
        report["small_model"] = run_matrix(base, "small", "serving_default", {"x": x}, batching_file)
        if _GENERATE_MODEL.value:
            inputs = {"prompt": np.array([b"def "], dtype=object), "max_length": np.array([64], np.int32),
                      "temperature": np.array([1.0], np.float32), "seed": np.array([0], np.int64)}
            report["char_lm_generate"] = run_matrix(_GENERATE_MODEL.value, "char_lm", "generate", inputs, batching_file)
        else:
            report["char_lm_generate"] = "not measured: pass --generate_model_base_path=<char-LM export>"
    write_json(report, _OUTPUT.value, indent=1)


if __name__ == "__main__":
    app.run(main)
