"""`ModelServer`: the manager, the gRPC and REST front ends and file-system polling together.

`ServerOptions` mirrors `tensorflow_model_server`'s flags; `rnnzoo-serve` maps its absl flags
onto it one to one. Ports may be 0 to bind a free port (the bound ports are `grpc_port` and
`rest_port`); `rest_api_port=None` serves gRPC only.
"""

import dataclasses
import logging
import os
import threading

from rnnzoo.serving import config as config_lib
from rnnzoo.serving.grpc_api import GrpcFrontEnd
from rnnzoo.serving.manager import ModelManager
from rnnzoo.serving.metrics import ServingMetrics
from rnnzoo.serving.rest_api import RestApi, RestFrontEnd
from rnnzoo.serving.service import ServingHandlers

_log = logging.getLogger("rnnzoo.serving")


@dataclasses.dataclass
class ServerOptions:
    """tensorflow_model_server's flags (same names and defaults)."""

    port: int = 8500
    rest_api_port: int | None = 8501
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    file_system_poll_wait_seconds: float = 1
    enable_batching: bool = False
    batching_parameters_file: str = ""
    monitoring_config_file: str = ""
    rest_api_timeout_in_ms: int = 30000
    grpc_max_threads: int = 0  # 0: max(64, 4 * cores)
    host: str = "0.0.0.0"

    def model_server_config(self) -> config_lib.ModelServerConfig:
        if self.model_config_file:
            if self.model_base_path:
                raise ValueError("pass either --model_config_file or --model_base_path, not both")
            return config_lib.read_model_server_config(self.model_config_file)
        if not self.model_base_path:
            raise ValueError(
                "no model to serve: pass --model_base_path=<dir holding <version>/saved_model.pb> "
                "(with --model_name) or --model_config_file"
            )
        return config_lib.single_model_config(self.model_name, os.path.abspath(self.model_base_path))


class ModelServer:
    """A running TF-Serving-compatible server.

    Construction loads the configured models (blocking, as TF Serving does before it serves),
    then `start()` opens the ports. `stop(grace)` refuses new requests, lets in-flight ones
    finish, and unloads the models.
    """

    def __init__(self, options: ServerOptions):
        self.options = options
        self.metrics = ServingMetrics()
        batching = config_lib.read_batching_parameters(options.batching_parameters_file) if options.enable_batching else None
        metrics_path = config_lib.read_metrics_path(options.monitoring_config_file)
        self.manager = ModelManager(batching=batching, metrics=self.metrics)
        self.manager.set_config(options.model_server_config())
        self.handlers = ServingHandlers(self.manager, self.metrics)
        threads = options.grpc_max_threads or max(64, 4 * (os.cpu_count() or 1))
        self._grpc = GrpcFrontEnd(self.handlers, f"{options.host}:{options.port}", threads)
        self._rest = None
        if options.rest_api_port is not None:
            api = RestApi(self.handlers, metrics_path, options.rest_api_timeout_in_ms)
            self._rest = RestFrontEnd(api, options.host, options.rest_api_port)
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    @property
    def grpc_port(self) -> int:
        return self._grpc.port

    @property
    def rest_port(self) -> int | None:
        return None if self._rest is None else self._rest.port

    def start(self) -> "ModelServer":
        self._grpc.start()
        _log.info("Running gRPC ModelServer at %s:%d ...", self.options.host, self.grpc_port)
        if self._rest is not None:
            self._rest.start()
            _log.info("Exporting HTTP/REST API at:%s:%d ...", self.options.host, self.rest_port)
        self.manager.start_polling(self.options.file_system_poll_wait_seconds)
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Graceful shutdown: no new requests, in-flight ones finish (up to `grace` s), unload."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            done = self._grpc.stop(grace)
            if self._rest is not None:
                self._rest.stop(grace)
            done.wait(grace)
            self.manager.close()
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop` has finished (or `timeout` passes)."""
        return self._stopped.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
