"""HTTP/1.1 wire format for the router: just enough parsing to frame messages and relay them.

The router never interprets bodies; it only needs to know where each message ends so that it
can keep connections alive on both sides. Heads are parsed by httptools (llhttp, Node's
parser), with none of its leniencies: anything a second parser could read differently (bare
CR/LF, obs-fold, Content-Length together with Transfer-Encoding, repeated lengths) is
rejected, because a proxy and a backend disagreeing on message boundaries is how request
smuggling starts. (relays.py streams the bodies
the stream path relays, reading the chunked framing itself.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httptools

CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"
# Upper bound for a request/response head and for a chunk-size line; also the StreamReader limit.
MAX_HEAD = 64 * 1024

# Headers that describe one connection, not the message (RFC 9110 7.6.1); never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

_DIGITS = re.compile(rb"[0-9]{1,18}")
# Methods safe to send twice (RFC 9110 9.2.2): only these are replayed when a kept-alive
# connection dies after the request was written but before any response byte came back.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
# httptools' version strings -> the router's.
_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}
# Header names already seen -> lower-cased: the same few names come on every message.
_NAMES: dict[bytes, bytes] = {}

# How a message body is delimited.
BODY_NONE = 0
BODY_LENGTH = 1
BODY_CHUNKED = 2
BODY_EOF = 3  # responses only: the body runs until the connection closes

# One header: (lower-cased name, value, the raw line). The raw line is kept so that headers
# are forwarded byte for byte without re-serialising them.
Header = tuple[bytes, bytes, bytes]


class ProtocolError(Exception):
    """A peer sent something that is not valid HTTP/1.x; `status` is what a client should get."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    version: bytes
    headers: list[Header]
    host: bytes
    body: int  # BODY_NONE, BODY_LENGTH or BODY_CHUNKED
    length: int
    keep_alive: bool
    expect_continue: bool
    upgrade: bytes | None
    connection_tokens: frozenset[bytes]


@dataclass(slots=True)
class Response:
    status: int
    status_line_rest: bytes  # "200 OK": code and reason exactly as the backend sent them
    version: bytes
    headers: list[Header]
    chunked: bool
    length: int | None
    close: bool
    connection_tokens: frozenset[bytes]


