"""HTTP routes: a thin layer over the use cases in shipmate.services."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.sse import ServerSentEvent

import shipmate
from shipmate.api.auth import require_token
from shipmate.api.deps import AppDep, Ctx, refuse_while_stopping
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.api.schemas import (
    AppCreate,
    AppOut,
    BuildOut,
    EnvChangeIn,
    EnvChangeOut,
    EnvOut,
    EventOut,
    ProcessOut,
    PromoteIn,
    PromotionOut,
    RackOut,
    ReleaseCreateIn,
    ReleaseOut,
    RestartIn,
    RunIn,
    ScaleIn,
    ScaleOut,
    StartedOut,
)
from shipmate.api.sse import SSE_RESPONSES, EventStream
from shipmate.common.addresses import split_host_port
from shipmate.domain.errors import InvalidInput, RackStopping
from shipmate.domain.humanize import rfc3339, utcnow
from shipmate.domain.ids import validate_app_name
from shipmate.domain.promotion import release_status
from shipmate.services import apps, builds, domains, environment, processes, promotions, releases
from shipmate.services import logs as app_logs
from shipmate.services.context import Context
from shipmate.structs import App, Build, Event, Promotion

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)


# Streams check what they stream in a dependency: once an event stream has started, an
# error can no longer be an HTTP status.
def existing_build(app: AppDep, build_id: str, ctx: Ctx) -> Build:
    return builds.get_build(ctx, app.name, build_id)


def existing_promotion(app: AppDep, promotion_id: str, ctx: Ctx) -> Promotion:
    return releases.get_promotion(ctx, app.name, promotion_id)


def service_urls(ctx: Context, app: App) -> dict[str, str]:
    if app.release_id is None or not ctx.router_url:
        return {}
    release, _ = releases.get_release(ctx, app.name, app.release_id)
    if release.manifest is None:
        return {}
    manifest = promotions.manifest_of(release)
    scheme = ctx.router_url.partition("://")[0]
    _, port = split_host_port(ctx.router_url)
    return {
        s.name: f"{scheme}://{s.name}.{app.name}.localhost:{port}"
        for s in manifest.services
        if s.port is not None
    }


# rack
@router.get("/rack", response_model=RackOut, tags=["rack"])
async def rack(ctx: Ctx) -> RackOut:
    return RackOut(
        name=ctx.settings.home.name or "shipmate",
        provider=ctx.runtime.name,
        router=ctx.router_url,
        status="running",
        version=shipmate.__version__,
        isolation=getattr(ctx.runtime, "isolation", ""),
    )


# apps
@router.get("/apps", response_model=list[AppOut], tags=["apps"])
async def list_apps(ctx: Ctx) -> list[AppOut]:
    return [AppOut.of(a) for a in apps.list_apps(ctx)]


@router.post("/apps", response_model=AppOut, status_code=201, tags=["apps"])
async def create_app(body: AppCreate, ctx: Ctx) -> AppOut:
    return AppOut.of(apps.create_app(ctx, body.name))


@router.get("/apps/{app}", response_model=AppOut, tags=["apps"])
async def app_info(app: AppDep, ctx: Ctx) -> AppOut:
    names = [f"{c.name} ({c.service})" for c in domains.list_domains(ctx, app.name)]
    return AppOut.of(app, service_urls(ctx, app), names)


@router.delete("/apps/{app}", status_code=204, tags=["apps"])
async def delete_app(app: AppDep, ctx: Ctx) -> Response:
    await apps.delete_app(ctx, app.name)
    return Response(status_code=204)


# A name or id left empty in a path (`/apps/x/releases//rollback`) matches no route above:
# say which one is missing instead of a bare "Not Found".
_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_ID_OF = {
    "builds": "build id",
    "releases": "release id",
    "promotions": "promotion id",
    "processes": "process id",
}


@router.api_route("/apps//{rest:path}", methods=_ANY_METHOD, include_in_schema=False)
async def empty_app_name(rest: str) -> Response:
    raise InvalidInput("an app name is required: the path /apps//... has none")


@router.api_route(
    "/apps/{app}/{collection}//{rest:path}", methods=_ANY_METHOD, include_in_schema=False
)
async def empty_id(app: str, collection: str, rest: str) -> Response:
    validate_app_name(app)
    what = _ID_OF.get(collection, "name or id")
    raise InvalidInput(f"a {what} is required: the path /apps/{app}/{collection}//{rest} has none")


# builds
@router.post(
    "/apps/{app}/builds",
    response_model=BuildOut,
    status_code=201,
    tags=["builds"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def create_build(
    app: AppDep,
    request: Request,
    ctx: Ctx,
    description: str = "",
    build_arg: Annotated[list[str] | None, Query()] = None,
) -> BuildOut:
    # --build-arg KEY=VALUE: for the image builds of a container runtime.
    build_args = builds.parse_build_args(build_arg or [])
    refuse_while_stopping(request, "build")
    upload = await builds.receive_upload(ctx, app.name, request.stream())
    try:
        refuse_while_stopping(request, "build")
    except RackStopping:
        upload.unlink(missing_ok=True)
        raise
    build = builds.create_build(ctx, app.name, upload, description)
    ctx.spawn(builds.run_build(ctx, build, build_args))
    return BuildOut.of(build)


@router.get("/apps/{app}/builds", response_model=list[BuildOut], tags=["builds"])
async def list_builds(
    app: AppDep, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[BuildOut]:
    return [BuildOut.of(b) for b in builds.list_builds(ctx, app.name, limit)]


@router.get("/apps/{app}/builds/{build_id}", response_model=BuildOut, tags=["builds"])
async def build_info(app: AppDep, build_id: str, ctx: Ctx) -> BuildOut:
    return BuildOut.of(builds.get_build(ctx, app.name, build_id))


@router.get(
    "/apps/{app}/builds/{build_id}/logs",
    response_class=EventStream,
    responses=SSE_RESPONSES,
    tags=["builds"],
)
async def build_logs(
    app: AppDep,
    build: Annotated[Build, Depends(existing_build)],
    request: Request,
    ctx: Ctx,
    follow: bool = True,
) -> EventStream:
    build_id = build.id

    async def events() -> AsyncIterator[ServerSentEvent]:
        lines = builds.follow_log(ctx, app.name, build_id, follow, request.is_disconnected)
        async for line in lines:
            yield ServerSentEvent(data=line, event="line")
        final = builds.get_build(ctx, app.name, build_id)
        yield ServerSentEvent(data=BuildOut.of(final).model_dump(mode="json"), event="build")

    return EventStream(events())


# environment
@router.get("/apps/{app}/environment", response_model=EnvOut, tags=["environment"])
async def get_env(app: AppDep, ctx: Ctx) -> EnvOut:
    view = environment.get_env(ctx, app.name)
    return EnvOut(env=view.env, note=view.note)


@router.post("/apps/{app}/environment", response_model=EnvChangeOut, tags=["environment"])
async def change_env(app: AppDep, body: EnvChangeIn, ctx: Ctx) -> EnvChangeOut:
    change = environment.change_env(ctx, app.name, body.set, body.unset, body.replace, body.release)
    release = ReleaseOut.of(change.release, active=False) if change.release else None
    return EnvChangeOut(env=change.env, release=release, note=change.note)


# releases
@router.get("/apps/{app}/releases", response_model=list[ReleaseOut], tags=["releases"])
async def list_releases(
    app: AppDep, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=10000)] = 20
) -> list[ReleaseOut]:
    listed = releases.list_releases(ctx, app.name, limit)
    status = releases.statuses(ctx, app.name, listed)
    return [ReleaseOut.of(r, active=r.id == app.release_id, status=status[r.id]) for r in listed]


@router.post("/apps/{app}/releases", response_model=ReleaseOut, status_code=201, tags=["releases"])
async def create_release(app: AppDep, body: ReleaseCreateIn, ctx: Ctx) -> ReleaseOut:
    """A release made from parts: one release's build, another's environment."""
    release = releases.create_from_parts(ctx, app.name, body.build_from, body.env_from)
    return ReleaseOut.of(release, active=False)


@router.get("/apps/{app}/releases/{release_id}", response_model=ReleaseOut, tags=["releases"])
async def release_info(app: AppDep, release_id: str, ctx: Ctx) -> ReleaseOut:
    release, promotions = releases.get_release(ctx, app.name, release_id)
    status = release_status(release.id == app.release_id, promotions)
    return ReleaseOut.of(
        release, active=release.id == app.release_id, promotions=promotions, status=status
    )


@router.get(
    "/apps/{app}/releases/{release_id}/manifest",
    response_class=Response,
    responses={200: {"content": {"text/yaml": {"schema": {"type": "string"}}}}},
    tags=["releases"],
)
async def release_manifest(app: AppDep, release_id: str, ctx: Ctx) -> Response:
    release, _ = releases.get_release(ctx, app.name, release_id)
    return Response(release.manifest or "", media_type="text/yaml")


@router.get(
    "/apps/{app}/releases/{release_id}/render",
    response_class=Response,
    responses={200: {"content": {"text/yaml": {"schema": {"type": "string"}}}}},
    tags=["releases"],
)
async def release_render(app: AppDep, release_id: str, ctx: Ctx) -> Response:
    """The Kubernetes objects promoting the release would apply; Secret values elided."""
    from shipmate.runtimes.kubernetes import objects
    from shipmate.services import render

    desired, command = render.render_inputs(ctx, app.name, release_id)
    options = objects.Options(namespace_prefix=render.namespace_prefix(ctx))
    documents = objects.render(desired, options, command, reveal=False)
    return Response(objects.to_yaml(documents), media_type="text/yaml")


@router.post(
    "/apps/{app}/releases/{release_id}/promote",
    response_model=StartedOut,
    status_code=202,
    tags=["releases"],
)
async def promote(
    app: AppDep, release_id: str, body: PromoteIn, request: Request, ctx: Ctx
) -> StartedOut:
    return await _start(
        ctx,
        app,
        body,
        request,
        lambda: releases.promote(
            ctx, app.name, release_id, body.wait, canary=body.canary, watched=body.watch
        ),
    )


@router.post(
    "/apps/{app}/releases/{release_id}/rollback",
    response_model=StartedOut,
    status_code=202,
    tags=["releases"],
)
async def rollback(
    app: AppDep, release_id: str, body: PromoteIn, request: Request, ctx: Ctx
) -> StartedOut:
    return await _start(
        ctx,
        app,
        body,
        request,
        lambda: releases.rollback(ctx, app.name, release_id, body.wait, watched=body.watch),
    )


@router.get("/apps/{app}/promotions/{promotion_id}", response_model=PromotionOut, tags=["releases"])
async def promotion_info(app: AppDep, promotion_id: str, ctx: Ctx) -> PromotionOut:
    return PromotionOut.of(releases.get_promotion(ctx, app.name, promotion_id))


@router.get(
    "/apps/{app}/promotions/{promotion_id}/events",
    response_class=EventStream,
    responses=SSE_RESPONSES,
    tags=["releases"],
)
async def promotion_events(
    app: AppDep,
    found: Annotated[Promotion, Depends(existing_promotion)],
    request: Request,
    ctx: Ctx,
    after: Annotated[int, Query(ge=0, description="only the events after this one")] = 0,
) -> EventStream:
    """The promotion's events as they happen, then the promotion once it has finished (or
    is a canary waiting for `continue` or `abort`)."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        items = releases.follow_promotion(ctx, app.name, found.id, request.is_disconnected, after)
        async for item in items:
            if isinstance(item, Event):
                yield ServerSentEvent(data=EventOut.of(item).model_dump(), event="event")
            else:
                done = PromotionOut.of(item).model_dump(mode="json")
                yield ServerSentEvent(data=done, event="done")

    return EventStream(events())


