"""The REST port under hostile clients: bounded bodies, connections and time (issue 14, 5)."""

import logging
import socket
import threading
import time

import numpy as np
import pytest
import requests
from conftest import WEIGHTS, install, start_server

X = np.array([[1.0, 2.0, 3.0]], np.float32)


@pytest.fixture(scope="module")
def guarded_server(toy_versions, tmp_path_factory):
    """A server with small REST limits: 4 connections, 1 KiB bodies, 1 s per request."""
    base = str(tmp_path_factory.mktemp("guarded"))
    install(toy_versions[1], base, 1)
    server = start_server(model_name="toy", model_base_path=base, rest_api_max_connections=4,
                          rest_api_max_body_bytes=1024, rest_api_timeout_in_ms=1000)
    yield server
    server.stop()


def raw(server, data: bytes, timeout: float = 20.0) -> bytes:
    """Send `data` on a fresh connection; everything the server answers until it closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock) -> bytes:
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
    except (ConnectionResetError, socket.timeout):
        pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def post_head(length: str, path: str = "/v1/models/toy:predict") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else 0


def url(server, path="/v1/models/toy:predict"):
    return f"http://127.0.0.1:{server.rest_port}{path}"


def test_deeply_nested_json_is_a_400_without_a_traceback(toy_server):
    body = '{"instances": ' + "[" * 200_000 + "]" * 200_000 + "}"
    response = requests.post(url(toy_server), data=body, timeout=60)
    assert response.status_code == 400
    assert "Traceback" not in response.text and "nest" in response.json()["error"]
    deep_but_small = '{"instances": ' + "[" * 500 + "1" + "]" * 500 + "}"
    response = requests.post(url(toy_server), data=deep_but_small, timeout=60)
    assert response.status_code == 400


def test_an_oversized_content_length_is_413_before_any_body_is_read(guarded_server):
    start = time.monotonic()
    reply = raw(guarded_server, post_head(str(50 * 2**30)))
    assert status_of(reply) == 413 and b"--rest_api_max_body_bytes" in reply
    assert time.monotonic() - start < 10


def test_an_oversized_chunked_body_is_413(guarded_server):
    head = b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"a" * 800
    reply = raw(guarded_server, head + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2 + b"0\r\n\r\n")
    assert status_of(reply) == 413


@pytest.mark.parametrize("length", ["-5", "abc", "1e3"])
def test_an_invalid_content_length_is_400(guarded_server, length):
    reply = raw(guarded_server, post_head(length))
    assert status_of(reply) == 400


def test_a_client_that_never_finishes_its_body_is_timed_out(guarded_server):
    start = time.monotonic()
    reply = raw(guarded_server, post_head("100") + b'{"instances"')
    assert status_of(reply) in (0, 408)  # closed, or told it took too long
    assert time.monotonic() - start < 10  # --rest_api_timeout_in_ms=1000, not a minute


def test_a_client_that_never_finishes_its_headers_is_timed_out(guarded_server):
    start = time.monotonic()
    reply = raw(guarded_server, b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n")
    assert status_of(reply) in (0, 408)
    assert time.monotonic() - start < 10


def held_connection(server):
    """A connection the server has answered once (so it counts it) and that stays open, idle.

    Connections the previous tests closed may still count for a moment, so a 503 is retried
    (bounded by 20 s).
    """
    deadline = time.monotonic() + 20
    while True:
        sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=20)
        sock.sendall(b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n\r\n")
        status = status_of(read_until_closed(sock))
        if status == 200:
            return sock
        sock.close()
        assert status == 503 and time.monotonic() < deadline, status


def test_connections_beyond_the_limit_are_refused_and_capacity_comes_back(guarded_server):
    idle = []
    try:
        idle = [held_connection(guarded_server) for _ in range(4)]
        reply = raw(guarded_server, post_head("2") + b"{}")
        assert status_of(reply) in (0, 503)
    finally:
        for sock in idle:
            sock.close()
    response = held_connection(guarded_server)  # closed connections free their slots
    response.close()
    answer = requests.post(url(guarded_server), json={"instances": X.tolist()}, timeout=20)
    np.testing.assert_allclose(answer.json()["predictions"][0]["y"], (X @ WEIGHTS + 1.0)[0], rtol=1e-6)


def test_half_sent_requests_do_not_cost_a_thread_each(toy_server):
    before = threading.active_count()
    socks = [socket.create_connection(("127.0.0.1", toy_server.rest_port), timeout=20) for _ in range(60)]
    try:
        for sock in socks:
            sock.sendall(post_head("100") + b'{"inst')
        # a full request after the 60 half-sent ones is answered, so all 60 were accepted
        response = requests.post(url(toy_server), json={"instances": X.tolist()}, timeout=30)
        assert response.status_code == 200
        assert threading.active_count() - before < 10
    finally:
        for sock in socks:
            sock.close()


def test_a_client_disconnecting_mid_request_logs_no_traceback(toy_server, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", toy_server.rest_port), timeout=20) as sock:
            sock.sendall(post_head("1000") + b'{"instances": [[1')
    response = requests.post(url(toy_server), json={"instances": X.tolist()}, timeout=30)  # served after them
    assert response.status_code == 200
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    assert "Traceback" not in capfd.readouterr().err


def test_an_unknown_v1_path_is_400_malformed_request(toy_server):
    response = requests.get(url(toy_server, "/v1/nothing/here"), timeout=30)
    assert response.status_code == 400 and "Malformed request" in response.json()["error"]
    response = requests.post(url(toy_server, "/v1/models/toy:explain"), data="{}", timeout=30)
    assert response.status_code == 400 and "Malformed request" in response.json()["error"]
