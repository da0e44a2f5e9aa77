"""The seed story on a rack with `--runtime kubernetes`, through the real CLI, against kmock's
emulator and the test controller (or the cluster of SHIPMATE_TEST_KUBECONFIG, when set):
a rollback's transcript, a crash-looping promotion reverted, and a rack restart that takes
the running app back without rolling anything."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Rack, reachable_home, remove_home, stop_rack
from tests.k8s.emulator import emulated_cluster

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ system/k8s/\S+ .+$")
START = ("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    real = os.environ.get("SHIPMATE_TEST_KUBECONFIG")
    if real:
        yield real
        return
    with emulated_cluster(tmp_path_factory.mktemp("cluster")) as path:
        yield str(path)


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory, kubeconfig: str) -> Iterator[Rack]:
    home = reachable_home(tmp_path_factory.mktemp("k8srack"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env["SHIPMATE_HOME"] = str(home)
    env["KUBECONFIG"] = kubeconfig
    rack = Rack(home, env)
    rack.ok(
        *START,
        "--runtime",
        "kubernetes",
        "--registry",
        "registry.host/convox",
        "--namespace-prefix",
        "convox",
    )
    try:
        yield rack
    finally:
        stop_rack(rack)
        remove_home(home)


def _events(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("20")]


@pytest.mark.integration
def test_rollback_transcript_like_the_seed(rack: Rack) -> None:
    rack.deploy("myapp")
    rack.ok("env", "set", "FOO=bar", "--promote", "-a", "myapp")
    target = rack.releases("myapp")[1]["id"]
    out = rack.ok("releases", "rollback", str(target), "-a", "myapp")
    print(f"$ shipmate releases rollback {target} -a myapp\n{out}")
    lines = out.splitlines()
    assert lines[0] == f"Rolling back to {target}..."
    new = rack.releases("myapp")[0]
    assert lines[-1] == f"OK, {new['id']}"
    events = _events(out)
    assert all(LINE.match(line) for line in events), events
    text = "\n".join(events)
    assert "system/k8s/atom/app Status: Running => Pending" in text
    assert "system/k8s/atom/app Status: Pending => Updating" in text
    assert re.search(r"system/k8s/web Scaled up replica set web-[0-9a-f]{9} to 1", text)
    assert re.search(r"system/k8s/web-[0-9a-f]{9} Created pod: web-[0-9a-f]{9}-\w{5}", text)
    assert re.search(
        r"system/k8s/(web-[0-9a-f]{9}-\w{5}) Successfully assigned convox-myapp/\1 to \S+", text
    )
    image = f"registry.host/convox/myapp:web.{new['build']}"
    assert f'Pulling image "{image}"' in text
    assert f'Successfully pulled image "{image}"' in text
    assert re.search(r"system/k8s/web-\w+-\w{5} Created container main", text)
    assert re.search(r"system/k8s/web-\w+-\w{5} Started container main", text)
    assert "system/k8s/atom/app Status: Updating => Running" in text


@pytest.mark.integration
def test_crash_loop_reverts_within_the_deadline_naming_the_cause(rack: Rack) -> None:
    before = rack.releases("myapp")[0]["id"]
    result = rack.run("env", "set", "CRASH=1", "--promote", "--wait", "5", "-a", "myapp")
    print(result.out, result.err)
    assert result.code == 1
    text = "\n".join(_events(result.out))
    assert "Back-off restarting failed container main in pod web-" in text
    assert "system/k8s/atom/app Status: Updating => Deadline" in text
    assert "system/k8s/atom/app Status: Rollback => Reverted" in text
    (error,) = result.err.strip().splitlines()
    assert error.startswith("ERROR: ")
    assert "Back-off restarting failed container main" in error
    releases = rack.releases("myapp")
    active = next(r for r in releases if r["status"] == "active")
    assert active["id"] == before


@pytest.mark.integration
def test_rack_restart_takes_the_cluster_back(rack: Rack) -> None:
    before = rack.ok("ps", "-a", "myapp")
    active = next(r for r in rack.releases("myapp") if r["status"] == "active")
    rack.ok("rack", "stop")
    rack.ok(
        *START,
        "--runtime",
        "kubernetes",
        "--registry",
        "registry.host/convox",
        "--namespace-prefix",
        "convox",
    )
    after = rack.ok("ps", "-a", "myapp")
    ids = sorted(re.findall(r"web-\w+-\w{5}", before))
    assert ids and sorted(re.findall(r"web-\w+-\w{5}", after)) == ids
    assert str(active["id"]) in after
    assert next(r for r in rack.releases("myapp") if r["status"] == "active")["id"] == active["id"]
