"""The router against real sockets: real backend HTTP servers, a real Router, real clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvloop

from shipmate.common.waiting import poll_until
from shipmate.router.proxy import Router, parse_host
from shipmate.router.table import RouteTable

T = TypeVar("T")
HOST = "web.myapp.localhost"


# --- backends --------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real app server
    # Headers and body go out in two writes; with Nagle on, each response would wait ~40 ms
    # for a delayed ACK, which has nothing to do with the router.
    disable_nagle_algorithm = True
    server: Backend

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", self.server.name)
        self.send_header("X-Peer", str(self.client_address[1]))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/slow":
            time.sleep(float(query["d"][0]))
        if url.path == "/big":
            size = int(query["n"][0])
            self._send(200, bytes(i % 251 for i in range(size)), "application/octet-stream")
            return
        if url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        if url.path == "/eof":
            # No Content-Length, no chunking: the body ends when the connection closes.
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"until the end")
            self.close_connection = True
            return
        info = {"backend": self.server.name, "path": self.path, "headers": dict(self.headers)}
        self._send(200, json.dumps(info).encode())

    do_HEAD = do_GET

    def do_POST(self) -> None:
        body = self._body()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", self.server.name)
        self.send_header("X-Request-Chunked", self.headers.get("Transfer-Encoding", "no"))
        self.send_header("X-Peer", str(self.client_address[1]))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST


class Backend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, idle_timeout: float | None = None) -> None:
        handler = type("H", (Handler,), {"timeout": idle_timeout})
        super().__init__(("127.0.0.1", 0), handler)
        self.name = name
        # A short poll interval makes shutdown() quick.
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the router in a thread of its own (as it runs beside the runtime in the rack) -------------


class RouterThread:
    def __init__(self, table: RouteTable, loop: str = "asyncio", **options: Any) -> None:
        # The daemon runs on uvloop where it is installed; both loops must behave the same.
        self.loop = uvloop.new_event_loop() if loop == "uvloop" else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.router = Router(table, port=0, **options)
        self.call(self.router.start())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self.router.stop(grace=1))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    a, b = Backend("a"), Backend("b")
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def table() -> RouteTable:
    return RouteTable()


def raw(router: RouterThread, data: bytes, *, until_close: bool = True) -> bytes:
    """Send bytes as they are and read what comes back (until close, or a short quiet)."""
    with socket.create_connection(("127.0.0.1", router.router.port), timeout=5) as s:
        s.sendall(data)
        if not until_close:
            s.settimeout(0.5)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


# --- parse_host --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("web.myapp.localhost:7080", ("web", "myapp")),
        ("web.myapp.localhost", ("web", "myapp")),
        ("WEB.MyApp.LocalHost:7080", ("web", "myapp")),
        ("web.myapp.localhost.", ("web", "myapp")),
        ("myapp.localhost", None),
        ("a.web.myapp.localhost", None),
        ("localhost:7080", None),
        ("127.0.0.1:7080", None),
        ("web.myapp.example.com", None),
        ("web.myapp.localhost:port", None),
        ("", None),
        (".myapp.localhost", None),
    ],
)
def test_parse_host(host: str, expected: tuple[str, str] | None) -> None:
    assert parse_host(host) == expected


def test_parse_host_other_domain() -> None:
    assert parse_host("api.shop.apps.example.com", "apps.example.com") == ("api", "shop")
    assert parse_host("web.myapp.localhost", "apps.example.com") is None


# --- routing -----------------------------------------------------------------------------------


def test_routes_by_host(table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread):
    a, b = backends
    table.set_backends("myapp", "web", [a.addr])
    table.set_backends("other", "api", [b.addr])
    with httpx.Client(base_url=router.router.url, timeout=10) as c:
        one = c.get("/x?y=1", headers={"Host": f"web.myapp.localhost:{router.router.port}"})
        two = c.get("/", headers={"Host": "api.other.localhost"})
    assert one.status_code == 200 and one.json()["backend"] == "a"
    assert one.json()["path"] == "/x?y=1"
    assert two.json()["backend"] == "b"


def test_forwarded_and_hop_by_hop_headers(
    table: RouteTable, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    table.set_backends("myapp", "web", [backends[0].addr])
    seen = client.get(
        "/",
        headers={
            "X-Custom": "kept",
            "X-Forwarded-For": "10.0.0.1",
            "X-Forwarded-Proto": "https-spoofed",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
        },
    ).json()["headers"]
    names = {k.lower(): v for k, v in seen.items()}
    assert names["x-custom"] == "kept"
    assert names["host"] == HOST
    assert names["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert names["x-forwarded-host"] == HOST
    assert names["x-forwarded-proto"] == "http"
    assert "keep-alive" not in names and "te" not in names


def test_round_robin(table: RouteTable, backends: tuple[Backend, Backend], client: httpx.Client):
    a, b = backends
    table.set_backends("myapp", "web", [a.addr, b.addr])
    served = [client.get("/").headers["x-backend"] for _ in range(10)]
    assert served == ["a", "b"] * 5


def test_post_bodies_echo(
    table: RouteTable, backends: tuple[Backend, Backend], client: httpx.Client
):
    table.set_backends("myapp", "web", [backends[0].addr])
    small = client.post("/", content=b"hello")
    assert small.status_code == 200 and small.content == b"hello"
    assert client.post("/", content=b"").content == b""
    big = os.urandom(1024 * 1024)
    echoed = client.post("/", content=big)
    assert echoed.status_code == 200 and echoed.content == big
    put = client.put("/", content=big[:70000])  # just over the size the router buffers
    assert put.content == big[:70000]


def test_chunked_request_body(
    table: RouteTable, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    table.set_backends("myapp", "web", [backends[0].addr])
    pieces = [os.urandom(100_000) for _ in range(5)]
    resp = client.post("/", content=iter(pieces))  # an iterator makes httpx send chunked
    assert resp.status_code == 200
    assert resp.headers["x-request-chunked"] == "chunked"
    assert resp.content == b"".join(pieces)


def test_one_pool_for_both_paths(
    table: RouteTable, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    table.set_backends("myapp", "web", [backends[0].addr])
    first = client.get("/")  # the fast path opens a connection to the process
    streamed = client.post("/", content=iter([b"x" * 10]))  # chunked: the stream path
    again = client.get("/")
    assert streamed.headers["x-request-chunked"] == "chunked"
    # One connection upstream served all three: the paths take it from the same pool.
    assert first.headers["x-peer"] == streamed.headers["x-peer"] == again.headers["x-peer"]


def test_response_framings(
    table: RouteTable, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    table.set_backends("myapp", "web", [backends[0].addr])
    big = client.get("/big?n=3000000")
    assert big.content == bytes(i % 251 for i in range(3_000_000))
    assert client.get("/chunked").text == "hello chunked world"
    # A close-delimited body reaches an HTTP/1.1 client chunked, on a connection kept open.
    eof = client.get("/eof")
    assert eof.text == "until the end" and eof.headers["transfer-encoding"] == "chunked"
    head = client.head("/")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"])
    assert client.get("/").status_code == 200


def test_http10_and_pipelining(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    table.set_backends("myapp", "web", [backends[0].addr])
    old = raw(router, b"GET /eof HTTP/1.0\r\nHost: web.myapp.localhost\r\n\r\n")
    assert old.startswith(b"HTTP/1.1 200") and old.endswith(b"\r\n\r\nuntil the end")
    two = raw(
        router,
        b"GET /a HTTP/1.1\r\nHost: web.myapp.localhost\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: web.myapp.localhost\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\nxyz",
    )
    assert two.count(b"HTTP/1.1 200 OK") == 2 and two.endswith(b"\r\n\r\nxyz")


def test_kept_alive_parsers_follow_every_message(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    # The fast path keeps one parser per connection on both sides: each must stand at the
    # next message after bodies in pieces, a HEAD (a length announced, no body) and more.
    table.set_backends("myapp", "web", [backends[0].addr])
    host = b"Host: web.myapp.localhost\r\n"
    with socket.create_connection(("127.0.0.1", router.router.port), timeout=5) as s:
        s.sendall(b"GET /a HTTP/1.1\r\n" + host + b"\r\nPOST /b HTTP/1.1\r\n" + host)
        for piece in (b"Content-Length: 6\r\n\r\n", b"ab", b"cd", b"efHEAD /c HTTP/1.1\r\n"):
            time.sleep(0.05)
            s.sendall(piece)
        s.sendall(host + b"\r\nGET /d HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 200 OK") == 4
    assert b"\r\n\r\nabcdef" in answer
    assert answer.count(b'"path": "/a"') == 1 and answer.count(b'"path": "/d"') == 1


def test_expect_continue(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    table.set_backends("myapp", "web", [backends[0].addr])
    with socket.create_connection(("127.0.0.1", router.router.port), timeout=5) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: web.myapp.localhost\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"body")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\nbody")


def test_malformed_requests_get_400(router: RouterThread) -> None:
    smuggle = (
        b"POST / HTTP/1.1\r\nHost: web.myapp.localhost\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert raw(router, smuggle).startswith(b"HTTP/1.1 400")
    assert raw(router, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(router, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505")


# --- switching and draining ----------------------------------------------------------------------


def test_keepalive_client_across_swap(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    a, b = backends
    table.set_backends("myapp", "web", [a.addr])
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    local_ports: set[int] = set()
    served: list[str] = []
    with httpx.Client(
        base_url=router.router.url, headers={"Host": HOST}, limits=limits, timeout=10
    ) as c:
        for i in range(300):
            if i == 150:
                table.set_backends("myapp", "web", [b.addr])
            resp = c.post("/", content=f"request {i}".encode())
            assert resp.status_code == 200, resp.text
            assert resp.content == f"request {i}".encode()
            served.append(resp.headers["x-backend"])
            stream = resp.extensions["network_stream"]
            local_ports.add(stream.get_extra_info("client_addr")[1])
    assert served == ["a"] * 150 + ["b"] * 150
    assert len(local_ports) == 1  # one client connection carried every request


def test_process_removed_while_the_body_arrives(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    # The runtime removes a process, sees it drained and stops it; a request whose body was
    # still on its way at that moment must not go to that process any more.
    a, b = backends
    table.set_backends("myapp", "web", [a.addr])
    with socket.create_connection(("127.0.0.1", router.router.port), timeout=5) as s:
        s.sendall(
            f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n"
            "Connection: close\r\n\r\nhe".encode()
        )
        time.sleep(0.3)  # the router is waiting for the rest of the body
        table.set_backends("myapp", "web", [b.addr])
        assert asyncio.run(table.wait_drained(a.addr, timeout=1)) is True
        s.sendall(b"llo")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"X-Backend: b\r\n" in answer and answer.endswith(b"\r\n\r\nhello")


def test_concurrent_clients_during_swaps(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    a, b = backends
    table.set_backends("myapp", "web", [a.addr])
    stop = threading.Event()

    def swapper() -> None:
        flip = False
        while not stop.is_set():
            table.set_backends("myapp", "web", [b.addr] if flip else [a.addr])
            flip = not flip
            time.sleep(0.005)

    def worker(n: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=router.router.url, headers={"Host": HOST}, timeout=10) as c:
            for i in range(60):
                body = f"{n}-{i}".encode() * 50
                resp = c.post("/", content=body)
                statuses.append(resp.status_code if resp.content == body else -1)
        return statuses

    flipper = threading.Thread(target=swapper)
    flipper.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            results = [s for statuses in pool.map(worker, range(8)) for s in statuses]
    finally:
        stop.set()
        flipper.join()
    assert results == [200] * len(results)


def test_wait_drained_waits_for_slow_request(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    a, b = backends
    table.set_backends("myapp", "web", [a.addr])
    # Nothing in flight: answers at once.
    assert asyncio.run(table.wait_drained(a.addr, timeout=5)) is True

    def slow() -> httpx.Response:
        with httpx.Client(base_url=router.router.url, headers={"Host": HOST}, timeout=10) as c:
            return c.get("/slow?d=1")

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(slow)
        deadline = time.monotonic() + 5
        while table.inflight(a.addr) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # What the runtime does: take the process out, then wait for its requests to finish.
        table.set_backends("myapp", "web", [b.addr])
        assert asyncio.run(table.wait_drained(a.addr, timeout=0.1)) is False
        started = time.monotonic()
        # Waited on from a loop other than the router's, as the runtime will.
        assert asyncio.run(table.wait_drained(a.addr, timeout=5)) is True
        assert time.monotonic() - started > 0.5
        # Drained means the router sent the whole response; the client may still be reading.
        resp = pending.result(timeout=5)
    assert resp.status_code == 200 and resp.headers["x-backend"] == "a"
    assert table.inflight(a.addr) == 0


# --- failures ----------------------------------------------------------------------------------


def test_unknown_host_is_404(table: RouteTable, router: RouterThread) -> None:
    table.set_backends("myapp", "web", [])
    with httpx.Client(base_url=router.router.url, timeout=10) as c:
        for host in ("localhost:7080", "web.nope.localhost"):
            resp = c.get("/", headers={"Host": host})
            assert resp.status_code == 404
            assert resp.headers["content-type"].startswith("text/plain")
            assert resp.text == (
                f"shipmate router: no app at {host}; use <service>.<app>.localhost\n"
            )
        # A service of a routed app that has no route (a worker: no port) says so.
        resp = c.get("/", headers={"Host": "worker.myapp.localhost"})
        assert resp.status_code == 404
        assert resp.text == (
            "shipmate router: app myapp has no routed service worker: only a service with "
            "a port (`port:` in its manifest) gets a route (routed here: web)\n"
        )
        # The connection survives an error page, even one for a request with a body.
        resp = c.post("/", content=b"x" * 1000, headers={"Host": "nope.localhost"})
        assert resp.status_code == 404
        assert c.get("/", headers={"Host": "nope.localhost"}).status_code == 404


def test_no_backend_is_503(table: RouteTable, client: httpx.Client) -> None:
    table.set_backends("myapp", "web", [])
    resp = client.get("/")
    assert resp.status_code == 503
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == "shipmate router: no healthy process for service web of app myapp\n"


def test_remove_backend_then_app(
    table: RouteTable, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, _ = backends
    table.add_backend("myapp", "web", a.addr)
    assert client.get("/").status_code == 200
    table.remove_backend("myapp", "web", a.addr)
    assert client.get("/").status_code == 503
    table.remove_app("myapp")
    assert client.get("/").status_code == 404


def test_dead_backend_is_502(table: RouteTable, client: httpx.Client) -> None:
    dead = f"127.0.0.1:{free_port()}"
    table.set_backends("myapp", "web", [dead])
    resp = client.get("/")
    assert resp.status_code == 502
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == f"shipmate router: process {dead} failed: connection refused\n"
    # Even with a body the router had to buffer, and one it had to stream.
    assert client.post("/", content=b"x" * 10).status_code == 502
    assert client.post("/", content=b"x" * 200_000).status_code == 502
    assert client.get("/").status_code == 502


def test_dead_backend_is_skipped(
    table: RouteTable, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, _ = backends
    table.set_backends("myapp", "web", [f"127.0.0.1:{free_port()}", a.addr])
    for _ in range(6):
        resp = client.post("/", content=b"still here")
        assert resp.status_code == 200 and resp.content == b"still here"
        assert resp.headers["x-backend"] == "a"


def test_backend_closing_idle_connections(
    table: RouteTable, client: httpx.Client, router: RouterThread
) -> None:
    # An app server that drops idle keep-alive connections quickly (as gunicorn does): the
    # router must not send the next request down a connection the process has closed.
    quick = Backend("quick", idle_timeout=0.2)
    try:
        table.set_backends("myapp", "web", [quick.addr])
        for _ in range(3):
            assert client.get("/").status_code == 200
            assert client.post("/", content=b"p").content == b"p"
            time.sleep(0.4)
    finally:
        quick.stop()


class OneShotBackend:
    """Answers the first request on each connection, then closes the connection silently on the
    second: exactly what the router sees when a process drops a kept-alive connection just as
    the router reuses it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.recv(65536)  # the next request on this connection: dropped unanswered

    def stop(self) -> None:
        self.sock.close()


