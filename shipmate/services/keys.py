"""The secret key of the store: opened at start, rotated on request.

A rotation never leaves the store unreadable, whatever moment it stops at: the new key is
written to disk beside the old one before anything is re-encrypted, every environment is
re-encrypted in one transaction, and only then is the old key dropped.
"""

from __future__ import annotations

from cryptography.fernet import Fernet

from shipmate.config import Settings
from shipmate.domain.errors import InvalidInput
from shipmate.services import audit
from shipmate.services.context import Context
from shipmate.store.crypto import KEY_ENV, Keyring, SecretKeyError, load_keyring, write_key_file
from shipmate.store.db import Store


def open_store(store: Store, settings: Settings) -> None:
    """Give the store its key ring, check that it opens the store, finish what was left.

    Left over: environments written before encryption existed (sealed now), and a rotation
    that stopped before dropping the old key from the key file (completed now).
    """
    keyring = load_keyring(settings.secret_key_file)
    store.keyring = keyring
    with store.transaction() as tx:
        try:
            tx.check_keyring()
        except SecretKeyError as exc:
            raise SecretKeyError(
                f"{exc}; racks that share a database must share {KEY_ENV}"
            ) from None
        tx.reencrypt_envs(only_plaintext=True)
    if keyring.source == "file" and len(keyring.keys) > 1:
        _reencrypt(store, keyring, settings, "finished an interrupted key rotation")


def rotate(ctx: Context) -> int:
    """Re-encrypt every release environment with a new key; returns how many."""
    store, settings = ctx.store, ctx.settings
    current = store.keyring
    if current.source == "env":
        if len(current.keys) < 2:
            raise InvalidInput(
                f"the secret key comes from {KEY_ENV}, which the rack cannot rewrite: put a new "
                f"key first ({KEY_ENV}=NEW,OLD), restart the rack, run `shipmate rack "
                "rotate-key`, then remove OLD"
            )
        staged = current
    else:
        staged = Keyring((Fernet.generate_key(), *current.keys), current.source)
        if current.source == "file":
            write_key_file(settings.secret_key_file, staged.keys)
        store.keyring = staged
    return _reencrypt(store, staged, settings, "")


def _reencrypt(store: Store, staged: Keyring, settings: Settings, note: str) -> int:
    with store.transaction() as tx:
        count = tx.reencrypt_envs()
        detail = f"{count} release environments re-encrypted"
        audit.record(tx, "key.rotate", detail=f"{detail}; {note}" if note else detail)
    final = Keyring((staged.primary,), staged.source)
    if final.source == "file":
        write_key_file(settings.secret_key_file, final.keys)
    store.keyring = final
    return count
