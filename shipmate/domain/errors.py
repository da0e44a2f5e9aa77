"""User-facing errors.

Every error a user can cause derives from ShipmateError, so the CLI and the API can turn it into
one line (`ERROR: <message>`, `{"error": "<message>"}`) without knowing where it came from. The
message says what is wrong and what to do about it; it never carries a traceback.
"""

from __future__ import annotations


class ShipmateError(Exception):
    """Base of every user-facing error; `str(error)` is one line for the user."""


class NotFound(ShipmateError):
    """The named app, build, release, service or process does not exist."""


class Conflict(ShipmateError):
    """The request collides with the current state (e.g. a promotion already running)."""


class AppBusy(Conflict):
    """A promotion of the app is running; another may start only once it has finished."""

    def __init__(self, app: str, release_id: str) -> None:
        super().__init__(f"app {app} is updating (promotion of {release_id} in progress)")
        self.app = app
        self.release_id = release_id


class InvalidInput(ShipmateError):
    """The user supplied something malformed: a name, an assignment, a flag value."""


class ManifestError(InvalidInput):
    """shipmate.yml / convox.yml cannot be used; the message names the file and the key."""
