"""Unpacking an uploaded source archive on the rack, which must treat it as hostile.

`safe_extract` refuses anything that would write outside the build directory, any special
file, and any archive that is or inflates past the size limit. The CLI's side, packing the
upload, is shipmate.cli.pack.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import posixpath
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from shipmate.builder.errors import UnsafeArchive, UploadTooLarge

__all__ = ["safe_extract"]

_CHUNK = 1 << 16


class _Source(Protocol):
    """What extraction reads from: a file, a decompressor, a tar member."""

    def read(self, size: int = -1, /) -> bytes: ...


_LIMIT_HINT = "(limit set by SHIPMATE_MAX_UPLOAD)"


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def _expands_too_far(max_bytes: int) -> UnsafeArchive:
    return UploadTooLarge(f"upload too large: expands past {_human(max_bytes)} {_LIMIT_HINT}")


def _compressed_too_large(max_bytes: int) -> UnsafeArchive:
    return UploadTooLarge(
        f"upload too large: more than {_human(max_bytes)} compressed {_LIMIT_HINT}"
    )


def _escapes(name: str) -> UnsafeArchive:
    return UnsafeArchive(f'unsafe upload: member "{name}" escapes the build directory')


def _link_escapes(kind: str, name: str) -> UnsafeArchive:
    return UnsafeArchive(f'unsafe upload: {kind} "{name}" points outside the build directory')


class _LimitedReader(io.RawIOBase):
    """Reads from `src`, failing as soon as more than `limit` bytes have gone through.

    Used twice: on the raw upload (compressed size) and on the decompressed tar stream, so a
    decompression bomb is stopped while it inflates, not after.
    """

    def __init__(self, src: _Source, limit: int, error: Callable[[int], UnsafeArchive]) -> None:
        self.src = src
        self.limit = limit
        self.error = error
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.src.read(len(buffer))
        n = len(data)
        self.count += n
        if self.count > self.limit:
            raise self.error(self.limit)
        buffer[:n] = data
        return n


def _decompressed(raw: io.RawIOBase) -> _Source:
    """Wrap `raw` in the decompressor its magic bytes call for (none for a plain tar)."""
    buffered = io.BufferedReader(raw)
    magic = buffered.peek(6)[:6]
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(buffered, mode="rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(buffered, mode="rb")
    return buffered


def _clean_relpath(name: str) -> str | None:
    """`name` as a normalised relative POSIX path ("" for the root), or None if unsafe."""
    if name.startswith("/") or "\x00" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _precheck(member: tarfile.TarInfo, root: str) -> str:
    """Checks that need only the header; returns the member's clean relative path."""
    name = member.name
    rel = _clean_relpath(name)
    if rel is None:
        raise _escapes(name)
    if member.issparse():
        raise UnsafeArchive(f'unsafe upload: member "{name}" is a sparse file')
    if member.ischr() or member.isblk():
        raise UnsafeArchive(f'unsafe upload: member "{name}" is a device file')
    if member.isfifo():
        raise UnsafeArchive(f'unsafe upload: member "{name}" is a fifo')
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeArchive(f'unsafe upload: member "{name}" is an unsupported file type')
    if member.issym():
        # Lexical check here; the real resolution (through earlier symlinks) comes later.
        if not member.linkname or member.linkname.startswith("/"):
            raise _link_escapes("symlink", name)
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), member.linkname))
        if joined == ".." or joined.startswith("../"):
            raise _link_escapes("symlink", name)
    if member.islnk() and not _clean_relpath(member.linkname):
        raise _link_escapes("hardlink", name)
    # Second opinion from tarfile's own "data" filter (Python 3.11.4+), after ours so that
    # our clearer messages win for the cases we know about.
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:
        try:
            data_filter(member, root)
        except tarfile.TarError as exc:  # FilterError subclasses TarError
            raise UnsafeArchive(f'unsafe upload: member "{name}" refused ({exc})') from exc
    return rel


