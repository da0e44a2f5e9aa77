"""Secrets at rest: never in plaintext in the store, and a key rotation that loses nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import create_engine, text

from tests import postgres
from tests.integration.conftest import Rack, Result

START = ("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")


def database_url(rack: Rack) -> str:
    return rack.env.get("SHIPMATE_DATABASE_URL") or f"sqlite:///{rack.home / 'shipmate.db'}"


def stored_envs(rack: Rack) -> dict[str, str]:
    """Release id -> the env column exactly as stored."""
    engine = create_engine(database_url(rack))
    try:
        with engine.connect() as conn:
            return {row[0]: row[1] for row in conn.execute(text("SELECT id, env FROM releases"))}
    finally:
        engine.dispose()


def pg_dump(url: str) -> bytes:
    bin_dir = postgres.find_bin_dir()
    found = bin_dir / "pg_dump" if bin_dir and (bin_dir / "pg_dump").exists() else None
    program = str(found) if found else shutil.which("pg_dump")
    assert program, "pg_dump is not installed (it comes with PostgreSQL)"
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    return subprocess.run(
        [program, "--dbname", dsn], capture_output=True, check=True, timeout=120
    ).stdout


def raw_store(rack: Rack) -> bytes:
    """Everything the store holds, as bytes: the SQLite files (WAL included) or a pg_dump."""
    url = database_url(rack)
    if url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in sorted(rack.home.glob("shipmate.db*")))
    return pg_dump(url)


def everything_under(home: Path) -> bytes:
    """Every file of SHIPMATE_HOME but the apps' own output, which is theirs to keep."""
    data = []
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != "output.log":
            data.append(path.read_bytes())
    return b"\n".join(data)


def restart(rack: Rack, **env: str) -> Result | None:
    """Stop the rack (if it runs) and start it with `env`; the failed start's result, or None."""
    rack.run("rack", "stop")
    rack.env = {k: v for k, v in rack.env.items() if k != "SHIPMATE_SECRET_KEY"} | env
    result = rack.run(*START)
    return None if result.code == 0 else result