# processes and logs
@router.get("/apps/{app}/processes", response_model=list[ProcessOut], tags=["processes"])
async def list_processes(app: AppDep, ctx: Ctx) -> list[ProcessOut]:
    return [ProcessOut.of(p) for p in await processes.list_processes(ctx, app.name)]


@router.delete("/apps/{app}/processes/{process_id}", status_code=204, tags=["processes"])
async def stop_process(app: AppDep, process_id: str, ctx: Ctx) -> Response:
    await processes.stop_process(ctx, app.name, process_id)
    return Response(status_code=204)


@router.get("/apps/{app}/scale", response_model=list[ScaleOut], tags=["processes"])
async def scale_table(app: AppDep, ctx: Ctx) -> list[ScaleOut]:
    return [
        ScaleOut(service=s.service, desired=s.desired, running=s.running)
        for s in await processes.scale_table(ctx, app.name)
    ]


@router.post("/apps/{app}/scale", response_model=StartedOut, status_code=202, tags=["processes"])
async def scale(app: AppDep, body: ScaleIn, request: Request, ctx: Ctx) -> StartedOut:
    refuse_while_stopping(request, "promotion")
    started = processes.scale(ctx, app.name, body.service, body.count, body.wait)
    return _started(started)


@router.post("/apps/{app}/restart", response_model=StartedOut, status_code=202, tags=["processes"])
async def restart(app: AppDep, body: RestartIn, request: Request, ctx: Ctx) -> StartedOut:
    refuse_while_stopping(request, "promotion")
    return _started(processes.restart(ctx, app.name, body.service, body.wait))


