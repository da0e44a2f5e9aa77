"""What changes between two releases: environment, build, manifest (`releases diff`).

Pure: the use case gathers the releases and builds, this says how they differ.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

MASK = "****"
# The description `shipmate deploy` gives a build from a clean git checkout (cli/pack.py).
_COMMIT = re.compile(r"^build ([0-9a-f]{7,40})(?:\s|$)")


@dataclass(frozen=True)
class EnvDiff:
    added: dict[str, str]
    changed: dict[str, tuple[str, str]]  # key: (from, to)
    removed: dict[str, str]

    @classmethod
    def of(cls, old: Mapping[str, str], new: Mapping[str, str]) -> EnvDiff:
        return cls(
            added={k: new[k] for k in sorted(new) if k not in old},
            changed={k: (old[k], new[k]) for k in sorted(new) if k in old and old[k] != new[k]},
            removed={k: old[k] for k in sorted(old) if k not in new},
        )

    def masked(self) -> EnvDiff:
        """The same keys, every value `****`: which keys changed, not to what."""
        return EnvDiff(
            added=dict.fromkeys(self.added, MASK),
            changed=dict.fromkeys(self.changed, (MASK, MASK)),
            removed=dict.fromkeys(self.removed, MASK),
        )

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def commit_of(description: str) -> str | None:
    """The git commit a build's description names (`build <sha> <subject>`), if any."""
    found = _COMMIT.match(description)
    return found.group(1) if found else None


def manifest_diff(old: str | None, new: str | None, old_label: str, new_label: str) -> str:
    """A unified diff of two manifests; "" when they are the same."""
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        (new or "").splitlines(keepends=True),
        fromfile=old_label,
        tofile=new_label,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
