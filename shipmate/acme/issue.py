"""Obtain a certificate by ACME HTTP-01, with certbot's `acme` library (the protocol, JWS
signing, nonces and polling are its job, not ours).

The challenge answers are published through a callable (the router's admin API in the rack:
the router answers /.well-known/acme-challenge/TOKEN on its HTTP port, which is where the
ACME server's validation arrives), and withdrawn once the order is decided.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwk import JWKRSA

from shipmate.common.files import atomic_write

log = logging.getLogger("shipmate.acme")

Publish = Callable[[str, str | None], None]  # (token, key authorization or None to withdraw)
USER_AGENT = "shipmate"
ORDER_DEADLINE = dt.timedelta(seconds=90)


class AcmeError(Exception):
    """One line: what the ACME server said, or why it could not be reached."""


@dataclass(frozen=True)
class Issued:
    cert_pem: str  # the full chain, leaf first
    key_pem: str


def _new_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Issuer:
    """One ACME account (its key kept in `account_file`, mode 0600) at one directory URL."""

    def __init__(
        self,
        directory_url: str,
        email: str | None,
        account_file: Path,
        *,
        ca_bundle: str | None = None,
        timeout: int = 30,
    ) -> None:
        self.directory_url = directory_url
        self.email = email
        self.account_file = account_file
        # A CA bundle for the ACME server's own HTTPS (Pebble's, in the tests); None: the
        # system's store.
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self._client: client.ClientV2 | None = None

    def _account_key(self) -> JWKRSA:
        try:
            data = json.loads(self.account_file.read_text())
            if data.get("directory") == self.directory_url:
                return JWKRSA.json_loads(json.dumps(data["key"]))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError) as exc:
            log.warning("acme: %s unreadable (%s); a new account", self.account_file, exc)
        key = JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        text = json.dumps({"directory": self.directory_url, "key": key.to_json()})
        self.account_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.account_file, text + "\n", mode=0o600)
        return key

    def _connect(self) -> client.ClientV2:
        if self._client is not None:
            return self._client
        key = self._account_key()
        verify: Any = self.ca_bundle if self.ca_bundle else True
        net = client.ClientNetwork(
            key, user_agent=USER_AGENT, verify_ssl=verify, timeout=self.timeout
        )
        directory = client.ClientV2.get_directory(self.directory_url, net)
        acme = client.ClientV2(directory, net=net)
        registration = messages.NewRegistration.from_data(
            email=self.email, terms_of_service_agreed=True
        )
        try:
            acme.new_account(registration)
        except errors.ConflictError as exc:
            # The key already has an account there (a restarted rack): use it.
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            net.account = acme.query_registration(regr)
        self._client = acme
        return acme

    def issue(self, names: Sequence[str], publish: Publish) -> Issued:
        """A certificate for `names` (the first is its subject), proven by HTTP-01.
        AcmeError with one line when the server refuses or cannot be reached."""
        try:
            return self._issue(names, publish)
        except AcmeError:
            raise
        except messages.Error as exc:
            self._client = None  # a fresh nonce and account lookup next time
            raise AcmeError(f"the ACME server refused: {exc.detail or exc.typ}") from None
        except errors.Error as exc:
            self._client = None
            # The library's messages span lines (one per failed challenge): events are one.
            raise AcmeError("ACME: " + " ".join(str(exc).split())) from None
        except (OSError, ValueError) as exc:
            self._client = None
            raise AcmeError(f"cannot reach the ACME server {self.directory_url}: {exc}") from None

    def _issue(self, names: Sequence[str], publish: Publish) -> Issued:
        acme = self._connect()
        key_pem = _new_key_pem()
        csr = crypto_util.make_csr(key_pem, list(names))
        order = acme.new_order(csr)
        tokens: list[str] = []
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue  # reused: the server already knows we control this name
                chall = next(
                    (c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)),
                    None,
                )
                if chall is None:
                    name = authz.body.identifier.value
                    raise AcmeError(f"the ACME server offers no HTTP-01 challenge for {name}")
                response, validation = chall.response_and_validation(acme.net.key)
                token = chall.chall.encode("token")
                publish(token, validation)
                tokens.append(token)
                acme.answer_challenge(chall, response)
            deadline = dt.datetime.now() + ORDER_DEADLINE
            done = acme.poll_and_finalize(order, deadline)
        finally:
            for token in tokens:
                try:
                    publish(token, None)
                except Exception as exc:  # withdrawing is tidiness; the order is decided
                    log.warning("acme: could not withdraw challenge %s: %s", token, exc)
        return Issued(cert_pem=done.fullchain_pem, key_pem=key_pem.decode())
