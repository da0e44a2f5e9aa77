"""Where a router keeps its files under SHIPMATE_HOME, and the routing table saved there."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from shipmate.common.addresses import split_host_port
from shipmate.common.files import atomic_write
from shipmate.router.sites import Sites
from shipmate.router.table import RouteTable

log = logging.getLogger("shipmate.router")

# What a router answers as `service` on /health: tells a router from anything else there.
SERVICE = "shipmate-router"


@dataclass(frozen=True)
class Paths:
    """Where a router keeps its files under SHIPMATE_HOME."""

    home: Path

    @property
    def socket(self) -> Path:
        return self.home / "router.sock"

    @property
    def info(self) -> Path:
        return self.home / "router.json"

    @property
    def routes(self) -> Path:
        return self.home / "routes.json"

    @property
    def certs(self) -> Path:
        """The certificates with their keys, mode 0600 (see tls.py and docs/architecture.md)."""
        return self.home / "certs.json"

    @property
    def log(self) -> Path:
        return self.home / "router.log"


def listen_address(listen: str) -> tuple[str, int]:
    """HOST:PORT for a router to listen on; port 0 asks for any free port (which
    split_host_port, made for addresses to connect to, refuses). ValueError when malformed."""
    any_port = listen.endswith(":0")
    host, port = split_host_port(listen[:-1] + "1" if any_port else listen)
    return host, 0 if any_port else port


def load_table(path: Path) -> RouteTable:
    """The table saved at `path`; empty when there is none, or when it is damaged (then kept
    beside it as routes.json.bad)."""
    table = RouteTable()
    try:
        data = json.loads(path.read_text())
        # "canaries" came with issue 13; a file written before has none.
        # "sites" (domains, redirects, ACME answers) came with issue 15.
        table.load(data["routes"], data.get("canaries"), Sites.from_json(data.get("sites")))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # Serving nothing beats not serving at all: the rack declares every route again.
        bad = path.with_name(path.name + ".bad")
        log.error("router: cannot read %s (%s); starting empty, kept it as %s", path, exc, bad)
        with contextlib.suppress(OSError):
            os.replace(path, bad)
        table = RouteTable()
    return table


class SavedTable:
    """Writes a table to routes.json whenever it changed since the last write."""

    def __init__(self, table: RouteTable, path: Path) -> None:
        self.table = table
        self.path = path
        self._saved: str | None = None

    def save(self) -> bool:
        """Write the table (fsync, rename); False when it had not changed."""
        # Still version 1: "canaries" is an addition an older router ignores.
        table = self.table
        state = {
            "version": 1,
            "routes": table.snapshot(),
            "canaries": table.canaries(),
            "sites": table.sites.as_json(),
        }
        text = json.dumps(state, indent=1)
        if text == self._saved:
            return False
        atomic_write(self.path, text + "\n")
        self._saved = text
        return True
