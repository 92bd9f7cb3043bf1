"""rnnzoo-serve: a TensorFlow-Serving-compatible model server (gRPC + REST).

Takes `tensorflow_model_server`'s flag names, so a deployment moves between the two by
changing the binary only:

  rnnzoo-serve --port=8500 --rest_api_port=8501 \
      --model_name=char_lm --model_base_path=/models/char_lm

SIGTERM (or Ctrl-C) shuts down cleanly: new requests are refused, in-flight ones finish.
"""

import signal
import sys
import threading

from absl import app, flags, logging

_PORT = flags.DEFINE_integer("port", 8500, "Port to listen on for the gRPC API.")
_REST_API_PORT = flags.DEFINE_integer(
    "rest_api_port", 8501, "Port to listen on for the HTTP/REST API. 0 disables the REST API."
)
_MODEL_NAME = flags.DEFINE_string("model_name", "default", "Name of the model (with --model_base_path).")
_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", "", "Directory holding <version>/saved_model.pb for --model_name."
)
_MODEL_CONFIG_FILE = flags.DEFINE_string(
    "model_config_file", "", "ModelServerConfig text proto with several models, version policies and labels."
)
_POLL = flags.DEFINE_float(
    "file_system_poll_wait_seconds", 1,
    "Seconds between file-system polls for new or removed versions; 0 polls only at start-up.",
)
_ENABLE_BATCHING = flags.DEFINE_bool("enable_batching", False, "Batch concurrent Predict calls.")
_BATCHING_PARAMETERS_FILE = flags.DEFINE_string(
    "batching_parameters_file", "", "BatchingParameters text proto (with --enable_batching)."
)
_MONITORING_CONFIG_FILE = flags.DEFINE_string(
    "monitoring_config_file", "", "MonitoringConfig text proto enabling Prometheus metrics on the REST port."
)
_REST_API_TIMEOUT_IN_MS = flags.DEFINE_integer(
    "rest_api_timeout_in_ms", 30000, "Deadline of a REST request waiting for a batch."
)
_GRPC_MAX_THREADS = flags.DEFINE_integer(
    "grpc_max_threads", 0, "Threads serving gRPC calls; 0 means max(64, 4 * cores)."
)
_SHUTDOWN_GRACE_SECONDS = flags.DEFINE_float(
    "shutdown_grace_seconds", 30, "On SIGTERM, how long in-flight requests may take to finish."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    from rnnzoo.serving import ModelServer, ServerOptions

    options = ServerOptions(
        port=_PORT.value,
        rest_api_port=_REST_API_PORT.value or None,
        model_name=_MODEL_NAME.value,
        model_base_path=_MODEL_BASE_PATH.value,
        model_config_file=_MODEL_CONFIG_FILE.value,
        file_system_poll_wait_seconds=_POLL.value,
        enable_batching=_ENABLE_BATCHING.value,
        batching_parameters_file=_BATCHING_PARAMETERS_FILE.value,
        monitoring_config_file=_MONITORING_CONFIG_FILE.value,
        rest_api_timeout_in_ms=_REST_API_TIMEOUT_IN_MS.value,
        grpc_max_threads=_GRPC_MAX_THREADS.value,
    )
    try:
        server = ModelServer(options)
    except (ValueError, OSError) as error:
        sys.exit(f"rnnzoo-serve: {error}")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    logging.info("Running gRPC ModelServer at 0.0.0.0:%d", server.grpc_port)
    if server.rest_port is not None:
        logging.info("Exporting HTTP/REST API at:0.0.0.0:%d", server.rest_port)
    while not stop.wait(1.0):
        pass
    logging.info("Shutting down: refusing new requests, finishing in-flight ones")
    server.stop(_SHUTDOWN_GRACE_SECONDS.value)
    logging.info("Server stopped")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
