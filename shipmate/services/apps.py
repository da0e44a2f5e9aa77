"""Use cases of apps: create, inspect, delete.

A delete is recorded first (status `deleting`, after which every change of the app is
refused: `ensure_changeable`), then carried out; a rack that stops half-way finishes it at
its next start (`finish_deletes`).
"""

from __future__ import annotations

import shutil

from shipmate.domain.errors import AppBusy, AppDeleting, Conflict
from shipmate.domain.ids import validate_app_name
from shipmate.services import audit
from shipmate.services.context import Context
from shipmate.structs import App


def create_app(ctx: Context, name: str) -> App:
    validate_app_name(name)
    with ctx.store.unit_of_work() as uow:
        # `add` refuses too: on PostgreSQL, another request may create it after this check.
        if uow.apps.find(name) is not None:
            raise Conflict(f"app {name} already exists")
        app = uow.apps.add(name)
        audit.record(uow, "app.create", name)
        return app


def list_apps(ctx: Context) -> list[App]:
    with ctx.store.unit_of_work() as uow:
        return uow.apps.list()


def get_app(ctx: Context, name: str) -> App:
    with ctx.store.unit_of_work() as uow:
        return uow.apps.get(name)


def ensure_changeable(app: App) -> App:
    """Refuse any change of an app that is being deleted (call it under the app's lock)."""
    if app.status == "deleting":
        raise AppDeleting(app.name)
    return app


async def delete_app(ctx: Context, name: str) -> None:
    with ctx.store.unit_of_work() as uow:
        uow.apps.lock(name)
        running = uow.promotions.running(name)
        if running is not None:
            raise AppBusy(
                name, running.release_id, "wait for it to finish or run `shipmate apps cancel`"
            )
        uow.apps.update(name, status="deleting")
    await _carry_out_delete(ctx, name)


async def finish_deletes(ctx: Context) -> None:
    """At start, once processes are adopted: finish the deletes the rack stopped during."""
    for app in list_apps(ctx):
        if app.status == "deleting":
            await _carry_out_delete(ctx, app.name)


async def _carry_out_delete(ctx: Context, name: str) -> None:
    with ctx.store.unit_of_work() as uow:
        build_ids = [b.id for b in uow.builds.list(name, limit=1_000_000)]
    await ctx.runtime.remove(name, lambda obj, msg: None)
    with ctx.store.unit_of_work() as uow:
        uow.apps.delete(name)
        audit.record(uow, "app.delete", name)
    for build_id in build_ids:
        shutil.rmtree(ctx.settings.builds_dir / build_id, ignore_errors=True)
        (ctx.settings.builds_dir / f"{build_id}.log").unlink(missing_ok=True)
