"""Source trees built by tests: files with given text and modes, listed as POSIX names."""

from __future__ import annotations

from pathlib import Path


def write(path: Path, text: str = "x", mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def names(paths: list[Path]) -> list[str]:
    return [p.as_posix() for p in paths]
