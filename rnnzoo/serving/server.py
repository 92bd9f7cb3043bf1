"""`ModelServer`: the manager, the gRPC and REST front ends and the polling threads together.

`ServerOptions` mirrors `tensorflow_model_server`'s flags; `rnnzoo-serve` maps its absl flags
onto it one to one. Ports may be 0 to bind a free port (the bound ports are `grpc_port` and
`rest_port`); `rest_api_port=None` serves gRPC only. Both front ends run on one asyncio loop
(`runtime.py`); signatures run on its model pool.
"""

import asyncio
import dataclasses
import logging
import os
import threading

from rnnzoo.serving import config as config_lib
from rnnzoo.serving.grpc_api import GrpcFrontEnd
from rnnzoo.serving.grpc_options import grpc_server_options
from rnnzoo.serving.manager import ModelManager
from rnnzoo.serving.metrics import ServingMetrics
from rnnzoo.serving.rest_api import RestApi
from rnnzoo.serving.rest_server import RestFrontEnd
from rnnzoo.serving.runtime import ServingRuntime
from rnnzoo.serving.service import RequestPolicy, ServingHandlers

_log = logging.getLogger("rnnzoo.serving")


def _default_threads() -> int:
    return max(64, 4 * (os.cpu_count() or 1))


@dataclasses.dataclass
class ServerOptions:
    """tensorflow_model_server's flags (same names; where a default differs docs/serving.md says why)."""

    port: int = 8500
    grpc_socket_path: str = ""
    rest_api_port: int | None = 8501
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = 0
    file_system_poll_wait_seconds: float = 1
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    enable_batching: bool = False
    batching_parameters_file: str = ""
    monitoring_config_file: str = ""
    ssl_config_file: str = ""
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = 0  # 0: max(64, 4 * cores)
    rest_api_num_threads: int = 0  # 0: max(64, 4 * cores)
    rest_api_timeout_in_ms: int = 30000
    enable_signature_method_name_check: bool = False
    enable_serialization_as_tensor_content: bool = False
    # rnnzoo's own bounds (TF Serving has no such flags)
    max_request_elements: int = config_lib.DEFAULT_MAX_REQUEST_ELEMENTS
    rest_api_max_body_bytes: int = 256 * 2**20
    rest_api_max_connections: int = 1000
    host: str = "0.0.0.0"
    # not a flag: collect and freeze the heap after models load or unload (`heap.py`); tests
    # that start many servers in one process turn it off
    settle_heap: bool = True

    def model_server_config(self) -> config_lib.ModelServerConfig:
        if self.model_config_file:
            if self.model_base_path:
                _log.warning("--model_config_file is set, so --model_base_path is ignored (as TF Serving does)")
            return config_lib.read_model_server_config(self.model_config_file)
        if not self.model_base_path:
            raise ValueError(
                "no model to serve: pass --model_base_path=<dir holding <version>/saved_model.pb> "
                "(with --model_name) or --model_config_file"
            )
        return config_lib.single_model_config(self.model_name, os.path.abspath(self.model_base_path))

    def batching_options(self):
        if self.batching_parameters_file and not self.enable_batching:
            raise ValueError("--batching_parameters_file is set but batching is off; add --enable_batching")
        return config_lib.read_batching_parameters(self.batching_parameters_file) if self.enable_batching else None

    def validate(self) -> None:
        for name in ("max_request_elements", "rest_api_max_body_bytes", "rest_api_max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} is {getattr(self, name)}; it must be >= 1")
        for name in ("max_num_load_retries", "load_retry_interval_micros", "grpc_max_threads", "rest_api_num_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} is {getattr(self, name)}; it must be >= 0")
        if self.rest_api_timeout_in_ms <= 0:
            raise ValueError(f"--rest_api_timeout_in_ms is {self.rest_api_timeout_in_ms}; it must be > 0")


