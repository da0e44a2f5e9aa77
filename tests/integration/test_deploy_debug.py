"""`deploy-debug` after a failed promotion, through the real CLI against a real rack: it names
the failing process, its state, what it printed before it failed, and a fitting hint."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Rack, own_rack

# Short checks and deadlines: each failure takes a second or two, not the default 120 s.
MANIFEST = """services:
  web:
    command: {command}
    port: 5000
    health:
      path: /health
      grace: 1
      interval: 1
    deployment:
      deadline: 3
"""

SERVER = """import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/" else {health_status}
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", {port}), Handler)
print(f"listening on {{server.server_address[1]}}", flush=True)
server.serve_forever()
"""

APPS: dict[str, dict[str, str]] = {
    "crashboot": {
        "shipmate.yml": MANIFEST.format(command="python3 app.py"),
        "app.py": "import sys\nprint('loading the model', flush=True)\n"
        "print('no model file: giving up', flush=True)\nsys.exit(3)\n",
    },
    "nohealth": {
        "shipmate.yml": MANIFEST.format(command="python3 app.py"),
        "app.py": SERVER.format(health_status=404, port='int(os.environ["PORT"])'),
    },
    "wrongport": {
        "shipmate.yml": MANIFEST.format(command="python3 app.py"),
        # Port 0: a port of the system's choosing, never $PORT (nor another test's).
        "app.py": SERVER.format(health_status=200, port=0),
    },
    "nokey": {
        "shipmate.yml": MANIFEST.format(command="python3 app.py"),
        "app.py": "import os\nprint('connecting to the database', flush=True)\n"
        "url = os.environ['SOME_KEY']\n",
    },
}


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    """A rack on which each app of APPS has had its first deploy fail."""
    with own_rack(tmp_path_factory, "debug") as rack:
        sources = tmp_path_factory.mktemp("sources")
        deploys = {}
        for app, files in APPS.items():
            source = sources / app
            for name, text in files.items():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                (source / name).write_text(text)
            rack.ok("apps", "create", app)
            deploys[app] = rack.popen("deploy", str(source), "-a", app)  # all at once
        for app, deploy in deploys.items():
            _, err = deploy.communicate(timeout=120)
            assert deploy.returncode == 1, (app, err)
            assert err.startswith("ERROR: rollback: "), (app, err)
            # One hint, the last words of the line: not `see shipmate logs` as well.
            assert err.endswith(" (run shipmate deploy-debug)\n"), (app, err)
            assert err.count("(run shipmate deploy-debug)") == 1
            assert "see shipmate logs" not in err
        yield rack


def _json(rack: Rack, app: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(rack.ok("deploy-debug", "-a", app, "--output", "json"))
    return found


def _one(found: dict[str, Any]) -> dict[str, Any]:
    [process] = found["processes"]
    process_: dict[str, Any] = process
    return process_


def _texts(process: dict[str, Any]) -> list[str]:
    return [line["text"] for line in process["output"]]


def _section(out: str, process_id: str) -> str:
    """The terminal output's section of one process (up to the next blank line)."""
    start = out.index(f"{process_id}  ")
    return out[start : out.index("\n\n", start)]


def test_a_crash_at_boot(failed: Rack) -> None:
    found = _json(failed, "crashboot")
    process = _one(found)
    assert process["state"] == "exited" and process["status"] == "exited"
    assert process["exit_code"] == 3 and process["exit_codes"] == [3]
    assert not process["stopped"] and process["healthy_at"] is None
    assert _texts(process) == ["loading the model", "no model file: giving up"]
    assert process["hint"] == (
        "it exited with code 3 before it was ever healthy: its output above says why"
    )
    assert found["promotion"]["state"] == "Reverted"
    messages = [e["message"] for e in found["events"]]
    assert "Status: Updating => Error" in messages
    assert "Started process (pid " in " ".join(messages)
    assert "Exited with code 3" in messages

    out = failed.ok("deploy-debug", "-a", "crashboot")
    section = _section(out, process["id"])
    assert section.startswith(f"{process['id']}  exited  (exit code 3)\n")
    assert "  Output before it was ever healthy:\n    loading the model\n" in section
    assert "    no model file: giving up\n" in section
    assert re.search(r"^Promotion\s+P[A-Z]{9} \(promote, .*\): reverted$", out, re.M)
    assert re.search(
        r"^Events:\n  \S+Z system/local/atom/app Status: Running => Pending$", out, re.M
    )
    summary = failed.ok("deploy-debug", "-a", "crashboot", "--output", "summary").splitlines()
    assert summary[0].split() == ["ID", "SERVICE", "STATE", "DETAIL", "HINT"]
    assert re.match(
        rf"{process['id']}\s+web\s+exited\s+exit code 3\s+it exited with code 3", summary[1]
    )
    assert len(summary) == 2


