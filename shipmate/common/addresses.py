"""`HOST:PORT` strings, as users type them and as the router and the rack print them."""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"


def split_host_port(
    address: str, default_host: str = DEFAULT_HOST, *, any_port: bool = False
) -> tuple[str, int]:
    """`"127.0.0.1:7070"`, `":7070"`, `"[::1]:7070"` or `"http://host:7070"` to (host, port).

    Raises ValueError, naming the address, when there is no port number. `any_port` admits
    port 0 too: an address to listen on, where 0 asks the system for a free port.
    """
    text = address.strip()
    _scheme, sep, rest = text.partition("://")
    if sep:
        text = rest.split("/", 1)[0]
    host, colon, port = text.rpartition(":")
    lowest = 0 if any_port else 1
    if not colon or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"{address!r} is not HOST:PORT (a port number from {lowest} to 65535)")
    host = host.removeprefix("[").removesuffix("]")
    return host or default_host, int(port)


def join_host_port(host: str, port: int) -> str:
    """The inverse of split_host_port: brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
