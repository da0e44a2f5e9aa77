"""User-facing errors, and the stable codes that name them.

Every error a user can cause derives from ShipmateError, so the CLI and the API can turn it into
one line (`ERROR: <message>`, `{"error": "<message>", "code": "<code>"}`) without knowing where
it came from. The message says what is wrong and what to do about it; it never carries a
traceback. The message is for people and may change; the code is for programs (the CLI
among them) and does not.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    """Every `code` an API error body can carry: a client decides on these, never on text."""

    # What ShipmateError and its subclasses stand for.
    FAILED = "failed"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    APP_BUSY = "app_busy"
    INVALID_INPUT = "invalid_input"
    INVALID_MANIFEST = "invalid_manifest"
    UNSAFE_UPLOAD = "unsafe_upload"
    TOO_LARGE = "too_large"
    RACK_STOPPING = "rack_stopping"
    # What the API itself refuses before any use case runs.
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    INVALID_REQUEST = "invalid_request"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INTERNAL = "internal"


class ShipmateError(Exception):
    """Base of every user-facing error; `str(error)` is one line for the user."""

    code: ClassVar[ErrorCode] = ErrorCode.FAILED

    @property
    def details(self) -> dict[str, str]:
        """Facts of the error a program may need beside its code (e.g. the busy release)."""
        return {}


class NotFound(ShipmateError):
    """The named app, build, release, service or process does not exist."""

    code = ErrorCode.NOT_FOUND


class Conflict(ShipmateError):
    """The request collides with the current state (e.g. a name already taken)."""

    code = ErrorCode.CONFLICT


class AppBusy(Conflict):
    """A promotion of the app is running; another may start only once it has finished."""

    code = ErrorCode.APP_BUSY

    def __init__(self, app: str, release_id: str, hint: str | None = None) -> None:
        message = f"app {app} is updating (promotion of {release_id} in progress)"
        super().__init__(f"{message}; {hint}" if hint else message)
        self.app = app
        self.release_id = release_id

    @property
    def details(self) -> dict[str, str]:
        return {"app": self.app, "release": self.release_id}


class AppDeleting(Conflict):
    """The app is being deleted: nothing about it may change any more."""

    def __init__(self, app: str) -> None:
        super().__init__(f"app {app} is being deleted: it can no longer be changed")
        self.app = app


class InvalidInput(ShipmateError):
    """The user supplied something malformed: a name, an assignment, a flag value."""

    code = ErrorCode.INVALID_INPUT


class ManifestError(InvalidInput):
    """shipmate.yml / convox.yml cannot be used; the message names the file and the key."""

    code = ErrorCode.INVALID_MANIFEST


class TooLarge(InvalidInput):
    """An upload (or what it expands to) passes the rack's size limit (SHIPMATE_MAX_UPLOAD)."""

    code = ErrorCode.TOO_LARGE


class RackStopping(ShipmateError):
    """The rack is stopping: it finishes the promotions and builds running, starts no new one."""

    code = ErrorCode.RACK_STOPPING

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the rack is stopping: it starts no new {what} (it finishes those running); "
            "try again once it is started again"
        )