@router.post("/apps/{app}/cancel", response_model=PromotionOut, status_code=202, tags=["releases"])
async def cancel(app: AppDep, ctx: Ctx) -> PromotionOut:
    return PromotionOut.of(await processes.cancel(ctx, app.name))


def run_plan(app: AppDep, body: RunIn, ctx: Ctx) -> processes.RunPlan:
    # A dependency, so a bad request is refused before the event stream starts.
    return processes.plan_run(ctx, app.name, body.service, body.command, body.release)


@router.post(
    "/apps/{app}/run", response_class=EventStream, responses=SSE_RESPONSES, tags=["processes"]
)
async def run(plan: Annotated[processes.RunPlan, Depends(run_plan)], ctx: Ctx) -> EventStream:
    """A one-off process: its output as `line` events, then an `exit` event with its code."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for kind, value in processes.run(ctx, plan):
            yield ServerSentEvent(data=value, event=kind)

    return EventStream(events())


async def _start(
    ctx: Context,
    app: App,
    body: PromoteIn,
    request: Request,
    attempt: Callable[[], releases.Started],
) -> StartedOut:
    """Start a promotion now, or once the app's running one ends with `wait_for_lock`."""

    def start() -> releases.Started:
        # Checked at each attempt: one waiting for the lock may try after the stop began.
        refuse_while_stopping(request, "promotion")
        return attempt()

    started = (
        await releases.when_idle(ctx, app.name, start, request.is_disconnected)
        if body.wait_for_lock
        else start()
    )
    return _started(started)


