"""The audit trail: who changed what, written in the transaction of the change itself.

The actor is the name of the token behind the request (shipmate.domain.actor), so a change
and its audit entry are committed together or not at all.
"""

from __future__ import annotations

from shipmate.services.context import Context
from shipmate.services.ports import UnitOfWork
from shipmate.structs import AuditEntry


def record(
    uow: UnitOfWork, action: str, app: str | None = None, target: str = "", detail: str = ""
) -> None:
    uow.audit.add(action, app, target, detail)


def log(ctx: Context, action: str, app: str | None, target: str = "", detail: str = "") -> None:
    """For actions that change no row of their own (run, ps stop): a transaction of its own."""
    with ctx.store.unit_of_work() as uow:
        uow.audit.add(action, app, target, detail)


def entries(ctx: Context, app: str | None, limit: int) -> list[AuditEntry]:
    with ctx.store.unit_of_work() as uow:
        return uow.audit.list(app, limit)
