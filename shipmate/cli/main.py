"""The `shipmate` command."""

from __future__ import annotations

import sys

import click

import shipmate
from shipmate.cli import apps, builds, env, logs, rack, releases, security
from shipmate.cli.client import CliError
from shipmate.cli.output import error
from shipmate.domain.errors import ShipmateError


class Shipmate(click.Group):
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


for module in (rack, apps, builds, env, releases, logs):
    module.register(cli)
security.register(cli)  # after rack: it adds `rack tokens` and `rack rotate-key`


def main() -> None:
    cli(standalone_mode=True)


if __name__ == "__main__":
    main()
