"""The web console's forms and pages over the use cases and a fake runtime, in the test's
own event loop (so a rollback it starts runs to its end): sessions, CSRF, roles, masking.
The browser test (tests/integration/test_console.py) drives the same against a real rack."""

from __future__ import annotations

import re

import httpx

from shipmate.api.app import create_api
from shipmate.services import tokens
from shipmate.web import console
from tests.services.conftest import Rack

OWNER = "owner-secret-token"
SECRET = "s3cret-value"


async def setup(rack: Rack) -> tuple[httpx.ASGITransport, str, str]:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop", env={"API_KEY": SECRET})
    await rack.promote("shop", r2.id)
    api = create_api(rack.ctx, OWNER)
    console.install(api)
    return httpx.ASGITransport(app=api), r1.id, r2.id


def browser(transport: httpx.ASGITransport) -> httpx.AsyncClient:
    """A client with a cookie jar of its own: one browser."""
    return httpx.AsyncClient(transport=transport, base_url="http://rack")


async def log_in(client: httpx.AsyncClient, token: str) -> str:
    """Log in; the session's CSRF token, from a form of the page."""
    got = await client.post("/console/login", data={"token": token})
    assert got.status_code == 303, got.text
    cookie = got.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and token not in cookie
    found = re.search(r'name="csrf" value="([^"]+)"', (await client.get("/console/")).text)
    assert found
    return found.group(1)


async def test_forged_and_sessionless_forms_change_nothing(rack: Rack) -> None:
    transport, r1, r2 = await setup(rack)
    _, viewer = tokens.create(rack.ctx, "viewer", "viewer")
    async with browser(transport) as client, browser(transport) as v:
        await log_in(client, OWNER)
        viewer_csrf = await log_in(v, viewer)
        before = rack.promotions("shop")
        target = f"/console/apps/shop/releases/{r1}/rollback"
        assert (await client.post(target)).status_code == 403
        refused = await client.post(target, data={"csrf": "forged"})
        assert refused.status_code == 403
        assert "invalid or missing form token" in refused.text
        assert (await client.post(target, data={"csrf": viewer_csrf})).status_code == 403
        async with browser(transport) as fresh:
            assert (await fresh.post(target, data={"csrf": viewer_csrf})).status_code == 401
            # Reading without a session: the login form.
            page = await fresh.get("/console/apps/shop")
            assert (page.status_code, page.headers["location"]) == (303, "/console/login")
        denied = await v.post(target, data={"csrf": viewer_csrf})
        assert denied.status_code == 403 and "this needs deployer" in denied.text
        assert rack.promotions("shop") == before
        assert rack.app("shop").release_id == r2


async def test_viewer_sees_masks_and_no_buttons(rack: Rack) -> None:
    transport, r1, r2 = await setup(rack)
    _, viewer = tokens.create(rack.ctx, "viewer", "viewer")
    async with browser(transport) as client:
        await log_in(client, viewer)
        release = (await client.get(f"/console/apps/shop/releases/{r2}")).text
        assert "****" in release and SECRET not in release
        timeline = (await client.get("/console/apps/shop")).text
        assert "Roll back to" not in timeline and "Promote" not in timeline
        processes = (await client.get("/console/apps/shop/processes")).text
        assert "Stop process" not in processes
        confirm = await client.get(f"/console/apps/shop/releases/{r1}/rollback")
        assert confirm.status_code == 403
        # A revoked token ends its sessions at once.
        tokens.revoke(rack.ctx, "viewer")
        assert (await client.get("/console/")).status_code == 303


async def test_rollback_from_the_console_ends_ok_with_the_copy(rack: Rack) -> None:
    transport, r1, r2 = await setup(rack)
    async with browser(transport) as client:
        csrf = await log_in(client, OWNER)
        release = (await client.get(f"/console/apps/shop/releases/{r2}")).text
        assert SECRET in release  # an admin sees values, as in the API
        confirm = (await client.get(f"/console/apps/shop/releases/{r1}/rollback")).text
        assert "- API_KEY" in confirm and SECRET not in confirm
        started = await client.post(
            f"/console/apps/shop/releases/{r1}/rollback", data={"csrf": csrf}
        )
        assert started.status_code == 303, started.text
        promotion_id = started.headers["location"].rsplit("/", 1)[1]
        promotion = await rack.finish(promotion_id)
        copy = promotion.release_id
        assert rack.app("shop").release_id == copy != r1
        assert rack.audit("shop")[-3].startswith(f"release.rollback {copy}")
        events = await client.get(f"{started.headers['location']}/events")
        assert events.headers["content-type"].startswith("text/event-stream")
        assert "Status: Updating => Running" in events.text
        assert f'event: done\ndata: {{"line": "OK, {copy}"}}' in events.text
        page = (await client.get(started.headers["location"])).text
        assert f"Rolling back to {r1}..." in page and f"OK, {copy}" in page
        debug = await client.get("/console/apps/shop/deploy-debug?all=1")
        assert debug.status_code == 200
        assert "Latest promotion" in debug.text and promotion_id in debug.text


async def test_the_api_document_is_unchanged_by_the_console(rack: Rack) -> None:
    plain = create_api(rack.ctx, OWNER).openapi()
    with_console = create_api(rack.ctx, OWNER)
    console.install(with_console)
    assert with_console.openapi() == plain
    assert not [p for p in plain["paths"] if p.startswith("/console") or p == "/"]


async def test_stop_a_process_from_the_processes_page(rack: Rack) -> None:
    transport, _, _ = await setup(rack)
    [web] = rack.fake.live("shop")
    async with browser(transport) as client:
        csrf = await log_in(client, OWNER)
        listed = (await client.get("/console/apps/shop/processes")).text
        assert f'aria-label="Stop process {web.id}"' in listed
        target = f"/console/apps/shop/processes/{web.id}/stop"
        assert (await client.post(target, data={"csrf": "forged"})).status_code == 403
        assert web.id in {p.id for p in rack.fake.live("shop")}
        stopped = await client.post(target, data={"csrf": csrf})
        assert (stopped.status_code, stopped.headers["location"]) == (
            303,
            "/console/apps/shop/processes",
        )
        assert rack.audit("shop")[-1] == f"process.stop {web.id}"
