"""Serving errors carrying TensorFlow Serving's canonical status codes.

Every failure a request can meet is raised as a `ServingError`; the gRPC layer aborts the call
with its `code` and the REST layer answers `{"error": message}` with `http_status`, the mapping
TensorFlow Serving's HTTP server uses (`ToHTTPStatusCode` in model_servers/http_server.cc).
"""

import grpc

# TensorFlow Serving's gRPC-code -> HTTP-status table.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failure with a canonical status code and a message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 500)

    @property
    def code_name(self) -> str:
        """The status name as TF Serving prints it, e.g. ``INVALID_ARGUMENT``."""
        return self.code.name

    @property
    def code_number(self) -> int:
        return self.code.value[0]


def code_from_number(number: int) -> grpc.StatusCode:
    """The `grpc.StatusCode` with canonical number `number` (UNKNOWN if out of range)."""
    return _BY_NUMBER.get(int(number), grpc.StatusCode.UNKNOWN)


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unavailable(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def _op_error_text(message: str) -> str:
    """An op error's own text, without the Python traceback TensorFlow adds for graph errors.

    A failure inside a `tf.function` reads "Graph execution error: Detected at
    node ... defined at (most recent call last): File ... <the op's message>
    [[{{node ...}}]]"; clients get the op's message, as TF Serving sends it.
    """
    lines = [line for line in message.splitlines() if line.strip()]
    kept = [
        line.strip()
        for line in lines
        if not line.startswith(("Graph execution error", "Detected at node", " "))
        and not line.strip().startswith("[[{{node")
    ]
    return " ".join(kept) or (lines[0] if lines else "")


def from_exception(error: BaseException) -> ServingError:
    """Map any exception raised while serving onto a `ServingError` without a traceback.

    TensorFlow's `OpError`s already carry canonical codes (an op rejecting its input is
    INVALID_ARGUMENT); Python-side argument errors are INVALID_ARGUMENT; anything else is
    INTERNAL with the exception's one-line message.
    """
    if isinstance(error, ServingError):
        return error
    error_code = getattr(error, "error_code", None)
    if error_code is not None and hasattr(error, "message"):
        return ServingError(code_from_number(error_code), _op_error_text(str(error.message)))
    if isinstance(error, (ValueError, TypeError)):
        return invalid_argument(str(error).split("\n")[0])
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}".split("\n")[0])
