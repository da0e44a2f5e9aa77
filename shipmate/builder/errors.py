"""Errors raised by the builder.

They subclass the domain errors so the API layer can map them without knowing about the
builder: an unsafe upload is the client's fault (InvalidInput), a failed build is not.
"""

from __future__ import annotations

from shipmate.domain.errors import ErrorCode, InvalidInput, ShipmateError, TooLarge

__all__ = ["BuildFailed", "UnsafeArchive", "UploadTooLarge"]


class UnsafeArchive(InvalidInput):
    """An uploaded source archive was refused; the message names the offending member."""

    code = ErrorCode.UNSAFE_UPLOAD


class UploadTooLarge(UnsafeArchive, TooLarge):
    """An uploaded archive is, or inflates to, more than the rack accepts."""

    code = ErrorCode.TOO_LARGE


class BuildFailed(ShipmateError):
    """A build step failed; details are in the build log."""
