"""gRPC front end on grpc.aio: tensorflow.serving.PredictionService, ModelService, grpc.health.v1.

Every handler turns a `ServingError` into the call's status and message; an unexpected exception
becomes INTERNAL with a one-line message (the traceback stays in the server log). Calls beyond
`max_concurrent_rpcs` are refused with RESOURCE_EXHAUSTED instead of queueing without bound.
The port may use TLS (`--ssl_config_file`) and the same services may also listen on a Unix
socket (`--grpc_socket_path`).
"""

import functools
import logging
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from rnnzoo.serving import errors

_log = logging.getLogger("rnnzoo.serving")

SERVICE_NAMES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
# grpc reports "no deadline" as a remaining time of centuries; anything beyond a year is none.
_NO_DEADLINE_SECONDS = 365 * 24 * 3600


def _deadline(context):
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_SECONDS:
        return None
    return time.monotonic() + remaining


def _rpc(method):
    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except errors.ServingError as error:
            failure = error
        except Exception as error:  # never let a traceback reach the client
            _log.exception("unexpected error in %s", method.__name__)
            failure = errors.from_exception(error)
        await context.abort(failure.code, failure.message)

    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, handlers):
        self._handlers = handlers

    @_rpc
    async def Predict(self, request, context):
        return await self._handlers.predict(request, "GRPC", _deadline(context))

    @_rpc
    async def Classify(self, request, context):
        return await self._handlers.classify(request, "GRPC")

    @_rpc
    async def Regress(self, request, context):
        return await self._handlers.regress(request, "GRPC")

    @_rpc
    async def MultiInference(self, request, context):
        return await self._handlers.multi_inference(request, "GRPC")

    @_rpc
    async def GetModelMetadata(self, request, context):
        return self._handlers.get_model_metadata(request)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, handlers):
        self._handlers = handlers

    @_rpc
    async def GetModelStatus(self, request, context):
        return self._handlers.get_model_status(request)

    @_rpc
    async def HandleReloadConfigRequest(self, request, context):
        return await self._handlers.reload_config(request)


def server_credentials(ssl_config):
    """grpc credentials of an SSLConfig (PEM key and certificate, optional client verification)."""
    return grpc.ssl_server_credentials(
        [(ssl_config.server_key.encode(), ssl_config.server_cert.encode())],
        root_certificates=ssl_config.custom_ca.encode() or None,
        require_client_auth=ssl_config.client_verify,
    )


class GrpcFrontEnd:
    """The grpc.aio server; construct and use it on the serving loop.

    Args:
      handlers: `ServingHandlers`.
      address: ``host:port`` (port 0 picks a free port).
      options: gRPC server options (`grpc_options.grpc_server_options`).
      max_concurrent_rpcs: calls served at once; more are refused with RESOURCE_EXHAUSTED.
      ssl_config: an SSLConfig for TLS, or None for plaintext.
      socket_path: also listen on this Unix socket ("" for none).
    """

    def __init__(self, handlers, address: str, options: list, max_concurrent_rpcs: int,
                 ssl_config=None, socket_path: str = ""):
        self.server = grpc.aio.server(options=options, maximum_concurrent_rpcs=max_concurrent_rpcs)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(handlers), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(handlers), self.server)
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        credentials = None if ssl_config is None else server_credentials(ssl_config)
        self.port = self._bind(address, credentials)
        if socket_path:
            self._bind(f"unix:{socket_path}", credentials)

    def _bind(self, address: str, credentials) -> int:
        try:
            if credentials is None:
                port = self.server.add_insecure_port(address)
            else:
                port = self.server.add_secure_port(address, credentials)
        except RuntimeError as error:
            port, reason = 0, str(error)
        else:
            reason = "address in use or not allowed"
        if port == 0 and not address.startswith("unix:"):
            raise OSError(f"could not bind the gRPC port at {address} ({reason}); choose a free --port")
        if port == 0:
            raise OSError(f"could not listen on the Unix socket {address[5:]} ({reason}); check --grpc_socket_path")
        return port

    async def start(self) -> None:
        await self.server.start()
        for name in ("",) + SERVICE_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
