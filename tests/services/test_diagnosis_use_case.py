"""The deploy-debug use case over the fake runtime: which processes it reports of the latest
promotion, what output it reads of each, the crash it folds in, and the events it keeps."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from shipmate.domain.diagnosis import ProcessState
from shipmate.domain.humanize import utcnow
from shipmate.runtimes.base import ProcessDiagnosis
from shipmate.services import diagnosis
from tests.services.conftest import Rack, manifest


def _log(path: Path, lines: list[tuple[datetime, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"{t.isoformat().replace('+00:00', 'Z')} {text}\n" for t, text in lines)
    )
    return path


async def test_a_crash_looping_service_and_an_unhealthy_one(rack: Rack, tmp_path: Path) -> None:
    r1 = rack.deploy("shop", text=manifest(worker=True))
    rack.fake.script(r1.id, health="crash", exit_code=1)
    promotion = await rack.promote("shop", r1.id)
    assert not promotion.succeeded
    t = utcnow() - timedelta(seconds=30)
    crash_log = _log(tmp_path / "a.log", [(t, "starting worker"), (t, "KeyError: 'REDIS_URL'")])
    loop_log = _log(tmp_path / "b.log", [(t + timedelta(seconds=5), "starting worker")])
    web_log = _log(
        tmp_path / "c.log",
        [(t, "booting"), (t, "listening on 5000"), (t + timedelta(seconds=9), "later")],
    )
    rack.fake.diagnosed["shop"] = [
        ProcessDiagnosis(
            "worker-a", "worker", r1.id, "exited", t, "python3 worker.py",
            exit_code=1, exited_at=t + timedelta(seconds=1), logs=(crash_log,),
        ),
        ProcessDiagnosis(
            "worker-b", "worker", r1.id, "running", t + timedelta(seconds=3), "python3 worker.py",
            logs=(loop_log,), exit_code=None,
        ),
        ProcessDiagnosis(
            "web-c", "web", r1.id, "exited", t, "python3 app.py", port=40111,
            health_problem="GET /health: ConnectError", exit_code=143, stopped=True,
            exited_at=t + timedelta(seconds=20), logs=(web_log,),
        ),
        ProcessDiagnosis(
            "web-old", "web", "ROTHERRELS", "running", t, "python3 app.py", healthy_at=t
        ),
    ]  # fmt: skip

    found = await diagnosis.diagnose(rack.ctx, "shop", lines=1)

    assert found.promotion is not None and found.promotion.id == promotion.id
    assert found.release_id == r1.id
    by_id = {r.process.id: r for r in found.processes}
    assert set(by_id) == {"web-c", "worker-b"}  # the other release's left out, a's folded in
    web = by_id["web-c"]
    assert web.state is ProcessState.UNHEALTHY
    assert [line.text for line in web.output] == ["later"]  # never healthy: the last line
    assert web.hint is not None and web.hint.startswith("it did not listen on $PORT (40111)")
    worker = by_id["worker-b"]
    assert worker.state is ProcessState.STARTING  # one crash before it: not a loop yet
    assert worker.exit_codes == (1,)
    assert worker.previous_crash is not None
    assert worker.previous_crash.process_id == "worker-a"
    assert [line.text for line in worker.previous_crash.output] == ["KeyError: 'REDIS_URL'"]
    # The promotion's events are there, with those of its processes outside it.
    messages = [e.message for e in found.events]
    assert "Status: Updating => Error" in messages
    assert found.missing_env == ()

    only_web = await diagnosis.diagnose(rack.ctx, "shop", service="web", events=False)
    assert [r.process.id for r in only_web.processes] == ["web-c"] and only_web.events == ()


async def test_healthy_processes_only_when_asked(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    assert (await rack.promote("shop", r1.id)).succeeded

    found = await diagnosis.diagnose(rack.ctx, "shop")
    assert found.processes == () and found.hidden == 1

    everything = await diagnosis.diagnose(rack.ctx, "shop", everything=True)
    [report] = everything.processes
    assert report.state is ProcessState.HEALTHY and report.hint is None and report.output == ()


async def test_an_app_without_promotions_and_a_missing_required_key(rack: Rack) -> None:
    text = manifest().replace("  - GREETING=hello", "  - GREETING=hello\n  - DATABASE_URL")
    r1 = rack.deploy("shop", text=text)
    found = await diagnosis.diagnose(rack.ctx, "shop")
    assert found.promotion is None and found.processes == () and found.events == ()
    assert found.missing_env == ("DATABASE_URL",) and found.latest_release_id == r1.id
