"""Processes under the local runtime: ps, restarts, scale, restart, run, logs, release phase,
cancel. These exercise the runtime, not the store, so they run on SQLite only."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack, own_rack

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    with own_rack(tmp_path_factory, "procs") as rack:
        yield rack


def eventually(check: Callable[[], object], timeout: float = 30.0) -> object:
    return poll_until(check, timeout, interval=0.1)


def ps(rack: Rack, app: str) -> list[dict[str, object]]:
    return json.loads(rack.ok("ps", "-a", app, "--json"))


def running(rack: Rack, app: str) -> list[dict[str, object]]:
    """Processes serving or starting; ones still finishing requests after SIGTERM excluded."""
    return [p for p in ps(rack, app) if p["status"] == "running"]


def with_manifest(tmp_path: Path, extra: str = "", top: str = "") -> Path:
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    manifest = top + (source / "shipmate.yml").read_text() + extra
    (source / "shipmate.yml").write_text(manifest)
    return source


def test_a_killed_process_is_restarted_and_shown(rack: Rack) -> None:
    rack.deploy("crashy")
    [first] = ps(rack, "crashy")
    table = rack.ok("ps", "-a", "crashy").splitlines()
    assert re.split(r"\s{2,}", table[0]) == [
        "ID",
        "SERVICE",
        "STATUS",
        "RELEASE",
        "STARTED",
        "COMMAND",
    ]
    assert re.split(r"\s{2,}", table[1])[:3] == [first["id"], "web", "running"]

    os.killpg(int(first["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    [second] = eventually(  # type: ignore[misc]
        lambda: [p for p in ps(rack, "crashy") if p["id"] != first["id"]]
    )
    assert second["release"] == first["release"]
    eventually(lambda: rack.get("crashy").status_code == 200)
    logs = rack.ok("logs", "-a", "crashy", "--no-follow")
    assert re.search(rf"^{STAMP} system/local/{first['id']} Exited with code 137$", logs, re.M)
    assert re.search(rf"^{STAMP} system/local/web Restarting {first['id']} in 1s", logs, re.M)
    assert re.search(rf"^{STAMP} system/local/{second['id']} Healthy$", logs, re.M)
    assert re.search(rf"^{STAMP} service/web/{second['id']} hello listening on ", logs, re.M)


def test_scale_up_and_down_rolling(rack: Rack) -> None:
    rack.deploy("scaly")
    out = rack.ok("scale", "web", "--count", "3", "-a", "scaly")
    assert out.startswith("Scaling web to 3...\n") and out.endswith("OK\n")
    assert re.search(r"system/local/web Scaled up release R[A-Z]{9} to 3$", out, re.M)
    assert len(ps(rack, "scaly")) == 3
    table = rack.ok("scale", "-a", "scaly").splitlines()
    assert [re.split(r"\s{2,}", row) for row in table] == [
        ["SERVICE", "DESIRED", "RUNNING"],
        ["web", "3", "3"],
    ]
    releases_before = rack.releases("scaly")
    out = rack.ok("scale", "web", "--count", "1", "-a", "scaly")
    assert len(re.findall(r" Stopping$", out, re.M)) == 2
    eventually(lambda: len(ps(rack, "scaly")) == 1)
    assert rack.releases("scaly") == releases_before  # scaling makes no release
    # The count survives a new release.
    rack.ok("env", "set", "A=1", "--promote", "-a", "scaly")
    assert len([p for p in ps(rack, "scaly") if p["status"] == "running"]) == 1
    result = rack.run("scale", "nope", "--count", "2", "-a", "scaly")
    assert result.err == "ERROR: no service nope in app scaly: its services are web\n"


def test_restart_replaces_every_process(rack: Rack) -> None:
    rack.deploy("resty")
    before = {p["id"] for p in ps(rack, "resty")}
    out = rack.ok("restart", "-a", "resty")
    assert out.endswith("Status: Updating => Running\nOK\n")
    running = {p["id"] for p in ps(rack, "resty") if p["status"] == "running"}
    assert running and not before & running
    eventually(lambda: not before & {p["id"] for p in ps(rack, "resty")})  # stopped in time
    assert rack.get("resty").status_code == 200


def test_ps_stop_replaces_the_process(rack: Rack) -> None:
    rack.deploy("stoppy")
    [first] = ps(rack, "stoppy")
    assert (
        rack.ok("ps", "stop", str(first["id"]), "-a", "stoppy") == f"Stopping {first['id']}... OK\n"
    )
    eventually(lambda: [p for p in ps(rack, "stoppy") if p["id"] != first["id"]])
    result = rack.run("ps", "stop", "web-nosuch-xxxxx", "-a", "stoppy")
    assert result.code == 1 and result.err.startswith("ERROR: no such process: web-nosuch-xxxxx")


def test_run_streams_output_and_passes_the_exit_code(rack: Rack) -> None:
    rack.deploy("runny")
    first = rack.releases("runny")[0]["id"]
    rack.ok("env", "set", "FOO=later", "--promote", "-a", "runny")
    result = rack.run("run", "web", 'echo "release=$RELEASE foo=$FOO"; exit 7', "-a", "runny")
    assert result.code == 7
    active = rack.releases("runny")[0]["id"]
    assert result.out == f"release={active} foo=later\n"
    result = rack.run(
        "run", "web", "python3", "-c", "print('hi')", "--release", str(first), "-a", "runny"
    )
    assert (result.code, result.out) == (0, "hi\n")
    result = rack.run("run", "worker", "true", "-a", "runny")
    assert result.code == 1 and result.err.startswith("ERROR: no service worker in release R")


def test_logs_filters(rack: Rack) -> None:
    rack.deploy("loggy")
    for _ in range(3):
        assert rack.get("loggy", "/hello-there").status_code == 200
    out = eventually(
        lambda: rack.ok("logs", "-a", "loggy", "--no-follow", "--filter", "hello-there")
    )
    lines = out.splitlines()  # type: ignore[union-attr]
    assert len(lines) == 3
    assert all(re.match(rf"^{STAMP} service/web/web-\S+ GET /hello-there 200$", x) for x in lines)
    only_web = rack.ok("logs", "-a", "loggy", "--no-follow", "--service", "web")
    assert "service/web/" in only_web and "atom/app" not in only_web
    assert rack.ok("logs", "-a", "loggy", "--no-follow", "--service", "other") == ""
    time.sleep(2.2)
    assert rack.ok("logs", "-a", "loggy", "--no-follow", "--since", "1s") == ""
    result = rack.run("logs", "-a", "loggy", "--since", "soon")
    assert result.code == 1 and "use a number and a unit" in result.err
    follower = rack.popen("logs", "-a", "loggy", "--since", "1s")
    try:
        time.sleep(1.5)
        rack.get("loggy", "/followed")
        line = ""
        deadline = time.monotonic() + 20
        while "/followed" not in line and time.monotonic() < deadline:
            line = follower.stdout.readline()  # type: ignore[union-attr]
        assert "GET /followed 200" in line
    finally:
        follower.kill()
        follower.communicate()


def test_release_phase_runs_once_and_failure_replaces_nothing(rack: Rack, tmp_path: Path) -> None:
    good = with_manifest(tmp_path, top="release: echo migrating $RELEASE\n")
    rack.ok("apps", "create", "phased")
    out = rack.ok("deploy", str(good), "-a", "phased")
    r1 = rack.releases("phased")[0]["id"]
    assert re.search(rf"system/local/release-{r1.lower()} migrating {r1}$", out, re.M)
    assert out.index("migrating") < out.index("Pending => Updating")

    # A rollback past a release that ran its release command warns first.
    rack.ok("env", "set", "X=1", "--promote", "-a", "phased")
    out = rack.ok("releases", "rollback", r1, "-a", "phased")
    warning, rolling = out.splitlines()[:2]
    assert warning.startswith(f"WARNING: release commands ran after {r1} (in R")
    assert "database migrations" in warning
    assert rolling == f"Rolling back to {r1}..."
    r1 = rack.releases("phased")[0]["id"]  # the copy now serves
    [serving] = running(rack, "phased")

    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    text = (
        (bad / "shipmate.yml").read_text().replace("echo migrating $RELEASE", "echo boom; exit 4")
    )
    (bad / "shipmate.yml").write_text(text)
    result = rack.run("deploy", str(bad), "-a", "phased")
    assert result.code == 1
    assert result.err == (
        "ERROR: rollback: release command failed with exit code 4: nothing was replaced "
        "(run shipmate deploy-debug)\n"
    )
    statuses = re.findall(r"Status: (\S+ => \S+)$", result.out, re.M)
    assert statuses == [
        "Running => Pending",
        "Pending => Error",
        "Error => Rollback",
        "Rollback => Reverted",
    ]
    assert "Created process" not in result.out
    assert [p["id"] for p in running(rack, "phased")] == [serving["id"]]
    assert rack.get("phased").json()["release"] == r1


def test_apps_cancel_reverts_a_promotion(rack: Rack) -> None:
    rack.deploy("cancelly")
    r1 = rack.releases("cancelly")[0]["id"]
    slow = rack.popen("env", "set", "HEALTH_FAIL=1", "--promote", "--wait", "60", "-a", "cancelly")
    try:
        eventually(
            lambda: (
                json.loads(rack.ok("apps", "info", "-a", "cancelly", "--json"))["status"]
                == "updating"
            )
        )
        time.sleep(0.5)
        out = rack.ok("apps", "cancel", "-a", "cancelly")
        assert out.startswith("Cancelling the promotion of R")
        assert "Status: Error => Rollback" in out and out.endswith(
            "Status: Rollback => Reverted\nOK\n"
        )
    finally:
        promoted = slow.communicate(timeout=60)
    assert slow.returncode == 1
    assert "cancelled with `shipmate apps cancel`" in promoted[1]
    info = json.loads(rack.ok("apps", "info", "-a", "cancelly", "--json"))
    assert (info["status"], info["release"]) == ("running", r1)
    assert {p["release"] for p in running(rack, "cancelly")} == {r1}
    result = rack.run("apps", "cancel", "-a", "cancelly")
    assert result.err == "ERROR: app cancelly has no promotion in progress: nothing to cancel\n"


def test_apps_survive_a_rack_restart_with_their_pids(rack: Rack) -> None:
    rack.deploy("survivor")
    rack.ok("scale", "web", "--count", "2", "-a", "survivor")
    before = sorted((p["id"], p["pid"]) for p in ps(rack, "survivor"))
    router = rack.info["router"]
    rack.ok("rack", "stop")
    # Served while the rack is down: the router and the shims do not need it.
    response = httpx.get(router, headers={"Host": "web.survivor.localhost"}, timeout=10)
    assert response.status_code == 200
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
    after = eventually(lambda: sorted((p["id"], p["pid"]) for p in ps(rack, "survivor")))
    assert after == before
    logs = rack.ok("logs", "-a", "survivor", "--no-follow")
    assert re.search(r"Adopted process \(pid \d+\) after a rack restart$", logs, re.M)
    assert rack.get("survivor").status_code == 200


def test_rack_killed_mid_promotion_reverts_and_keeps_serving(rack: Rack, tmp_path: Path) -> None:
    # minimum 100: no old process is stopped before a new one is healthy, so every process
    # serving when the rack dies must still be serving, with the same PID, after the restart.
    rack.deploy("crashed", with_manifest(tmp_path, "    deployment:\n      minimum: 100\n"))
    rack.ok("scale", "web", "--count", "2", "-a", "crashed")
    r1 = rack.releases("crashed")[0]["id"]
    serving = sorted((p["id"], p["pid"]) for p in ps(rack, "crashed"))
    router = rack.info["router"]
    slow = rack.popen("env", "set", "BOOT_DELAY_MS=4000", "--promote", "-a", "crashed")
    eventually(lambda: "Created process" in rack.ok("logs", "-a", "crashed", "--no-follow"))
    events_before = rack.ok("logs", "-a", "crashed", "--no-follow", "--since", "1h")
    os.kill(int(rack.info["pid"]), signal.SIGKILL)
    slow.communicate(timeout=30)
    assert slow.returncode == 1  # the CLI lost its rack and says so
    (rack.home / "rack.json").unlink()
    for _ in range(20):  # the router and the old processes serve while the rack is down
        response = httpx.get(router, headers={"Host": "web.crashed.localhost"}, timeout=10)
        assert response.status_code == 200 and response.json()["release"] == r1
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
    info = eventually(
        lambda: (
            i
            if (i := json.loads(rack.ok("apps", "info", "-a", "crashed", "--json")))["status"]
            == "running"
            else None
        )
    )
    assert info["release"] == r1  # type: ignore[index]
    eventually(lambda: {p["release"] for p in ps(rack, "crashed")} == {r1})
    assert sorted((p["id"], p["pid"]) for p in ps(rack, "crashed")) == serving, rack.ok(
        "logs", "-a", "crashed", "--no-follow", "--since", "1h"
    )
    releases = rack.releases("crashed")
    assert [r["description"] for r in releases][:1] == ["env add:BOOT_DELAY_MS"]
    assert sum(1 for r in releases if r["active"]) == 1
    events_after = rack.ok("logs", "-a", "crashed", "--no-follow", "--since", "1h")
    for line in events_before.splitlines():
        if " system/" in line:
            assert line in events_after
    assert "Status: Rollback => Reverted" in events_after
    assert "the rack stopped during the promotion" in rack.ok(
        "releases", "info", releases[0]["id"], "-a", "crashed"
    )


WORKER = """  worker:
    command: python3 -c "import time; print('working', flush=True); time.sleep(100000)"
    health:
      grace: 1
