"""Every error leaves the API as {"error": "<one line>", "code": "<stable code>"}.

The status says what kind of failure it is, the code which one (a client decides on the code,
never on the text), and `details`, when there is any, gives the facts a client may need
(the release an `app_busy` app is promoting).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from shipmate.domain.errors import (
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    RackStopping,
    ShipmateError,
)

log = logging.getLogger("shipmate.api")

# The code of an error that carries none of its own (an ApiError, a Starlette HTTPException).
_STATUS_CODES = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    422: ErrorCode.INVALID_REQUEST,
}


def code_of_status(status: int) -> ErrorCode:
    if status in _STATUS_CODES:
        return _STATUS_CODES[status]
    return ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID_REQUEST


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.code = code or code_of_status(status)


class ErrorOut(BaseModel):
    error: str = Field(description="what is wrong and what to do, in one line, for people")
    code: ErrorCode = Field(description="which error it is, for programs: stable")
    details: dict[str, str] | None = Field(
        default=None, description="facts a program may need, e.g. app_busy's app and release"
    )


# Which codes each status carries, as the OpenAPI document lists them.
_RESPONSES: tuple[tuple[int, str, tuple[ErrorCode, ...]], ...] = (
    (
        400,
        "Invalid input: manifest, environment, upload",
        (
            ErrorCode.INVALID_INPUT,
            ErrorCode.INVALID_MANIFEST,
            ErrorCode.UNSAFE_UPLOAD,
            ErrorCode.TOO_LARGE,
        ),
    ),
    (401, "Missing, unknown or revoked token", (ErrorCode.UNAUTHORIZED,)),
    (403, "The token's role does not allow this", (ErrorCode.FORBIDDEN,)),
    (404, "No such app, build, release, promotion, process or token", (ErrorCode.NOT_FOUND,)),
    (
        409,
        "Conflict with the current state: an app updating, a name taken",
        (ErrorCode.APP_BUSY, ErrorCode.CONFLICT),
    ),
    (
        422,
        "The request does not match this document, or the rack cannot do it",
        (ErrorCode.INVALID_REQUEST, ErrorCode.FAILED),
    ),
    (500, "Internal error: the rack log has the traceback", (ErrorCode.INTERNAL,)),
    (503, "The rack is stopping: no new promotion or build", (ErrorCode.RACK_STOPPING,)),
)

# The schema is referenced, not inlined, so that clients generate one error type; `install`
# adds it to the document's components. The media type is spelled out: on a stream route the
# default would be text/event-stream.
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}

# Declared on every router so the OpenAPI document lists the statuses the API really uses.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": f"{description} (code: {', '.join(codes)})",
        "content": _ERROR_CONTENT,
    }
    for status, description, codes in _RESPONSES
}


def _schemas() -> dict[str, Any]:
    schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "ErrorOut": schema}


def _status(exc: ShipmateError) -> int:
    if isinstance(exc, RackStopping):
        return 503
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, InvalidInput):
        return 400
    return 422


def _error(
    status: int,
    message: str,
    code: ErrorCode,
    headers: Mapping[str, str] | None = None,
    details: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "code": code.value}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def response_of(exc: ApiError | ShipmateError) -> JSONResponse:
    """The error's answer, where no exception handler gives it (a refused WebSocket)."""
    if isinstance(exc, ApiError):
        return _error(exc.status, exc.message, exc.code, exc.headers)
    return _error(_status(exc), str(exc), exc.code, details=exc.details)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(ShipmateError)
    async def _domain(_: Request, exc: ShipmateError) -> JSONResponse:
        return _error(_status(exc), str(exc), exc.code, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"invalid request: {where}: {first.get('msg', 'invalid')}"
        return _error(422, message, ErrorCode.INVALID_REQUEST)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        # Keep Starlette's headers: `Allow` on a 405, as RFC 9110 asks.
        status = exc.status_code
        return _error(status, str(exc.detail), code_of_status(status), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        message = f"internal error: {type(exc).__name__}: {exc}; see the rack log"
        return _error(500, message, ErrorCode.INTERNAL)

    _document_errors(app)


def _document_errors(app: FastAPI) -> None:
    """Add the error schema to the OpenAPI document that ERROR_RESPONSES refer to."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document.setdefault("components", {}).setdefault("schemas", {}).update(_schemas())
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
