"""The console's pages that only read: apps, an app's timeline, a release, builds,
processes, logs and the audit trail. Each names the API route whose role it needs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shipmate.api.auth import visible_env
from shipmate.api.routes import service_urls
from shipmate.domain.ids import validate_app_name
from shipmate.services import apps, audit, builds, diagnosis, processes, releases
from shipmate.web.access import context_of, need, user_of
from shipmate.web.render import ConsoleRoute, page
from shipmate.web.timeline import timeline

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

TIMELINE_LENGTH = 20


@router.get("/", response_class=HTMLResponse)
async def app_list(request: Request) -> HTMLResponse:
    user = need(request, "GET", "/apps")
    ctx = context_of(request)
    listed = [(a, service_urls(ctx, a)) for a in apps.list_apps(ctx)]
    return page(request, "apps.html", user, apps=listed)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", user_of(request))


@router.get("/apps/{app}", response_class=HTMLResponse)
async def app_timeline(request: Request, app: str) -> HTMLResponse:
    user = need(request, "GET", "/apps/{app}/releases")
    ctx = context_of(request)
    found = apps.get_app(ctx, validate_app_name(app))
    rows = timeline(ctx, found.name, TIMELINE_LENGTH)
    return page(request, "timeline.html", user, app=found, urls=service_urls(ctx, found), rows=rows)


@router.get("/apps/{app}/releases/{release_id}", response_class=HTMLResponse)
async def release_page(request: Request, app: str, release_id: str) -> HTMLResponse:
    user = need(request, "GET", "/apps/{app}/releases/{release_id}")
    ctx = context_of(request)
    found = apps.get_app(ctx, validate_app_name(app))
    release, promoted = releases.get_release(ctx, found.name, release_id)
    return page(
        request,
        "release.html",
        user,
        app=found,
        release=release,
        env=visible_env(release.env),
        promotions=list(reversed(promoted)),
    )


@router.get("/apps/{app}/builds", response_class=HTMLResponse)
async def build_list(request: Request, app: str) -> HTMLResponse:
    user = need(request, "GET", "/apps/{app}/builds")
    ctx = context_of(request)
    found = apps.get_app(ctx, validate_app_name(app))
    return page(request, "builds.html", user, app=found, builds=builds.list_builds(ctx, app, 50))


@router.get("/apps/{app}/builds/{build_id}", response_class=HTMLResponse)
async def build_page(request: Request, app: str, build_id: str) -> HTMLResponse:
    user = need(request, "GET", "/apps/{app}/builds/{build_id}/logs")
    ctx = context_of(request)
    found = apps.get_app(ctx, validate_app_name(app))
    build = builds.get_build(ctx, found.name, build_id)
    lines = [line async for line in builds.follow_log(ctx, app, build_id, False, _gone)]
    return page(request, "build.html", user, app=found, build=build, lines=lines)


@router.get("/apps/{app}/processes", response_class=HTMLResponse)
async def process_list(request: Request, app: str) -> HTMLResponse:
    user = need(request, "GET", "/apps/{app}/processes")
    ctx = context_of(request)
    found = apps.get_app(ctx, validate_app_name(app))
    listed = await processes.list_processes(ctx, found.name)
    return page(request, "processes.html", user, app=found, processes=listed)


@router.get("/apps/{app}/deploy-debug", response_class=HTMLResponse)
async def deploy_debug(request: Request, app: str, all: str = "") -> HTMLResponse:
    """`shipmate deploy-debug`: the processes of the latest promotion, judged."""
    user = need(request, "GET", "/apps/{app}/deploy-debug")
    ctx = context_of(request)
    found = apps.get_app(ctx, validate_app_name(app))
    report = await diagnosis.diagnose(ctx, found.name, everything=bool(all))
    return page(request, "deploy_debug.html", user, app=found, report=report, everything=bool(all))


@router.get("/audit", response_class=HTMLResponse)
async def audit_trail(request: Request, app: str = "") -> HTMLResponse:
    user = need(request, "GET", "/audit")
    ctx = context_of(request)
    entries = audit.entries(ctx, validate_app_name(app) if app else None, 200)
    return page(request, "audit.html", user, entries=entries, app_filter=app)


async def _gone() -> bool:
    return False
