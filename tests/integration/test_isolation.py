"""Apps kept apart on the local runtime: a user per app, memory and CPU limits (issue 17).

A real rack as root, driven by the real CLI. Its home is in /tmp (searchable by everyone)
rather than pytest's directory (root's alone), so that app users can reach their builds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.common.waiting import poll_until
from shipmate.runtimes.local.isolation import find_user
from tests.integration.conftest import EXAMPLE, Rack, start_rack, stop_rack

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="apps get users of their own as root")

HOG = textwrap.dedent(
    """\
    environment:
      - GREETING=hello
    services:
      web:
        command: python3 app.py
        port: 5000
        health: /health
        scale:
          cpu: 512
        termination:
          grace: 5
      hog:
        # Runs past its health grace, then takes 300 MB: over its 64 MB limit.
        command: python3 -c "import time; time.sleep(8); b = bytearray(300 << 20); time.sleep(600)"
        health:
          grace: 3
        scale:
          memory: 64
        termination:
          grace: 2
    """
)
PERMISSION = "Permission denied"


@pytest.fixture(scope="module")
def rack() -> Iterator[Rack]:
    home = Path(tempfile.mkdtemp(prefix="shipmate-isolation-"))
    rack = start_rack(home)
    try:
        yield rack
    finally:
        # Deleting an app removes its user; a rack's home removed with apps in it would not.
        for app in json.loads(rack.ok("apps", "--json")):
            rack.run("apps", "delete", app["name"])
        stop_rack(rack)
        shutil.rmtree(home, ignore_errors=True)


def one_off(rack: Rack, app: str, script: str, service: str = "web") -> str:
    result = rack.run("run", service, script, "-a", app)
    return result.out + result.err


def ps(rack: Rack, app: str) -> list[dict[str, object]]:
    return [p for p in json.loads(rack.ok("ps", "-a", app, "--json"))]


def test_an_app_reaches_neither_the_rack_nor_another_app(rack: Rack) -> None:
    rack.deploy("iso-a")
    rack.deploy("iso-b")
    user_a = find_user("iso-a", rack.home)
    assert user_a is not None and user_a.name.startswith("sm-iso-a")
    [b_process] = ps(rack, "iso-b")
    [b_build] = [b["id"] for b in rack.builds("iso-b")]
    [a_build] = [b["id"] for b in rack.builds("iso-a")]
    home = rack.home

    # The modes that keep them apart.
    assert stat.S_IMODE(home.stat().st_mode) == 0o711
    assert stat.S_IMODE((home / "builds").stat().st_mode) == 0o711
    for private in ("secret.key", "shipmate.db", "token", "run"):
        assert stat.S_IMODE((home / private).stat().st_mode) & 0o077 == 0, private
    a_dir = (home / "builds" / a_build).stat()
    assert (a_dir.st_uid, a_dir.st_gid, stat.S_IMODE(a_dir.st_mode)) == (0, user_a.gid, 0o550)

    ptrace = (
        "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
        f"r = libc.ptrace(16, {b_process['pid']}, 0, 0); "
        "print('ptrace', r, os.strerror(ctypes.get_errno()))"
    )
    out = one_off(
        rack,
        "iso-a",
        f"""id -un
        cat {home}/secret.key; cat {home}/shipmate.db; cat {home}/token
        ls {home}; ls {home}/builds/{b_build}; cat {home}/builds/{b_build}/app.py
        cat /proc/{b_process["pid"]}/environ
        kill -0 {b_process["pid"]} || echo kill refused
        python3 -c "{ptrace}"
        echo own: $GREETING $(head -c 40 app.py | head -1)
        echo own environ: $(grep -ac GREETING=hello /proc/self/environ)""",
    )
    lines = out.splitlines()
    assert lines[0] == user_a.name
    for path in (
        "secret.key",
        "shipmate.db",
        "token",
        "",
        f"builds/{b_build}",
        f"builds/{b_build}/app.py",
    ):
        assert re.search(rf"{re.escape(str(home / path))}.*{PERMISSION}", out), (path, out)
    assert re.search(rf"/proc/{b_process['pid']}/environ.*{PERMISSION}", out), out
    assert "Operation not permitted" in out and "kill refused" in out
    assert "ptrace -1 Operation not permitted" in out
    # Its own build and environment still work.
    assert "own: hello" in out and '"""The example app' in out
    assert "own environ: 1" in lines, out
    # B still serves, untouched.
    assert rack.get("iso-b").status_code == 200

    # The app's user goes with the app.
    assert find_user("iso-b", rack.home) is not None
    rack.ok("apps", "delete", "iso-b")
    assert find_user("iso-b", rack.home) is None


