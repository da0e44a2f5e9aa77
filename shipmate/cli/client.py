"""The CLI's only way to the rack: its HTTP API."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from httpx_sse import connect_sse

from shipmate.config import Settings


class CliError(Exception):
    """Printed as `ERROR: <message>` with exit code 1.

    From a rack's error body, `code` says which error it is (the CLI decides on it, never on
    the message) and `details` gives its facts; both are empty for the CLI's own errors.
    """

    def __init__(
        self, message: str, code: str | None = None, details: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


def _rack_address(settings: Settings) -> tuple[str, str]:
    url = os.environ.get("SHIPMATE_RACK")
    token = os.environ.get("SHIPMATE_TOKEN")
    if url and token:
        return url.rstrip("/"), token
    if not url:
        try:
            url = json.loads(settings.rack_file.read_text())["api"]
        except (OSError, ValueError, KeyError):
            raise CliError(
                f"no rack running under {settings.home}: start one with `shipmate rack start "
                "--detach`, or set SHIPMATE_RACK and SHIPMATE_TOKEN"
            ) from None
    if not token:
        try:
            token = settings.token_file.read_text().strip()
        except OSError:
            raise CliError(f"no token for the rack at {url}: set SHIPMATE_TOKEN") from None
    return str(url).rstrip("/"), token


class Client:
    def __init__(
        self, base_url: str, token: str, transport: httpx.BaseTransport | None = None
    ) -> None:
        """`transport`: where requests go instead of the network (a test's MockTransport)."""
        self.base_url = base_url
        self.token = token
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0, read=600.0),
            verify=tls_context(base_url),
            transport=transport,
        )

    @classmethod
    def from_env(cls) -> Client:
        return cls(*_rack_address(Settings.from_env()))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the rack at {self.base_url} ({type(exc).__name__}): "
                "is it running? try `shipmate rack start --detach`"
            ) from None
        if response.status_code >= 400:
            raise rack_error(response)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs).json()

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def stream(
        self,
        path: str,
        method: str = "GET",
        body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """(event name, decoded data) of a Server-Sent Events stream."""
        try:
            with connect_sse(self.http, method, path, params=params, json=body) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise rack_error(source.response)
                for sse in source.iter_sse():
                    yield sse.event, json.loads(sse.data) if sse.data else None
        except httpx.TransportError as exc:
            raise CliError(
                f"lost the rack at {self.base_url} ({type(exc).__name__}); "
                "the operation may still be running: check `shipmate releases` and `shipmate logs`"
            ) from None


def tls_context(base_url: str) -> ssl.SSLContext | bool:
    if not base_url.startswith("https:"):
        # A plain-HTTP rack needs no trust store, and loading one is a quarter of the CLI's
        # start-up (bench/rollback.py): a context that trusts nothing, never used.
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # SHIPMATE_CA_CERT: the certificate (or CA) of a rack started with --tls-cert that the
    # usual trust store does not know, e.g. a self-signed one.
    cafile = os.environ.get("SHIPMATE_CA_CERT")
    if not cafile:
        return True
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot use SHIPMATE_CA_CERT={cafile}: {exc}") from None


def rack_error(response: httpx.Response) -> CliError:
    try:
        body = response.json()
        message = str(body["error"])
    except (ValueError, KeyError, TypeError):
        return CliError(f"the rack answered {response.status_code} {response.reason_phrase}")
    code = body.get("code")
    details = body.get("details")
    return CliError(
        message,
        code=str(code) if code is not None else None,
        details={str(k): str(v) for k, v in details.items()} if isinstance(details, dict) else {},
    )
