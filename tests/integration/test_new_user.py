"""What a new user ran into (issue 10), through the real CLI and the API of a real rack."""

from __future__ import annotations

import httpx

from tests.integration.conftest import Rack


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
