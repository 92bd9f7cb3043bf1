"""rnnzoo-serve: a TensorFlow-Serving-compatible model server (gRPC + REST).

Takes `tensorflow_model_server`'s flag names, so a deployment moves between the two by
changing the binary only (docs/serving.md has the table of every flag: same, differs, absent):

  rnnzoo-serve --port=8500 --rest_api_port=8501 \
      --model_name=char_lm --model_base_path=/models/char_lm

SIGTERM (or Ctrl-C) shuts down cleanly: new requests are refused, in-flight ones finish.
"""

import signal
import sys
import threading

from rnnzoo.cli.quiet import quiet_tensorflow

quiet_tensorflow()

from absl import app, flags, logging  # noqa: E402

from rnnzoo.serving.config import DEFAULT_MAX_REQUEST_ELEMENTS  # noqa: E402

_PORT = flags.DEFINE_integer("port", 8500, "Port to listen on for the gRPC API.")
_GRPC_SOCKET_PATH = flags.DEFINE_string(
    "grpc_socket_path", "", "If set, the gRPC API also listens on this UNIX socket path."
)
_REST_API_PORT = flags.DEFINE_integer(
    "rest_api_port", 8501, "Port to listen on for the HTTP/REST API. 0 disables the REST API."
)
_MODEL_NAME = flags.DEFINE_string("model_name", "default", "Name of the model (with --model_base_path).")
_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", "", "Directory holding <version>/saved_model.pb for --model_name."
)
_MODEL_CONFIG_FILE = flags.DEFINE_string(
    "model_config_file", "",
    "ModelServerConfig text proto with several models, version policies and labels "
    "(--model_name/--model_base_path are then ignored).",
)
_MODEL_CONFIG_FILE_POLL = flags.DEFINE_float(
    "model_config_file_poll_wait_seconds", 0,
    "Seconds between re-reads of --model_config_file (a changed file is applied); 0 reads it only at start-up.",
)
_POLL = flags.DEFINE_float(
    "file_system_poll_wait_seconds", 1,
    "Seconds between file-system polls for new or removed versions; 0 polls only at start-up.",
)
_MAX_NUM_LOAD_RETRIES = flags.DEFINE_integer(
    "max_num_load_retries", 5, "How often a version that failed to load is tried again."
)
_LOAD_RETRY_INTERVAL_MICROS = flags.DEFINE_integer(
    "load_retry_interval_micros", 60_000_000, "Microseconds between retries of a failed load."
)
_ENABLE_BATCHING = flags.DEFINE_bool("enable_batching", False, "Batch concurrent Predict calls.")
_BATCHING_PARAMETERS_FILE = flags.DEFINE_string(
    "batching_parameters_file", "", "BatchingParameters text proto (requires --enable_batching)."
)
_MONITORING_CONFIG_FILE = flags.DEFINE_string(
    "monitoring_config_file", "", "MonitoringConfig text proto enabling Prometheus metrics on the REST port."
)
_SSL_CONFIG_FILE = flags.DEFINE_string(
    "ssl_config_file", "", "SSLConfig text proto: TLS for the gRPC API (server key/cert, optional client verification)."
)
_GRPC_CHANNEL_ARGUMENTS = flags.DEFINE_string(
    "grpc_channel_arguments", "",
    "Comma-separated key=value gRPC server arguments, e.g. grpc.max_receive_message_length=67108864.",
)
_GRPC_MAX_THREADS = flags.DEFINE_integer(
    "grpc_max_threads", 0, "gRPC calls served at once (more get RESOURCE_EXHAUSTED); 0 means max(64, 4 * cores)."
)
_REST_API_NUM_THREADS = flags.DEFINE_integer(
    "rest_api_num_threads", 0, "REST requests processed at once (more wait); 0 means max(64, 4 * cores)."
)
_REST_API_TIMEOUT_IN_MS = flags.DEFINE_integer(
    "rest_api_timeout_in_ms", 30000,
    "Time a REST request may take from its first byte to its answer (also the idle keep-alive timeout).",
)
_ENABLE_SIGNATURE_METHOD_NAME_CHECK = flags.DEFINE_bool(
    "enable_signature_method_name_check", False,
    "Require Classify/Regress signatures to carry the classify/regress method_name.",
)
_ENABLE_SERIALIZATION_AS_TENSOR_CONTENT = flags.DEFINE_bool(
    "enable_serialization_as_tensor_content", False,
    "Send gRPC Predict outputs packed in tensor_content instead of the typed *_val fields.",
)
_MAX_REQUEST_ELEMENTS = flags.DEFINE_integer(
    "max_request_elements", DEFAULT_MAX_REQUEST_ELEMENTS,
    "rnnzoo only: most tensor elements one request may carry (over all its inputs); more is INVALID_ARGUMENT.",
)
_REST_API_MAX_BODY_BYTES = flags.DEFINE_integer(
    "rest_api_max_body_bytes", 256 * 2**20, "rnnzoo only: largest REST request body; larger ones get 413."
)
_REST_API_MAX_CONNECTIONS = flags.DEFINE_integer(
    "rest_api_max_connections", 1000, "rnnzoo only: open REST connections allowed at once; more get 503."
)
_SHUTDOWN_GRACE_SECONDS = flags.DEFINE_float(
    "shutdown_grace_seconds", 30, "rnnzoo only: on SIGTERM, how long in-flight requests may take to finish."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    from rnnzoo.serving import ModelServer, ServerOptions

    options = ServerOptions(
        port=_PORT.value,
        grpc_socket_path=_GRPC_SOCKET_PATH.value,
        rest_api_port=_REST_API_PORT.value or None,
        model_name=_MODEL_NAME.value,
        model_base_path=_MODEL_BASE_PATH.value,
        model_config_file=_MODEL_CONFIG_FILE.value,
        model_config_file_poll_wait_seconds=_MODEL_CONFIG_FILE_POLL.value,
        file_system_poll_wait_seconds=_POLL.value,
        max_num_load_retries=_MAX_NUM_LOAD_RETRIES.value,
        load_retry_interval_micros=_LOAD_RETRY_INTERVAL_MICROS.value,
        enable_batching=_ENABLE_BATCHING.value,
        batching_parameters_file=_BATCHING_PARAMETERS_FILE.value,
        monitoring_config_file=_MONITORING_CONFIG_FILE.value,
        ssl_config_file=_SSL_CONFIG_FILE.value,
        grpc_channel_arguments=_GRPC_CHANNEL_ARGUMENTS.value,
        grpc_max_threads=_GRPC_MAX_THREADS.value,
        rest_api_num_threads=_REST_API_NUM_THREADS.value,
        rest_api_timeout_in_ms=_REST_API_TIMEOUT_IN_MS.value,
        enable_signature_method_name_check=_ENABLE_SIGNATURE_METHOD_NAME_CHECK.value,
        enable_serialization_as_tensor_content=_ENABLE_SERIALIZATION_AS_TENSOR_CONTENT.value,
        max_request_elements=_MAX_REQUEST_ELEMENTS.value,
        rest_api_max_body_bytes=_REST_API_MAX_BODY_BYTES.value,
        rest_api_max_connections=_REST_API_MAX_CONNECTIONS.value,
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
