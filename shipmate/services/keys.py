"""The secret key of the store: opened at start, rotated on request.

A rotation never leaves the store unreadable, whatever moment it stops at: the new key is
written to disk beside the old one before anything is re-encrypted, every environment is
re-encrypted in one transaction, and only then is the old key dropped.
"""

from __future__ import annotations

from shipmate.domain.errors import InvalidInput
from shipmate.services import audit
from shipmate.services.context import Context
from shipmate.services.ports import StorePort


def open_store(store: StorePort) -> None:
    """Check that the store's key ring opens the store, and finish what was left.

    Left over: environments written before encryption existed (sealed now), and a rotation
    that stopped before dropping the old key from the key file (completed now).
    """
    with store.unit_of_work() as uow:
        uow.environments.check()
        uow.environments.reseal(only_plaintext=True)
    if store.keys.source == "file" and store.keys.count > 1:
        _reseal(store, "finished an interrupted key rotation")


def rotate(ctx: Context) -> int:
    """Re-encrypt every release environment with a new key; returns how many."""
    keys = ctx.store.keys
    if keys.source == "env":
        if keys.count < 2:
            where = keys.describe()
            raise InvalidInput(
                f"the secret key comes from {where}, which the rack cannot rewrite: put a new "
                f"key first ({where}=NEW,OLD), restart the rack, run `shipmate rack "
                "rotate-key`, then remove OLD"
            )
        # The operator put the new key first already: re-seal with it.
    else:
        keys.add_new()
    return _reseal(ctx.store, "")


def _reseal(store: StorePort, note: str) -> int:
    with store.unit_of_work() as uow:
        count = uow.environments.reseal()
        detail = f"{count} release environments re-encrypted"
        audit.record(uow, "key.rotate", detail=f"{detail}; {note}" if note else detail)
    store.keys.keep_first()
    return count
