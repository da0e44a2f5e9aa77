"""The `shipmate` command."""

from __future__ import annotations

import importlib
import sys

import click

import shipmate
from shipmate.cli.client import CliError
from shipmate.cli.output import error
from shipmate.domain.errors import ShipmateError

# Each command's modules: only those of the command invoked are imported, as the others would
# add a fifth to the start-up that every `releases rollback` waits for (docs/BENCHMARKS.md).
# A name not listed loads every module, so a new command works before it is listed here.
MODULES = (
    "rack",
    "apps",
    "builds",
    "env",
    "releases",
    "logs",
    "ps",
    "scale",
    "restart",
    "run",
    "security",
    "deploy_debug",
    "domains",
)
COMMANDS = {
    "rack": ("rack", "security"),  # security adds `rack tokens` and `rack rotate-key`
    "audit": ("rack", "security"),
    "apps": ("apps",),
    "build": ("builds",),
    "deploy": ("builds",),
    "deploy-debug": ("deploy_debug",),
    "builds": ("builds",),
    "env": ("env",),
    "releases": ("releases",),
    "domains": ("domains",),
    "certs": ("domains",),
    **{name: (name,) for name in ("logs", "ps", "scale", "restart", "run")},
}
_loaded: set[str] = set()


class Shipmate(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load(MODULES)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load(COMMANDS.get(cmd_name, MODULES))
        return super().get_command(ctx, cmd_name)

    def _load(self, modules: tuple[str, ...]) -> None:
        for name in modules:
            if name not in _loaded:
                _loaded.add(name)
                importlib.import_module(f"shipmate.cli.{name}").register(self)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (CliError, ShipmateError) as exc:
            error(str(exc))
            sys.exit(1)
        except click.UsageError as exc:
            # One line, like every other error, with the way to get help.
            hint = f"; see `{exc.ctx.command_path} --help`" if exc.ctx else ""
            error(f"{exc.format_message().rstrip('.')}{hint}")
            sys.exit(1)
        except click.ClickException as exc:
            error(exc.format_message())
            sys.exit(1)


@click.group(cls=Shipmate, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(shipmate.__version__, prog_name="shipmate")
def cli() -> None:
    """shipmate: build, release, promote and roll back apps."""


def main() -> None:
    cli(standalone_mode=True)


if __name__ == "__main__":
    main()
