"""The web console in a real headless Chromium against a real rack: log in, see an app the
CLI deployed, roll back from the timeline and watch the events to `OK, R...`; a viewer sees
masked values and no buttons; forged and sessionless forms change nothing.

SHIPMATE_SCREENSHOTS=docs/console also saves the README's screenshots (desktop and phone).
One test on one rack: the browser and the deploy are the slow parts, shared by every check.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Rack, own_rack

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
APP = "console"
SECRET = "console-secret-value"

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("no /usr/bin/chromium: apt-get install chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    with own_rack(tmp_path_factory, "console") as rack:
        rack.deploy(APP)
        rack.ok("env", "set", f"GREETING={SECRET}", "--promote", "-a", APP)
        yield rack


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        yield p


def browser(p: Any, home: Path) -> Any:
    """A fresh Chromium profile of its own: its own cookies, nothing from a previous run."""
    return p.chromium.launch_persistent_context(
        str(home), executable_path=CHROMIUM, args=ARGS, headless=True, viewport=DESKTOP
    )


def log_in(page: Any, api: str, token: str) -> None:
    page.goto(f"{api}/console/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Apps").wait_for()


def shoot(page: Any, name: str) -> None:
    where = os.environ.get("SHIPMATE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=False)


def active(rack: Rack) -> str:
    return next(str(r["id"]) for r in rack.releases(APP) if r["status"] == "active")


def test_console_rollback_roles_and_csrf(rack: Rack, playwright: Any, tmp_path: Path) -> None:
    api = rack.info["api"]
    owner = (rack.home / "token").read_text().strip()
    first, promoted = (str(r["id"]) for r in reversed(rack.releases(APP)))
    assert active(rack) == promoted

    # The owner: the app the CLI deployed, its timeline, a rollback to the first release.
    admin = browser(playwright, tmp_path / "admin")
    page = admin.new_page()
    log_in(page, api, owner)
    page.get_by_role("link", name=APP, exact=True).click()
    page.get_by_role("heading", name="Release timeline").wait_for()
    assert page.locator(f"#{promoted} .status").inner_text() == "active"
    assert "GREETING=****" in page.locator(f"#{promoted} details").inner_text()
    shoot(page, "timeline-desktop")
    page.set_viewport_size(PHONE)
    shoot(page, "timeline-phone")
    page.set_viewport_size(DESKTOP)

    page.get_by_role("link", name=f"Roll back to here: {first}").click()
    page.get_by_role("heading", name=f"Roll back {APP} to {first}?").wait_for()
    assert "- GREETING" in page.locator("ul.diff").inner_text()  # what the move undoes
    streamed: list[str] = []
    page.on("request", lambda request: streamed.append(request.url))
    page.get_by_role("button", name=f"Roll back to {first}").click()
    events = page.get_by_role("log", name="Promotion events")
    events.get_by_text(f"Rolling back to {first}...").wait_for()
    shoot(page, "rollback-desktop")
    final = events.locator(".final")
    final.wait_for(timeout=60_000)
    last = final.inner_text().strip()
    assert re.fullmatch(r"OK, R[A-Z]{9}", last), events.inner_text()
    copy = last.removeprefix("OK, ")
    # Followed live: the page's script read the rest from the console's event stream.
    assert any("/events?after=" in url for url in streamed), streamed
    assert "Status: Updating => Running" in events.inner_text()
    listed = {str(r["id"]): r for r in rack.releases(APP)}
    assert listed[copy]["status"] == "active"
    page.get_by_role("link", name="Deploy debug").click()
    page.get_by_role("heading", name=f"Deploy debug of {APP}").wait_for()
    assert f"of {copy}: Running" in page.locator("main").inner_text()

    # Live logs with a filter: what is there, then a restart's new process as it comes.
    page.goto(f"{api}/console/apps/{APP}/logs?since=1h&filter=Healthy")
    pane = page.get_by_role("log", name="Log lines")
    assert "Healthy" in pane.inner_text() and "Stopping" not in pane.inner_text()
    rack.ok("restart", "-a", APP)
    live = pane.locator("span")  # the script's lines; the page's own are plain text
    live.first.wait_for(timeout=30_000)
    assert "Healthy" in live.first.inner_text()

    if os.environ.get("SHIPMATE_SCREENSHOTS"):
        # A second rollback, at phone width, for its in-progress screenshot.
        page.set_viewport_size(PHONE)
        page.goto(f"{api}/console/apps/{APP}/releases/{promoted}/rollback")
        page.get_by_role("button", name=f"Roll back to {promoted}").click()
        page.get_by_text(f"Rolling back to {promoted}...").wait_for()
        shoot(page, "rollback-phone")
        page.get_by_role("log").locator(".final").wait_for(timeout=60_000)
    admin.close()

    # A viewer: values masked, no button the API would refuse.
    viewer_token = json.loads(
        rack.ok(
            "rack", "tokens", "create", "--name", "console-viewer", "--role", "viewer", "--json"
        )
    )["token"]
    viewer = browser(playwright, tmp_path / "viewer")
    page = viewer.new_page()
    log_in(page, api, viewer_token)
    page.goto(f"{api}/console/apps/{APP}/releases/{promoted}")
    values = page.locator("table.env").inner_text()
    assert "****" in values and SECRET not in page.content()
    page.goto(f"{api}/console/apps/{APP}")
    page.get_by_role("heading", name="Release timeline").wait_for()
    assert page.get_by_role("link", name=re.compile("^Roll back")).count() == 0
    assert page.get_by_role("link", name=re.compile("^Promote")).count() == 0
    viewer.close()

    # Forged forms: no CSRF token, a wrong one, no session, a viewer's own token. None of
    # them changes anything.
    before = rack.releases(APP)
    target = f"{api}/console/apps/{APP}/releases/{first}/rollback"
    with httpx.Client(timeout=10) as owner_session, httpx.Client(timeout=10) as viewer_session:
        for session, token in ((owner_session, owner), (viewer_session, viewer_token)):
            got = session.post(f"{api}/console/login", data={"token": token})
            assert got.status_code == 303, got.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', viewer_session.get(target).text)
        viewer_csrf = csrf.group(1) if csrf else ""
        assert owner_session.post(target).status_code == 403
        assert owner_session.post(target, data={"csrf": "forged"}).status_code == 403
        assert httpx.post(target, data={"csrf": "forged"}, timeout=10).status_code == 401
        assert viewer_session.post(target, data={"csrf": viewer_csrf}).status_code == 403
    assert rack.releases(APP) == before
