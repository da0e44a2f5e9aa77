"""Identifiers of builds, releases, promotions and processes, and app-name rules."""

from __future__ import annotations

import re
import secrets
import string

from shipmate.domain.errors import InvalidInput

_ID_LETTERS = string.ascii_uppercase
_ID_LENGTH = 9
_PROCESS_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_PROCESS_SUFFIX_LENGTH = 5

_BUILD_ID_RE = re.compile(r"B[A-Z]{9}")
_RELEASE_ID_RE = re.compile(r"R[A-Z]{9}")

APP_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,29}")


def _new_id(prefix: str) -> str:
    # secrets rather than random: IDs appear in URLs and must not be guessable or collide
    # across racks seeded alike.
    return prefix + "".join(secrets.choice(_ID_LETTERS) for _ in range(_ID_LENGTH))


def new_build_id() -> str:
    """A fresh build id: "B" followed by 9 random uppercase letters."""
    return _new_id("B")


def new_release_id() -> str:
    """A fresh release id: "R" followed by 9 random uppercase letters."""
    return _new_id("R")


def new_promotion_id() -> str:
    """A fresh promotion id: "P" followed by 9 random uppercase letters."""
    return _new_id("P")


def is_build_id(s: object) -> bool:
    """True when `s` is exactly a build id (B + 9 uppercase letters)."""
    return isinstance(s, str) and _BUILD_ID_RE.fullmatch(s) is not None


def is_release_id(s: object) -> bool:
    """True when `s` is exactly a release id (R + 9 uppercase letters)."""
    return isinstance(s, str) and _RELEASE_ID_RE.fullmatch(s) is not None


def validate_app_name(name: str) -> str:
    """Return `name` unchanged when it is a valid app name, else raise InvalidInput."""
    if not isinstance(name, str) or APP_NAME_RE.fullmatch(name) is None:
        raise InvalidInput(
            f"invalid app name {name!r}: use 1-30 characters a-z, 0-9 and -, starting with a letter"
        )
    return name


def release_hash(release_id: str) -> str:
    """The release's part of runtime object names (`web-rzyxwvutsr`).

    Lowercase because those names double as hostnames and Kubernetes object names.
    """
    return release_id.lower()


def new_process_id(service: str, release_id: str) -> str:
    """A process id in the Kubernetes pod style: `<service>-<release hash>-<5 chars>`."""
    suffix = "".join(
        secrets.choice(_PROCESS_SUFFIX_ALPHABET) for _ in range(_PROCESS_SUFFIX_LENGTH)
    )
    return f"{service}-{release_hash(release_id)}-{suffix}"