class _Extractor:
    """Writes members one at a time, checking each against the real filesystem state."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.root = os.path.realpath(dest)
        self.max_bytes = max_bytes
        self.written = 0
        self.regular_files: set[str] = set()
        self.dir_modes: dict[str, int] = {}

    def extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = _precheck(member, self.root)
        if not rel:
            return  # the archive root itself ("./")
        name = member.name
        # Reject a declared size over the limit before reading a byte of it.
        if member.isreg() and self.written + member.size > self.max_bytes:
            raise _expands_too_far(self.max_bytes)

        target = os.path.join(self._parent(rel, name), posixpath.basename(rel))

        if member.isdir():
            if os.path.islink(target) or (os.path.lexists(target) and not os.path.isdir(target)):
                raise UnsafeArchive(f'unsafe upload: member "{name}" conflicts with another member')
            os.makedirs(target, mode=0o755, exist_ok=True)
            # Modes are applied at the end: a read-only directory would block later members
            # (and our own cleanup). Owner rwx is always kept for the same reason.
            self.dir_modes[target] = (member.mode & 0o755) | 0o700
            return

        self._clear(target, name)

        if member.issym():
            real = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
            if not _inside(real, self.root):
                raise _link_escapes("symlink", name)
            os.symlink(member.linkname, target)
            return

        if member.islnk():
            # Only a link to a regular file extracted earlier from this same archive, and it
            # is written as a copy so no inode is shared with anything else.
            source_rel = _clean_relpath(member.linkname)
            if source_rel not in self.regular_files:
                raise _link_escapes("hardlink", name)
            source = os.path.realpath(os.path.join(self.root, *source_rel.split("/")))
            if not _inside(source, self.root) or not os.path.isfile(source):
                raise _link_escapes("hardlink", name)
            with open(source, "rb") as fh:
                self._write(target, fh, member)
        else:
            fileobj = tar.extractfile(member)
            if fileobj is None:
                raise UnsafeArchive(f'unsafe upload: member "{name}" cannot be read')
            with fileobj:
                self._write(target, fileobj, member)
        self.regular_files.add(rel)

    def _parent(self, rel: str, name: str) -> str:
        """Create and return the real parent directory of `rel`, which must stay inside."""
        parent = os.path.join(self.root, *rel.split("/")[:-1])
        # An earlier symlink member may sit on the path: resolve for real, before and after
        # creating directories, so nothing is ever created or written outside the root.
        if not _inside(os.path.realpath(parent), self.root):
            raise _escapes(name)
        try:
            os.makedirs(parent, mode=0o755, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise UnsafeArchive(
                f'unsafe upload: member "{name}" conflicts with another member'
            ) from exc
        real = os.path.realpath(parent)
        if not _inside(real, self.root):
            raise _escapes(name)
        return real

    @staticmethod
    def _clear(target: str, name: str) -> None:
        """Make room for a member that repeats an earlier name (the later one wins in tar)."""
        if not os.path.lexists(target):
            return
        if os.path.isdir(target) and not os.path.islink(target):
            raise UnsafeArchive(f'unsafe upload: member "{name}" conflicts with a directory')
        os.unlink(target)

    def _write(self, target: str, src: _Source, member: tarfile.TarInfo) -> None:
        # Same rule as tarfile's "data" filter: drop setuid/setgid/sticky and group/other
        # write, keep the executable bits, always let the owner read and write.
        mode = (member.mode & 0o755) | 0o600
        # O_EXCL + O_NOFOLLOW: never write through a symlink planted at this name.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(target, flags, mode), "wb") as out:
            while chunk := src.read(_CHUNK):
                # Count what is actually inflated, not just what headers claim.
                self.written += len(chunk)
                if self.written > self.max_bytes:
                    raise _expands_too_far(self.max_bytes)
                out.write(chunk)
        os.chmod(target, mode)  # the umask may have trimmed the mode given to os.open
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)

    def finish(self) -> None:
        # Each symlink was checked when created, but a later member can change what an
        # earlier link resolves through ("b -> a/.." then "a -> ."): re-resolve them all.
        for current, dirnames, filenames in os.walk(self.root, followlinks=False):
            for entry in dirnames + filenames:
                path = os.path.join(current, entry)
                if os.path.islink(path) and not _inside(os.path.realpath(path), self.root):
                    raise _link_escapes("symlink", os.path.relpath(path, self.root))
        for path, mode in sorted(self.dir_modes.items(), reverse=True):
            os.chmod(path, mode)


def _tar_stream_limit(max_bytes: int) -> int:
    # The inflated stream also carries 512-byte headers and padding: allow for them so an
    # archive whose contents fit is accepted, while still bounding inflation (e.g. a bomb
    # made of millions of empty members).
    return max_bytes + max_bytes // 4 + (1 << 20)


def safe_extract(archive: Path | BinaryIO, dest: Path, max_bytes: int = 1 << 30) -> None:
    """Extract an untrusted gzip (or plain) tar into `dest`, or raise UnsafeArchive.

    `dest` must be absent or an empty directory. On any failure nothing extracted remains.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"extraction directory {dest} is not empty")
    # On failure, remove every directory this call created (dest and any missing parents),
    # so a refused upload leaves the filesystem exactly as it found it.
    created_top: Path | None = None
    for candidate in (dest, *dest.parents):
        if candidate.exists():
            break
        created_top = candidate

    with contextlib.ExitStack() as stack:
        if isinstance(archive, (str, os.PathLike)):
            # Cheap early refusal; the stream below is counted as well.
            if os.path.getsize(archive) > max_bytes:
                raise _compressed_too_large(max_bytes)
            raw: BinaryIO = stack.enter_context(open(archive, "rb"))
        else:
            raw = archive
        dest.mkdir(parents=True, exist_ok=True)
        try:
            _extract_stream(raw, dest, max_bytes)
        except BaseException:
            _remove_extracted(dest, created_top)
            raise


