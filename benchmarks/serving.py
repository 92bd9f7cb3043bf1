"""Serving throughput, latency and server CPU: rnnzoo-serve loaded by C load generators.

`rnnzoo-serve` runs as its own process; the load comes from C programs in other processes
(`wrk` for REST, `h2load` from nghttp2-client for gRPC, sending prebuilt gRPC frames), so no
Python client shares the two cores with the server. The anchor, measured in the same run, is the
same SavedModel signature called in-process (`tf.saved_model.load(...).signatures[...]`) with one
row and with a full batch. For each configuration the JSON has requests/s, p50/p99 latency (ms)
and server CPU per request (us, from /proc/<pid>/stat), and the ratios the targets are stated in:

* REST with batching at 32 connections >= 2x the in-process single-row call rate;
* server CPU per request <= 200 us (REST) and <= 300 us (gRPC);
* p50 overhead at low load (1 connection) over the in-process single-row call <= 1 ms.

Every request's status is checked through the server's own request_count metric.

The Python floor is measured in the same run with the same load generators: bare aiohttp and
grpc.aio servers answering a fixed response, and the same with one hop to a worker thread per
request (`benchmarks/serving_floor.py`). The machine is
shared, so the load average at the start and end of the run is recorded; server CPU per request
is the figure least moved by other processes (requests/s and latencies move with the CPU share
the server gets).

  apt-get install -y wrk nghttp2-client
  .venv/bin/python benchmarks/serving.py --output benchmarks/results/serving.json
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import requests  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from output import write_json  # noqa: E402  (benchmarks/output.py)

from rnnzoo.machine import machine_description  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402

_OUTPUT = flags.DEFINE_string("output", None, "Write the JSON here as well as to stdout.")
_SECONDS = flags.DEFINE_integer("seconds", 10, "Load duration per configuration.")
_CONNECTIONS = flags.DEFINE_integer("connections", 32, "Concurrent connections (streams for gRPC) under load.")
_BATCH = 32
_TICKS = os.sysconf("SC_CLK_TCK")


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


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def in_process(base_path: str, x: np.ndarray, seconds: float) -> dict:
    """Calls/s and p50 of the signature called in-process, one row and a full batch."""
    function = tf.saved_model.load(os.path.join(base_path, "1")).signatures["serving_default"]
    result = {}
    for name, rows in (("one_row", x[:1]), ("full_batch", np.repeat(x[:1], _BATCH, axis=0))):
        feed = tf.constant(rows)
        for _ in range(50):
            function(x=feed)["y"].numpy()
        latencies, stop, cpu_start = [], time.perf_counter() + seconds, time.process_time()
        while time.perf_counter() < stop:
            start = time.perf_counter()
            function(x=feed)["y"].numpy()
            latencies.append(time.perf_counter() - start)
        cpu = time.process_time() - cpu_start
        result[name] = {
            "rows": len(rows),
            "cpu_us_per_call": round(cpu / len(latencies) * 1e6, 1),
            "calls_per_second": round(len(latencies) / sum(latencies), 1),
            "rows_per_second": round(len(rows) * len(latencies) / sum(latencies), 1),
            "p50_ms": round(float(np.percentile(latencies, 50)) * 1e3, 3),
        }
    return result


class ServerProcess:
    def __init__(self, base_path: str, batching_file: str | None, monitoring_file: str):
        self.grpc_port, self.rest_port = free_port(), free_port()
        argv = [sys.executable, "-m", "rnnzoo.cli.serve", f"--port={self.grpc_port}",
                f"--rest_api_port={self.rest_port}", "--model_name=small", f"--model_base_path={base_path}",
                f"--monitoring_config_file={monitoring_file}", "--file_system_poll_wait_seconds=0"]
        if batching_file:
            argv += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{self.rest_port}/v1/models/small", timeout=5).ok:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("rnnzoo-serve did not come up")
            time.sleep(0.2)

    def ok_requests(self) -> int:
        text = requests.get(f"http://127.0.0.1:{self.rest_port}/monitoring/prometheus/metrics", timeout=30).text
        match = re.search(r':tensorflow:serving:request_count\{model_name="small",status="OK"\} (\d+)', text)
        return int(match.group(1)) if match else 0

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


class FloorProcess:
    """`serving_floor.py --kind=...` in its own process: the bare framework handler."""

    def __init__(self, kind: str, hop: bool):
        self.grpc_port = self.rest_port = free_port()
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_floor.py")
        argv = [sys.executable, script, f"--kind={kind}", f"--port={self.rest_port}", f"--hop_to_thread={hop}"]
        self.process = subprocess.Popen(argv,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the bare {kind} server did not come up")

    def ok_requests(self) -> int:
        return 0  # answers every request with its fixed response

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def load_average() -> list:
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    value, unit = float(match.group(1)), match.group(2)
    return round(value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 3)


def run_wrk(server: ServerProcess, body_file: str, connections: int, seconds: int) -> dict:
    script = body_file + ".lua"
    with open(script, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = io.open("{body_file}"):read("*a")\n'
                'wrk.headers["Content-Type"] = "application/json"\n')
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/small:predict"
    ok_before, cpu_before = server.ok_requests(), cpu_seconds(server.process.pid)
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server.process.pid) - cpu_before
    ok = server.ok_requests() - ok_before
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "connections": connections, "requests": total, "ok": ok,
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _wrk_ms(out, "50"), "p99_ms": _wrk_ms(out, "99"),
        "server_cpu_us_per_request": round(cpu / max(total, 1) * 1e6, 1),
    }


def run_h2load(server: ServerProcess, frame_file: str, streams: int, seconds: int) -> dict:
    log = f"{frame_file}.{server.grpc_port}.{streams}.log"  # one log per run: h2load appends
    url = f"http://127.0.0.1:{server.grpc_port}/tensorflow.serving.PredictionService/Predict"
    ok_before, cpu_before = server.ok_requests(), cpu_seconds(server.process.pid)
    clients = min(streams, 4)
    subprocess.run(["h2load", "-c", str(clients), "-m", str(max(1, streams // clients)), "-D", str(seconds),
                    "-d", frame_file, "-H", "content-type: application/grpc", "-H", "te: trailers",
                    f"--log-file={log}", url], capture_output=True, text=True, check=True)
    cpu = cpu_seconds(server.process.pid) - cpu_before
    ok = server.ok_requests() - ok_before
    rows = np.loadtxt(log, ndmin=2)  # start (us since epoch), status, elapsed (us)
    elapsed_s = (rows[:, 0].max() + rows[:, 2].max() - rows[:, 0].min()) / 1e6
    return {
        "streams": streams, "requests": len(rows), "ok": ok,
        "requests_per_second": round(len(rows) / elapsed_s, 1),
        "p50_ms": round(float(np.percentile(rows[:, 2], 50)) / 1e3, 3),
        "p99_ms": round(float(np.percentile(rows[:, 2], 99)) / 1e3, 3),
        "server_cpu_us_per_request": round(cpu / max(len(rows), 1) * 1e6, 1),
    }


def main(argv):
    del argv
    for tool in ("wrk", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: apt-get install -y wrk nghttp2-client")
    root = tempfile.mkdtemp(prefix="rnnzoo-serving-bench-")
    module = Small()
    base = os.path.join(root, "small")
    tf.saved_model.save(module, os.path.join(base, "1"), signatures={"serving_default": module.serve})
    x = np.random.default_rng(1).normal(size=(1, 16)).astype(np.float32)
    body_file = os.path.join(root, "body.json")
    with open(body_file, "w") as f:
        json.dump({"instances": x.tolist()}, f)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "small"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    frame_file = os.path.join(root, "predict.grpc")
    with open(frame_file, "wb") as f:
        payload = request.SerializeToString()
        f.write(struct.pack(">BI", 0, len(payload)) + payload)
    batching_file = os.path.join(root, "batching.config")
    with open(batching_file, "w") as f:
        f.write(f"max_batch_size {{ value: {_BATCH} }} batch_timeout_micros {{ value: 1000 }} "
                "num_batch_threads { value: 2 } max_enqueued_batches { value: 100 }\n")
    monitoring_file = os.path.join(root, "monitoring.config")
    with open(monitoring_file, "w") as f:
        f.write('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')

    seconds, connections = _SECONDS.value, _CONNECTIONS.value
    report = {
        "benchmark": "serving",
        "machine": machine_description(),
        "load_average_1_5_15_min": {"start": load_average()},
        "load_generators": {"rest": "wrk -t1", "grpc": "h2load (prebuilt gRPC frames)"},
        "seconds_per_configuration": seconds,
        "batching_parameters": open(batching_file).read().strip(),
        "in_process": in_process(base, x, min(seconds, 5)),
    }
    for batching in (False, True):
        key = "batching" if batching else "no_batching"
        server = ServerProcess(base, batching_file if batching else None, monitoring_file)
        try:
            run_wrk(server, body_file, connections, 2)  # warm-up
            report[f"rest_{key}"] = [run_wrk(server, body_file, c, seconds) for c in (1, connections)]
            report[f"grpc_{key}"] = [run_h2load(server, frame_file, s, seconds) for s in (1, connections)]
        finally:
            server.stop()
    for hop, suffix in ((False, ""), (True, "_with_thread_hop")):
        floor = FloorProcess("rest", hop)
        try:
            run_wrk(floor, body_file, connections, 2)  # warm-up
            report[f"floor_bare_aiohttp{suffix}"] = run_wrk(floor, body_file, connections, seconds)
        finally:
            floor.stop()
        floor = FloorProcess("grpc", hop)
        try:
            report[f"floor_bare_grpc_aio{suffix}"] = run_h2load(floor, frame_file, connections, seconds)
        finally:
            floor.stop()
    report["load_average_1_5_15_min"]["end"] = load_average()
    one_row = report["in_process"]["one_row"]
    low_rest, high_rest = report["rest_no_batching"][0], report["rest_batching"][1]
    low_grpc = report["grpc_no_batching"][0]
    report["ratios"] = {
        "rest_batching_rps_vs_in_process_one_row_calls": round(
            high_rest["requests_per_second"] / one_row["calls_per_second"], 3),
        "grpc_batching_rps_vs_in_process_one_row_calls": round(
            report["grpc_batching"][1]["requests_per_second"] / one_row["calls_per_second"], 3),
        "rest_p50_overhead_ms_1_connection": round(low_rest["p50_ms"] - one_row["p50_ms"], 3),
        "grpc_p50_overhead_ms_1_stream": round(low_grpc["p50_ms"] - one_row["p50_ms"], 3),
        "rest_batching_server_cpu_us_per_request": high_rest["server_cpu_us_per_request"],
        "grpc_batching_server_cpu_us_per_request": report["grpc_batching"][1]["server_cpu_us_per_request"],
        "rest_batching_server_cpu_over_bare_aiohttp": round(
            high_rest["server_cpu_us_per_request"] / report["floor_bare_aiohttp"]["server_cpu_us_per_request"], 2),
        "grpc_batching_server_cpu_over_bare_grpc_aio": round(
            report["grpc_batching"][1]["server_cpu_us_per_request"]
            / report["floor_bare_grpc_aio"]["server_cpu_us_per_request"], 2),
    }
    report["targets"] = {
        "rest_batching_rps_at_least_2x_in_process_one_row": report["ratios"]["rest_batching_rps_vs_in_process_one_row_calls"] >= 2,
        "rest_server_cpu_at_most_200_us": high_rest["server_cpu_us_per_request"] <= 200,
        "grpc_server_cpu_at_most_300_us": report["grpc_batching"][1]["server_cpu_us_per_request"] <= 300,
        "p50_overhead_at_most_1_ms": max(report["ratios"]["rest_p50_overhead_ms_1_connection"],
                                         report["ratios"]["grpc_p50_overhead_ms_1_stream"]) <= 1.0,
    }
    write_json(report, _OUTPUT.value, indent=1)


if __name__ == "__main__":
    app.run(main)
