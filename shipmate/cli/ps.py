"""`shipmate ps` and `ps stop`: the app's processes."""

from __future__ import annotations

import click

from shipmate.cli.common import app_name, app_option, client, json_option
from shipmate.cli.output import done, print_json, progress, relative, table
from shipmate.domain.errors import InvalidInput


@click.group("ps", invoke_without_command=True)
@app_option
@json_option
@click.option("--memory", is_flag=True, help="add a MEM column: each process's memory use")
@click.pass_context
def ps(ctx: click.Context, app: str | None, as_json: bool, memory: bool) -> None:
    """List the app's processes; `ps stop ID` stops one (it is replaced)."""
    if ctx.invoked_subcommand is not None:
        return
    # Newest first, as every listing (SPEC.md); ids break ties so the order is stable.
    found = sorted(
        client().get(f"/apps/{app_name(app)}/processes"),
        key=lambda p: (p["started"] or "", p["id"]),
        reverse=True,
    )
    if as_json:
        print_json(found)
        return
    # SPEC's columns; MEM (before COMMAND, the free-form one) only when asked for.
    columns = ["id", "service", "status", "release", "started", "command"]
    rows = [
        [p["id"], p["service"], p["status"], p["release"], relative(p["started"]), p["command"]]
        for p in found
    ]
    if memory:
        columns.insert(5, "mem")
        for row, p in zip(rows, found, strict=True):
            mem = p.get("memory")
            row.insert(5, f"{mem / 1048576:.0f}M" if mem is not None else "")
    table(columns, rows)


@ps.command("stop")
@click.argument("process_id")
@app_option
def ps_stop(process_id: str, app: str | None) -> None:
    """Stop a process; the rack starts a replacement."""
    if not process_id.strip() or "/" in process_id:
        raise InvalidInput(f"invalid process id {process_id!r}: see `shipmate ps`")
    progress(f"Stopping {process_id}...")
    client().delete(f"/apps/{app_name(app)}/processes/{process_id}")
    done()


def register(cli: click.Group) -> None:
    cli.add_command(ps)
