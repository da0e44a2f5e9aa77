"""The local runtime's rolling update, run for real (processes under shims) with an in-memory
router: the planner's steps become these events, in this order, within SPEC section 4's
bounds."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from shipmate.domain.ids import new_release_id, release_hash
from shipmate.runtimes.base import (
    DesiredState,
    HealthCheck,
    ProcessDiagnosis,
    RolloutFailed,
    ServiceSpec,
)
from shipmate.runtimes.local.runtime import LocalRuntime

SERVER = "exec python3 -m http.server $PORT --bind 127.0.0.1"
# A long grace: no Unhealthy report while a server starts, so the event order is exact.
CHECK = HealthCheck(path="/", grace=30, interval=1, timeout=1)


class MemoryRoutes:
    """The router's table, with every change kept for the assertions."""

    def __init__(self) -> None:
        self.table: dict[tuple[str, str], list[str]] = {}
        self.history: list[int] = []

    async def declare(self, app: str, service: str) -> None:
        self.table.setdefault((app, service), [])

    async def add_backend(self, app: str, service: str, backend: str) -> None:
        backends = self.table.setdefault((app, service), [])
        if backend not in backends:
            backends.append(backend)
        self.history.append(len(backends))

    async def remove_backend(self, app: str, service: str, backend: str) -> None:
        backends = self.table.setdefault((app, service), [])
        if backend in backends:
            backends.remove(backend)
            self.history.append(len(backends))

    async def remove_app(self, app: str) -> None:
        for key in [k for k in self.table if k[0] == app]:
            del self.table[key]

    async def backends(self, app: str, service: str) -> list[str]:
        return list(self.table.get((app, service), []))

    async def wait_drained(self, backend: str, timeout: float) -> bool:
        return True


def desired(
    tmp_path: Path,
    release: str,
    command: str = SERVER,
    count: int = 2,
    minimum: int = 50,
    maximum: int = 150,
    port: int | None = 5000,
    deadline: float = 60,
) -> DesiredState:
    spec = ServiceSpec(
        name="web",
        command=command,
        port=port,
        health=CHECK if port else HealthCheck("/", 0.2, 1, 1),
        count=count,
        minimum=minimum,
        maximum=maximum,
        termination_grace=2,
    )
    return DesiredState("app", release, "BXXXXXXXXXX", tmp_path, (spec,), deadline)


class Events:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, obj: str, message: str) -> None:
        self.lines.append((obj, message))

    def rollout(self) -> list[tuple[str, str]]:
        """Without the background stops' outcomes, whose moment is the OS's."""
        return [
            (obj, re.sub(r"\(pid \d+, port \d+\)", "(pid N, port N)", message))
            for obj, message in self.lines
            if not message.startswith(("Stopped", "Killed"))
        ]


async def rollout(tmp_path: Path) -> None:
    routes = MemoryRoutes()
    runtime = LocalRuntime(tmp_path / "home", routes)
    try:
        first, second = new_release_id(), new_release_id()
        await runtime.apply(desired(tmp_path, first), Events())
        old = [p.id for p in runtime.live("app", "web")]
        assert len(old) == 2 and len(routes.table["app", "web"]) == 2

        events = Events()
        routes.history.clear()
        await runtime.apply(desired(tmp_path, second), events)
        new = [p.id for p in runtime.live("app", "web")]
        assert all(p.startswith(f"web-{release_hash(second)}-") for p in new)
        h = f"web-{release_hash(second)}"
        # count 2, maximum 150%: one extra process; minimum 50%: one stays routed.
        assert events.rollout() == [
            ("web", f"Scaled up release {second} to 1"),
            (h, f"Created process: {new[0]}"),
            (new[0], "Started process (pid N, port N)"),
            (old[0], "Stopping"),
            (new[0], "Healthy"),
            ("web", f"Scaled up release {second} to 2"),
            (h, f"Created process: {new[1]}"),
            (new[1], "Started process (pid N, port N)"),
            (old[1], "Stopping"),
            (new[1], "Healthy"),
        ]
        assert min(routes.history) >= 1
        assert len(routes.table["app", "web"]) == 2

        # Scaling down within the release stops the newest.
        events = Events()
        await runtime.apply(desired(tmp_path, second, count=1), events)
        assert events.rollout() == [(new[1], "Stopping")]
        assert [p.id for p in runtime.live("app", "web")] == new[:1]
    finally:
        await runtime.remove("app", Events())
        await runtime.shutdown()


