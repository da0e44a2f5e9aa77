"""The rack's extraction of uploads, hostile ones first, and the round trip from the CLI's
packing (shipmate.cli.pack; its own tests are tests/unit/test_cli_pack.py), on real files."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from shipmate.builder.archive import safe_extract
from shipmate.builder.errors import UnsafeArchive
from shipmate.cli.pack import create_tarball, source_files
from shipmate.domain.errors import ErrorCode, InvalidInput
from tests.sources import names, write

MB = 1_000_000


# --------------------------------------------------------------------------- round trip


def make_source(root: Path) -> None:
    write(root / "app.py", "print('hi')\n")
    write(root / "run.sh", "#!/bin/sh\necho run\n", mode=0o755)
    write(root / "conf" / "settings.ini", "[x]\n", mode=0o640)
    write(root / "deep" / "er" / "file.txt", "deep\n")
    write(root / "ignored.log", "no\n")
    write(root / ".gitignore", "*.log\n")
    write(root / "big.bin", "0123456789" * 50_000)
    os.symlink("app.py", root / "alias.py")
    os.symlink("../app.py", root / "deep" / "up.py")


def test_create_tarball_and_safe_extract_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_source(src)
    buf = io.BytesIO()
    written = create_tarball(src, buf)
    data = buf.getvalue()
    assert written == len(data) > 0

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == names(source_files(src))
    for m in members:
        assert not m.name.startswith(("/", "./"))
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")

    # Deterministic: the same tree gives the same bytes.
    again = io.BytesIO()
    create_tarball(src, again)
    assert again.getvalue() == data

    dest = tmp_path / "dest"
    safe_extract(io.BytesIO(data), dest)
    assert names(source_files(dest)) == names(source_files(src))
    for rel in source_files(src):
        original, copy = src / rel, dest / rel
        if original.is_symlink():
            assert copy.is_symlink()
            assert os.readlink(copy) == os.readlink(original)
        else:
            assert copy.read_bytes() == original.read_bytes()
            assert stat.S_IMODE(copy.stat().st_mode) == stat.S_IMODE(original.stat().st_mode)
    assert not (dest / "ignored.log").exists()
    assert os.access(dest / "run.sh", os.X_OK)

    # From a path too, into an existing empty directory.
    archive = tmp_path / "src.tgz"
    archive.write_bytes(data)
    dest2 = tmp_path / "dest2"
    dest2.mkdir()
    safe_extract(archive, dest2)
    assert (dest2 / "deep" / "er" / "file.txt").read_text() == "deep\n"


def test_safe_extract_accepts_plain_tar_with_dot_prefix_dirs_and_internal_links(
    tmp_path: Path,
) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add_dir(tar, ".")
        add_dir(tar, "./pkg")
        add_file(tar, "./pkg/a.txt", b"hello")
        add_link(tar, "./pkg/b.txt", "pkg/a.txt", tarfile.LNKTYPE)
        add_link(tar, "./pkg/c.txt", "a.txt", tarfile.SYMTYPE)
        add_file(tar, "./setuid", b"x", mode=0o4777)
    dest = tmp_path / "dest"
    safe_extract(io.BytesIO(buf.getvalue()), dest)
    assert (dest / "pkg" / "b.txt").read_bytes() == b"hello"
    assert not (dest / "pkg" / "b.txt").samefile(dest / "pkg" / "a.txt")  # copied, not linked
    assert os.readlink(dest / "pkg" / "c.txt") == "a.txt"
    # setuid and group/other write are dropped.
    assert stat.S_IMODE((dest / "setuid").stat().st_mode) == 0o755


def test_safe_extract_refuses_non_empty_dest(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    write(dest / "existing")
    with pytest.raises(FileExistsError):
        safe_extract(io.BytesIO(tar_bytes(lambda t: add_file(t, "a", b"x"))), dest)
    assert (dest / "existing").exists()


# --------------------------------------------------------------------------- hostile uploads


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def add_special(tar: tarfile.TarFile, name: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


def tar_bytes(build, compress: bool = True) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        build(tar)
    return buf.getvalue()


def snapshot(root: Path) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    }


@pytest.fixture
def arena(tmp_path: Path) -> Path:
    """tmp_path/outside holds a file an attacker would like to reach or overwrite."""
    write(tmp_path / "outside" / "secret", "top secret")
    return tmp_path


def assert_refused(
    arena: Path,
    data: bytes,
    match: str,
    max_bytes: int = 1 << 30,
    dest_exists: bool = False,
    as_path: bool = False,
) -> UnsafeArchive:
    dest = arena / "work" / "dest"
    if dest_exists:
        dest.mkdir(parents=True)
    source: Path | io.BytesIO = io.BytesIO(data)
    if as_path:
        source = arena / "upload.tgz"
        source.write_bytes(data)
    before = snapshot(arena)
    with pytest.raises(UnsafeArchive, match=match) as info:
        safe_extract(source, dest, max_bytes=max_bytes)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, InvalidInput)
    # What the API's error body says: too large, or unsafe (whatever the wording).
    too_large = message.startswith("upload too large")
    assert info.value.code == (ErrorCode.TOO_LARGE if too_large else ErrorCode.UNSAFE_UPLOAD)
    # Nothing written anywhere, nothing partial left behind.
    if dest_exists:
        assert list(dest.iterdir()) == []
        assert snapshot(arena) == before
    else:
        assert not dest.exists()
        assert snapshot(arena) == before
    assert (arena / "outside" / "secret").read_text() == "top secret"
    return info.value


def test_refuses_absolute_path(arena: Path) -> None:
    target = str(arena / "outside" / "secret")

    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, "ok.txt", b"fine")
        add_file(tar, target, b"pwned")

    assert_refused(arena, tar_bytes(build), r'^unsafe upload: member ".*secret" escapes')


def test_refuses_dotdot_path(arena: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, "ok.txt", b"fine")
        add_file(tar, "a/../../../outside/secret", b"pwned")

    err = assert_refused(arena, tar_bytes(build), "escapes the build directory", dest_exists=True)
    assert str(err) == (
        'unsafe upload: member "a/../../../outside/secret" escapes the build directory'
    )


@pytest.mark.parametrize("target", ["../../outside", "/etc/passwd", "a/../../.."])
def test_refuses_symlink_out(arena: Path, target: str) -> None:
    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, "ok.txt", b"fine")
        add_link(tar, "evil", target, tarfile.SYMTYPE)

    assert_refused(arena, tar_bytes(build), r'symlink "evil" points outside')


def test_refuses_writing_through_a_symlink_chain(arena: Path) -> None:
    # Each link looks harmless lexically when created; together "b" leads to the parent.
    def build(tar: tarfile.TarFile) -> None:
        add_link(tar, "b", "a/..", tarfile.SYMTYPE)
        add_link(tar, "a", ".", tarfile.SYMTYPE)
        add_file(tar, "b/pwned", b"pwned")  # would land in arena/work/

    assert_refused(arena, tar_bytes(build), "unsafe upload")


def test_refuses_symlink_chain_left_behind(arena: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        add_link(tar, "b", "a/..", tarfile.SYMTYPE)
        add_link(tar, "a", ".", tarfile.SYMTYPE)

    assert_refused(arena, tar_bytes(build), 'symlink "b" points outside')


def test_refuses_file_through_symlinked_dir(arena: Path) -> None:
    outside = str(arena / "outside")

    def build(tar: tarfile.TarFile) -> None:
        add_link(tar, "d", outside, tarfile.SYMTYPE)
        add_file(tar, "d/secret", b"pwned")

    assert_refused(arena, tar_bytes(build), 'symlink "d" points outside')


@pytest.mark.parametrize("target", ["../../outside/secret", "ABSOLUTE", "missing.txt"])
def test_refuses_hardlink_out(arena: Path, target: str) -> None:
    if target == "ABSOLUTE":
        target = str(arena / "outside" / "secret")

    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, "ok.txt", b"fine")
        add_link(tar, "stolen", target, tarfile.LNKTYPE)

    assert_refused(arena, tar_bytes(build), r'hardlink "stolen" points outside')


@pytest.mark.parametrize(
    ("kind", "what"),
    [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "fifo")],
)
def test_refuses_special_files(arena: Path, kind: bytes, what: str) -> None:
    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, "ok.txt", b"fine")
        add_special(tar, "dev/null", kind)

    assert_refused(arena, tar_bytes(build), rf'member "dev/null" is a {what}')


def test_refuses_decompression_bomb(arena: Path) -> None:
    # 50 MB of zeros compresses to ~50 KB: small upload, huge expansion.
    data = tar_bytes(lambda tar: add_file(tar, "zeros", bytes(50 * MB)))
    assert len(data) < MB
    err = assert_refused(arena, data, "expands past", max_bytes=MB)
    assert str(err) == (
        "upload too large: expands past 976.6 KiB (limit set by SHIPMATE_MAX_UPLOAD)"
    )


def test_bomb_is_stopped_while_inflating(arena: Path) -> None:
    # 100 members of 1 MB of zeros, each under the limit, only adding up past it: refused
    # after the first few, having read a small part of the upload, and the files already
    # written are removed.
    def build(tar: tarfile.TarFile) -> None:
        for i in range(100):
            add_file(tar, f"part{i:03}", bytes(MB))

    data = tar_bytes(build)

    class Counting(io.BytesIO):
        consumed = 0

        def read(self, n: int | None = -1) -> bytes:
            chunk = super().read(n)
            Counting.consumed += len(chunk)
            return chunk

    dest = arena / "dest"
    with pytest.raises(UnsafeArchive, match="expands past"):
        safe_extract(Counting(data), dest, max_bytes=2 * MB)
    assert not dest.exists()
    assert Counting.consumed < len(data) / 3


def test_refuses_oversized_compressed_upload(arena: Path) -> None:
    # Random bytes do not compress: contents exactly at the limit make a larger upload.
    data = tar_bytes(lambda tar: add_file(tar, "random", os.urandom(MB)))
    assert len(data) > MB
    msg = "^upload too large: more than 976.6 KiB compressed"
    assert_refused(arena, data, msg, max_bytes=MB)
    assert_refused(arena, data, msg, max_bytes=MB, as_path=True)
    # Junk after a small valid archive still counts towards the upload size.
    small = tar_bytes(lambda tar: add_file(tar, "a.txt", b"fine"))
    assert_refused(arena, small + os.urandom(2 * MB), msg, max_bytes=MB)


def test_refuses_garbage(arena: Path) -> None:
    assert_refused(arena, b"this is not a tarball" * 100, "not a readable tar archive")
    truncated = tar_bytes(lambda tar: add_file(tar, "f", os.urandom(100_000)))[:5000]
    assert_refused(arena, truncated, "not a readable tar archive")


def test_refuses_plain_tar_traversal(arena: Path) -> None:
    data = tar_bytes(lambda tar: add_file(tar, "../x", b"x"), compress=False)
    err = assert_refused(arena, data, "escapes")
    assert str(err) == 'unsafe upload: member "../x" escapes the build directory'
