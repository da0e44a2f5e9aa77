"""Environment assignments, changes and the release descriptions they produce."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from shipmate.domain.errors import InvalidInput

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Set by the platform for every process; a release value would be silently overridden.
RESERVED = frozenset({"APP", "BUILD", "PORT", "RELEASE", "SERVICE"})

# Linux refuses to start a process (E2BIG) with one `KEY=value` string over MAX_ARG_STRLEN
# (32 pages, 128 KiB) or with arguments and environment over about 2 MiB in all (a quarter of
# the 8 MiB stack limit). The total leaves room for PATH, the command line and what the
# platform adds.
MAX_VARIABLE = 128 * 1024
MAX_TOTAL = 2 * 1024 * 1024 - 256 * 1024


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """Parse `KEY=value` items; the value may be empty and may itself contain `=`.

    A key given twice keeps its last value, as a shell would. Keys the platform sets and
    variables too large for the OS are refused here, before anything is stored.
    """
    result: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        why = _bad_key(key) if sep else "use KEY=value with KEY of letters, digits and _"
        if why:
            raise InvalidInput(f'invalid environment assignment "{_clip(item)}": {why}')
        if key in RESERVED:
            names = ", ".join(sorted(RESERVED))
            raise InvalidInput(
                f"{key} is set by shipmate for every process and cannot be changed: "
                f"use another name (reserved: {names})"
            )
        size = len(key.encode()) + 1 + len(value.encode()) + 1
        if size > MAX_VARIABLE:
            raise InvalidInput(
                f"{key} is too large ({_size(size)}): one variable may hold at most "
                f"{_size(MAX_VARIABLE)}, the most Linux passes to a process; store large "
                "data in a file or a service and put its address in the environment"
            )
        result[key] = value
    return result


def check_size(env: Mapping[str, str]) -> None:
    """Refuse an environment that Linux could not pass to a process."""
    total = sum(len(k.encode()) + len(v.encode()) + 2 for k, v in env.items())
    if total > MAX_TOTAL:
        raise InvalidInput(
            f"environment too large: {_size(total)} in all, the limit is {_size(MAX_TOTAL)} "
            "(Linux passes about 2 MiB of environment and arguments to a process): "
            "unset or shrink some variables"
        )


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _bad_key(key: str) -> str | None:
    """Why `key` cannot be an environment variable's name, or None when it can."""
    if KEY_RE.fullmatch(key) is not None:
        return None
    if key[:1].isdigit():
        return "a key cannot start with a digit (use letters, digits and _)"
    return "use KEY=value with KEY of letters, digits and _"


def validate_keys(keys: Iterable[str]) -> list[str]:
    """Check keys given to `env unset`; returns them in order, without repeats."""
    result: list[str] = []
    for key in keys:
        if KEY_RE.fullmatch(key) is None:
            why = (
                "a key cannot start with a digit"
                if key[:1].isdigit()
                else "use letters, digits and _"
            )
            raise InvalidInput(f'invalid environment key "{_clip(key)}": {why}')
        if key not in result:
            result.append(key)
    return result


def apply_change(
    current: Mapping[str, str],
    set_: Mapping[str, str],
    unset: Iterable[str] = (),
    replace: bool = False,
) -> dict[str, str]:
    """The environment after setting `set_` and removing `unset`.

    With `replace`, nothing of `current` survives (`env set --replace`). Unset is applied
    last, so a key both set and unset ends up absent.
    """
    result = dict(set_) if replace else {**current, **set_}
    for key in unset:
        result.pop(key, None)
    return result


def describe_change(old: Mapping[str, str], new: Mapping[str, str]) -> str | None:
    """The release description of an environment change, or None when nothing changed.

    Groups come in the order add, change, remove with keys sorted within each group, so the
    same change always reads the same: `env add:A add:B change:C remove:D`.
    """
    added = sorted(k for k in new if k not in old)
    changed = sorted(k for k in new if k in old and old[k] != new[k])
    removed = sorted(k for k in old if k not in new)
    parts = (
        [f"add:{k}" for k in added]
        + [f"change:{k}" for k in changed]
        + [f"remove:{k}" for k in removed]
    )
    if not parts:
        return None
    return "env " + " ".join(parts)


def format_env(env: Mapping[str, str]) -> list[str]:
    """`KEY=value` lines sorted by key, as `shipmate env` prints them."""
    return [f"{key}={env[key]}" for key in sorted(env)]
