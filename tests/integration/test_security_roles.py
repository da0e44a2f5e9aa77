"""Tokens and roles against a real rack: every API route, every kind of caller.

The expected role of each route is written out here (not derived from the code under test);
a route this table does not know yet is held to the general rule: reads need viewer,
everything else deployer.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.integration.conftest import EXAMPLE, Rack

# (method, path template) -> least role. Some routes may not exist yet: only those in the
# rack's OpenAPI document are exercised, and every route in it is.
EXPECTED = {
    ("GET", "/rack"): "viewer",
    ("GET", "/apps"): "viewer",
    ("POST", "/apps"): "admin",
    ("GET", "/apps/{app}"): "viewer",
    ("DELETE", "/apps/{app}"): "admin",
    # Domains are an app's (deployers change them); certificates are the rack's.
    ("GET", "/apps/{app}/domains"): "viewer",
    ("POST", "/apps/{app}/domains"): "deployer",
    ("DELETE", "/apps/{app}/domains/{name}"): "deployer",
    ("GET", "/certs"): "viewer",
    ("POST", "/certs"): "admin",
    ("POST", "/apps/{app}/builds"): "deployer",
    ("GET", "/apps/{app}/builds"): "viewer",
    ("GET", "/apps/{app}/builds/{build_id}"): "viewer",
    ("GET", "/apps/{app}/builds/{build_id}/logs"): "viewer",
    ("GET", "/apps/{app}/builds/{build_id}/export"): "deployer",
    ("POST", "/apps/{app}/builds/import"): "deployer",
    ("POST", "/apps/{app}/builds/prune"): "deployer",
    ("GET", "/apps/{app}/settings"): "viewer",
    ("POST", "/apps/{app}/settings"): "deployer",
    ("POST", "/apps/{app}/releases/{release_id}/pin"): "deployer",
    ("POST", "/apps/{app}/releases/{release_id}/unpin"): "deployer",
    ("GET", "/apps/{app}/environment"): "viewer",
    ("POST", "/apps/{app}/environment"): "deployer",
    ("GET", "/apps/{app}/releases"): "viewer",
    ("POST", "/apps/{app}/releases"): "deployer",
    ("GET", "/apps/{app}/releases/{release_id}"): "viewer",
    ("GET", "/apps/{app}/releases/{release_id}/manifest"): "viewer",
    ("GET", "/apps/{app}/releases/{release_id}/render"): "viewer",
    ("GET", "/apps/{app}/releases/{release_id}/diff"): "viewer",
    ("GET", "/apps/{app}/promotions"): "viewer",
    ("POST", "/apps/{app}/releases/{release_id}/promote"): "deployer",
    ("POST", "/apps/{app}/releases/{release_id}/rollback"): "deployer",
    ("GET", "/apps/{app}/promotions/{promotion_id}"): "viewer",
    ("GET", "/apps/{app}/promotions/{promotion_id}/events"): "viewer",
    ("GET", "/apps/{app}/processes"): "viewer",
    ("DELETE", "/apps/{app}/processes/{process_id}"): "deployer",
    ("DELETE", "/apps/{app}/processes/{pid}"): "deployer",
    ("GET", "/apps/{app}/logs"): "viewer",
    ("POST", "/apps/{app}/scale"): "deployer",
    ("POST", "/apps/{app}/restart"): "deployer",
    ("POST", "/apps/{app}/run"): "deployer",
    ("POST", "/apps/{app}/cancel"): "deployer",
    ("GET", "/rack/tokens"): "admin",
    ("POST", "/rack/tokens"): "admin",
    ("DELETE", "/rack/tokens/{name}"): "admin",
    ("POST", "/rack/rotate-key"): "admin",
    ("GET", "/audit"): "viewer",
}
RANK = {"viewer": 0, "deployer": 1, "admin": 2}
APP = "guarded"


def expected_role(method: str, path: str) -> str:
    return EXPECTED.get((method, path), "viewer" if method == "GET" else "deployer")


def operations(rack: Rack) -> list[tuple[str, str]]:
    schema = httpx.get(f"{rack.info['api']}/openapi.json").json()
    return sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


def fill(path: str, app: str) -> str:
    """A concrete URL for a template; everything but the app names nothing that exists."""
    values = {
        "app": app,
        "build_id": "BNOSUCHBLD",
        "release_id": "RNOSUCHREL",
        "promotion_id": "PNOSUCHPRO",
        "name": "nosuchtoken",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "nosuch"), path)


def call(
    rack: Rack, token: str | None, method: str, path: str, scheme: str = "Bearer"
) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PUT", "PATCH"):
        if path.endswith("/builds"):
            kwargs["content"] = b""
            headers["Content-Type"] = "application/gzip"
        else:
            kwargs["json"] = {}
    return httpx.request(
        method, rack.info["api"] + path, headers=headers, timeout=30, params={"follow": "false"},
        **kwargs,
    )  # fmt: skip


def one_line_error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error", "code"}, body
    assert "\n" not in body["error"] and body["error"], body
    expected = {401: "unauthorized", 403: "forbidden"}.get(response.status_code)
    assert expected is None or body["code"] == expected, body
    return str(body["error"])


def create_token(rack: Rack, name: str, role: str) -> str:
    out = rack.ok("rack", "tokens", "create", "--name", name, "--role", role)
    assert out.splitlines()[0] == f"Created token {name} ({role}); it is shown only this once:"
    return out.splitlines()[1]


def as_token(rack: Rack, token: str) -> Rack:
    env = dict(rack.env, SHIPMATE_TOKEN=token, SHIPMATE_RACK=rack.info["api"])
    return Rack(rack.home, env)


@pytest.fixture(scope="module")
def tokens(rack: Rack) -> dict[str, str]:
    found = {role: create_token(rack, f"{role}-1", role) for role in RANK}
    revoked = create_token(rack, "gone", "admin")
    rack.ok("rack", "tokens", "revoke", "gone")
    found["revoked"] = revoked
    rack.ok("apps", "create", APP)
    rack.ok("env", "set", "DATABASE_URL=postgres://u:hunter2@db/x", "-a", APP)
    return found


def snapshot(rack: Rack) -> tuple[object, ...]:
    owner = (rack.home / "token").read_text().strip()
    get = lambda path: httpx.get(  # noqa: E731
        rack.info["api"] + path, headers={"Authorization": f"Bearer {owner}"}, timeout=30
    ).json()
    tokens = [(t["name"], t["status"]) for t in get("/rack/tokens")]
    return get("/apps"), get(f"/apps/{APP}/releases"), tokens, get("/audit?limit=10000")


def test_every_route_refuses_missing_bad_revoked_tokens_and_too_low_roles(
    rack: Rack, tokens: dict[str, str]
) -> None:
    ops = operations(rack)
    assert ("POST", "/rack/tokens") in ops and ("GET", "/audit") in ops
    before = snapshot(rack)
    checked = 0
    for method, template in ops:
        needed = expected_role(method, template)
        path = fill(template, APP)
        for label, token, scheme in (
            ("no token", None, ""),
            ("not a bearer token", tokens["admin"], "Basic"),
            ("unknown token", "x" * 43, "Bearer"),
            ("revoked token", tokens["revoked"], "Bearer"),
        ):
            response = call(rack, token, method, path, scheme)
            assert response.status_code == 401, (label, method, template, response.text)
            assert response.headers["www-authenticate"] == 'Bearer realm="shipmate"'
            one_line_error(response)
        for role in RANK:
            if RANK[role] >= RANK[needed]:
                continue
            response = call(rack, tokens[role], method, path)
            assert response.status_code == 403, (role, method, template, response.text)
            message = one_line_error(response)
            assert message == f"forbidden: token {role}-1 has role {role}, this needs {needed}"
            checked += 1
    assert checked > 10
    # Refused requests changed nothing, and left no audit entry either.
    assert snapshot(rack) == before


def test_every_route_admits_the_roles_it_should(rack: Rack, tokens: dict[str, str]) -> None:
    for method, template in operations(rack):
        if (method, template) == ("POST", "/rack/rotate-key"):
            continue  # works for admin: shown in test_security_secrets
        needed = expected_role(method, template)
        # An app that does not exist: past the role check, the route answers 404 (or 422 for
        # a body it cannot use), and nothing is changed.
        path = fill(template, "nosuchapp")
        for role in RANK:
            if RANK[role] < RANK[needed]:
                continue
            response = call(rack, tokens[role], method, path)
            assert response.status_code not in (401, 403), (role, method, template, response.text)
            assert response.status_code < 500, (role, method, template, response.text)


def test_revocation_applies_to_the_next_request(rack: Rack, tokens: dict[str, str]) -> None:
    token = create_token(rack, "short-lived", "deployer")
    user = as_token(rack, token)
    assert user.ok("apps").startswith("APP")
    assert rack.ok("rack", "tokens", "revoke", "short-lived") == "Revoking short-lived... OK\n"
    result = user.run("apps")
    assert (result.code, result.err) == (
        1,
        "ERROR: token short-lived was revoked: ask an admin for a new one\n",
    )
    result = rack.run("rack", "tokens", "revoke", "short-lived")
    assert result.err == "ERROR: token short-lived is already revoked\n"


def test_token_listing_and_names(rack: Rack, tokens: dict[str, str]) -> None:
    table = rack.ok("rack", "tokens").splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["NAME", "ROLE", "CREATED", "LAST-USED", "STATUS"]
    rows = {re.split(r"\s{2,}", row)[0]: re.split(r"\s{2,}", row) for row in table[1:]}
    assert rows["rack-owner"][1] == "admin" and rows["rack-owner"][-1] == "active"
    assert rows["viewer-1"][1] == "viewer" and rows["gone"][-1] == "revoked"
    listing = rack.ok("rack", "tokens", "--json")
    for secret in tokens.values():
        assert secret not in listing and secret not in "\n".join(table)
    assert all(set(t) >= {"name", "role", "status"} for t in json.loads(listing))

    result = rack.run("rack", "tokens", "create", "--name", "viewer-1", "--role", "viewer")
    assert result.code == 1 and result.err.startswith("ERROR: a token named viewer-1 already")
    result = rack.run("rack", "tokens", "create", "--name", "bad name", "--role", "viewer")
    assert result.code == 1 and result.err.startswith("ERROR: invalid token name 'bad name'")
    result = rack.run("rack", "tokens", "create", "--name", "x", "--role", "root")
    assert result.code == 1 and "'root' is not one of" in result.err
    # A deployer cannot manage tokens, nor an admin revoke the last admin token.
    deployer = as_token(rack, tokens["deployer"])
    result = deployer.run("rack", "tokens", "create", "--name", "mine", "--role", "admin")
    assert result.err == "ERROR: forbidden: token deployer-1 has role deployer, this needs admin\n"


def test_the_last_admin_token_cannot_be_revoked(rack: Rack, tokens: dict[str, str]) -> None:
    admin = as_token(rack, tokens["admin"])
    admin.ok("rack", "tokens", "revoke", "rack-owner")
    # The owner token in SHIPMATE_HOME/token no longer works...
    result = rack.run("apps")
    assert result.err == "ERROR: token rack-owner was revoked: ask an admin for a new one\n"
    result = admin.run("rack", "tokens", "revoke", "admin-1")
    assert result.code == 1
    assert result.err.startswith("ERROR: token admin-1 is the last admin token: create another")
    rack.ok("rack", "stop")
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
    assert rack.run("apps").err.startswith("ERROR: token rack-owner was revoked")
    # ...until the rack's owner replaces the token file and restarts the rack: a new admin
    # token, under a new name, so that the audit trail never mixes the two.
    (rack.home / "token").unlink()
    rack.ok("rack", "stop")
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
    assert rack.ok("apps").startswith("APP")
    newest = json.loads(rack.ok("audit", "--json"))[0]
    assert (newest["actor"], newest["action"], newest["target"]) == (
        "system",
        "token.create",
        "rack-owner-2",
    )
    assert re.search(r"^rack-owner-2\s+admin\s.*active$", rack.ok("rack", "tokens"), re.M)


def test_viewers_see_keys_but_not_values(rack: Rack, tokens: dict[str, str]) -> None:
    viewer = as_token(rack, tokens["viewer"])
    deployer = as_token(rack, tokens["deployer"])
    assert viewer.ok("env", "-a", APP) == "DATABASE_URL=****\n"
    assert json.loads(viewer.ok("env", "-a", APP, "--json")) == {"DATABASE_URL": "****"}
    assert viewer.ok("env", "get", "DATABASE_URL", "-a", APP) == "****\n"
    listing = viewer.ok("releases", "-a", APP, "--json")
    assert "hunter2" not in listing
    assert json.loads(listing)[0]["env"] == {"DATABASE_URL": "****"}
    release_id = json.loads(listing)[0]["id"]
    info = viewer.ok("releases", "info", release_id, "-a", APP)
    assert re.search(r"^Env\s+DATABASE_URL=\*\*\*\*$", info, re.M) and "hunter2" not in info
    assert "hunter2" not in viewer.ok("releases", "info", release_id, "-a", APP, "--json")
    assert "hunter2" in deployer.ok("env", "-a", APP)

    result = viewer.run("env", "set", "X=1", "-a", APP)
    assert result.err == "ERROR: forbidden: token viewer-1 has role viewer, this needs deployer\n"


def test_actions_record_their_actor(rack: Rack, tokens: dict[str, str]) -> None:
    deployer = as_token(rack, tokens["deployer"])
    out = deployer.ok("env", "set", "LOG_LEVEL=debug", "-a", APP)
    release_id = re.search(r"^Release: (R[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]
    info = rack.ok("releases", "info", release_id, "-a", APP)
    assert re.search(r"^Created by\s+deployer-1$", info, re.M)

    table = as_token(rack, tokens["viewer"]).ok("audit", "-a", APP).splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["TIME", "ACTOR", "ACTION", "APP", "TARGET", "DETAIL"]
    newest = re.split(r"\s{2,}", table[1])
    assert newest[1:] == ["deployer-1", "env.change", APP, release_id, "env add:LOG_LEVEL"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", newest[0])
    entries = json.loads(rack.ok("audit", "--json"))
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert {"token.create", "token.revoke", "app.create", "env.change"} <= {
        e["action"] for e in entries
    }
    # Values never reach the audit trail.
    assert "hunter2" not in json.dumps(entries) and "debug" not in json.dumps(entries)


def test_deploys_scales_runs_and_stops_record_the_deployer(
    rack: Rack, tokens: dict[str, str]
) -> None:
    deployer = as_token(rack, tokens["deployer"])
    rack.ok("apps", "create", "audited")  # admin only
    deployer.ok("deploy", str(EXAMPLE), "-a", "audited")
    release = rack.releases("audited")[0]
    info = rack.ok("releases", "info", str(release["id"]), "-a", "audited")
    assert re.search(r"^Created by\s+deployer-1$", info, re.M)
    assert re.search(
        r"^Promotions\s+P[A-Z]{9}  promote  succeeded  \S+  by deployer-1$", info, re.M
    )
    deployer.ok("scale", "web", "--count", "2", "-a", "audited")
    assert deployer.run("run", "web", "echo one-off", "-a", "audited").out == "one-off\n"
    process = json.loads(deployer.ok("ps", "-a", "audited", "--json"))[0]["id"]
    deployer.ok("ps", "stop", process, "-a", "audited")
    deployer.ok("scale", "web", "--count", "1", "-a", "audited")

    entries = json.loads(rack.ok("audit", "-a", "audited", "--json"))
    actions = [(e["actor"], e["action"], e["detail"]) for e in reversed(entries)]
    assert actions[0][0].startswith("rack-owner") and actions[0][1:] == ("app.create", "")
    mine = [(action, detail) for actor, action, detail in actions if actor == "deployer-1"]
    kinds = [action for action, _ in mine]
    assert kinds[:4] == ["build.create", "release.create", "promotion.start", "promotion.succeeded"]
    assert ("run", "web: echo one-off") in mine
    assert "process.stop" in kinds
    scales = [d for a, d in mine if a == "promotion.start" and d.startswith("scale ")]
    assert [s.split()[-1] for s in scales] == ["web=2", "web=1"]
    assert all(e["app"] == "audited" for e in entries)
