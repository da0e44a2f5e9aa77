"""Bodies streamed between two connections, for the stream path.

Each relay reads from `src` and writes to `dst`, raising RelayError naming the side at
fault. Reads carry a timeout so that a stalled peer cannot hold an exchange forever. Bodies
are never interpreted: a chunked body is re-chunked as it goes (chunk boundaries carry no
meaning), so only its framing is read here.
"""

from __future__ import annotations

import asyncio
import re
from typing import Protocol

from shipmate.router.http1 import CRLF

# Size of each read when streaming a body; bounds the memory one exchange holds at a time.
READ_CHUNK = 64 * 1024
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


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