def owner_get(rack: Rack, path: str) -> httpx.Response:
    token = (rack.home / "token").read_text().strip()
    return httpx.get(
        rack.info["api"] + path, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_secrets_never_rest_in_plaintext(rack: Rack) -> None:
    secrets = [f"s3cret-{uuid.uuid4().hex}" for _ in range(3)]
    rack.ok("apps", "create", "vault")
    rack.ok("env", "set", f"VAULT_API_KEY={secrets[0]}", "-a", "vault")
    # A build copies the environment into its release, an env change makes another, and a
    # rollback copies an older one: every way a release environment is written.
    rack.ok("deploy", str(Path(__file__).parents[2] / "examples" / "hello"), "-a", "vault")
    first = rack.releases("vault")[0]["id"]
    rack.ok(
        "env", "set", f"VAULT_PASSWORD={secrets[1]}", f"VAULT_TOKEN={secrets[2]}", "-a", "vault"
    )
    rack.ok("releases", "rollback", str(first), "-a", "vault")
    assert rack.ok("env", "get", "VAULT_API_KEY", "-a", "vault") == secrets[0] + "\n"

    store = raw_store(rack)
    # The search can see the store: key names (not secret) are in release descriptions.
    assert b"VAULT_PASSWORD" in store and b"vault" in store
    for secret in secrets:
        assert secret.encode() not in store
    home = everything_under(rack.home)
    assert b"VAULT_PASSWORD" in home or not database_url(rack).startswith("sqlite")
    for secret in secrets:
        assert secret.encode() not in home
    assert all(not env.startswith("{") for env in stored_envs(rack).values())
    assert (rack.home / "secret.key").stat().st_mode & 0o777 == 0o600


def test_rotate_key_keeps_every_value_and_retires_the_old_key(rack: Rack) -> None:
    rack.ok("apps", "create", "rotor")
    rack.ok("env", "set", "ONE=first value", "-a", "rotor")
    rack.ok("env", "set", "TWO=second value", "-a", "rotor")
    values = {r["id"]: r["env"] for r in rack.releases("rotor")}
    old_keys = (rack.home / "secret.key").read_text().split()
    before = stored_envs(rack)

    # Readers keep getting the same answer while the rotation runs.
    answers: list[tuple[int, object]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            response = owner_get(rack, "/apps/rotor/environment")
            answers.append((response.status_code, response.json()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        out = rack.ok("rack", "rotate-key")
    finally:
        done.set()
        reader.join()
    count = int(re.fullmatch(r"Rotating the secret key\.\.\. OK \((\d+) release environments "
                             r"re-encrypted\)\n", out).group(1))  # type: ignore[union-attr]  # fmt: skip
    assert count == len(before) >= 2
    assert answers and all(a == (200, answers[0][1]) for a in answers)

    new_keys = (rack.home / "secret.key").read_text().split()
    assert len(new_keys) == 1 and new_keys[0] not in old_keys
    assert (rack.home / "secret.key").stat().st_mode & 0o777 == 0o600
    after = stored_envs(rack)
    assert set(after) == set(before)
    old, new = Fernet(old_keys[0].encode()), Fernet(new_keys[0].encode())
    for release_id, sealed in after.items():
        assert sealed != before[release_id]
        with pytest.raises(InvalidToken):
            old.decrypt(sealed.encode())
        assert json.loads(new.decrypt(sealed.encode())) == json.loads(
            old.decrypt(before[release_id].encode())
        )
    assert {r["id"]: r["env"] for r in rack.releases("rotor")} == values
    audit = json.loads(rack.ok("audit", "--json"))
    assert audit[0]["action"] == "key.rotate" and audit[0]["actor"] == "rack-owner"

    # The new key is the one on disk: a restarted rack reads everything back.
    assert restart(rack) is None
    assert {r["id"]: r["env"] for r in rack.releases("rotor")} == values


def only_once(rack: Rack) -> None:
    if not database_url(rack).startswith("sqlite"):
        pytest.skip("where the key comes from does not depend on the state store's backend")


def test_key_from_the_environment(rack: Rack) -> None:
    only_once(rack)
    key = (rack.home / "secret.key").read_text().strip()
    values = {r["id"]: r["env"] for r in rack.releases("rotor")}
    try:
        failed = restart(rack, SHIPMATE_SECRET_KEY=Fernet.generate_key().decode())
        assert failed is not None and failed.code == 1
        assert failed.err.startswith("ERROR: the rack did not start: cannot decrypt ")
        assert "racks that share a database must share SHIPMATE_SECRET_KEY" in failed.err
        assert failed.err.count("\n") == 1

        (rack.home / "secret.key").rename(rack.home / "secret.key.saved")
        rack.env["SHIPMATE_SECRET_KEY"] = key
        result = rack.run(*START)
        assert result.code == 0, result.err
        assert {r["id"]: r["env"] for r in rack.releases("rotor")} == values
        assert not (rack.home / "secret.key").exists()  # the variable is used, not a file
        result = rack.run("rack", "rotate-key")
        assert result.code == 1
        assert result.err.startswith("ERROR: the secret key comes from SHIPMATE_SECRET_KEY")

        # Rotation with keys from the environment: the new key first, then rotate-key.
        new = Fernet.generate_key().decode()
        assert restart(rack, SHIPMATE_SECRET_KEY=f"{new},{key}") is None
        assert rack.ok("rack", "rotate-key").endswith("re-encrypted)\n")
        assert restart(rack, SHIPMATE_SECRET_KEY=new) is None
        assert {r["id"]: r["env"] for r in rack.releases("rotor")} == values
        with pytest.raises(InvalidToken):
            Fernet(key.encode()).decrypt(next(iter(stored_envs(rack).values())).encode())
        (rack.home / "secret.key.saved").write_text(new + "\n")
    finally:
        saved = rack.home / "secret.key.saved"
        if saved.exists():
            saved.rename(rack.home / "secret.key")
        os.chmod(rack.home / "secret.key", 0o600)
        if restart(rack) is not None:
            pytest.fail("the rack did not start again with its key file")
    assert {r["id"]: r["env"] for r in rack.releases("rotor")} == values


def test_a_key_file_readable_by_others_is_refused(rack: Rack) -> None:
    only_once(rack)
    key_file = rack.home / "secret.key"
    key_file.chmod(0o644)
    try:
        failed = restart(rack)
        assert failed is not None
        assert failed.err == (
            f"ERROR: the rack did not start: {key_file} is readable by others (mode 0644): "
            f"run `chmod 600 {key_file}` (see {rack.home / 'rack.log'})\n"
        )
    finally:
        key_file.chmod(0o600)
        if rack.run(*START).code != 0:
            pytest.fail("the rack did not start again")
