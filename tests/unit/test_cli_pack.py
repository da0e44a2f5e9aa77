"""The CLI's packing of an upload: which files go, a deterministic tarball, the description."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shipmate.cli.pack import create_tarball, git_description, source_files
from tests.sources import names, write

# --------------------------------------------------------------------------- source_files


def test_source_files_honours_gitignore_and_always_excludes(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "*.log\nbuild/\n!keep.log\n/secret.txt\n")
    write(tmp_path / "app.py")
    write(tmp_path / "debug.log")
    write(tmp_path / "keep.log")
    write(tmp_path / "secret.txt")
    write(tmp_path / "pkg" / "secret.txt")  # "/secret.txt" is anchored to the root
    write(tmp_path / "build" / "out.bin")
    write(tmp_path / "pkg" / "build" / "x")  # "build/" floats to any depth
    write(tmp_path / "pkg" / "mod.py")
    write(tmp_path / "pkg" / "mod.pyc")
    write(tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc")
    write(tmp_path / ".git" / "HEAD")
    write(tmp_path / ".venv" / "bin" / "python")
    os.symlink("/somewhere/else", tmp_path / "pkg" / ".venv")  # excluded by name, any type
    # Nested .gitignore applies relative to its own directory, and can re-include.
    write(tmp_path / "pkg" / ".gitignore", "generated.py\n!important.log\n")
    write(tmp_path / "pkg" / "generated.py")
    write(tmp_path / "pkg" / "important.log")
    write(tmp_path / "generated.py")  # not affected by pkg/.gitignore
    os.symlink("app.py", tmp_path / "link.py")
    os.symlink("pkg", tmp_path / "pkglink")  # a link to a directory is uploaded as a link

    assert names(source_files(tmp_path)) == [
        ".gitignore",
        "app.py",
        "generated.py",
        "keep.log",
        "link.py",
        "pkg/.gitignore",
        "pkg/important.log",
        "pkg/mod.py",
        "pkg/secret.txt",
        "pkglink",
    ]


def test_source_files_prefers_dockerignore_with_docker_semantics(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "*.log\n")
    write(
        tmp_path / ".dockerignore",
        "# comment\n*.md\n**/*.tmp\ndocs\n!docs/keep.txt\n/data/\n.git\n",
    )
    write(tmp_path / "app.log")  # only gitignored: .dockerignore wins, so included
    write(tmp_path / "README.md")
    write(tmp_path / "pkg" / "NOTES.md")  # Docker patterns are root-relative
    write(tmp_path / "pkg" / "a.tmp")
    write(tmp_path / "docs" / "index.txt")
    write(tmp_path / "docs" / "keep.txt")  # Docker exceptions re-include inside a dir
    write(tmp_path / "data" / "big.bin")
    write(tmp_path / ".venv" / "pyvenv.cfg")  # always excluded, whatever the file says
    write(tmp_path / "pkg" / "__pycache__" / "m.pyc")

    assert names(source_files(tmp_path)) == [
        ".dockerignore",
        ".gitignore",
        "app.log",
        "docs/keep.txt",
        "pkg/NOTES.md",
    ]


def test_source_files_without_ignore_files(tmp_path: Path) -> None:
    write(tmp_path / "b.py")
    write(tmp_path / "a" / "z.py")
    write(tmp_path / "a.py")
    os.mkfifo(tmp_path / "fifo")  # not uploadable, silently skipped
    assert names(source_files(tmp_path)) == ["a.py", "a/z.py", "b.py"]


# --------------------------------------------------------------------------- git_description


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return proc.stdout.strip()


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


@needs_git
def test_git_description_clean_and_dirty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    repo = tmp_path / "repo"
    repo.mkdir()
    assert git_description(repo) is None  # not a repository

    git(repo, "init", "-q")
    write(repo / "app.py", "print(1)\n")
    assert git_description(repo) is None  # no commits yet

    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "my commit message\n\nlonger body\nlines")
    sha = git(repo, "rev-parse", "HEAD")
    expected = f"build {sha[:12]} my commit message"
    assert git_description(repo) == expected
    write(repo / "sub" / "x.txt")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "second")
    sha = git(repo, "rev-parse", "HEAD")
    assert git_description(repo / "sub") == f"build {sha[:12]} second"

    (repo / "app.py").write_text("print(2)\n")  # modified
    assert git_description(repo) is None
    git(repo, "checkout", "-q", "app.py")
    write(repo / "untracked.txt")  # untracked also counts as uncommitted
    assert git_description(repo) is None


def test_git_description_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_description(tmp_path) is None


def test_git_description_missing_directory(tmp_path: Path) -> None:
    assert git_description(tmp_path / "nope") is None


def test_gzip_header_is_deterministic(tmp_path: Path) -> None:
    write(tmp_path / "src" / "a.txt")
    buf = io.BytesIO()
    create_tarball(tmp_path / "src", buf)
    header = buf.getvalue()[:10]
    assert header[:2] == b"\x1f\x8b"
    assert header[4:8] == b"\x00\x00\x00\x00"  # no timestamp
    assert gzip.decompress(buf.getvalue())
