"""TensorFlow-Serving-compatible serving: an embedded gRPC + REST server and a client.

`ModelServer`/`ServerOptions` run the server in-process (the `rnnzoo-serve` binary wraps them);
`Client` talks to it, or to a stock `tensorflow_model_server`, over gRPC. Both modules are
imported on first use, so `import rnnzoo.serving` stays cheap.
"""

import importlib

_EXPORTS = {
    "ModelServer": "rnnzoo.serving.server",
    "ServerOptions": "rnnzoo.serving.server",
    "Client": "rnnzoo.serving.client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rnnzoo.serving' has no attribute {name!r}")