def test_a_process_over_its_memory_limit_is_killed_and_said_so(rack: Rack) -> None:
    source = Path(tempfile.mkdtemp(prefix="shipmate-hog-"))
    try:
        shutil.copy(EXAMPLE / "app.py", source / "app.py")
        (source / "shipmate.yml").write_text(HOG)
        rack.deploy("iso-hog", source)
    finally:
        shutil.rmtree(source, ignore_errors=True)

    def logs() -> str:
        return rack.ok("logs", "-a", "iso-hog", "--no-follow")

    poll_until(lambda: "Exited: out of memory (limit 64 MB)" in logs(), 60, what="the OOM kill")
    assert re.search(
        r"system/local/hog-\w+-\w+ Exited: out of memory \(limit 64 MB\)$", logs(), re.M
    )
    poll_until(lambda: re.search(r"Restarting hog-\S+ in \d+s", logs()), 30, what="a restart")
    # The app's other processes keep serving.
    assert rack.get("iso-hog").status_code == 200
    assert [p["service"] for p in ps(rack, "iso-hog")].count("web") == 1

    # A one-off of the service has the same limit.
    out = one_off(
        rack,
        "iso-hog",
        "cat /sys/fs/cgroup/memory$(awk -F: '$2==\"memory\"{print $3}' /proc/self/cgroup)"
        "/memory.limit_in_bytes; "
        'python3 -c "b = bytearray(300 << 20)"; echo code $?',
        service="hog",
    )
    assert str(64 << 20) in out.splitlines() and "code 137" in out


def test_scale_cpu_sets_the_cgroup_and_ps_shows_memory(rack: Rack) -> None:
    [web] = [p for p in ps(rack, "iso-hog") if p["service"] == "web"]
    cpu = Path("/sys/fs/cgroup/cpu/shipmate/iso-hog", str(web["id"]))
    # 512 units: half a CPU at most (quota over period), and half the weight of a full CPU.
    assert (cpu / "cpu.shares").read_text().strip() == "512"
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    memory = Path("/sys/fs/cgroup/memory/shipmate/iso-hog", str(web["id"]))
    assert str(web["pid"]) in (memory / "cgroup.procs").read_text().split()

    assert isinstance(web["memory"], int) and web["memory"] > 1 << 20
    # SPEC's table by default; the memory column on request.
    plain = rack.ok("ps", "-a", "iso-hog").splitlines()
    assert "MEM" not in re.split(r"\s{2,}", plain[0])
    table = rack.ok("ps", "--memory", "-a", "iso-hog").splitlines()
    assert re.split(r"\s{2,}", table[0])[5] == "MEM"
    assert re.search(rf"^{web['id']}\s.*\s\d+M\s+python3 app.py$", "\n".join(table), re.M)

    # Isolated: SPEC's five keys and no warning (rack.ok asserts an empty stderr).
    rack_info = rack.ok("rack")
    assert [line.split()[0] for line in rack_info.splitlines()] == [
        "Name",
        "Provider",
        "Router",
        "Status",
        "Version",
    ]


def test_deleting_the_apps_removes_their_users_and_cgroups(rack: Rack) -> None:
    for app in ("iso-a", "iso-hog"):
        rack.ok("apps", "delete", app)
        assert find_user(app, rack.home) is None
        assert not Path("/sys/fs/cgroup/memory/shipmate", app).exists()
        assert not Path("/sys/fs/cgroup/cpu/shipmate", app).exists()


def test_a_build_with_a_virtualenv_is_the_apps_to_use_not_to_change(rack: Rack) -> None:
    source = Path(tempfile.mkdtemp(prefix="shipmate-deps-"))
    try:
        shutil.copytree(EXAMPLE, source, dirs_exist_ok=True)
        (source / "requirements.txt").write_text("")  # a virtualenv, nothing to download
        rack.deploy("iso-deps", source)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    user = find_user("iso-deps", rack.home)
    assert user is not None
    [build] = [b["id"] for b in rack.builds("iso-deps")]
    venv = rack.home / "builds" / build / ".venv"
    # Created by the app's user (python -m venv and pip run as it), then handed to root.
    assert (venv.stat().st_uid, venv.stat().st_gid) == (0, user.gid)
    out = one_off(
        rack,
        "iso-deps",
        'python -c "import sys; print(sys.prefix)"; touch .venv/x app.py 2>&1; echo code $?',
    )
    assert str(venv) in out.splitlines()
    assert "Permission denied" in out and "code 1" in out
    rack.ok("apps", "delete", "iso-deps")
