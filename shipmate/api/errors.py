"""Every error leaves the API as {"error": "<one line>"} with a fitting status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from shipmate.domain.errors import Conflict, InvalidInput, NotFound, ShipmateError

log = logging.getLogger("shipmate.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class ErrorOut(BaseModel):
    error: str = Field(description="what is wrong and what to do, in one line")


# Declared on every router so the OpenAPI document lists the statuses the API really uses.
# The media type is spelled out: on a stream route the default would be text/event-stream.
_ERROR_CONTENT = {"application/json": {"schema": ErrorOut.model_json_schema()}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": _ERROR_CONTENT}
    for status, description in (
        (400, "Invalid input: manifest, environment, upload"),
        (401, "Missing, unknown or revoked token"),
        (403, "The token's role does not allow this"),
        (404, "No such app, build, release, promotion, process or token"),
        (409, "Conflict with the current state: an app updating, a name taken"),
        (422, "The request does not match this document"),
    )
}


def _status(exc: ShipmateError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, InvalidInput):
        return 400
    return 422


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(ShipmateError)
    async def _domain(_: Request, exc: ShipmateError) -> JSONResponse:
        return _error(_status(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"invalid request: {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        # Keep Starlette's headers: `Allow` on a 405, as RFC 9110 asks.
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}; see the rack log")
