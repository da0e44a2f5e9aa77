"""What a container runtime lacks so far, said the same way on each: one-off processes, output
files, diagnosis. The local runtime has them all; a container runtime that gains one overrides
the method here."""

from __future__ import annotations

from collections.abc import AsyncIterator

from shipmate.domain.errors import InvalidInput
from shipmate.runtimes.base import (
    Attached,
    DesiredState,
    LogSource,
    ProcessDiagnosis,
    ProcessInfo,
    Terminal,
)

UNAVAILABLE = "one-off processes are not available on this runtime yet (the local runtime has them)"


class WithoutOneOffs:
    async def run(
        self, desired: DesiredState, service: str, command: str, *, release_phase: bool = False
    ) -> AsyncIterator[tuple[str, str | int]]:
        # Lines, then an exit code, as every runtime's `run`: a release phase then fails its
        # promotion with this line, as it would with a failing command.
        yield ("line", UNAVAILABLE)
        yield ("exit", 1)

    async def attach(
        self, desired: DesiredState, service: str, command: str, terminal: Terminal | None
    ) -> Attached:
        raise InvalidInput(UNAVAILABLE)

    async def stop_release_commands(self, app: str) -> list[tuple[ProcessInfo, str]]:
        return []  # no release command ever runs, so none is left behind

    def log_sources(self, app: str) -> list[LogSource]:
        return []

    async def diagnose(self, app: str) -> list[ProcessDiagnosis]:
        return []
