"""The key ring of a store, replaced as a whole when it changes (a key rotation)."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from shipmate.store.crypto import Keyring, load_keyring, write_key_file


class StoreKeys:
    def __init__(self, keyring: Keyring, key_file: Path | None = None) -> None:
        if keyring.source == "file" and key_file is None:
            raise ValueError("a key ring read from a file needs that file to change it")
        self.keyring = keyring
        self.key_file = key_file

    @classmethod
    def load(cls, key_file: Path) -> StoreKeys:
        """SHIPMATE_SECRET_KEY if set, else the key file (created when missing)."""
        return cls(load_keyring(key_file), key_file)

    @property
    def source(self) -> str:
        return self.keyring.source

    @property
    def count(self) -> int:
        return len(self.keyring.keys)

    def describe(self) -> str:
        return self.keyring.describe()

    def add_new(self) -> None:
        # On disk before anything is sealed with it: a crash then leaves a key file that
        # still opens everything, whichever key each environment is sealed with.
        self._replace(Keyring((Fernet.generate_key(), *self.keyring.keys), self.source))

    def keep_first(self) -> None:
        self._replace(Keyring((self.keyring.primary,), self.source))

    def _replace(self, keyring: Keyring) -> None:
        if keyring.source == "file":
            assert self.key_file is not None
            write_key_file(self.key_file, keyring.keys)
        self.keyring = keyring
