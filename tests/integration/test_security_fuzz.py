"""schemathesis against a real rack's /openapi.json with the admin token, bounded.

A smaller version of the run in docs/SECURITY.md: no 5xx, and every response matches the
document (body and content type). Token revocation is left out (the fuzzer would revoke its
own access), and so is the gzip upload (it cannot generate one; tests/integration/
test_security_uploads.py sends hostile ones).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Rack, stop_rack

EXAMPLES = 5  # per operation and phase: about a minute on a quiet machine


def _schemathesis() -> list[str]:
    script = Path(sys.executable).parent / "schemathesis"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()"]


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env["SHIPMATE_HOME"] = str(home)
    rack = Rack(home, env)
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
    try:
        yield rack
    finally:
        stop_rack(rack)


def test_schemathesis_finds_no_server_error_and_no_schema_break(rack: Rack) -> None:
    token = (rack.home / "token").read_text().strip()
    command = [
        *_schemathesis(),
        "run",
        f"{rack.info['api']}/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--exclude-operation-id", "revoke_token_rack_tokens__name__delete",
        "--exclude-operation-id", "create_build_apps__app__builds_post",
        "--exclude-operation-id", "import_build_apps__app__builds_import_post",
        "--max-examples", str(EXAMPLES),
        "--request-timeout", "5",
        "--seed", "4",
        "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=rack.home, env=rack.env
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts and counts.group(1) == counts.group(2), output[-3000:]
    assert int(counts.group(1)) > 100
    # The rack survived it, and its owner still gets in.
    assert rack.ok("apps").startswith("APP")
