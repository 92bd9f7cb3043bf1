"""gRPC front end: tensorflow.serving.PredictionService, ModelService and grpc.health.v1.

Every handler turns a `ServingError` into the call's status and message; an unexpected exception
becomes INTERNAL with a one-line message (the traceback stays in the server log).
"""

import functools
import logging
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from rnnzoo.serving import errors

_log = logging.getLogger("rnnzoo.serving")

# TF Serving sets no message size limit of its own (int32 max), so neither do we.
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
SERVICE_NAMES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")


def _deadline(context):
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _rpc(method):
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except errors.ServingError as error:
            context.abort(error.code, error.message)
        except Exception as error:  # never let a traceback reach the client
            _log.exception("unexpected error in %s", method.__name__)
            failure = errors.from_exception(error)
            context.abort(failure.code, failure.message)

    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, handlers):
        self._handlers = handlers

    @_rpc
    def Predict(self, request, context):
        return self._handlers.predict(request, "GRPC", _deadline(context))

    @_rpc
    def Classify(self, request, context):
        return self._handlers.classify(request, "GRPC", _deadline(context))

    @_rpc
    def Regress(self, request, context):
        return self._handlers.regress(request, "GRPC", _deadline(context))

    @_rpc
    def MultiInference(self, request, context):
        return self._handlers.multi_inference(request, "GRPC", _deadline(context))

    @_rpc
    def GetModelMetadata(self, request, context):
        return self._handlers.get_model_metadata(request)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, handlers):
        self._handlers = handlers

    @_rpc
    def GetModelStatus(self, request, context):
        return self._handlers.get_model_status(request)

    @_rpc
    def HandleReloadConfigRequest(self, request, context):
        return self._handlers.reload_config(request)


class GrpcFrontEnd:
    """The gRPC server bound to `address` (``host:port``; port 0 picks a free port)."""

    def __init__(self, handlers, address: str, max_threads: int):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_threads), options=CHANNEL_OPTIONS)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(handlers), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(handlers), self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"could not bind the gRPC port at {address}; choose a free --port")

    def start(self) -> None:
        self.server.start()
        for name in ("",) + SERVICE_NAMES:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float):
        """Refuse new calls, let in-flight ones finish within `grace` seconds; returns an Event."""
        self.health.enter_graceful_shutdown()
        return self.server.stop(grace)
