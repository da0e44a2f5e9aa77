"""Files that are replaced whole: readers see the old content or the new, even after a crash."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path | str, data: str | bytes, mode: int = 0o644) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, rename it over `path`, and
    fsync the directory, so the rename itself survives a power cut."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
