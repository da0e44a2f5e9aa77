"""A real rack in a temporary SHIPMATE_HOME, driven by the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shipmate.common.waiting import WaitTimeout, poll_until
from tests.backends import BACKENDS, database

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello"


def _cli() -> list[str]:
    # The console script of the environment running the tests, never another one on PATH.
    script = Path(sys.executable).parent / "shipmate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "shipmate.cli.main"]


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Rack:
    home: Path
    env: dict[str, str]

    def run(
        self, *args: str, cwd: Path | None = None, timeout: float = 180, input: str | None = None
    ) -> Result:
        """The CLI with `input` as its standard input (none: /dev/null, as in a script)."""
        proc = subprocess.run(
            [*_cli(), *args],
            env=self.env,
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        result = self.run(*args, cwd=cwd)
        assert result.code == 0, f"shipmate {' '.join(args)} failed:\n{result.out}\n{result.err}"
        assert result.err == ""
        return result.out

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*_cli(), *args],
            env=self.env,
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def info(self) -> dict[str, str]:
        return json.loads((self.home / "rack.json").read_text())

    def get(self, app: str, path: str = "/", service: str = "web") -> httpx.Response:
        return httpx.get(
            self.info["router"] + path, headers={"Host": f"{service}.{app}.localhost"}, timeout=10
        )

    def releases(self, app: str) -> list[dict[str, object]]:
        return json.loads(self.ok("releases", "-a", app, "--json"))

    def builds(self, app: str) -> list[dict[str, object]]:
        return json.loads(self.ok("builds", "-a", app, "--json"))

    def deploy(self, app: str, source: Path = EXAMPLE) -> str:
        self.ok("apps", "create", app)
        out = self.ok("deploy", str(source), "-a", app)
        return out


def start_rack(home: Path, database_url: str | None = None, extra: tuple[str, ...] = ()) -> Rack:
    """A rack on `database_url` (default: SQLite in `home`, as for a user); `extra`: more
    arguments of `rack start` (`--runtime swarm ...`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env["SHIPMATE_HOME"] = str(home)
    if database_url is not None:
        env["SHIPMATE_DATABASE_URL"] = database_url
    rack = Rack(home, env)
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0", *extra)
    return rack


def stop_rack(rack: Rack) -> None:
    # --all: the router and the app processes outlive a plain `rack stop`; no test leaves them.
    result = rack.run("rack", "stop", "--all")
    if result.code != 0:
        for name in ("rack.json", "router.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
                os.kill(int(json.loads((rack.home / name).read_text())["pid"]), 9)
    with contextlib.suppress(WaitTimeout):
        poll_until(lambda: not (rack.home / "rack.json").exists(), 5, what="rack.json to go")


@pytest.fixture(scope="module", params=BACKENDS)
def rack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rack]:
    """A rack shared by the tests of a module, on a new database of each backend in turn."""
    home = reachable_home(tmp_path_factory.mktemp("rack"))
    with (
        database(request, request.param, home) as url,
        running_rack(home, None if request.param == "sqlite" else url) as rack,
    ):
        yield rack


@contextlib.contextmanager
def own_rack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Rack]:
    """A rack on SQLite in a home of its own; its apps deleted, stopped and removed after."""
    with running_rack(reachable_home(tmp_path_factory.mktemp(name))) as rack:
        yield rack


@contextlib.contextmanager
def running_rack(
    home: Path, database_url: str | None = None, extra: tuple[str, ...] = ()
) -> Iterator[Rack]:
    rack = start_rack(home, database_url, extra)
    try:
        yield rack
    finally:
        remove_apps(rack)
        stop_rack(rack)
        remove_home(home)


def reachable_home(fallback: Path) -> Path:
    """A rack home: `fallback`, or as root a directory in /tmp rather than pytest's (root's
    alone), so that app users can reach their builds and apps run isolated, as on a rack."""
    if os.geteuid() != 0:
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback
    return Path(tempfile.mkdtemp(prefix="shipmate-rack-"))


def remove_home(home: Path) -> None:
    """A home reachable_home made in /tmp (pytest removes its own)."""
    if home.parent == Path(tempfile.gettempdir()) and home.name.startswith("shipmate-rack-"):
        shutil.rmtree(home, ignore_errors=True)


def remove_apps(rack: Rack) -> None:
    """Delete the rack's apps: their users (as root) go with them, not with the home."""
    result = rack.run("apps", "--json")
    if result.code != 0:
        return
    for app in json.loads(result.out):
        rack.run("apps", "delete", app["name"], timeout=60)