def _extract_stream(raw: BinaryIO, dest: Path, max_bytes: int) -> None:
    extractor = _Extractor(dest, max_bytes)
    try:
        raw_reader = _LimitedReader(raw, max_bytes, _compressed_too_large)
        inflated = _decompressed(raw_reader)
        stream = _LimitedReader(inflated, _tar_stream_limit(max_bytes), _expands_too_far)
        # Stream mode ("r|"): members are handled in order as they arrive, so the limits
        # apply while reading rather than after tarfile has scanned the whole archive.
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in _members(tar):
                extractor.extract(tar, member)
        # The whole upload counts towards the limit, including anything after the tar's end
        # marker, so read (and discard) the rest of it.
        while raw_reader.read(_CHUNK):
            pass
        extractor.finish()
    except UnsafeArchive:
        raise
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        # gzip.BadGzipFile is an OSError subclass; handled below with bz2's errors.
        raise UnsafeArchive(f"invalid upload: not a readable tar archive ({exc})") from exc
    except OSError as exc:
        if isinstance(exc, gzip.BadGzipFile) or "Invalid data stream" in str(exc):
            raise UnsafeArchive(f"invalid upload: not a readable tar archive ({exc})") from exc
        raise


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := tar.next()) is not None:
        yield member
        # Stream mode keeps every TarInfo in tar.members and we never look back: drop them
        # so memory stays flat for archives with many members. (`members` is not in the type
        # stubs, and getmembers() would read the whole stream first.)
        vars(tar)["members"].clear()


def _remove_extracted(dest: Path, created_top: Path | None) -> None:
    # Directories always keep owner rwx until the end (see _Extractor), and rmtree never
    # follows symlinks, so this cannot reach outside dest.
    if created_top is not None:
        shutil.rmtree(created_top, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
