"""The pure parts of security: the role rule, the binding rule, the key ring, token names."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shipmate.api.auth import required_role
from shipmate.config import check_api_binding, is_loopback
from shipmate.domain.errors import InvalidInput, ShipmateError
from shipmate.services import tokens
from shipmate.store.crypto import Keyring, SecretKeyError, load_keyring


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/apps", "viewer"),
        ("HEAD", "/apps/{app}", "viewer"),
        ("GET", "/apps/{app}/environment", "viewer"),
        ("POST", "/apps/{app}/environment", "deployer"),
        ("POST", "/apps/{app}/scale", "deployer"),
        ("DELETE", "/apps/{app}/processes/{process_id}", "deployer"),
        ("PUT", "/apps/{app}/anything-new", "deployer"),
        ("POST", "/apps", "admin"),
        ("DELETE", "/apps/{app}", "admin"),
        ("GET", "/rack/tokens", "admin"),
        ("POST", "/rack/rotate-key", "admin"),
        ("GET", "/rack", "viewer"),
        ("GET", "/audit", "viewer"),
    ],
)
def test_required_role(method: str, path: str, role: str) -> None:
    assert required_role(method, path) == role


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("rack.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_api_binding_rule(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    check_api_binding("127.0.0.1:7070", None, None, False)
    check_api_binding("0.0.0.0:7070", str(cert), str(key), False)
    check_api_binding("0.0.0.0:7070", None, None, True)
    with pytest.raises(ShipmateError, match="reachable from other machines"):
        check_api_binding("0.0.0.0:7070", None, None, False)
    with pytest.raises(ShipmateError, match="go together"):
        check_api_binding("0.0.0.0:7070", str(cert), None, False)


def test_keyring_round_trip_and_rotation() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed = Keyring((old,), "file").encrypt('{"A": "1"}')
    assert not sealed.startswith("{") and '"A"' not in sealed
    both = Keyring((new, old), "file")
    assert both.decrypt(sealed, "x") == '{"A": "1"}'
    rotated = both.reencrypt(sealed, "x")
    assert Keyring((new,), "file").decrypt(rotated, "x") == '{"A": "1"}'
    with pytest.raises(SecretKeyError, match="cannot decrypt x: the secret key"):
        Keyring((old,), "file").decrypt(rotated, "x")
    # Environments written before encryption existed are sealed, not refused.
    assert Keyring((new,), "file").decrypt(both.reencrypt('{"B": "2"}', "x"), "x") == '{"B": "2"}'


def test_key_file_is_created_private_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPMATE_SECRET_KEY", raising=False)
    key_file = tmp_path / "home" / "secret.key"
    ring = load_keyring(key_file)
    assert ring.source == "file" and len(ring.keys) == 1
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_keyring(key_file).keys == ring.keys
    key_file.chmod(0o640)
    with pytest.raises(SecretKeyError, match=r"readable by others \(mode 0640\)"):
        load_keyring(key_file)
    key_file.chmod(0o600)
    key_file.write_text("not a key\n")
    with pytest.raises(SecretKeyError, match="not a Fernet key"):
        load_keyring(key_file)


def test_key_from_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("SHIPMATE_SECRET_KEY", f" {first} , {second} ")
    ring = load_keyring(tmp_path / "secret.key")
    assert ring.source == "env" and ring.keys == (first.encode(), second.encode())
    assert not (tmp_path / "secret.key").exists()
    monkeypatch.setenv("SHIPMATE_SECRET_KEY", "short")
    with pytest.raises(SecretKeyError, match="SHIPMATE_SECRET_KEY holds something"):
        load_keyring(tmp_path / "secret.key")


def test_token_names_roles_and_hashes() -> None:
    for good in ("ci", "deploy-bot", "alice@example.com", "a.b_c"):
        assert tokens.validate_name(good) == good
    for bad in ("", "-x", "has space", "x" * 65, "a/b"):
        with pytest.raises(InvalidInput, match="invalid token name"):
            tokens.validate_name(bad)
    with pytest.raises(InvalidInput, match="use one of viewer, deployer, admin"):
        tokens.validate_role("root")
    secret = tokens.generate()
    assert len(secret) >= 43 and tokens.generate() != secret
    assert tokens.hash_token(secret) == tokens.hash_token(secret)
    assert len(tokens.hash_token(secret)) == 64 and secret not in tokens.hash_token(secret)
    assert [tokens.rank(r) for r in tokens.ROLES] == [0, 1, 2]