class _Reader:
    """httptools' parser for the messages of one connection, one after the other. Kept for the
    next message, it costs a fraction of a new one; `usable` turns False once it can no longer
    follow the connection (an error, an upgrade, a body it was not given), and a new one is
    then needed. `read(head)` takes a head ending in CRLFCRLF; `body(data)` the bytes of the
    body that follows it, all of them, so the parser is at the next message afterwards."""

    __slots__ = ("complete", "headers", "parser", "status", "url", "usable")

    parser: httptools.HttpRequestParser | httptools.HttpResponseParser

    def __init__(self) -> None:
        self.url = b""
        self.status = b""
        self.headers: list[Header] = []
        self.complete = False
        self.usable = True

    # --- httptools' callbacks ------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, status: bytes) -> None:
        self.status += status

    def on_header(self, name: bytes, value: bytes) -> None:
        value = value.rstrip(b" \t")
        lowered = _NAMES.get(name)
        if lowered is None:
            lowered = name.lower()
            if len(_NAMES) < 4096:
                _NAMES[name] = lowered
        self.headers.append((lowered, value, name + b": " + value))

    def on_headers_complete(self) -> None:
        self.complete = True

    # --- feeding -------------------------------------------------------------------------------

    def _feed_head(self, head: bytes, what: str) -> None:
        if not self.usable:
            raise ProtocolError(f"the {what} parser cannot follow this connection any more")
        # Reset here rather than in an on_message_begin callback: heads are fed one at a time,
        # and one Python callback fewer per message is measurable (docs/BENCHMARKS.md, Router).
        self.url = b""
        self.status = b""
        self.headers = []
        self.complete = False
        try:
            self.parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            # The head is whole; what follows belongs to another protocol (101, CONNECT).
            self.usable = False
        except httptools.HttpParserError as exc:
            self.usable = False
            # llhttp refuses a request's Transfer-Encoding other than chunked only once the
            # head is complete; the checks after this give that case its own status (501).
            if not self.complete:
                reason = str(exc).strip().rstrip(".") or f"malformed {what}"
                raise ProtocolError(reason[:1].lower() + reason[1:]) from None
        if not self.complete:
            self.usable = False
            raise ProtocolError(f"incomplete {what} head")

    def body(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.usable = False


def _tokens(value: bytes) -> set[bytes]:
    return {t.strip(b" \t").lower() for t in value.split(b",")}


def _content_length(values: list[bytes]) -> int:
    # llhttp refuses a repeated Content-Length and anything but digits; this is the check
    # of the value itself, kept so that no length the router acts on goes unchecked.
    if len(values) != 1 or not _DIGITS.fullmatch(values[0]):
        raise ProtocolError("invalid Content-Length")
    return int(values[0])


def _only_chunked(te: bytes) -> bool:
    return [c.strip(b" \t").lower() for c in te.split(b",")] == [b"chunked"]


class RequestReader(_Reader):
    """The requests of one client connection."""

    __slots__ = ()

    parser: httptools.HttpRequestParser

    def __init__(self) -> None:
        super().__init__()
        self.parser = httptools.HttpRequestParser(self)

    def read(self, head: bytes) -> Request:
        self._feed_head(head, "request")
        version = _VERSIONS.get(self.parser.get_http_version())
        if version is None:
            self.usable = False
            raise ProtocolError("unsupported HTTP version", 505)
        return _request(self.parser.get_method(), self.url, version, self.headers)


def parse_request(head: bytes) -> Request:
    """A request head (ending in CRLFCRLF), parsed by httptools (llhttp)."""
    return RequestReader().read(head)


def _request(method: bytes, target: bytes, version: bytes, headers: list[Header]) -> Request:

    host: bytes | None = None
    te: bytes | None = None
    lengths: list[bytes] = []
    tokens: set[bytes] = set()
    expect = False
    upgrade: bytes | None = None
    for name, value, _ in headers:
        if name == b"host":
            if host is not None:
                raise ProtocolError("more than one Host header")
            host = value
        elif name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            te = value if te is None else te + b"," + value
        elif name == b"connection":
            tokens |= _tokens(value)
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
        elif name == b"upgrade":
            upgrade = value

    # absolute-form ("GET http://web.app.localhost/x HTTP/1.1") is what clients send when the
    # router is configured as their HTTP proxy; its authority overrides Host (RFC 9112 3.2.2).
    lowered = target[:8].lower()
    if lowered.startswith((b"http://", b"https://")):
        rest = target[target.index(b"//") + 2 :]
        slash = rest.find(b"/")
        authority, path = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
        host, target = authority, path

    body, length = BODY_NONE, 0
    if te is not None:
        if lengths:
            raise ProtocolError("both Transfer-Encoding and Content-Length")
        if not _only_chunked(te):
            raise ProtocolError("unsupported Transfer-Encoding", 501)
        body = BODY_CHUNKED
    elif lengths:
        length = _content_length(lengths)
        body = BODY_LENGTH if length else BODY_NONE

    keep_alive = b"close" not in tokens if version == b"HTTP/1.1" else b"keep-alive" in tokens
    if upgrade is not None and b"upgrade" not in tokens:
        upgrade = None
    return Request(
        method=method,
        target=target,
        version=version,
        headers=headers,
        host=host or b"",
        body=body,
        length=length,
        keep_alive=keep_alive,
        expect_continue=expect,
        upgrade=upgrade,
        connection_tokens=frozenset(tokens),
    )


class ResponseReader(_Reader):
    """The responses on one connection to a process. A response to HEAD has a body by its
    head but none on the wire, which the parser cannot be told: drop the reader after one."""

    __slots__ = ()

    parser: httptools.HttpResponseParser

    def __init__(self) -> None:
        super().__init__()
        self.parser = httptools.HttpResponseParser(self)

    def read(self, head: bytes) -> Response:
        self._feed_head(head, "response")
        version = _VERSIONS.get(self.parser.get_http_version())
        if version is None:
            self.usable = False
            raise ProtocolError("malformed status line")
        return _response(self.parser.get_status_code(), self.status, version, self.headers)


def parse_response(head: bytes) -> Response:
    """A response head (ending in CRLFCRLF), parsed by httptools (llhttp)."""
    return ResponseReader().read(head)


def _response(status: int, reason: bytes, version: bytes, headers: list[Header]) -> Response:
    te: bytes | None = None
    lengths: list[bytes] = []
    tokens: set[bytes] = set()
    for name, value, _ in headers:
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            te = value if te is None else te + b"," + value
        elif name == b"connection":
            tokens |= _tokens(value)
    chunked = False
    length: int | None = None
    close = version == b"HTTP/1.0" or b"close" in tokens
    if te is not None:
        # A coding other than a final "chunked" means the body runs to the end of the
        # connection (RFC 9112 6.3).
        chunked = te.rsplit(b",", 1)[-1].strip(b" \t").lower() == b"chunked"
        close = close or not chunked
    elif lengths:
        length = _content_length(lengths)
    return Response(
        status=status,
        status_line_rest=b"%d %b" % (status, reason),
        version=version,
        headers=headers,
        chunked=chunked,
        length=length,
        close=close,
        connection_tokens=frozenset(tokens),
    )


def response_body(method: bytes, resp: Response) -> int:
    """How the body of `resp` (an answer to `method`) is delimited."""
    status = resp.status
    if method == b"HEAD" or status < 200 or status == 204 or status == 304:
        return BODY_NONE
    if resp.chunked:
        return BODY_CHUNKED
    if resp.length is not None:
        return BODY_LENGTH if resp.length else BODY_NONE
    return BODY_EOF


def build_head(start: bytes, lines: list[bytes]) -> bytes:
    return CRLF.join([start, *lines, b"", b""])
