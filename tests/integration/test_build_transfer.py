"""Issue 14, point 4: a build exported from one rack rolls out on another without a rebuild."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import EXAMPLE, Rack, _cli, own_rack

pytestmark = pytest.mark.integration

APP = "mover"


@pytest.fixture
def other(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    """A second rack, of its own home and database."""
    with own_rack(tmp_path_factory, "other") as rack:
        yield rack


def export(rack: Rack, build: str, to: Path, app: str = APP) -> None:
    with to.open("wb") as out:
        done = subprocess.run(
            [*_cli(), "builds", "export", build, "-a", app],
            env=rack.env,
            cwd=rack.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr


def import_(rack: Rack, archive: Path) -> subprocess.CompletedProcess[str]:
    with archive.open("rb") as given:
        return subprocess.run(
            [*_cli(), "builds", "import", "-a", APP],
            env=rack.env,
            cwd=rack.home,
            stdin=given,
            capture_output=True,
            text=True,
            timeout=120,
        )


def test_a_build_moves_to_another_rack_and_rolls_out_without_a_rebuild(
    rack: Rack, other: Rack, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    (source / "requirements.txt").write_text("")  # a virtualenv (with pip), nothing to fetch
    rack.ok("apps", "create", APP)
    rack.ok("deploy", str(source), "-a", APP)
    [build] = [str(b["id"]) for b in rack.builds(APP)]
    archive = tmp_path / "build.tgz"
    export(rack, build, archive)

    other.ok("apps", "create", APP)
    done = import_(other, archive)
    assert done.returncode == 0, done.stderr
    made = re.fullmatch(
        rf"Importing build\.\.\. OK \(from {APP}/{build}\)\n"
        r"Build:   (B[A-Z]{9})\nRelease: (R[A-Z]{9})\n",
        done.stdout,
    )
    assert made, done.stdout
    imported, release = made.groups()
    [listed] = other.builds(APP)
    assert (listed["id"], listed["status"]) == (imported, "complete")
    assert other.ok("builds", "logs", imported, "-a", APP) == ""  # nothing was built here
    out = other.ok("releases", "promote", release, "-a", APP)
    assert out.rstrip().endswith("OK")
    served = other.get(APP).json()
    assert (served["release"], served["build"]) == (release, imported)
    # Its virtualenv works where it now is: the interpreter, and a script that names its path.
    venv = other.home / "builds" / imported / ".venv"
    result = other.run(
        "run", "web", 'python -c "import sys; print(sys.prefix)"; .venv/bin/pip --version',
        "-a", APP,
    )  # fmt: skip
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert lines[0] == str(venv) and lines[1].startswith("pip ") and str(venv) in lines[1]


def test_a_damaged_or_foreign_archive_is_refused_and_changes_nothing(
    rack: Rack, other: Rack, tmp_path: Path
) -> None:
    rack.ok("apps", "create", "damaged")
    rack.ok("deploy", str(EXAMPLE), "-a", "damaged")
    [build] = [str(b["id"]) for b in rack.builds("damaged")]
    archive = tmp_path / "build.tgz"
    export(rack, build, archive, app="damaged")
    other.ok("apps", "create", APP)

    # One file changed after the export.
    tampered = tmp_path / "tampered.tgz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == "build/app.py":
                data = data.replace(b"hello", b"HELLO")  # type: ignore[union-attr]
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    done = import_(other, tampered)
    assert (done.returncode, done.stderr) == (
        1,
        "ERROR: build export damaged: app.py does not match its checksum\n",
    )
    # A source tarball is not an export.
    plain = tmp_path / "plain.tgz"
    with tarfile.open(plain, "w:gz") as tar:
        tar.add(EXAMPLE, arcname=".")
    done = import_(other, plain)
    assert done.returncode == 1
    assert done.stderr == (
        "ERROR: not a build export: no readable shipmate-build.json "
        "(make one with `shipmate builds export`)\n"
    )
    assert other.builds(APP) == [] and other.releases(APP) == []
    assert not [p for p in (other.home / "builds").iterdir() if not p.name.endswith(".log")]
