"""The Python build step, run for real (offline: nothing here needs the network)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from shipmate.builder.errors import BuildFailed
from shipmate.builder.python import build_python, needs_virtualenv, venv_bin
from shipmate.domain.errors import ShipmateError


def test_needs_virtualenv(tmp_path: Path) -> None:
    assert not needs_virtualenv(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert needs_virtualenv(tmp_path)
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "requirements.txt").write_text("")
    assert needs_virtualenv(tmp_path)
    (tmp_path / "requirements.txt").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "requirements.txt").write_text("")  # only the root counts
    assert not needs_virtualenv(tmp_path)


def test_nothing_to_install(tmp_path: Path) -> None:
    lines: list[str] = []
    build_python(tmp_path, lines.append)
    assert lines == ["No requirements.txt or pyproject.toml: nothing to install"]
    assert not (tmp_path / ".venv").exists()
    assert venv_bin(tmp_path) is None


def test_empty_requirements_creates_venv_and_streams_log(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# nothing needed\n")
    # A stale .venv in the upload is replaced, not reused.
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "planted").write_text("x")

    lines: list[str] = []
    build_python(tmp_path, lines.append)

    assert "Creating virtualenv .venv" in lines
    assert "Installing requirements.txt" in lines
    assert lines.index("Creating virtualenv .venv") < lines.index("Installing requirements.txt")
    assert all("\n" not in line for line in lines)
    assert not (tmp_path / ".venv" / "planted").exists()
    bin_dir = venv_bin(tmp_path)
    assert bin_dir == tmp_path / ".venv" / "bin"
    assert (bin_dir / "python").exists()
    assert (tmp_path / ".venv" / "pyvenv.cfg").is_file()


def test_failing_requirements_raise_build_failed(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("./does-not-exist\n")
    lines: list[str] = []
    with pytest.raises(BuildFailed) as info:
        build_python(tmp_path, lines.append)
    assert isinstance(info.value, ShipmateError)
    assert str(info.value).startswith("pip install failed with exit code ")
    assert str(info.value).endswith("; see the build log")
    # pip's own explanation reached the log.
    assert any("does-not-exist" in line for line in lines)


def test_output_is_streamed_line_by_line(tmp_path: Path) -> None:
    # A fake "python" whose venv step prints a line, then sleeps: the line must reach the
    # log before the process ends.
    fake = tmp_path / "fakepython"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "print('first line', flush=True)\n"
        "time.sleep(3)\n"
        "sys.exit(7)\n"
    )
    fake.chmod(0o755)
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("")

    seen: dict[str, float] = {}
    start = time.monotonic()

    def log(line: str) -> None:
        seen.setdefault(line, time.monotonic() - start)

    errors: list[BaseException] = []

    def run() -> None:
        try:
            build_python(src, log, python=str(fake))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert seen["first line"] < 2.5
    assert len(errors) == 1 and isinstance(errors[0], BuildFailed)
    assert "exit code 7" in str(errors[0])


def test_timeout_kills_the_step(tmp_path: Path) -> None:
    fake = tmp_path / "fakepython"
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    fake.chmod(0o755)
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("")
    start = time.monotonic()
    with pytest.raises(BuildFailed, match="timed out after 1 seconds"):
        build_python(src, lambda _: None, python=str(fake), timeout=1)
    assert time.monotonic() - start < 10
