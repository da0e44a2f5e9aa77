"""Errors raised by the builder.

They subclass the domain errors so the API layer can map them without knowing about the
builder: an unsafe upload is the client's fault (InvalidInput), a failed build is not.
"""

from __future__ import annotations

from shipmate.domain.errors import InvalidInput, ShipmateError

__all__ = ["BuildFailed", "UnsafeArchive"]


class UnsafeArchive(InvalidInput):
    """An uploaded source archive was refused; the message names the offending member."""


class BuildFailed(ShipmateError):
    """A build step failed; details are in the build log."""
