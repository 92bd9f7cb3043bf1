"""The Python floor of a request: bare aiohttp and grpc.aio servers answering a fixed response.

`benchmarks/serving.py` runs this as its own process next to rnnzoo-serve and loads it with the
same `wrk` / `h2load` commands, so the report shows how much of rnnzoo-serve's CPU per request
is the framework's (HTTP parsing, HTTP/2 and protobuf framing, the event loop) and how much is
the server's own work (routing, decoding, checking, the model call, encoding, metrics).

* ``--kind=rest``: aiohttp's low-level `web.Server` (what rnnzoo-serve uses), no access log,
  answering every request with the JSON body rnnzoo-serve returns for the benchmark's request
  after reading the request body;
* ``--kind=grpc``: a `grpc.aio` PredictionService whose Predict returns a prebuilt
  PredictResponse (the request is still deserialised by grpc, the response serialised).

With ``--hop_to_thread`` each handler also awaits one no-op call on a worker thread
(`run_in_executor`), the least a server that runs models off the event loop does per request (or
per batch). Both print ``ready`` once listening and run until SIGTERM.
"""

import asyncio
import signal

from absl import app, flags

_KIND = flags.DEFINE_enum("kind", "rest", ["rest", "grpc"], "Which bare server to run.")
_PORT = flags.DEFINE_integer("port", 0, "Port to listen on (127.0.0.1).")
_HOP = flags.DEFINE_bool("hop_to_thread", False, "Await one no-op call on a worker thread per request.")

# rnnzoo-serve's answer to the benchmark's one-row request (16 float32 outputs).
REST_BODY = (b'{"predictions": [[' + b", ".join([b"0.123456789"] * 16) + b"]]}")


async def _hop(hop: bool) -> None:
    if hop:
        await asyncio.get_running_loop().run_in_executor(None, int)


async def _rest(port: int, stop: asyncio.Event, hop: bool) -> None:
    from aiohttp import web

    async def handle(request):
        await request.read()
        await _hop(hop)
        return web.Response(body=REST_BODY, headers={"Content-Type": "application/json"})

    server = web.Server(handle, access_log=None)
    listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    await stop.wait()
    listener.close()
    await server.shutdown(1)


async def _grpc(port: int, stop: asyncio.Event, hop: bool) -> None:
    import grpc
    import numpy as np
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    response = predict_pb2.PredictResponse()
    response.model_spec.name = "small"
    response.model_spec.version.value = 1
    response.model_spec.signature_name = "serving_default"
    output = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    output.tensor_shape.dim.add(size=1)
    output.tensor_shape.dim.add(size=16)
    output.float_val.extend(np.linspace(-1, 1, 16, dtype=np.float32).tolist())
    response.outputs["y"].CopyFrom(output)

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request, context):
            await _hop(hop)
            return response

    server = grpc.aio.server()
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await stop.wait()
    await server.stop(1)


async def _main(kind: str, port: int, hop: bool) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await (_rest if kind == "rest" else _grpc)(port, stop, hop)


def main(argv):
    del argv
    asyncio.run(_main(_KIND.value, _PORT.value, _HOP.value))


if __name__ == "__main__":
    app.run(main)
