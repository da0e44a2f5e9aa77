"""Heads as the router reads them (httptools underneath): what is accepted, what each
refusal answers, and what the router learns of a message's framing."""

from __future__ import annotations

import pytest

from shipmate.router.http1 import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    ProtocolError,
    parse_request,
    parse_response,
)

HOST = b"Host: web.myapp.localhost\r\n"


def test_a_plain_request() -> None:
    req = parse_request(b"GET /x?y=1 HTTP/1.1\r\n" + HOST + b"X-Pad:  v \t\r\n\r\n")
    assert (req.method, req.target, req.version) == (b"GET", b"/x?y=1", b"HTTP/1.1")
    assert req.host == b"web.myapp.localhost" and req.keep_alive and req.body == BODY_NONE
    # Names lower-cased for lookups; values without surrounding whitespace; lines as sent on.
    assert req.headers[1] == (b"x-pad", b"v", b"X-Pad: v")


@pytest.mark.parametrize(
    ("head", "body", "length", "keep"),
    [
        (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\n", BODY_LENGTH, 3, True),
        (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n", BODY_NONE, 0, True),
        (
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n",
            BODY_CHUNKED,
            0,
            True,
        ),
        (b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n", BODY_NONE, 0, False),
        (b"GET / HTTP/1.0\r\n" + HOST + b"\r\n", BODY_NONE, 0, False),
        (b"GET / HTTP/1.0\r\n" + HOST + b"Connection: keep-alive\r\n\r\n", BODY_NONE, 0, True),
    ],
)
def test_framing(head: bytes, body: int, length: int, keep: bool) -> None:
    req = parse_request(head)
    assert (req.body, req.length, req.keep_alive) == (body, length, keep)


def test_expect_upgrade_and_absolute_form() -> None:
    req = parse_request(
        b"GET /chat HTTP/1.1\r\n" + HOST + b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    assert req.upgrade == b"websocket" and req.connection_tokens == {b"upgrade"}
    # Upgrade without the Connection token is no upgrade.
    assert parse_request(b"GET / HTTP/1.1\r\n" + HOST + b"Upgrade: x\r\n\r\n").upgrade is None
    post = parse_request(
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\nExpect: 100-continue\r\n\r\n"
    )
    assert post.expect_continue
    proxied = parse_request(b"GET http://api.shop.localhost HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (proxied.host, proxied.target) == (b"api.shop.localhost", b"/")


@pytest.mark.parametrize(
    ("head", "status"),
    [
        # Request smuggling: two parsers must never disagree on where a message ends.
        (
            b"POST / HTTP/1.1\r\n"
            + HOST
            + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\n"
            + HOST
            + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: +3\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + HOST + b"X: a\r\n b\r\n\r\n", 400),  # obs-fold
        (b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400),  # bare LF
        (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),  # bare CR
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\x00\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"garbage\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ],
)
def test_refusals(head: bytes, status: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request(head)
    assert caught.value.status == status and caught.value.reason


def test_responses() -> None:
    ok = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n")
    assert (ok.status, ok.status_line_rest, ok.length, ok.close) == (200, b"200 OK", 5, False)
    bare = parse_response(b"HTTP/1.1 204\r\n\r\n")
    assert bare.status_line_rest == b"204 " and bare.length is None
    old = parse_response(b"HTTP/1.0 200 OK\r\n\r\n")
    assert old.close and old.version == b"HTTP/1.0"
    chunked = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    assert chunked.chunked and not chunked.close
    eof = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert not eof.chunked and eof.close
    assert parse_response(b"HTTP/1.1 100 Continue\r\n\r\n").status == 100
    for bad in (
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"nonsense\r\n\r\n",
    ):
        with pytest.raises(ProtocolError):
            parse_response(bad)