def test_stale_kept_alive_connection(table: RouteTable, client: httpx.Client) -> None:
    backend = OneShotBackend()
    try:
        table.set_backends("myapp", "web", [backend.addr])
        assert client.get("/").text == "ok"
        # Reused connection dies unanswered: a GET is replayed on a fresh connection...
        assert client.get("/").text == "ok"
        assert backend.requests == 2
        # ...but a POST is not replayed: the process may have acted on it.
        resp = client.post("/", content=b"once")
        assert resp.status_code == 502
        assert "failed: connection closed before a complete response" in resp.text
    finally:
        backend.stop()


def test_upgrade_is_tunnelled(table: RouteTable, router: RouterThread) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def echo_backend() -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            seen.append(head)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
            )
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=echo_backend, daemon=True)
    thread.start()
    table.set_backends("myapp", "web", [f"127.0.0.1:{listener.getsockname()[1]}"])
    with socket.create_connection(("127.0.0.1", router.router.port), timeout=5) as s:
        s.sendall(
            b"GET /ws HTTP/1.1\r\nHost: web.myapp.localhost\r\n"
            b"Connection: keep-alive, Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        assert head.startswith(b"HTTP/1.1 101")
        for message in (b"ping", b"pong" * 10000):
            s.sendall(message)
            got = b""
            while len(got) < len(message):
                got += s.recv(65536)
            assert got == message
    thread.join(5)
    listener.close()
    assert b"Upgrade: echo" in seen[0] and b"Connection: Upgrade" in seen[0]


def test_stop_closes_listener(table: RouteTable) -> None:
    running = RouterThread(table)
    port = running.router.port
    assert running.router.url == f"http://127.0.0.1:{port}"
    running.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


# --- the fast path's edges (fast.py) -------------------------------------------------------------


def test_pipelined_requests_across_a_handover(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    # The middle answer is chunked, so the connection moves to the stream path mid-pipeline
    # with the third request already buffered: every answer still comes, in order.
    table.set_backends("myapp", "web", [backends[0].addr])
    three = raw(
        router,
        b"GET /first HTTP/1.1\r\nHost: web.myapp.localhost\r\n\r\n"
        b"GET /chunked HTTP/1.1\r\nHost: web.myapp.localhost\r\n\r\n"
        b"POST /third HTTP/1.1\r\nHost: web.myapp.localhost\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nthird",
    )
    first = three.index(b'"path": "/first"')
    chunked = three.index(b"Transfer-Encoding: chunked")
    assert three.count(b"HTTP/1.1 200 OK") == 3
    assert first < chunked < three.index(b"\r\n\r\nthird")
    assert three.endswith(b"\r\n\r\nthird")


def test_a_stalled_process_gets_a_502(table: RouteTable, backends: tuple[Backend, Backend]):
    table.set_backends("myapp", "web", [backends[0].addr])
    running = RouterThread(table, read_timeout=0.5)
    try:
        with httpx.Client(base_url=running.router.url, headers={"Host": HOST}, timeout=10) as c:
            started = time.monotonic()
            resp = c.get("/slow?d=4")
            assert resp.status_code == 502
            assert resp.text == (
                f"shipmate router: process {backends[0].addr} failed: no response within 0.5s\n"
            )
            assert time.monotonic() - started < 3.5
            # Released once the router is done with the exchange, which may be just after the
            # client has its answer (it was, on a loaded CI machine).
            poll_until(lambda: table.inflight(backends[0].addr) == 0, 5, what="the release")
    finally:
        running.close()


def test_stop_lets_a_request_in_flight_finish(
    table: RouteTable, backends: tuple[Backend, Backend]
) -> None:
    a = backends[0]
    table.set_backends("myapp", "web", [a.addr])
    running = RouterThread(table)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            httpx.get, running.router.url + "/slow?d=0.5", headers={"Host": HOST}, timeout=10
        )
        deadline = time.monotonic() + 5
        while table.inflight(a.addr) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        running.close()
        resp = pending.result(timeout=10)
    assert resp.status_code == 200 and resp.headers["connection"] == "close"


def test_a_slow_reader_does_not_stall_the_next_request(
    table: RouteTable, backends: tuple[Backend, Backend], router: RouterThread
) -> None:
    # While a client reads slowly, the router stops reading from the process; the process's
    # connection must be reading again when it goes back to the pool for the next request.
    a = backends[0]
    table.set_backends("myapp", "web", [a.addr])
    size = 12_000_000  # well past what the kernel buffers, so the router has to hold back
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", router.router.port), timeout=10) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(f"GET /big?n={size} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            got = 0
            while got < size:
                chunk = s.recv(16384)
                assert chunk, f"connection closed after {got} bytes"
                got += len(chunk)
                time.sleep(0.001)  # slower than the process writes: the router must pause it
        with httpx.Client(base_url=router.router.url, headers={"Host": HOST}, timeout=5) as c:
            assert c.get("/").status_code == 200
