"""Encryption at rest of release environments: Fernet (AES-128-CBC + HMAC-SHA256).

The key ring comes from SHIPMATE_SECRET_KEY (comma-separated keys, newest first) or from
SHIPMATE_HOME/secret.key (one key a line, newest first, mode 0600, created at first start).
The first key encrypts; every key decrypts, which is what lets a rotation re-encrypt the
store while requests keep being served.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shipmate.common.files import atomic_write
from shipmate.domain.errors import ShipmateError

KEY_ENV = "SHIPMATE_SECRET_KEY"
GENERATE_HINT = (
    "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


class SecretKeyError(ShipmateError):
    """The secret key is missing, malformed, exposed, or does not open the store."""


class Keyring:
    def __init__(self, keys: tuple[bytes, ...], source: str) -> None:
        if not keys:
            raise SecretKeyError("no secret key: the key ring is empty")
        self.keys = keys
        self.source = source  # "env", "file" or "ephemeral": may the rack rewrite it?
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @property
    def primary(self) -> bytes:
        return self.keys[0]

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str, what: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError):
            raise SecretKeyError(
                f"cannot decrypt {what}: the secret key ({self.describe()}) is not the one "
                "this store was encrypted with"
            ) from None

    def reencrypt(self, ciphertext: str, what: str) -> str:
        """The same plaintext under the primary key (legacy plaintext JSON is sealed)."""
        if is_plaintext(ciphertext):
            return self.encrypt(ciphertext)
        return self.encrypt(self.decrypt(ciphertext, what))

    def describe(self) -> str:
        return {"env": KEY_ENV, "file": "SHIPMATE_HOME/secret.key"}.get(self.source, "ephemeral")

    @classmethod
    def ephemeral(cls) -> Keyring:
        """A key that lives as long as the process: for a Store built without a rack."""
        return cls((Fernet.generate_key(),), "ephemeral")


def is_plaintext(stored: str) -> bool:
    # Fernet tokens are url-safe base64 and never start with "{"; JSON objects always do.
    return stored.startswith("{")


def _parse(keys: list[str], where: str) -> tuple[bytes, ...]:
    parsed = []
    for key in keys:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise SecretKeyError(
                f"{where} holds something that is not a Fernet key; generate one with "
                f"{GENERATE_HINT}"
            ) from None
        parsed.append(key.encode())
    return tuple(parsed)


def load_keyring(key_file: Path) -> Keyring:
    """SHIPMATE_SECRET_KEY if set, else the key file, created (0600) when missing."""
    from_env = os.environ.get(KEY_ENV, "").strip()
    if from_env:
        keys = [k.strip() for k in from_env.split(",") if k.strip()]
        return Keyring(_parse(keys, KEY_ENV), "env")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another rack on this home made it first: read theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(Fernet.generate_key().decode() + "\n")
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise SecretKeyError(
            f"{key_file} is readable by others (mode {mode:04o}): run `chmod 600 {key_file}`"
        )
    keys = [line.strip() for line in key_file.read_text().splitlines() if line.strip()]
    if not keys:
        raise SecretKeyError(f"{key_file} is empty: restore it from a backup, or set {KEY_ENV}")
    return Keyring(_parse(keys, str(key_file)), "file")


def write_key_file(key_file: Path, keys: tuple[bytes, ...]) -> None:
    """Replace the key file atomically: a crash leaves the old file or the new one."""
    atomic_write(key_file, "".join(k.decode() + "\n" for k in keys), mode=0o600)
