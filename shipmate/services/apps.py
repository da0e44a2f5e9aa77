"""Use cases of apps: create, inspect, delete."""

from __future__ import annotations

import shutil

from sqlalchemy.exc import IntegrityError

from shipmate.domain.errors import Conflict
from shipmate.domain.ids import validate_app_name
from shipmate.services import audit
from shipmate.services.context import Context
from shipmate.structs import App


def create_app(ctx: Context, name: str) -> App:
    validate_app_name(name)
    try:
        with ctx.store.transaction() as tx:
            if tx.find_app(name) is not None:
                raise Conflict(f"app {name} already exists")
            app = tx.create_app(name)
            audit.record(tx, "app.create", name)
            return app
    except IntegrityError:  # PostgreSQL: created by a concurrent request since the check
        raise Conflict(f"app {name} already exists") from None


def list_apps(ctx: Context) -> list[App]:
    with ctx.store.transaction() as tx:
        return tx.list_apps()


def get_app(ctx: Context, name: str) -> App:
    with ctx.store.transaction() as tx:
        return tx.get_app(name)


async def delete_app(ctx: Context, name: str) -> None:
    with ctx.store.transaction() as tx:
        tx.lock_app(name)
        running = tx.running_promotion(name)
        if running is not None:
            raise Conflict(
                f"app {name} is updating (promotion of {running.release_id} in progress); "
                "wait for it to finish or run `shipmate apps cancel`"
            )
        tx.update_app(name, status="deleting")
        build_ids = [b.id for b in tx.list_builds(name, limit=1_000_000)]
    await ctx.runtime.remove(name, lambda obj, msg: None)
    with ctx.store.transaction() as tx:
        tx.delete_app(name)
        audit.record(tx, "app.delete", name)
    for build_id in build_ids:
        shutil.rmtree(ctx.settings.builds_dir / build_id, ignore_errors=True)
        (ctx.settings.builds_dir / f"{build_id}.log").unlink(missing_ok=True)
