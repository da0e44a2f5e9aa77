"""What a new user ran into (issue 10), through the real CLI and the API of a real rack."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack, _cli


def _api(rack: Rack) -> tuple[str, dict[str, str]]:
    token = (rack.home / "token").read_text().strip()
    return rack.info["api"], {"Authorization": f"Bearer {token}"}


def _refused(rack: Rack, expected: str, *args: str) -> None:
    result = rack.run(*args)
    assert result.code == 1, result
    assert result.err == f"ERROR: {expected}\n"


def test_environment_too_large_for_the_os_is_refused_at_env_set(rack: Rack) -> None:
    rack.deploy("huge")
    before = rack.releases("huge")
    # One variable over Linux's 128 KiB: the API refuses it whole (the CLI could not even
    # pass such an argument to itself).
    api, headers = _api(rack)
    answer = httpx.post(
        f"{api}/apps/huge/environment",
        json={"set": ["BIG=" + "x" * 10 * 1024 * 1024], "unset": []},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("BIG is too large (10.00 MiB): one variable may")
    # Variables that fit one by one but not together: refused once the total would not.
    chunk = "x" * 100_000
    for n in range(0, 18, 6):
        rack.ok("env", "set", *(f"K{i}={chunk}" for i in range(n, n + 6)), "-a", "huge")
    _refused(
        rack,
        "environment too large: 1.81 MiB in all, the limit is 1.75 MiB (Linux passes about "
        "2 MiB of environment and arguments to a process): unset or shrink some variables",
        "env",
        "set",
        f"K18={chunk}",
        "-a",
        "huge",
    )
    after = rack.releases("huge")
    assert len(after) == len(before) + 3
    assert "K18" not in rack.ok("env", "-a", "huge")


def test_keys_the_platform_sets_are_refused(rack: Rack) -> None:
    rack.ok("apps", "create", "reserved")
    for key in ("PORT", "RELEASE"):
        _refused(
            rack,
            f"{key} is set by shipmate for every process and cannot be changed: use another "
            "name (reserved: APP, BUILD, PORT, RELEASE, SERVICE)",
            "env",
            "set",
            f"{key}=9999",
            "-a",
            "reserved",
        )
    assert rack.releases("reserved") == []


def test_a_key_starting_with_a_digit_says_so(rack: Rack) -> None:
    rack.ok("apps", "create", "digits")
    _refused(
        rack,
        'invalid environment assignment "1ABC=1": a key cannot start with a digit '
        "(use letters, digits and _)",
        "env",
        "set",
        "1ABC=1",
        "-a",
        "digits",
    )


# 10. On a terminal, an error after a progress line starts a line of its own.
def _in_a_terminal(rack: Rack, *args: str) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on one pseudo-terminal, as a user sees it."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*_cli(), *args], env=rack.env, cwd=rack.home, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the CLI exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = proc.wait(timeout=60)
    screen = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode()).replace("\r\n", "\n")
    return code, screen


def test_the_routers_page_for_a_service_without_a_port_says_so(rack: Rack, tmp_path: Path) -> None:
    source = tmp_path / "withworker"
    shutil.copytree(EXAMPLE, source)
    manifest = (source / "shipmate.yml").read_text()
    (source / "shipmate.yml").write_text(
        manifest + "  worker:\n    command: python3 -c 'import time; time.sleep(3600)'\n"
    )
    rack.deploy("withworker", source)
    answer = rack.get("withworker", service="worker")
    assert answer.status_code == 404
    assert answer.text == (
        "shipmate router: app withworker has no routed service worker: only a service with "
        "a port (`port:` in its manifest) gets a route (routed here: web)\n"
    )
    assert rack.get("withworker").status_code == 200


def test_an_error_after_progress_starts_its_own_line_on_a_terminal(rack: Rack) -> None:
    rack.ok("apps", "create", "twice")
    code, screen = _in_a_terminal(rack, "apps", "create", "twice")
    assert code == 1
    assert screen == "Creating twice...\nERROR: app twice already exists\n"
    # Piped, stdout is left as it was and stderr is still one line.
    result = rack.run("apps", "create", "twice")
    assert (result.out, result.err) == ("Creating twice...", "ERROR: app twice already exists\n")


# 11. Promoting another app's release says so before any `Promoting ...` line.
def test_promoting_another_apps_release_fails_before_any_output(rack: Rack) -> None:
    rack.deploy("mine")
    rack.deploy("theirs")
    foreign = rack.releases("theirs")[0]["id"]
    result = rack.run("releases", "promote", foreign, "-a", "mine")
    assert result.code == 1
    assert result.out == ""
    assert result.err == f"ERROR: no such release: {foreign} (app mine)\n"


# 12. Bad app names and release ids say what is wrong, in the CLI and in the API.
def test_bad_app_names_and_release_ids_say_what_is_wrong(rack: Rack) -> None:
    rack.ok("apps", "create", "named")
    _refused(
        rack,
        "a release id is required: see `shipmate releases`",
        "releases",
        "rollback",
        "",
        "-a",
        "named",
    )
    _refused(
        rack,
        "invalid release id 'latest': a release id is R and 9 capital letters, "
        "see `shipmate releases`",
        "releases",
        "info",
        "latest",
        "-a",
        "named",
    )
    for name in ("../x", "x/y", ""):
        _refused(
            rack,
            f"invalid app name {name!r}: use 1-30 characters a-z, 0-9 and -, starting with "
            "a letter",
            "releases",
            "rollback",
            "RAAAAAAAAA",
            "-a",
            name,
        )
    _refused(
        rack,
        "invalid app name 'Nope': use 1-30 characters a-z, 0-9 and -, starting with a letter",
        "apps",
        "delete",
        "Nope",
    )
    # The API: a path with an empty name or id says which, with a code.
    api, headers = _api(rack)
    for path, expected in (
        (
            "/apps/named/releases//rollback",
            "a release id is required: the path /apps/named/releases//rollback has none",
        ),
        ("/apps//releases", "an app name is required: the path /apps//... has none"),
    ):
        answer = httpx.post(f"{api}{path}", json={}, headers=headers, timeout=10)
        assert answer.status_code == 400, answer.text
        assert answer.json() == {"error": expected, "code": "invalid_input"}


# 18. `ps` newest first; `builds info` times in whole seconds.
def test_ps_lists_newest_first_and_builds_info_has_whole_second_times(rack: Rack) -> None:
    rack.deploy("order")
    rack.ok("scale", "web", "--count", "2", "-a", "order")
    found = json.loads(rack.ok("ps", "-a", "order", "--json"))
    assert len(found) == 2
    started = [p["started"] for p in found]
    assert started == sorted(started, reverse=True) and started[0] != started[1]
    table = rack.ok("ps", "-a", "order").splitlines()[1:]
    assert [line.split()[0] for line in table] == [p["id"] for p in found]
    build = rack.builds("order")[0]["id"]
    info = dict(
        line.split(None, 1) for line in rack.ok("builds", "info", build, "-a", "order").splitlines()
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["Started"]), info


# 19. `logs -f`, `logs --tail N`; Ctrl-C during a promotion says it goes on.
def test_logs_follow_short_option_and_tail(rack: Rack) -> None:
    rack.deploy("taily")
    everything = rack.ok("logs", "-a", "taily", "--no-follow", "--since", "1h").splitlines()
    assert len(everything) > 3
    tail = rack.ok("logs", "-a", "taily", "--no-follow", "--since", "1h", "--tail", "3")
    assert tail.splitlines() == everything[-3:]
    follower = rack.popen("logs", "-a", "taily", "-f", "--since", "1h", "--tail", "2")
    try:
        assert follower.stdout is not None
        first = [follower.stdout.readline() for _ in range(2)]
        assert [line.rstrip("\n") for line in first] == everything[-2:]
        rack.ok("restart", "-a", "taily")
        # Following: the restart's events arrive after the tail, none of the old ones again.
        later = [follower.stdout.readline().rstrip("\n") for _ in range(3)]
        assert not set(later) & set(everything), later
        assert any("Status: Running => Pending" in line for line in later), later
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


def test_ctrl_c_during_a_promotion_says_it_goes_on_and_how_to_cancel(rack: Rack) -> None:
    rack.deploy("hasty")
    slow = rack.popen("env", "set", "HEALTH_FAIL=1", "--promote", "--wait", "60", "-a", "hasty")
    try:
        assert slow.stdout is not None
        while not slow.stdout.readline().startswith("Promoting "):
            pass
        time.sleep(0.5)  # while the CLI follows the promotion's events
        slow.send_signal(signal.SIGINT)
        out, err = slow.communicate(timeout=30)
        assert slow.returncode == 130, (out, err)
        release = rack.releases("hasty")[0]["id"]
        assert err == (
            f"Interrupted: the promotion of {release} goes on in the rack; follow it with "
            "`shipmate logs -a hasty -f`, cancel it with `shipmate apps cancel -a hasty`\n"
        )
        assert "Aborted" not in out + err
        info = json.loads(rack.ok("apps", "info", "-a", "hasty", "--json"))
        assert info["status"] == "updating"
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.communicate()
        rack.run("apps", "cancel", "-a", "hasty")


# 20. `rack --json` and `logs --json`.
def test_rack_and_logs_print_json(rack: Rack) -> None:
    rack.deploy("jsony")
    info = json.loads(rack.ok("rack", "--json"))
    assert info["status"] == "running" and info["router"] == rack.info["router"]
    lines = rack.ok("logs", "-a", "jsony", "--no-follow", "--since", "1h", "--json").splitlines()
    plain = rack.ok("logs", "-a", "jsony", "--no-follow", "--since", "1h").splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [p["line"] for p in parsed] == plain
    first = parsed[0]
    assert first["line"] == f"{first['time']} {first['source']} {first['message']}"
    rack.ok("env", "set", "G=1", "-a", "jsony")
    assert json.loads(rack.ok("env", "get", "G", "-a", "jsony", "--json")) == {"G": "1"}


# 25. `env set -` / `--file`, `env edit`, `--no-wait`.
def test_env_set_reads_a_dotenv_file_from_stdin_or_file(rack: Rack, tmp_path: Path) -> None:
    rack.ok("apps", "create", "dotenv")
    dotenv = "# settings\n\nexport A=1\nB = 'two words'\nC=x=y\n"
    proc = subprocess.run(
        [*_cli(), "env", "set", "-", "-a", "dotenv"],
        input=dotenv,
        env=rack.env,
        cwd=rack.home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Setting A, B, C... OK\nRelease: R")
    assert rack.ok("env", "-a", "dotenv") == "A=1\nB=two words\nC=x=y\n"
    file = tmp_path / ".env"
    file.write_text("D=4\n")
    rack.ok("env", "set", "--file", str(file), "E=5", "-a", "dotenv")
    assert rack.ok("env", "-a", "dotenv") == "A=1\nB=two words\nC=x=y\nD=4\nE=5\n"
    file.write_text("OK=1\n1BAD=2\n")
    _refused(
        rack,
        f'{file}, line 2: invalid environment assignment "1BAD=2": a key cannot start with a '
        "digit (use letters, digits and _)",
        "env",
        "set",
        "--file",
        str(file),
        "-a",
        "dotenv",
    )
    assert len(rack.releases("dotenv")) == 2


def test_env_edit_makes_one_release_from_the_edit(rack: Rack, tmp_path: Path) -> None:
    rack.ok("apps", "create", "edity")
    rack.ok("env", "set", "A=1", "B=2", "-a", "edity")
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i -e "s/^A=1$/A=10/" -e "/^B=/d" "$1"\necho C=3 >> "$1"\n')
    editor.chmod(0o755)
    edits = Rack(rack.home, {**rack.env, "EDITOR": str(editor), "VISUAL": ""})
    out = edits.ok("env", "edit", "-a", "edity")
    assert out.startswith("Changing A, B, C... OK\nRelease: R")
    assert rack.ok("env", "-a", "edity") == "A=10\nC=3\n"
    assert len(rack.releases("edity")) == 2
    assert rack.releases("edity")[0]["description"] == "env add:C change:A remove:B"
    # No change, and an editor that fails: no release.
    unchanged = Rack(rack.home, {**rack.env, "EDITOR": "touch", "VISUAL": ""})
    assert unchanged.ok("env", "edit", "-a", "edity") == (
        "No change: the environment already has these values; no release created\n"
    )
    failing = Rack(rack.home, {**rack.env, "EDITOR": "false", "VISUAL": ""})
    result = failing.run("env", "edit", "-a", "edity")
    assert (result.code, result.err) == (1, "ERROR: false: Editing failed\n")
    assert len(rack.releases("edity")) == 2


def test_no_wait_returns_once_the_promotion_is_recorded(rack: Rack) -> None:
    rack.deploy("quick")
    out = rack.ok("env", "set", "X=1", "--promote", "--no-wait", "-a", "quick")
    release = rack.releases("quick")[0]["id"]
    assert re.fullmatch(
        rf"Setting X\.\.\. OK\nRelease: {release}\nPromotion P[A-Z]{{9}} of {release} started: "
        r"follow it with `shipmate logs -a quick -f`; "
        rf"`shipmate releases info {release} -a quick` shows how it ended\n",
        out,
    ), out

    def ended() -> bool:
        info = json.loads(rack.ok("releases", "info", release, "-a", "quick", "--json"))
        return bool(info["promotions"] and info["promotions"][0]["succeeded"])

    poll_until(ended, 60, what="the promotion to succeed")
    for args in (
        ("restart",),
        ("scale", "web", "--count", "2"),
        ("releases", "rollback", release),
        ("releases", "promote"),
    ):
        poll_until(
            lambda: (
                json.loads(rack.ok("apps", "info", "-a", "quick", "--json"))["status"] == "running"
            ),
            60,
            what="the app to be idle",
        )
        out = rack.ok(*args, "--no-wait", "-a", "quick")
        assert " started: follow it with `shipmate logs -a quick -f`" in out, (args, out)
        # The last line is the promotion's handle, not a waited-for "... OK" (IDs may hold "OK").
        assert out.splitlines()[-1].endswith("shows how it ended"), (args, out)


# 24. `shipmate rack` with the API down: stopped, and what still serves.
def test_rack_says_stopped_and_what_still_runs(rack: Rack) -> None:
    rack.deploy("survives")
    router = rack.info["router"]
    rack.ok("rack", "stop")
    try:
        shown = rack.run("rack")
        assert shown.code == 0, shown
        lines = dict(line.split(None, 1) for line in shown.out.splitlines())
        assert list(lines) == ["Name", "Provider", "Router", "Status", "Version"]
        assert lines["Status"] == "stopped"
        assert lines["Router"].startswith(f"{router} (pid ")
        assert "app processes still running: " in shown.err and "survives: 1" in shown.err
        stopped = json.loads(rack.ok("rack", "--json"))
        assert stopped["status"] == "stopped" and stopped["processes"]["survives"] == 1
    finally:
        rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
    assert json.loads(rack.ok("rack", "--json"))["status"] == "running"