def _started(started: releases.Started) -> StartedOut:
    return StartedOut(
        release=ReleaseOut.of(started.release, active=False),
        promotion=PromotionOut.of(started.promotion),
        warnings=list(started.warnings),
    )


@router.get("/apps/{app}/logs", response_class=EventStream, responses=SSE_RESPONSES, tags=["logs"])
async def logs(
    app: AppDep,
    request: Request,
    ctx: Ctx,
    # Bounded: further back than datetime can go is a 500, not an empty log (schemathesis).
    since: Annotated[
        float | None, Query(ge=0, le=10 * 366 * 86400, description="seconds back")
    ] = None,
    follow: bool = True,
    service: str | None = None,
    filter: Annotated[str | None, Query(description="only lines containing this")] = None,
    tail: Annotated[
        int | None, Query(ge=1, le=100_000, description="only the last N lines of `since`")
    ] = None,
) -> EventStream:
    """Process output and platform events of the app, oldest first, then as they happen."""
    start = utcnow() - timedelta(seconds=since) if since is not None else None

    async def events() -> AsyncIterator[ServerSentEvent]:
        skip = 0
        if tail is not None:
            # What is there now, of which the last `tail` lines; a follow then starts from
            # the same `start` and passes over the lines already seen (they come first).
            seen: deque[app_logs.LogLine] = deque(maxlen=tail)
            async for line in app_logs.stream(
                ctx, app.name, start, False, service, filter, request.is_disconnected
            ):
                seen.append(line)
                skip += 1
            for line in seen:
                yield _log_event(line)
            if not follow:
                return
        async for line in app_logs.stream(
            ctx, app.name, start, follow, service, filter, request.is_disconnected
        ):
            if skip:
                skip -= 1
                continue
            yield _log_event(line)

    return EventStream(events())


def _log_event(line: app_logs.LogLine) -> ServerSentEvent:
    # `line` as printed; its parts for `logs --json`.
    data = {
        "line": line.line,
        "time": rfc3339(line.time),
        "source": line.source,
        "message": line.message,
    }
    return ServerSentEvent(data=data, event="log")