class ModelServer:
    """A running TF-Serving-compatible server.

    Construction loads the configured models (blocking, as TF Serving does before it serves),
    then `start()` opens the ports. `stop(grace)` refuses new requests, lets in-flight ones
    finish, and unloads the models.
    """

    def __init__(self, options: ServerOptions):
        options.validate()
        self.options = options
        self.metrics = ServingMetrics()
        batching = options.batching_options()
        metrics_path = config_lib.read_metrics_path(options.monitoring_config_file)
        ssl_config = config_lib.read_ssl_config(options.ssl_config_file)
        channel_options = grpc_server_options(options.grpc_channel_arguments)
        model_config = options.model_server_config()
        grpc_calls = options.grpc_max_threads or _default_threads()
        rest_calls = options.rest_api_num_threads or _default_threads()
        self.runtime = ServingRuntime(model_threads=grpc_calls + rest_calls)
        self.manager = ModelManager(
            batching=batching, metrics=self.metrics, runtime=self.runtime,
            max_load_retries=options.max_num_load_retries,
            load_retry_interval_s=options.load_retry_interval_micros / 1e6,
            settle_heap=options.settle_heap,
        )
        try:
            self.manager.set_config(model_config)
            policy = RequestPolicy(
                max_request_elements=options.max_request_elements,
                tensor_content=options.enable_serialization_as_tensor_content,
                method_name_check=options.enable_signature_method_name_check,
            )
            self.handlers = ServingHandlers(self.manager, self.metrics, self.runtime, policy)
            self._grpc = self.runtime.run(self._make_grpc(channel_options, grpc_calls, ssl_config))
            self._rest = None
            if options.rest_api_port is not None:
                self._rest = RestFrontEnd(
                    RestApi(self.handlers, metrics_path), options.host, options.rest_api_port,
                    max_requests=rest_calls, max_connections=options.rest_api_max_connections,
                    max_body_bytes=options.rest_api_max_body_bytes,
                    timeout_s=options.rest_api_timeout_in_ms / 1000,
                )
        except BaseException:
            self.manager.close()
            self.runtime.close()
            raise
        self._config_text = self._read_config_text()
        self._config_poller = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    async def _make_grpc(self, channel_options, max_calls, ssl_config):
        return GrpcFrontEnd(
            self.handlers, f"{self.options.host}:{self.options.port}", channel_options, max_calls,
            ssl_config=ssl_config, socket_path=self.options.grpc_socket_path,
        )

    @property
    def grpc_port(self) -> int:
        return self._grpc.port

    @property
    def rest_port(self) -> int | None:
        return None if self._rest is None else self._rest.port

    def start(self) -> "ModelServer":
        self.runtime.run(self._grpc.start())
        _log.info("Running gRPC ModelServer at %s:%d ...", self.options.host, self.grpc_port)
        if self._rest is not None:
            self.runtime.run(self._rest.start())
            _log.info("Exporting HTTP/REST API at:%s:%d ...", self.options.host, self.rest_port)
        self.manager.start_polling(self.options.file_system_poll_wait_seconds)
        self._start_config_polling(self.options.model_config_file_poll_wait_seconds)
        return self

    # ---- --model_config_file_poll_wait_seconds ---------------------------------------------
    def _read_config_text(self) -> str | None:
        if not self.options.model_config_file:
            return None
        with open(self.options.model_config_file, encoding="utf-8") as f:
            return f.read()

    def reload_config_file(self) -> bool:
        """Re-read --model_config_file and apply it if it changed; True when a new config was applied.

        A file that no longer parses, or a config the manager refuses, is logged and the served set
        stays as it was (the next change of the file is tried again).
        """
        try:
            text = self._read_config_text()
            if text is None or text == self._config_text:
                return False
            self._config_text = text
            self.manager.set_config(config_lib.read_model_server_config(self.options.model_config_file))
        except Exception as error:  # keep serving the current set
            _log.error("Reloading --model_config_file failed; still serving the previous config: %s", error)
            return False
        _log.info("Applied the changed --model_config_file")
        return True

    def _start_config_polling(self, interval_seconds: float) -> None:
        if interval_seconds <= 0 or not self.options.model_config_file:
            return

        def loop():
            while not self._stopping.wait(interval_seconds):
                self.reload_config_file()

        self._config_poller = threading.Thread(target=loop, name="config-poll", daemon=True)
        self._config_poller.start()

    def stop(self, grace: float = 10.0) -> None:
        """Graceful shutdown: no new requests, in-flight ones finish (up to `grace` s), unload."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self._stopping.set()
            if self._config_poller is not None:
                self._config_poller.join()

            async def stop_front_ends():
                front_ends = [self._grpc] + ([self._rest] if self._rest is not None else [])
                await asyncio.gather(*(front_end.stop(grace) for front_end in front_ends))

            self.runtime.run(stop_front_ends())
            self.manager.close()
            self.runtime.close()
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop` has finished (or `timeout` passes)."""
        return self._stopped.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
