"""Environment assignments, changes and the release descriptions they produce."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from shipmate.domain.errors import InvalidInput

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """Parse `KEY=value` items; the value may be empty and may itself contain `=`.

    A key given twice keeps its last value, as a shell would.
    """
    result: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or KEY_RE.fullmatch(key) is None:
            raise InvalidInput(
                f'invalid environment assignment "{item}": '
                "use KEY=value with KEY of letters, digits and _"
            )
        result[key] = value
    return result


def validate_keys(keys: Iterable[str]) -> list[str]:
    """Check keys given to `env unset`; returns them in order, without repeats."""
    result: list[str] = []
    for key in keys:
        if KEY_RE.fullmatch(key) is None:
            raise InvalidInput(
                f'invalid environment key "{key}": '
                "use letters, digits and _, not starting with a digit"
            )
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
