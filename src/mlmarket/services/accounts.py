"""Accounts (12-digit ids) and their access keys, and the lookup SigV4 verification needs."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from mlmarket.clock import Clock
from mlmarket.storage.metadata import Account, MetadataStore

DEFAULT_ACCOUNT_NAME = "default"
DEFAULT_ACCOUNT_ID = "123456789012"

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


class AccountExists(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    account: Account
    access_key: str
    secret_key: str


def new_access_key() -> str:
    return "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def new_secret_key() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def new_account_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


class Accounts:
    def __init__(self, store: MetadataStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._secrets: dict[str, tuple[str, str]] = {}

    def create(
        self,
        name: str,
        account_id: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> Credentials:
        account_id = account_id or new_account_id()
        if not (len(account_id) == 12 and account_id.isdigit()):
            raise ValueError(f"account id '{account_id}' is not 12 digits")
        if self.store.find_account(account_id) or self.store.find_account(name):
            raise AccountExists(f"an account named '{name}' or with id {account_id} exists")
        if bool(access_key) != bool(secret_key):
            raise ValueError("give both an access key and a secret key, or neither")
        access_key = access_key or new_access_key()
        secret_key = secret_key or new_secret_key()
        if self.store.secret_for(access_key) is not None:
            raise AccountExists(f"access key {access_key} is already in use")
        account = self.store.create_account(account_id, name, self.clock.now())
        self.store.add_access_key(account_id, access_key, secret_key)
        return Credentials(account, access_key, secret_key)

    def ensure_default(self) -> Credentials | None:
        """Create the default account on first start; None if accounts already exist."""
        if self.store.list_accounts():
            return None
        return self.create(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_ID)

    def credentials_of(self, name_or_id: str) -> Credentials | None:
        account = self.store.find_account(name_or_id)
        if account is None:
            return None
        keys = self.store.keys_of(account.account_id)
        if not keys:
            return None
        return Credentials(account, *keys[0])

    def is_operator(self, account_id: str) -> bool:
        account = self.store.find_account(account_id)
        return account is not None and account.operator

    def secret_for(self, access_key: str) -> tuple[str, str] | None:
        """(account id, secret) for SigV4; cached, since keys never change once issued."""
        found = self._secrets.get(access_key)
        if found is None:
            found = self.store.secret_for(access_key)
            if found is not None:
                self._secrets[access_key] = found
        return found
