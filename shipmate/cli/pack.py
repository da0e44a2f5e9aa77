"""Packing an app's source for upload: which files go (.dockerignore, else .gitignore), the
deterministic gzip tar they go in, and the build description a clean git checkout gives.

The rack never trusts what this produces: shipmate.builder.archive unpacks uploads as hostile.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import pathspec

__all__ = ["create_tarball", "git_description", "source_files"]

# Never worth uploading: VCS metadata, a local virtualenv (built for another machine; the
# rack builds its own) and bytecode caches. Excluded whatever the ignore files say.
ALWAYS_EXCLUDED_DIRS = frozenset({".git", ".venv", "__pycache__"})
ALWAYS_EXCLUDED_SUFFIXES = (".pyc",)

# Plain last-match-wins gitignore patterns (no git-specific "can't re-include inside an
# excluded directory" rule), which is how Docker evaluates .dockerignore. pathspec renamed
# the factory in 1.0 and deprecates whichever name is not its own.
_PLAIN_GITIGNORE = "gitwildmatch" if pathspec.__version__.startswith("0.") else "gitignore"


class _IgnoreRules:
    """Decides which paths of a source tree are left out of the upload."""

    def __init__(self, root: Path) -> None:
        dockerignore = root / ".dockerignore"
        self.docker: pathspec.PathSpec[Any] | None = None
        # Per-directory .gitignore specs, keyed by the directory relative to root ("" = root).
        self.git: dict[str, pathspec.GitIgnoreSpec] = {}
        # Docker lets "!pattern" re-include files inside an excluded directory, so excluded
        # directories can only be skipped wholesale when there is no exception pattern.
        self.docker_can_prune = True
        if dockerignore.is_file():
            lines = _dockerignore_patterns(dockerignore.read_text(errors="replace"))
            self.docker = pathspec.PathSpec.from_lines(_PLAIN_GITIGNORE, lines)
            self.docker_can_prune = not any(line.startswith("!") for line in lines)

    def load_gitignore(self, rel_dir: str, directory: Path) -> None:
        # .dockerignore replaces .gitignore entirely, as `docker build` does.
        if self.docker is not None:
            return
        gitignore = directory / ".gitignore"
        if gitignore.is_file():
            text = gitignore.read_text(errors="replace")
            self.git[rel_dir] = pathspec.GitIgnoreSpec.from_lines(text.splitlines())

    def ignored(self, rel: str, is_dir: bool) -> bool:
        name = posixpath.basename(rel)
        # By name whatever the type: a .venv symlinked elsewhere or a .git file (worktrees,
        # submodules) is just as unwanted as the directory.
        if name in ALWAYS_EXCLUDED_DIRS:
            return True
        if not is_dir and name.endswith(ALWAYS_EXCLUDED_SUFFIXES):
            return True
        probe = rel + "/" if is_dir else rel
        if self.docker is not None:
            return self.docker.match_file(probe)
        # Git semantics: the deepest .gitignore with a matching pattern decides. Specs are
        # registered top-down during the walk, so dict order is shallow-to-deep along any path.
        verdict = False
        for base, spec in self.git.items():
            if base and not rel.startswith(base + "/"):
                continue
            result = spec.check_file(probe[len(base) + 1 :] if base else probe)
            if result.include is not None:
                verdict = bool(result.include)
        return verdict

    def prune(self, rel: str) -> bool:
        """Whether a directory can be skipped without looking inside."""
        name = posixpath.basename(rel)
        if name in ALWAYS_EXCLUDED_DIRS:
            return True
        if self.docker is not None and not self.docker_can_prune:
            return False
        # Git never re-includes files under an ignored directory, so pruning is exact.
        return self.ignored(rel, is_dir=True)


def _dockerignore_patterns(text: str) -> list[str]:
    """Translate .dockerignore lines into root-anchored gitwildmatch patterns.

    Docker patterns are relative to the context root ("*.md" only matches at the top level,
    "**/*.md" anywhere), unlike .gitignore patterns which float; anchoring them with a leading
    "/" gives gitwildmatch the Docker meaning.
    """
    patterns: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        body = line[1:].strip() if negate else line
        # Docker cleans each pattern like a path (filepath.Clean) and ignores a leading "/".
        body = posixpath.normpath(body.lstrip("/")) if body.lstrip("/") else ""
        if body in ("", "."):
            continue
        patterns.append(("!" if negate else "") + "/" + body)
    return patterns


def source_files(directory: Path) -> list[Path]:
    """Relative paths of the regular files and symlinks to upload from `directory`, sorted."""
    root = Path(directory)
    rules = _IgnoreRules(root)
    found: list[Path] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(current)
        rel_dir = here.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        rules.load_gitignore(rel_dir, here)

        keep_dirs: list[str] = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if (here / name).is_symlink():
                # os.walk lists symlinks to directories as directories; upload the link itself
                # (git does the same) rather than what it points at.
                if not rules.ignored(rel, is_dir=False):
                    found.append(Path(rel))
            elif not rules.prune(rel):
                keep_dirs.append(name)
        dirnames[:] = keep_dirs

        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            mode = (here / name).lstat().st_mode
            # Sockets, fifos and devices cannot be meaningfully uploaded (and the server would
            # refuse them), so only regular files and symlinks are considered.
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                continue
            if not rules.ignored(rel, is_dir=False):
                found.append(Path(rel))
    return sorted(found, key=lambda p: p.as_posix())


class _CountingWriter(io.RawIOBase):
    """Counts the bytes passed through to `out` so create_tarball can report the size."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(data)
        self.out.write(bytes(data))
        self.count += n
        return n


def create_tarball(directory: Path, out: BinaryIO) -> int:
    """Write a gzip tar of `source_files(directory)` to `out`; return the bytes written.

    Output is deterministic for a given tree: sorted members, no owner information, and a
    gzip header without timestamp or file name.
    """
    root = Path(directory)
    counter = _CountingWriter(out)
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=counter, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel in source_files(root):
            path = root / rel
            st = path.lstat()
            # TarInfo is built by hand rather than with gettarinfo(): gettarinfo turns a
            # second link to the same inode into a hardlink member, which the server refuses.
            info = tarfile.TarInfo(rel.as_posix())
            info.mode = stat.S_IMODE(st.st_mode)
            info.mtime = int(st.st_mtime)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            else:
                info.type = tarfile.REGTYPE
                info.size = st.st_size
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
    out.flush()
    return counter.count


def git_description(directory: Path) -> str | None:
    """ "build <sha12> <subject>" for a clean git checkout, else None (never raises)."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-c", "log.showSignature=false", *args],
                cwd=directory,
                capture_output=True,
                timeout=15,
                stdin=subprocess.DEVNULL,
                # Read-only question: don't let `git status` refresh the index behind the
                # user's back (and race with their own git commands).
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            )
        except (OSError, subprocess.SubprocessError):
            return None  # git missing, directory gone, or hung
        if proc.returncode != 0:
            return None
        return proc.stdout.decode("utf-8", errors="replace")

    inside = git("rev-parse", "--is-inside-work-tree")
    if inside is None or inside.strip() != "true":
        return None
    status = git("status", "--porcelain")
    if status is None or status.strip():
        return None
    head = git("log", "-1", "--format=%H%x00%B", "HEAD")
    if head is None or "\x00" not in head:
        return None  # e.g. no commits yet
    sha, message = head.split("\x00", 1)
    sha = sha.strip()
    lines = message.strip().splitlines()
    subject = lines[0].strip() if lines else ""
    return f"build {sha[:12]} {subject}".rstrip()
