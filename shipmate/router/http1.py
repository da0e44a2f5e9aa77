"""HTTP/1.1 wire format for the router: just enough parsing to frame messages and relay them.

The router never interprets bodies; it only needs to know where each message ends so that it
can keep connections alive on both sides. Heads are parsed by httptools (llhttp, Node's
parser), with none of its leniencies: anything a second parser could read differently (bare
CR/LF, obs-fold, Content-Length together with Transfer-Encoding, repeated lengths) is
rejected, because a proxy and a backend disagreeing on message boundaries is how request
smuggling starts. The chunked framing of bodies the stream path relays is read here.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Protocol

import httptools

CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"
# Upper bound for a request/response head and for a chunk-size line; also the StreamReader limit.
MAX_HEAD = 64 * 1024
# Size of each read when streaming a body; bounds the memory one exchange holds at a time.
READ_CHUNK = 64 * 1024

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
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
# Methods safe to send twice (RFC 9110 9.2.2): only these are replayed when a kept-alive
# connection dies after the request was written but before any response byte came back.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
# httptools' version strings -> the router's.
_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}

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


class RelayError(Exception):
    """Streaming a body failed; `side` says whose fault it was ("client" or "upstream")."""

    def __init__(self, side: str, reason: str) -> None:
        super().__init__(f"{side}: {reason}")
        self.side = side
        self.reason = reason


class Sink(Protocol):
    """The part of asyncio.StreamWriter a relay writes to."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


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


class _Head:
    """What httptools reports of one message head."""

    __slots__ = ("complete", "headers", "status", "url")

    def __init__(self) -> None:
        self.url = b""
        self.status = b""
        self.headers: list[Header] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, status: bytes) -> None:
        self.status += status

    def on_header(self, name: bytes, value: bytes) -> None:
        value = value.rstrip(b" \t")
        self.headers.append((name.lower(), value, name + b": " + value))

    def on_headers_complete(self) -> None:
        self.complete = True


def _feed(
    parser: httptools.HttpRequestParser | httptools.HttpResponseParser,
    head: bytes,
    collected: _Head,
    what: str,
) -> None:
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass  # the head is whole; what follows it belongs to another protocol (101, CONNECT)
    except httptools.HttpParserError as exc:
        # llhttp refuses a request's Transfer-Encoding other than chunked only once the head
        # is complete; the checks after this give that case its own status (501).
        if not collected.complete:
            reason = str(exc).strip().rstrip(".") or f"malformed {what}"
            raise ProtocolError(reason[:1].lower() + reason[1:]) from None
    if not collected.complete:
        raise ProtocolError(f"incomplete {what} head")


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


def parse_request(head: bytes) -> Request:
    """A request head (ending in CRLFCRLF), parsed by httptools (llhttp)."""
    collected = _Head()
    parser = httptools.HttpRequestParser(collected)
    _feed(parser, head, collected, "request")
    version = _VERSIONS.get(parser.get_http_version())
    if version is None:
        raise ProtocolError("unsupported HTTP version", 505)
    method = parser.get_method()
    target = collected.url
    headers = collected.headers

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


def parse_response(head: bytes) -> Response:
    """A response head (ending in CRLFCRLF), parsed by httptools (llhttp)."""
    collected = _Head()
    parser = httptools.HttpResponseParser(collected)
    _feed(parser, head, collected, "response")
    version = _VERSIONS.get(parser.get_http_version())
    if version is None:
        raise ProtocolError("malformed status line")
    status = parser.get_status_code()
    te: bytes | None = None
    lengths: list[bytes] = []
    tokens: set[bytes] = set()
    for name, value, _ in collected.headers:
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
        status_line_rest=b"%d %b" % (status, collected.status),
        version=version,
        headers=collected.headers,
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


