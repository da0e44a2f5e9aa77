"""What a new user ran into (issue 10), runtime and build side: through the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from shipmate.common.pids import pid_alive
from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack

SLEEPER = """services:
  worker:
    command: python3 -c "import signal as s, time; s.signal(15, s.SIG_IGN); time.sleep(100000)"
    health:
      grace: 1
    termination:
      grace: 60
"""


def _source(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    source = tmp_path / name
    for path, text in files.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(text)
    return source


def _restart(rack: Rack) -> None:
    """Kill the rack (no clean stop) and start it again on the same home and database."""
    os.kill(int(rack.info["pid"]), signal.SIGKILL)
    poll_until(lambda: not _alive(rack), 10, what="the rack to die")
    (rack.home / "rack.json").unlink(missing_ok=True)
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")


def _alive(rack: Rack) -> bool:
    try:
        os.kill(int(rack.info["pid"]), 0)
    except (ProcessLookupError, OSError, ValueError):
        return False
    return True


def test_delete_finishes_in_seconds_while_other_apps_run(rack: Rack) -> None:
    rack.deploy("keeps")
    rack.deploy("goes")
    started = time.monotonic()
    result = rack.run("apps", "delete", "goes", timeout=30)
    assert result.code == 0, result
    assert time.monotonic() - started < 15
    assert "goes" not in rack.ok("apps")
    assert rack.get("keeps").status_code == 200


def test_a_deleting_app_refuses_changes_and_the_next_start_finishes_it(
    rack: Rack, tmp_path: Path
) -> None:
    source = _source(tmp_path, "sleeper", {"shipmate.yml": SLEEPER})
    rack.ok("apps", "create", "slow")
    rack.ok("deploy", str(source), "-a", "slow")
    [release] = rack.releases("slow")
    [process] = json.loads(rack.ok("ps", "-a", "slow", "--json"))
    # The worker ignores SIGTERM: the delete waits for it (up to 15 s) before SIGKILL.
    deleting = rack.popen("apps", "delete", "slow")
    poll_until(lambda: "deleting" in rack.ok("apps", "info", "-a", "slow"), 10, interval=0.1)
    refused = "ERROR: app slow is being deleted: it can no longer be changed\n"
    for args in (
        ("env", "set", "A=1"),
        ("releases", "promote", str(release["id"])),
        ("releases", "rollback", str(release["id"])),
        ("scale", "worker", "--count", "2"),
        ("restart",),
        ("build", str(source)),
        ("run", "worker", "true"),
    ):
        result = rack.run(*args, "-a", "slow")
        assert (result.code, result.err) == (1, refused), (args, result)
    # The rack dies mid-delete: the next start finishes it.
    _restart(rack)
    deleting.kill()
    deleting.wait()
    poll_until(lambda: "slow" not in rack.ok("apps"), 60, interval=0.2)
    assert not (rack.home / "run" / "slow").exists()
    poll_until(lambda: not pid_alive(process["pid"]), 20, what="the worker to be gone")


def test_a_service_runs_in_its_build_directory_with_its_own_dependencies(
    rack: Rack, tmp_path: Path
) -> None:
    app = (EXAMPLE / "app.py").read_text()
    source = _source(
        tmp_path,
        "monorepo",
        {
            "shipmate.yml": "services:\n  web:\n    build: ./api\n    command: python3 app.py\n"
            "    port: 5000\n    health: /health\n",
            "api/app.py": app,
            # A project of its own, installed into the service directory's virtualenv.
            "api/pyproject.toml": '[project]\nname = "apidep"\nversion = "1.0"\n'
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
            "api/backend.py": BACKEND,
        },
    )
    rack.ok("apps", "create", "mono")
    out = rack.ok("deploy", str(source), "-a", "mono")
    assert "Directory api (services web)" in out
    assert rack.get("mono").status_code == 200
    # The one-off runs there too, with that virtualenv first on PATH.
    here = rack.ok("run", "web", "pwd; echo $VIRTUAL_ENV", "-a", "mono").split()
    assert here[0].endswith("/api") and here[1] == here[0] + "/.venv"


BACKEND = '''"""A PEP 517 backend with no dependencies: a wheel holding one module."""
import base64, hashlib, os, zipfile

def _record(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = "apidep-1.0-py3-none-any.whl"
    files = {
        "apidep.py": b"VALUE = 42\\n",
        "apidep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: apidep\\nVersion: 1.0\\n",
        "apidep-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        ),
    }
    records = [_record(n, d) for n, d in files.items()] + ["apidep-1.0.dist-info/RECORD,,"]
    files["apidep-1.0.dist-info/RECORD"] = ("\\n".join(records) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for n, d in files.items():
            wheel.writestr(n, d)
    return name
'''


def test_a_service_without_a_command_is_refused_at_build_unless_a_procfile_names_it(
    rack: Rack, tmp_path: Path
) -> None:
    rack.ok("apps", "create", "procs")
    manifest = "services:\n  web:\n    port: 5000\n    health: /health\n"
    bare = _source(tmp_path, "bare", {"shipmate.yml": manifest, "app.py": "print(1)\n"})
    result = rack.run("build", str(bare), "-a", "procs")
    assert result.code == 1
    assert result.err == (
        "ERROR: shipmate.yml: services.web: no command: add `command:` or a line "
        "`web: COMMAND` to Procfile\n"
    )
    assert rack.builds("procs") == []
    app = (EXAMPLE / "app.py").read_text()
    heroku = _source(
        tmp_path,
        "heroku",
        {"shipmate.yml": manifest, "app.py": app, "Procfile": "web: python3 app.py\n"},
    )
    rack.ok("deploy", str(heroku), "-a", "procs")
    assert rack.get("procs").status_code == 200
    [process] = json.loads(rack.ok("ps", "-a", "procs", "--json"))
    assert process["command"] == "python3 app.py"


def test_a_stop_reports_the_apps_own_exit_code(rack: Rack) -> None:
    rack.deploy("stops")
    [process] = json.loads(rack.ok("ps", "-a", "stops", "--json"))
    rack.ok("ps", "stop", process["id"], "-a", "stops")

    def stopped() -> str | None:
        logs = rack.ok("logs", "-a", "stops", "--no-follow")
        return logs if f"{process['id']} Stopped" in logs else None

    logs = poll_until(stopped, 30, interval=0.2)
    # The example app exits 0 on SIGTERM once its requests are done.
    assert f"system/local/{process['id']} Stopped (exit code 0)" in logs


def test_a_crash_at_boot_shows_its_last_output(rack: Rack, tmp_path: Path) -> None:
    manifest = "services:\n  web:\n    command: python3 app.py\n    port: 5000\n"
    source = _source(tmp_path, "flaskless", {"shipmate.yml": manifest, "app.py": "import flaskx\n"})
    rack.ok("apps", "create", "flaskless")
    result = rack.run("deploy", str(source), "-a", "flaskless")
    assert result.code == 1
    assert re.fullmatch(
        r"ERROR: rollback: process web-\S+ exited with code 1 before it became healthy: "
        r'last output: "\S.* / import flaskx / ModuleNotFoundError: No module named \'flaskx\'" '
        r"\(run shipmate deploy-debug\)\n",
        result.err,
    )


def test_a_log_stream_whose_client_goes_away_leaves_no_traceback(
    rack: Rack, tmp_path: Path
) -> None:
    manifest = (
        'services:\n  chatty:\n    command: python3 -c "import itertools, time; '
        "[print('line', i, 'x' * 200, flush=True) or time.sleep(0.0005) "
        'for i in itertools.count()]"\n    health:\n      grace: 1\n'
    )
    rack.ok("apps", "create", "chatty")
    rack.ok("deploy", str(_source(tmp_path, "chatty", {"shipmate.yml": manifest})), "-a", "chatty")
    log = rack.home / "rack.log"
    before = log.stat().st_size
    for _ in range(3):
        client = rack.popen("logs", "-a", "chatty")
        time.sleep(1.5)
        client.send_signal(signal.SIGSTOP)  # stops reading: the rack's buffers fill
        time.sleep(1.5)
        client.kill()
        client.wait()
    time.sleep(2)
    with log.open() as f:
        f.seek(before)
        added = f.read()
    assert "Traceback" not in added and "Exception in ASGI" not in added, added[-3000:]
    rack.ok("apps", "delete", "chatty")


SLOW_BACKEND = "import time\ntime.sleep(600)\n"


def test_a_build_killed_mid_way_leaves_no_directory(rack: Rack, tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        "slowbuild",
        {
            "shipmate.yml": "services:\n  web:\n    command: python3 -m http.server $PORT\n"
            "    port: 8000\n",
            "pyproject.toml": '[project]\nname = "slow"\nversion = "1"\n[build-system]\n'
            'requires = []\nbuild-backend = "slowbackend"\nbackend-path = ["."]\n',
            "slowbackend.py": SLOW_BACKEND,
        },
    )
    rack.ok("apps", "create", "killed")
    building = rack.popen("build", str(source), "-a", "killed")

    def installing() -> str | None:
        builds = rack.builds("killed")
        if not builds:
            return None
        log = rack.home / "builds" / f"{builds[0]['id']}.log"
        text = log.read_text() if log.exists() else ""
        return str(builds[0]["id"]) if "pip install" in text else None

    build_id = poll_until(installing, 60, interval=0.2)
    time.sleep(1)
    _restart(rack)
    building.kill()
    building.wait()
    [build] = rack.builds("killed")
    assert build["status"] == "failed"
    assert not (rack.home / "builds" / build_id).exists()
    assert not (rack.home / "builds" / f"{build_id}.pid").exists()
