"""quickstart.sh refuses what it cannot do before it installs or starts anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "quickstart.sh"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--runtime", "podman"], "ERROR: runtime 'podman' is not available yet: only 'local' and"),
        (["--runtime=kubernetes"], "ERROR: runtime 'kubernetes' is not available yet"),
        (
            ["--bogus"],
            "ERROR: unknown argument --bogus: usage: ./quickstart.sh [--runtime local|swarm]",
        ),
    ],
)
def test_an_unavailable_runtime_or_argument_is_refused(args: list[str], error: str) -> None:
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith(error) and done.stderr.count("\n") == 1
    assert done.stdout == ""