def describe(exc: BaseException) -> str:
    """A short human reason for a socket error, for the router's error pages."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, BrokenPipeError):
        return "connection closed"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


# --- body relays -------------------------------------------------------------------------
# Each relay reads from `src` and writes to `dst`, raising RelayError naming the side at
# fault. Reads carry a timeout so that a stalled peer cannot hold an exchange forever.


async def _read(reader: asyncio.StreamReader, n: int, side: str, timeout: float | None) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            data = await reader.read(n)
    except TimeoutError:
        raise RelayError(side, f"no data for {timeout:g}s") from None
    except OSError as exc:
        raise RelayError(side, describe(exc)) from None
    if not data:
        raise RelayError(side, "connection closed in the middle of a body")
    return data


async def read_exactly(
    reader: asyncio.StreamReader, n: int, side: str, timeout: float | None
) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            return await reader.readexactly(n)
    except TimeoutError:
        raise RelayError(side, f"no data for {timeout:g}s") from None
    except asyncio.IncompleteReadError:
        raise RelayError(side, "connection closed in the middle of a body") from None
    except OSError as exc:
        raise RelayError(side, describe(exc)) from None


async def _readline(reader: asyncio.StreamReader, side: str, timeout: float | None) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            return await reader.readuntil(CRLF)
    except TimeoutError:
        raise RelayError(side, f"no data for {timeout:g}s") from None
    except asyncio.IncompleteReadError:
        raise RelayError(side, "connection closed in the middle of a body") from None
    except asyncio.LimitOverrunError:
        raise RelayError(side, "chunk line too long") from None
    except OSError as exc:
        raise RelayError(side, describe(exc)) from None


async def write(dst: Sink, data: bytes, side: str) -> None:
    try:
        dst.write(data)
        await dst.drain()
    except OSError as exc:
        raise RelayError(side, describe(exc)) from None


async def relay_length(
    src: asyncio.StreamReader,
    dst: Sink,
    length: int,
    sides: tuple[str, str],
    timeout: float | None,
) -> None:
    remaining = length
    while remaining:
        data = await _read(src, min(remaining, READ_CHUNK), sides[0], timeout)
        remaining -= len(data)
        await write(dst, data, sides[1])


async def relay_chunked(
    src: asyncio.StreamReader,
    dst: Sink,
    sides: tuple[str, str],
    timeout: float | None,
    *,
    dechunk: bool = False,
) -> None:
    """Relay a chunked body; re-chunked as it goes (chunk boundaries carry no meaning), or
    de-chunked for an HTTP/1.0 client that cannot read chunked encoding."""
    src_side, dst_side = sides
    while True:
        line = await _readline(src, src_side, timeout)
        size_text = line[:-2].split(b";", 1)[0].strip(b" \t")
        if not _HEX.fullmatch(size_text):
            raise RelayError(src_side, "malformed chunk size")
        size = int(size_text, 16)
        if size == 0:
            trailers: list[bytes] = []
            while True:
                line = await _readline(src, src_side, timeout)
                if line == CRLF:
                    break
                trailers.append(line)
            if not dechunk:
                await write(dst, b"0\r\n" + b"".join(trailers) + CRLF, dst_side)
            return
        remaining = size
        while remaining:
            data = await _read(src, min(remaining, READ_CHUNK), src_side, timeout)
            remaining -= len(data)
            if dechunk:
                await write(dst, data, dst_side)
            else:
                await write(dst, b"%x\r\n%b\r\n" % (len(data), data), dst_side)
        if await read_exactly(src, 2, src_side, timeout) != CRLF:
            raise RelayError(src_side, "malformed chunk")


async def relay_until_eof(
    src: asyncio.StreamReader,
    dst: Sink,
    sides: tuple[str, str],
    timeout: float | None,
    *,
    chunk: bool,
) -> None:
    """Relay a close-delimited response body, chunk-encoding it when the client connection is
    to stay open (the end of the body can then no longer be signalled by closing)."""
    src_side, dst_side = sides
    while True:
        try:
            async with asyncio.timeout(timeout):
                data = await src.read(READ_CHUNK)
        except TimeoutError:
            raise RelayError(src_side, f"no data for {timeout:g}s") from None
        except OSError as exc:
            raise RelayError(src_side, describe(exc)) from None
        if not data:
            if chunk:
                await write(dst, b"0\r\n\r\n", dst_side)
            return
        await write(dst, b"%x\r\n%b\r\n" % (len(data), data) if chunk else data, dst_side)


class NullSink:
    """Swallows a body the router must read but not forward (e.g. before an error page), up to
    a cap past which it gives up so that a client cannot keep the router reading forever."""

    def __init__(self, cap: int) -> None:
        self.left = cap

    def write(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left < 0:
            raise BrokenPipeError("body too large to discard")

    async def drain(self) -> None:
        return None
