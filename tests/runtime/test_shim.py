"""The shim, run for real: state, capped output, SIGTERM then SIGKILL, PID-reuse guard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shipmate.common.waiting import poll_until
from shipmate.runtimes.local.process import LocalProcess
from shipmate.runtimes.local.shim import proc_start_time


def shim(
    directory: Path, command: str, grace: float = 5, log_cap: int = 1 << 20
) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "shipmate.runtimes.local.shim", "--dir", str(directory),
         "--grace", str(grace), "--log-cap", str(log_cap), "--", "/bin/sh", "-c", command],
        start_new_session=True,
    )  # fmt: skip


def state(directory: Path) -> dict[str, Any]:
    def written() -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((directory / "state.json").read_text()))
        return None

    return poll_until(written, 10, interval=0.01, what=f"{directory}/state.json")


def test_records_exit_code_and_timestamped_output(tmp_path: Path) -> None:
    proc = shim(tmp_path, "echo one; echo two >&2; exit 3")
    assert proc.wait(timeout=10) == 0
    final = state(tmp_path)
    assert (final["status"], final["exit_code"]) == ("exited", 3)
    lines = (tmp_path / "output.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two"]
    assert all(line[:4].isdigit() and line.split(" ", 1)[0].endswith("Z") for line in lines)


def test_output_is_capped_by_rotation(tmp_path: Path) -> None:
    proc = shim(
        tmp_path, "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done", log_cap=10_000
    )
    proc.wait(timeout=30)
    current = (tmp_path / "output.log").stat().st_size
    previous = (tmp_path / "output.log.1").stat().st_size
    assert current <= 10_000 + 200 and previous <= 10_000 + 200
    assert (tmp_path / "output.log").read_text().splitlines()[-1].endswith("line-2999")


def test_sigterm_then_sigkill_after_grace(tmp_path: Path) -> None:
    proc = shim(tmp_path, "trap '' TERM; while true; do sleep 0.1; done", grace=1)
    running = state(tmp_path)
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert 0.9 <= time.monotonic() - started < 8
    final = state(tmp_path)
    assert final["exit_code"] == 137
    assert proc_start_time(int(running["pid"])) is None


def test_app_survives_its_shell_until_it_finishes(tmp_path: Path) -> None:
    # The shell dies on SIGTERM at once; the app it started gets its grace period to finish.
    script = "import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); time.sleep(0.8)"
    proc = shim(tmp_path, f'python3 -c "{script}"; echo after', grace=5)
    state(tmp_path)
    time.sleep(0.3)
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)
    assert 0.3 <= time.monotonic() - started < 4


def test_adoption_refuses_a_reused_pid(tmp_path: Path) -> None:
    proc = shim(tmp_path / "p", "sleep 30")
    try:
        real = state(tmp_path / "p")
        meta = {
            "id": "web-rxxxxxxxxx-abcde",
            "app": "a",
            "service": "web",
            "release": "RXXXXXXXXX",
            "command": "sleep 30",
            "port": None,
            "started": "2026-01-01T00:00:00+00:00",
        }
        (tmp_path / "p" / "meta.json").write_text(json.dumps(meta))

        async def adopt() -> tuple[LocalProcess | None, LocalProcess | None]:
            found = LocalProcess.adopt(tmp_path / "p")
            forged = dict(real, shim_start=int(real["shim_start"]) + 1)
            (tmp_path / "p" / "state.json").write_text(json.dumps(forged))
            return found, LocalProcess.adopt(tmp_path / "p")

        found, reused = asyncio.run(adopt())
        assert found is not None and found.pid == real["pid"]
        assert reused is None
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
