"""The swarm runtime for real: a rack on Docker Swarm (scripts/engine-up.sh), driven by the CLI.

The seed story (deploy, env set --promote, rollback) on Swarm, a Dockerfile app with no
command, and rollbacks under load with no failed request. Skips without an engine outside CI.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine import Engine, find_engine
from tests.integration.conftest import Rack, own_rack, reachable_home, running_rack
from tests.integration.load import Load

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
RELEASE = re.compile(r"^Release: (R[A-Z]{9})$", re.M)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return find_engine()


@pytest.fixture(scope="module")
def swarm_rack(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    home = reachable_home(tmp_path_factory.mktemp("swarm-rack"))
    extra = ("--runtime", "swarm", "--registry", engine.registry)
    with running_rack(home, extra=(*extra, "--docker-host", engine.docker_host)) as rack:
        yield rack


def _release(out: str) -> str:
    found = RELEASE.search(out)
    assert found, out
    return found.group(1)


def _dockerfile_app(root: Path) -> Path:
    (root / "web").mkdir(parents=True)
    (root / "convox.yml").write_text("services:\n  web:\n    build: web\n    port: 8000\n")
    (root / "web" / "Dockerfile").write_text(
        "FROM local/debian:bookworm\nARG MESSAGE=default\n"
        'RUN mkdir /srv/www && echo "$MESSAGE" > /srv/www/index.html\nWORKDIR /srv/www\n'
        'CMD ["python3", "-m", "http.server", "8000"]\n'
    )
    return root


def test_the_seed_story_on_swarm(swarm_rack: Rack, engine: Engine) -> None:
    rack = swarm_rack
    r1 = _release(rack.deploy("myapp"))
    assert rack.get("myapp").json()["release"] == r1
    r2 = _release(rack.ok("env", "set", "FOO=bar", "--promote", "-a", "myapp"))
    assert rack.get("myapp").json()["FOO"] == "bar"

    out = rack.ok("releases", "rollback", r1, "-a", "myapp")
    lines = out.splitlines()
    assert lines[0] == f"Rolling back to {r1}..."
    events = lines[1:-1]
    for line in events:
        assert re.match(rf"^{STAMP} system/swarm/\S+ .+$", line), line
    assert events[0].endswith("system/swarm/atom/app Status: Running => Pending")
    assert events[-1].endswith("system/swarm/atom/app Status: Updating => Running")
    copy = re.fullmatch(r"OK, (R[A-Z]{9})", lines[-1])
    assert copy, out
    served = rack.get("myapp").json()
    assert served["release"] == copy.group(1) and served["FOO"] is None
    listed = rack.releases("myapp")
    assert [r["id"] for r in listed][:3] == [copy.group(1), r2, r1] and listed[0]["active"]

    ps = rack.ok("ps", "-a", "myapp").splitlines()
    assert len(ps) == 2 and copy.group(1) in ps[1]
    # The environment is in a Docker secret, one per release, not in the service's spec.
    client = engine.client()
    try:
        (service,) = client.api.services(filters={"label": "shipmate.app=myapp"})
        assert "bar" not in str(service["Spec"]) and "FOO" not in str(service["Spec"])
        rack.ok("apps", "delete", "myapp")
        assert not client.api.services(filters={"label": "shipmate.app=myapp"})
        assert not client.api.secrets(filters={"label": "shipmate.app=myapp"})
    finally:
        client.close()


def test_a_dockerfile_app_with_no_command_deploys_serves_and_rolls_back(
    swarm_rack: Rack, tmp_path: Path
) -> None:
    rack = swarm_rack
    source = _dockerfile_app(tmp_path / "src")
    rack.ok("apps", "create", "dfapp")
    one = _release(rack.ok("deploy", str(source), "-a", "dfapp", "--build-arg", "MESSAGE=one"))
    assert rack.get("dfapp").text == "one\n"
    rack.ok("deploy", str(source), "-a", "dfapp", "--build-arg", "MESSAGE=two")
    assert rack.get("dfapp").text == "two\n"
    rack.ok("releases", "rollback", one, "-a", "dfapp")
    assert rack.get("dfapp").text == "one\n"


def test_a_failed_image_build_makes_no_release(swarm_rack: Rack, tmp_path: Path) -> None:
    rack = swarm_rack
    source = _dockerfile_app(tmp_path / "src")
    (source / "web" / "Dockerfile").write_text("FROM local/debian:bookworm\nRUN exit 7\n")
    rack.ok("apps", "create", "broken")
    result = rack.run("build", str(source), "-a", "broken")
    assert result.code == 1 and "returned a non-zero code: 7" in result.err
    assert rack.releases("broken") == []


def test_rollbacks_under_load_fail_no_request(swarm_rack: Rack) -> None:
    rack = swarm_rack
    r1 = _release(rack.deploy("zd"))
    r2 = _release(rack.ok("env", "set", "FOO=two", "--promote", "-a", "zd"))
    load = Load(rack.info["router"], "web.zd.localhost", 4)
    try:
        time.sleep(0.5)
        for i in range(4):
            rack.ok("releases", "rollback", r1 if i % 2 == 0 else r2, "-a", "zd")
            time.sleep(0.3)
    finally:
        outcomes = load.stop()
    failed = [o for o in outcomes if o.problem is not None]
    assert len(outcomes) > 50 and failed == [], failed[:5]


def test_on_the_local_runtime_a_dockerfile_app_is_one_line_error(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    source = _dockerfile_app(tmp_path / "src")
    with own_rack(tmp_path_factory, "local-dockerfile") as rack:
        rack.ok("apps", "create", "dfapp")
        result = rack.run("build", str(source), "-a", "dfapp")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "a Dockerfile needs a container runtime" in result.err, result.err


def test_a_restarted_rack_adopts_its_services_by_label(
    engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = reachable_home(tmp_path_factory.mktemp("swarm-adopt"))
    extra = (
        "--runtime",
        "swarm",
        "--registry",
        engine.registry,
        "--docker-host",
        engine.docker_host,
    )
    with running_rack(home, extra=extra) as rack:
        r1 = _release(rack.deploy("adopted"))
        router = rack.info["router"]
        load = Load(router, "web.adopted.localhost", 2)
        try:
            rack.ok("rack", "stop")
            # The engine and the router kept serving.
            served = httpx.get(router, headers={"Host": "web.adopted.localhost"}, timeout=10)
            assert served.json()["release"] == r1
            rack.ok(
                "rack",
                "start",
                "--detach",
                "--api",
                "127.0.0.1:0",
                "--router",
                "127.0.0.1:0",
                *extra,
            )
        finally:
            outcomes = load.stop()
        assert [o for o in outcomes if o.problem is not None] == []
        ps = rack.ok("ps", "-a", "adopted").splitlines()
        assert len(ps) == 2 and r1 in ps[1]
        r2 = _release(rack.ok("env", "set", "FOO=after", "--promote", "-a", "adopted"))
        assert rack.get("adopted").json()["release"] == r2


def test_a_release_whose_tasks_exit_is_reverted(swarm_rack: Rack) -> None:
    rack = swarm_rack
    r1 = _release(rack.deploy("failing"))
    result = rack.run("env", "set", "BOOT_FAIL=1", "--promote", "-a", "failing", "--wait", "60")
    assert result.code == 1 and result.err.startswith("ERROR: rollback"), result.err
    assert re.search(r"system/swarm/\w+ exited 3", result.out), result.out
    assert "system/swarm/atom/app Status: Updating => Error" in result.out
    assert "system/swarm/atom/app Status: Rollback => Reverted" in result.out
    assert rack.get("failing").json()["release"] == r1