"""


def test_services_without_a_port(rack: Rack, tmp_path: Path) -> None:
    source = with_manifest(tmp_path, WORKER)
    rack.ok("apps", "create", "workers")
    out = rack.ok("deploy", str(source), "-a", "workers")
    assert re.search(r"system/local/worker Scaled up release R[A-Z]{9} to 1$", out, re.M)
    assert sorted(p["service"] for p in running(rack, "workers")) == ["web", "worker"]
    [worker] = [p for p in running(rack, "workers") if p["service"] == "worker"]
    assert worker["port"] is None
    logs = eventually(
        lambda: rack.ok("logs", "-a", "workers", "--no-follow", "--service", "worker")
    )
    assert f"service/worker/{worker['id']} working" in logs  # type: ignore[operator]
    rack.ok("scale", "worker", "--count", "2", "-a", "workers")
    assert sum(p["service"] == "worker" for p in running(rack, "workers")) == 2

    # A worker that dies during its grace period fails the promotion, which reverts.
    text = (
        (source / "shipmate.yml")
        .read_text()
        .replace("\"import time; print('working', flush=True); time.sleep(100000)\"", '"exit 5"')
        .replace('python3 -c "exit 5"', "exit 5")
    )
    (source / "shipmate.yml").write_text(text)
    result = rack.run("deploy", str(source), "-a", "workers")
    assert result.code == 1
    assert re.fullmatch(
        r"ERROR: rollback: process worker-\S+ exited with code 5 before it became healthy: "
        r"no output \(run shipmate deploy-debug\)\n",
        result.err,
    )
    assert sum(p["service"] == "worker" for p in running(rack, "workers")) == 2

    # The failed worker cancelled the web process's start, shim already launched: it is
    # stopped too, and nothing of the app outlives its delete (it used to run on, unknown).
    builds = [rack.home / "builds" / b["id"] for b in rack.builds("workers")]
    rack.ok("apps", "delete", "workers")
    poll_until(lambda: not processes_in(builds), 30, what="the app's processes to be gone")


def processes_in(directories: list[Path]) -> list[int]:
    """The processes whose working directory is in one of `directories`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # A removed directory reads as "<path> (deleted)".
                cwd = Path(os.readlink(entry / "cwd").removesuffix(" (deleted)"))
            except OSError:
                continue
            if any(cwd == d or d in cwd.parents for d in directories):
                found.append(int(entry.name))
    return found
