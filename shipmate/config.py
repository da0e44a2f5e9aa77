"""Settings of a rack, read from the environment once at start."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_API = "127.0.0.1:7070"
DEFAULT_ROUTER = "127.0.0.1:7080"


def shipmate_home() -> Path:
    return Path(os.environ.get("SHIPMATE_HOME") or Path.home() / ".shipmate").expanduser()


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    max_upload: int

    @property
    def builds_dir(self) -> Path:
        return self.home / "builds"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def token_file(self) -> Path:
        return self.home / "token"

    @property
    def rack_file(self) -> Path:
        # Written by `rack start`: where the API answers, so the local CLI finds it.
        return self.home / "rack.json"

    @property
    def pid_file(self) -> Path:
        return self.home / "rack.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "rack.log"

    @classmethod
    def from_env(cls) -> Settings:
        home = shipmate_home()
        url = os.environ.get("SHIPMATE_DATABASE_URL") or f"sqlite:///{home / 'shipmate.db'}"
        max_upload = int(os.environ.get("SHIPMATE_MAX_UPLOAD", str(1 << 30)))
        return cls(home=home, database_url=url, max_upload=max_upload)
