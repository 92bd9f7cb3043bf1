"""The REST port: aiohttp's HTTP/1.1 server on the serving loop, with bounds a hostile client meets.

* a body larger than `max_body_bytes` is refused with 413 before it is read (declared length) or
  as soon as it passes the limit (chunked); a malformed or negative Content-Length is a 400 from
  aiohttp's parser;
* a request must arrive and be answered within `timeout_s` (`--rest_api_timeout_in_ms`): a client
  that does not finish its headers is disconnected, one that does not finish its body gets 408,
  a request still running gets 504 DEADLINE_EXCEEDED;
* at most `max_connections` connections are open at once; further ones get 503 and are closed;
* connections cost no thread, and a client that disconnects mid-request is dropped quietly.
"""

import asyncio
import json
import logging
import socket

from aiohttp import web

from rnnzoo.serving.rest_deadlines import RestDeadlines

_log = logging.getLogger("rnnzoo.serving")


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str) -> web.Response:
    response = web.Response(status=status, body=json.dumps({"error": message}).encode(),
                            headers={"Content-Type": "application/json"})
    response.force_close()
    return response


class _Refusal(asyncio.Protocol):
    """Answers 503 on a connection beyond the limit and closes it."""

    BODY = json.dumps({"error": "too many open connections; retry later or raise --rest_api_max_connections"}).encode()

    def connection_made(self, transport):
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(self.BODY), self.BODY)
        )
        transport.close()


class RestFrontEnd:
    """The REST server; `start`/`stop` run on the serving loop.

    Args:
      api: the `rest_api.RestApi` routing requests.
      host, port: where to listen (port 0 picks a free port, bound here so `port` is known).
      max_requests: requests processed at once (`--rest_api_num_threads`); more wait their turn.
      max_connections: open connections allowed at once.
      max_body_bytes: the largest request body accepted.
      timeout_s: how long a request may take from its first byte to its answer (and how long an
        idle keep-alive connection stays open).
    """

    def __init__(self, api, host: str, port: int, max_requests: int, max_connections: int, max_body_bytes: int,
                 timeout_s: float):
        self.api = api
        self.max_requests = max_requests
        self.max_connections = max_connections
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as error:
            self._sock.close()
            raise OSError(f"could not bind the REST port at {host}:{port} ({error}); choose a free --rest_api_port") from None
        self.port = self._sock.getsockname()[1]
        self._stopping = False
        self._web = None
        self._server = None
        self._slots = None
        self._deadlines = None

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.max_requests)
        self._deadlines = RestDeadlines(asyncio.get_running_loop(), self.timeout_s)
        self._web = web.Server(self._handle, keepalive_timeout=self.timeout_s, access_log=None)
        self._server = await asyncio.get_running_loop().create_server(self._protocol, sock=self._sock, backlog=1024)

    def _protocol(self):
        if len(self._web.connections) >= self.max_connections:
            return _Refusal()
        return self._web()

    async def stop(self, grace: float) -> None:
        """Close the port, answer requests on open connections with 503, let in-flight ones finish."""
        self._stopping = True
        self._server.close()
        self._web.pre_shutdown()
        await self._web.shutdown(grace)
        await self._server.wait_closed()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._stopping:  # a keep-alive connection outliving shutdown gets a clean refusal
            return _error(503, "server is shutting down")
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            return _error(413, f"request body of {length} bytes exceeds the limit of {self.max_body_bytes} bytes; "
                               f"send less or raise --rest_api_max_body_bytes")
        deadline = self._deadlines.start()  # bounds the whole request; which phase it ends decides 408 or 504
        reading = True
        try:
            body = await self._read_body(request, length)
            reading = False
            async with self._slots:
                status, content_type, data = await self.api.handle(request.method, request.rel_url.raw_path, body)
        except asyncio.CancelledError:
            if not deadline.expired():
                raise
            if reading:
                return _error(408, f"the request body did not arrive within --rest_api_timeout_in_ms "
                                   f"({self.timeout_s * 1000:.0f} ms)")
            return _error(504, f"Deadline exceeded: the request took longer than --rest_api_timeout_in_ms "
                               f"({self.timeout_s * 1000:.0f} ms)")
        except _BodyTooLarge:
            return _error(413, f"request body exceeds the limit of {self.max_body_bytes} bytes; "
                               f"send less or raise --rest_api_max_body_bytes")
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as error:
            if not reading:
                raise
            _log.debug("REST client went away mid-request: %r", error)
            return _error(400, "incomplete request body")
        finally:
            deadline.finish()
        return web.Response(status=status, body=data, headers={"Content-Type": content_type})

    async def _read_body(self, request, length: int | None) -> bytes:
        if length is not None:
            return await request.content.readexactly(length) if length else b""
        chunks, size = [], 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BodyTooLarge()
            chunks.append(chunk)
        return b"".join(chunks)