def test_a_promotion_rolls_within_the_bounds_in_order(tmp_path: Path) -> None:
    asyncio.run(rollout(tmp_path))


async def failing(tmp_path: Path, command: str, deadline: float) -> RolloutFailed:
    runtime = LocalRuntime(tmp_path / "home", MemoryRoutes())
    try:
        await runtime.apply(desired(tmp_path, new_release_id(), count=1), Events())
        with pytest.raises(RolloutFailed) as failure:
            await runtime.apply(
                desired(tmp_path, new_release_id(), command, count=1, deadline=deadline),
                Events(),
            )
        return failure.value
    finally:
        await runtime.remove("app", Events())
        await runtime.shutdown()


def test_a_new_process_that_exits_fails_the_rollout(tmp_path: Path) -> None:
    failure = asyncio.run(failing(tmp_path, "exit 3", 60))
    assert failure.kind == "error"
    assert re.fullmatch(r"process web-r\w+-\w+ exited with code 3 before it became healthy: "
                        r"no output", failure.reason)  # fmt: skip


def test_a_crash_at_boot_quotes_the_last_lines_of_its_output(tmp_path: Path) -> None:
    command = "echo one; echo; echo two; echo three >&2; echo " + "x" * 300 + "; exit 1"
    failure = asyncio.run(failing(tmp_path, command, 60))
    assert re.fullmatch(
        r"process web-r\w+-\w+ exited with code 1 before it became healthy: "
        rf'last output: "two / three / {"x" * 197}\.\.\."',
        failure.reason,
    )


def test_a_new_process_never_healthy_fails_at_the_deadline(tmp_path: Path) -> None:
    failure = asyncio.run(failing(tmp_path, "exec sleep 30", 1.5))
    assert failure.kind == "deadline"
    assert re.fullmatch(
        r"deadline exceeded: web-r\w+-\w+ \(last check: GET /: ConnectError\) "
        r"not healthy within 1.5s",
        failure.reason,
    )


async def without_port(tmp_path: Path) -> list[tuple[str, str]]:
    runtime = LocalRuntime(tmp_path / "home", MemoryRoutes())
    events = Events()
    try:
        release = new_release_id()
        await runtime.apply(desired(tmp_path, release, "exec sleep 30", count=2, port=None), events)
        assert len(runtime.live("app", "web")) == 2
        return events.rollout()
    finally:
        await runtime.remove("app", Events())
        await runtime.shutdown()


def test_a_service_without_a_port_is_healthy_once_it_runs_for_grace(tmp_path: Path) -> None:
    lines = asyncio.run(without_port(tmp_path))
    messages = [re.sub(r"\(pid \d+\)", "(pid N)", m) for _, m in lines]
    assert messages[0].startswith("Scaled up release R") and messages[0].endswith(" to 2")
    assert messages.count("Started process (pid N)") == 2
    assert messages[-2:] == ["Healthy", "Healthy"]


async def reverted_diagnosis(
    tmp_path: Path,
) -> tuple[str, str, list[ProcessDiagnosis], dict[str, str]]:
    """Both releases, what `diagnose` said after the revert, and each output file's text."""
    runtime = LocalRuntime(tmp_path / "home", MemoryRoutes())
    try:
        good = desired(tmp_path, new_release_id(), count=1)
        await runtime.apply(good, Events())
        bad = desired(tmp_path, new_release_id(), "echo dying; exit 3", count=1, deadline=20)
        with pytest.raises(RolloutFailed):
            await runtime.apply(bad, Events())
        await runtime.apply(good, Events())  # the revert
        await asyncio.sleep(0.05)  # its exit watcher has run
        found = await runtime.diagnose("app")
        texts = {p.id: "".join(path.read_text() for path in p.logs) for p in found}
        return good.release_id, bad.release_id, found, texts
    finally:
        await runtime.remove("app", Events())
        await runtime.shutdown()


def test_diagnose_keeps_the_processes_a_failed_rollout_left(tmp_path: Path) -> None:
    good, bad, found, texts = asyncio.run(reverted_diagnosis(tmp_path))
    [serving] = [p for p in found if p.release_id == good]
    assert serving.status == "running" and serving.healthy_at is not None
    [crashed] = [p for p in found if p.release_id == bad]
    assert crashed.status == "exited" and crashed.exit_code == 3 and not crashed.stopped
    assert crashed.healthy_at is None and crashed.exited_at is not None
    assert [p.name for p in crashed.logs] == ["output.log"]
    assert texts[crashed.id].split(" ", 1)[1] == "dying\n"
