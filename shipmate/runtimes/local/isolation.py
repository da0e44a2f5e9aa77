"""A Unix user per app, and a rack home that app users cannot read.

When the rack runs as root, each app gets a system user of its own (`sm-<app>`, created
before its first build or process, removed with the app): its processes, one-offs, release
commands and dependency installs run as that user, so an app cannot read the rack's files,
another app's build, or another app's processes (`/proc/<pid>/environ`, signals and ptrace
all need the same uid, or capabilities the user does not have). As Heroku's dynos and
Dokku's containers do, the platform stays privileged (the shim keeps root to own the output
and the signals) and the app does not.

Without root nothing can be kept apart: the rack says so (`warning()`), at start and in
`shipmate rack`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import stat
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

PREFIX = "sm-"
# useradd's limit on a name; Debian's is 32.
MAX_NAME = 32
# In the user's GECOS field: a user with the right name but another comment is not ours
# (`sm-a` created by hand, or app `a` of another rack on this machine, which must not share
# a uid with this one), and the next free name is used instead.
COMMENT = "shipmate app {app} of {home}"
# Set to "off" to run apps as the rack's own user even as root (benchmarks, debugging).
SWITCH = "SHIPMATE_ISOLATION"

log = logging.getLogger("shipmate.isolation")
_lock = threading.Lock()  # useradd runs from the event loop's threads and the builder's


@dataclass(frozen=True)
class AppUser:
    name: str
    uid: int
    gid: int


def enabled() -> bool:
    """Whether apps get users of their own: the rack runs as root and it is not turned off."""
    return os.geteuid() == 0 and os.environ.get(SWITCH, "").lower() != "off"


def active(home: Path) -> bool:
    """Whether the apps of the rack in `home` run as users of their own: `enabled()`, and
    they can reach their builds. The cwd of a process is inherited, but the absolute paths
    of its build (`python3 app.py` resolves one, so does a virtualenv on PATH) are not
    reachable through a directory that others may not pass (/root, pytest's temporary
    directories): apps would fail to start rather than run apart."""
    return enabled() and unreachable(home) is None


def warning(home: Path) -> str:
    """What `rack start` and `shipmate rack` say when apps are not kept apart ("" when they are)."""
    if enabled():
        blocked = unreachable(home)
        if blocked is None:
            return ""
        return (
            f"apps are not isolated: they run as root, because {blocked} is not searchable by "
            "others and app users could not reach their builds; `chmod o+x "
            f"{blocked}` (it lists nothing) or set SHIPMATE_HOME under a searchable directory"
        )
    if os.geteuid() == 0:
        return f"apps are not isolated ({SWITCH}=off): they run as root"
    return (
        "apps are not isolated: the rack does not run as root, so every app runs as its user "
        "and can read SHIPMATE_HOME (database, secret key, tokens) and the other apps' "
        "processes; no memory or CPU limits"
    )


def unreachable(home: Path) -> Path | None:
    """The first directory above `home` that an app's user may not pass through."""
    for directory in reversed(home.resolve().parents):
        with contextlib.suppress(OSError):
            if not directory.stat().st_mode & stat.S_IXOTH:
                return directory
    return None


def _candidates(app: str) -> list[str]:
    base = (PREFIX + app)[:MAX_NAME]
    return [base] + [f"{base[: MAX_NAME - len(str(n)) - 1]}-{n}" for n in range(2, 100)]


def _comment(app: str, home: Path) -> str:
    # ':' separates passwd fields.
    return COMMENT.format(app=app, home=str(home.resolve()).replace(":", "_"))


def find_user(app: str, home: Path) -> AppUser | None:
    """The user of app `app` of the rack in `home`, if it exists."""
    for name in _candidates(app):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None  # names are taken in order: the app's cannot be further on
        if entry.pw_gecos == _comment(app, home):
            return AppUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    return None


def ensure_user(app: str, home: Path) -> AppUser | None:
    """The app's user, created if missing; None when isolation is off."""
    if not active(home):
        return None
    with _lock:
        found = find_user(app, home)
        if found is not None:
            return found
        for name in _candidates(app):
            try:
                pwd.getpwnam(name)
                continue  # someone else's
            except KeyError:
                pass
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--user-group",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--comment",
                    _comment(app, home),
                    name,
                ],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(name)
            log.info("created user %s (uid %d) for app %s", name, entry.pw_uid, app)
            return AppUser(name, entry.pw_uid, entry.pw_gid)
    raise RuntimeError(f"no free user name for app {app}")


def remove_user(app: str, home: Path) -> None:
    """Remove the app's user and its group (with the app)."""
    if os.geteuid() != 0:
        return
    with _lock:
        found = find_user(app, home)
        if found is not None:
            subprocess.run(["userdel", found.name], check=False, capture_output=True)


def harden_home(home: Path) -> None:
    """SHIPMATE_HOME readable by the rack alone, except the way into the builds.

    The home and `builds/` are 0711: an app's user may pass through to its own build (which
    is root:<app group> 0750) but list nothing. Everything else (database, key, tokens,
    logs, run directories, uploads) loses every group and other bit.
    """
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o711)
    for child in home.iterdir():
        _private(child)
    builds = home / "builds"
    builds.mkdir(exist_ok=True)
    builds.chmod(0o711)
    for child in builds.iterdir():
        # Build directories granted to their app keep their group; old ones and the logs
        # are the rack's until a process of their app needs them (grant_build).
        info = child.lstat()
        if not (stat.S_ISDIR(info.st_mode) and info.st_gid != 0):
            _private(child)
    # Whatever the rack creates from now on (logs, database journals, run files) is its own.
    os.umask(0o077)


def _private(path: Path) -> None:
    with contextlib.suppress(OSError):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or stat.S_ISSOCK(info.st_mode):
            return
        if info.st_mode & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & ~0o077)


def grant_passage(root: Path, directory: Path, user: AppUser) -> None:
    """Let the app's user pass from `root` down to `directory` (a service's `build:`
    directory inside the build), without reading what else lies on the way."""
    for path in [root, *[p for p in directory.parents if p.is_relative_to(root) and p != root]]:
        with contextlib.suppress(OSError):
            os.lchown(path, 0, user.gid)
            path.chmod(stat.S_IMODE(path.lstat().st_mode) | 0o010)


def grant_build(directory: Path, user: AppUser, *, writable: bool = False) -> None:
    """The build readable by the app's user and nobody else's.

    `writable` (during the dependency install): the build directory itself belongs to the
    user, so pip can create `.venv`. Otherwise everything is root's with the app's group
    given the owner's bits less writing, so the app cannot change what a rollback runs.
    """
    info = directory.lstat()
    if not writable and info.st_uid == 0 and info.st_gid == user.gid:
        return  # granted already (each process start checks)
    for path in [directory, *directory.rglob("*")]:
        with contextlib.suppress(OSError):
            info = path.lstat()
            if writable:
                # `pip install .` writes build/ and *.egg-info beside the sources too.
                os.lchown(path, user.uid, user.gid)
                continue
            os.lchown(path, 0, user.gid)
            if stat.S_ISLNK(info.st_mode):
                continue
            owner = stat.S_IMODE(info.st_mode) & 0o500
            path.chmod(owner | (owner >> 3))
