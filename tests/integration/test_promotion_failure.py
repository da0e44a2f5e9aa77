"""A promotion whose new process never gets healthy reverts; the old release keeps serving."""

from __future__ import annotations

import contextlib
import re
import threading

import httpx

from shipmate.common.waiting import WaitTimeout, poll_until
from tests.integration.conftest import Rack

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


class Prober(threading.Thread):
    """Requests through the router for as long as the test runs, recording every outcome."""

    def __init__(self, rack: Rack, app: str) -> None:
        super().__init__(daemon=True)
        self.url = rack.info["router"]
        self.host = f"web.{app}.localhost"
        self.releases: list[str] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers={"Host": self.host}, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.get(self.url + "/")
                    if response.status_code != 200:
                        self.failures.append(f"HTTP {response.status_code}: {response.text}")
                    else:
                        self.releases.append(response.json()["release"])
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.stop.wait(0.02)


def _events(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(STAMP, line)]


def test_unhealthy_release_reverts_on_deadline(rack: Rack) -> None:
    rack.deploy("unhealthy")
    r1 = rack.releases("unhealthy")[0]["id"]
    prober = Prober(rack, "unhealthy")
    prober.start()
    try:
        result = rack.run(
            "env", "set", "HEALTH_FAIL=1", "--promote", "--wait", "3", "-a", "unhealthy"
        )
    finally:
        prober.stop.set()
        prober.join()
    assert result.code == 1
    events = [line.split(" ", 2)[2] for line in _events(result.out)]
    statuses = [e for e in events if e.startswith("Status: ")]
    assert statuses == [
        "Status: Running => Pending",
        "Status: Pending => Updating",
        "Status: Updating => Deadline",
        "Status: Deadline => Rollback",
        "Status: Rollback => Reverted",
    ]
    assert re.fullmatch(
        r"ERROR: rollback: deadline exceeded: web-\S+ \(last check: GET /health: HTTP 503\) "
        r"not healthy within 3s \(run shipmate deploy-debug\)\n",
        result.err,
    )

    assert prober.failures == []
    assert prober.releases and set(prober.releases) == {r1}

    listed = rack.releases("unhealthy")
    assert listed[0]["description"] == "env add:HEALTH_FAIL" and not listed[0]["active"]
    assert listed[1]["id"] == r1 and listed[1]["active"]
    info = rack.ok("apps", "info", "-a", "unhealthy")
    assert re.search(r"^Status\s+running$", info, re.M)
    assert re.search(rf"^Release\s+{r1}$", info, re.M)

    # The reverted process is out of the router at once but may take a second or two to exit
    # after SIGTERM (the example app finishes its requests): wait for it, don't race it.
    def reverted() -> list[str] | None:
        ps = rack.ok("ps", "-a", "unhealthy").splitlines()
        return ps if len(ps) <= 2 else None

    with contextlib.suppress(WaitTimeout):
        poll_until(reverted, 30, interval=0.2)
    ps = rack.ok("ps", "-a", "unhealthy").splitlines()
    assert len(ps) == 2 and r1 in ps[1]


def test_process_that_exits_reverts_with_error(rack: Rack) -> None:
    rack.deploy("crashing")
    r1 = rack.releases("crashing")[0]["id"]
    result = rack.run("env", "set", "BOOT_FAIL=1", "--promote", "-a", "crashing")
    assert result.code == 1
    assert re.fullmatch(
        r"ERROR: rollback: process web-\S+ exited with code 3 before it became healthy: "
        r'last output: "BOOT_FAIL is set: exiting with code 3 on purpose" '
        r"\(run shipmate deploy-debug\)\n",
        result.err,
    )
    statuses = [line.split(" ", 2)[2] for line in _events(result.out) if "Status: " in line]
    assert statuses[2:] == [
        "Status: Updating => Error",
        "Status: Error => Rollback",
        "Status: Rollback => Reverted",
    ]
    assert rack.get("crashing").json()["release"] == r1


def test_first_deploy_that_fails_leaves_no_active_release(rack: Rack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rack.ok("apps", "create", "neverup")
    rack.ok("env", "set", "BOOT_FAIL=1", "-a", "neverup")
    from tests.integration.conftest import EXAMPLE

    result = rack.run("deploy", str(EXAMPLE), "-a", "neverup")
    assert result.code == 1 and result.err.startswith("ERROR: rollback: process web-")
    info = rack.ok("apps", "info", "-a", "neverup")
    assert re.search(r"^Release\s*$", info, re.M)
    response = rack.get("neverup")
    assert response.status_code == 503
    assert "no healthy process" in response.text
