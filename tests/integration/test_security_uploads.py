"""Hostile uploads through the real API: refused in one line, nothing written anywhere.

Each archive goes to POST /apps/{app}/builds as raw bytes, as an attacker holding a deployer
token would send it. The rack runs with a small SHIPMATE_MAX_UPLOAD so the size limits can be
reached quickly.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Rack, stop_rack

LIMIT = 256 * 1024
APP = "target"
TAG = uuid.uuid4().hex[:12]
ESCAPE = f"escape-{TAG}"
ABSOLUTE = Path("/tmp") / f"shipmate-{ESCAPE}"


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    home = tmp_path_factory.mktemp("uploads") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env.update(SHIPMATE_HOME=str(home), SHIPMATE_MAX_UPLOAD=str(LIMIT))
    rack = Rack(home, env)
    home.mkdir()
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
    try:
        rack.ok("apps", "create", APP)
        for directory in ("builds", "uploads"):  # made by the first upload, which is refused
            (home / directory).mkdir(exist_ok=True)
        yield rack
    finally:
        stop_rack(rack)


def member(name: str, data: bytes = b"", **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    if info.type != tarfile.REGTYPE:
        info.size = 0
    return info, data


def archive(*members: tuple[tarfile.TarInfo, bytes], compress: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


MANIFEST = member("shipmate.yml", b"services:\n  web:\n    command: sleep 60\n")

HOSTILE = {
    "path traversal": (
        archive(MANIFEST, member(f"../../../{ESCAPE}", b"pwned")),
        f'unsafe upload: member "../../../{ESCAPE}" escapes the build directory',
    ),
    "path traversal inside a path": (
        archive(MANIFEST, member(f"app/../../../../{ESCAPE}", b"pwned")),
        f'unsafe upload: member "app/../../../../{ESCAPE}" escapes the build directory',
    ),
    "absolute path": (
        archive(MANIFEST, member(str(ABSOLUTE), b"pwned")),
        f'unsafe upload: member "{ABSOLUTE}" escapes the build directory',
    ),
    "symlink to an absolute path": (
        archive(MANIFEST, member("etc", type=tarfile.SYMTYPE, linkname="/etc")),
        'unsafe upload: symlink "etc" points outside the build directory',
    ),
    "symlink out, then a file written through it": (
        archive(
            MANIFEST,
            member("up", type=tarfile.SYMTYPE, linkname="../../.."),
            member(f"up/{ESCAPE}", b"pwned"),
        ),
        'unsafe upload: symlink "up" points outside the build directory',
    ),
    "hardlink to an absolute path": (
        archive(MANIFEST, member("passwd", type=tarfile.LNKTYPE, linkname="/etc/passwd")),
        'unsafe upload: hardlink "passwd" points outside the build directory',
    ),
    "hardlink out of the build": (
        archive(MANIFEST, member("token", type=tarfile.LNKTYPE, linkname="../../../token")),
        'unsafe upload: hardlink "token" points outside the build directory',
    ),
    "character device": (
        archive(MANIFEST, member("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
        'unsafe upload: member "null" is a device file',
    ),
    "block device": (
        archive(MANIFEST, member("disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0)),
        'unsafe upload: member "disk" is a device file',
    ),
    "fifo": (
        archive(MANIFEST, member("pipe", type=tarfile.FIFOTYPE)),
        'unsafe upload: member "pipe" is a fifo',
    ),
    "upload over the size limit": (
        archive(MANIFEST, member("noise.bin", os.urandom(2 * LIMIT))),
        f"upload too large: over {LIMIT} bytes (limit set by SHIPMATE_MAX_UPLOAD)",
    ),
    "decompression bomb": (
        archive(MANIFEST, member("zeros.bin", bytes(64 * LIMIT))),
        "upload too large: expands past 256.0 KiB (limit set by SHIPMATE_MAX_UPLOAD)",
    ),
    "not an archive": (
        b"\x1f\x8b" + os.urandom(1000),
        "invalid upload: not a readable tar archive",
    ),
}

# The code of each refusal that is not "unsafe_upload".
CODES = {
    "decompression bomb": "too_large",
    # Refused while spooled, before unpacking (services/builds.py): "too_large" once it raises
    # domain.errors.TooLarge rather than InvalidInput.
    "upload over the size limit": "too_large",
}


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def upload(rack: Rack, body: bytes) -> httpx.Response:
    token = (rack.home / "token").read_text().strip()
    return httpx.post(
        f"{rack.info['api']}/apps/{APP}/builds",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/gzip"},
        timeout=60,
    )


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_upload_is_refused_and_writes_nothing(rack: Rack, case: str) -> None:
    body, expected = HOSTILE[case]
    outside = rack.home.parent
    before_home, before_outside = tree(rack.home), tree(outside)

    response = upload(rack, body)

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "code"}
    assert response.json()["code"] == CODES.get(case, "unsafe_upload")
    error = response.json()["error"]
    assert error.startswith(expected) and "\n" not in error
    assert rack.builds(APP) == []
    builds_dir = rack.home / "builds"
    assert not list(builds_dir.glob(".staging-*"))
    assert not any((rack.home / "uploads").iterdir())
    assert tree(rack.home) == before_home
    assert tree(outside) == before_outside
    assert not ABSOLUTE.exists()


def test_the_cli_reports_a_refused_upload_in_one_line(rack: Rack, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "shipmate.yml").write_bytes(MANIFEST[1])
    (source / "big.bin").write_bytes(os.urandom(2 * LIMIT))
    result = rack.run("build", str(source), "-a", APP)
    assert result.code == 1
    assert result.err == (
        f"ERROR: upload too large: over {LIMIT} bytes (limit set by SHIPMATE_MAX_UPLOAD)\n"
    )
    assert rack.builds(APP) == []


def test_a_sound_upload_is_still_accepted(rack: Rack) -> None:
    response = upload(rack, archive(MANIFEST, member("app/main.py", b"print('hi')\n")))
    assert response.status_code == 201, response.text
    assert [b["id"] for b in rack.builds(APP)] == [response.json()["id"]]