def test_a_health_path_that_answers_404(failed: Rack) -> None:
    process = _one(_json(failed, "nohealth"))
    assert process["state"] == "unhealthy"
    assert process["health_problem"] == "GET /health: HTTP 404"
    assert process["stopped"] and process["healthy_at"] is None  # the revert stopped it
    assert _texts(process)[0] == "listening on " + str(process["port"])
    assert process["hint"].startswith("its health path /health answered 404: serve /health")

    out = failed.ok("deploy-debug", "-a", "nohealth", "--no-events")
    section = _section(out, process["id"])
    assert "(last check: GET /health: HTTP 404)" in section.splitlines()[0]
    assert f"    listening on {process['port']}\n" in section
    assert "  Hint: its health path /health answered 404" in out
    assert "Events:" not in out


def test_a_process_that_listens_on_the_wrong_port(failed: Rack) -> None:
    process = _one(_json(failed, "wrongport"))
    assert process["state"] == "unhealthy"
    assert process["health_problem"] == "GET /health: ConnectError"
    [said] = _texts(process)
    port = process["port"]
    assert re.fullmatch(r"listening on \d+", said) and said != f"listening on {port}"
    assert process["hint"].startswith(
        f"it did not listen on $PORT ({port}): make it bind 0.0.0.0:$PORT or 127.0.0.1:$PORT"
    )
    out = failed.ok("deploy-debug", "-a", "wrongport")
    assert f"  Hint: it did not listen on $PORT ({port})" in out


def test_a_process_that_lacks_a_key(failed: Rack) -> None:
    found = _json(failed, "nokey")
    process = _one(found)
    assert process["state"] == "exited" and process["exit_code"] == 1
    texts = _texts(process)
    assert texts[0] == "connecting to the database"
    assert texts[-1] == "KeyError: 'SOME_KEY'"
    assert process["hint"].startswith(
        "its environment lacks SOME_KEY: `shipmate env set SOME_KEY=... --promote -a nokey`"
    )
    assert found["missing_env"] == []  # the manifest does not declare it: only the output says
    out = failed.ok("deploy-debug", "-a", "nokey", "--lines", "1")
    section = _section(out, process["id"])
    assert "  Output before it was ever healthy:\n    KeyError: 'SOME_KEY'\n  Hint:" in section


def test_service_filter_all_and_a_healthy_release(failed: Rack, tmp_path: Path) -> None:
    assert _json(failed, "nokey")["processes"]
    none = json.loads(
        failed.ok("deploy-debug", "-a", "nokey", "--service", "worker", "--output", "json")
    )
    assert none["processes"] == []

    # The key set: the next promotion succeeds, and its process is healthy, so not shown...
    failed.ok("env", "set", "SOME_KEY=postgres://db", "-a", "nokey")
    source = tmp_path / "fixed"
    source.mkdir()
    (source / "shipmate.yml").write_text(MANIFEST.format(command="python3 app.py"))
    (source / "app.py").write_text(
        "import os\nprint('using', os.environ['SOME_KEY'], flush=True)\n"
        + SERVER.format(health_status=200, port='int(os.environ["PORT"])')
    )
    failed.ok("deploy", str(source), "-a", "nokey")
    found = _json(failed, "nokey")
    assert found["processes"] == [] and found["hidden"] == 1
    assert found["promotion"]["succeeded"]
    out = failed.ok("deploy-debug", "-a", "nokey", "--no-events")
    assert "All 1 processes of " in out and "are healthy (--all shows them)" in out
    # ... unless asked for: with what it printed before it was healthy.
    [process] = json.loads(failed.ok("deploy-debug", "-a", "nokey", "--all", "--output", "json"))[
        "processes"
    ]
    assert process["state"] == "healthy" and process["hint"] is None
    # (Its `listening on` line may be stamped by its shim a moment after the check passed.)
    assert _texts(process)[0] == "using postgres://db"


def test_an_app_without_promotions(failed: Rack, tmp_path: Path) -> None:
    failed.ok("apps", "create", "fresh")
    out = failed.ok("deploy-debug", "-a", "fresh")
    assert out == (
        "App fresh has no promotion yet: nothing to diagnose "
        "(deploy it with `shipmate deploy -a fresh`)\n"
    )
    # A release whose manifest requires a key its environment lacks is refused before any
    # process starts: deploy-debug says so of the latest release.
    source = tmp_path / "required"
    source.mkdir()
    (source / "shipmate.yml").write_text(
        "environment:\n  - DATABASE_URL\n" + MANIFEST.format(command="python3 app.py")
    )
    (source / "app.py").write_text("print('never runs')\n")
    refused = failed.run("deploy", str(source), "-a", "fresh")
    assert refused.code == 1 and refused.err == "ERROR: required env: DATABASE_URL\n"
    [release] = failed.releases("fresh")
    found = json.loads(failed.ok("deploy-debug", "-a", "fresh", "--output", "json"))
    assert found["missing_env"] == ["DATABASE_URL"] and found["latest_release"] == release["id"]
    assert failed.ok("deploy-debug", "-a", "fresh").splitlines()[0] == (
        f"The latest release {release['id']} lacks required env: DATABASE_URL (a promotion "
        "of it is refused): `shipmate env set DATABASE_URL=... --promote -a fresh`"
    )
    result = failed.run("deploy-debug", "-a", "ghost")
    assert result.code == 1 and result.err.startswith("ERROR: ") and "ghost" in result.err
