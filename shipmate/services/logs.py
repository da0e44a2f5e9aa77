"""`logs`: process output and platform events of an app, merged in time order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shipmate.domain.humanize import rfc3339
from shipmate.runtimes.base import LogSource
from shipmate.services.context import Context

POLL = 0.25
EVENT_PAGE = 1000


@dataclass(frozen=True)
class LogLine:
    time: datetime
    source: str  # service/web/<process id> or system/<runtime>/<object>
    message: str

    @property
    def line(self) -> str:
        return f"{rfc3339(self.time)} {self.source} {self.message}"


def _wanted(line: LogLine, service: str | None, text: str | None) -> bool:
    if text is not None and text not in line.line:
        return False
    if service is None:
        return True
    parts = line.source.split("/")
    if parts[0] == "service":
        return parts[1] == service
    obj = "/".join(parts[2:])
    return obj == service or obj.startswith(f"{service}-")


class _Tail:
    """New complete lines of one process's output file (which the shim may rotate)."""

    def __init__(self, source: LogSource) -> None:
        self.source = source
        self.offset = 0

    def read(self) -> list[LogLine]:
        path: Path = self.source.path
        try:
            size = path.stat().st_size
            if size < self.offset:  # rotated under us: start over on the new file
                self.offset = 0
            with path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        lines = []
        prefix = f"service/{self.source.service}/{self.source.process_id}"
        for raw in data[:end].decode("utf-8", "replace").splitlines():
            stamp, _, message = raw.partition(" ")
            try:
                when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                continue
            lines.append(LogLine(when, prefix, message))
        return lines


async def stream(
    ctx: Context,
    app: str,
    since: datetime | None,
    follow: bool,
    service: str | None,
    text: str | None,
    disconnected: Callable[[], object],
) -> AsyncIterator[LogLine]:
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
    tails: dict[Path, _Tail] = {}
    last_event = 0
    while True:
        batch: list[LogLine] = []
        with ctx.store.unit_of_work() as uow:
            events = uow.events.list(app, after_id=last_event, since=since, limit=EVENT_PAGE)
        for event in events:
            last_event = event.id
            batch.append(LogLine(event.created_at, event.source, event.message))
        for source in ctx.runtime.log_sources(app):
            tail = tails.setdefault(source.path, _Tail(source))
            batch.extend(tail.read())
        batch.sort(key=lambda line: line.time)
        for line in batch:
            if (since is None or line.time >= since) and _wanted(line, service, text):
                yield line
        if not follow and len(events) < EVENT_PAGE:
            return
        if await _maybe(disconnected()):
            return
        await ctx.notifier.wait(POLL)


async def _maybe(value: object) -> object:
    if hasattr(value, "__await__"):
        return await value
    return value
