"""The console's sessions: a cookie signed with the account's own secret key, and a CSRF token
derived from it.

Signing with the key the user signed in with keeps no session state on any server: every server
on the database verifies it (the key's secret is there already), and deleting the key ends its
sessions. The cookie names the access key, an expiry and a random nonce; the CSRF token is a
second MAC of the nonce, so a page's forms carry it and another site's cannot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "mlmarket_session"
REGION_COOKIE = "mlmarket_region"
LIFETIME_SECONDS = 8 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"

SecretFor = Callable[[str], tuple[str, str] | None]  # access key → (account id, secret)


@dataclass(frozen=True)
class Session:
    account_id: str
    access_key: str
    expires: int  # epoch seconds
    nonce: str
    secret: str

    @property
    def csrf(self) -> str:
        return _mac(self.secret, f"csrf:{self.nonce}")[:32]

    def accepts(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf)


def _mac(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def issue(access_key: str, secret: str, now: float) -> str:
    """The cookie's value for a session that starts now."""
    payload = json.dumps(
        {"k": access_key, "e": int(now) + LIFETIME_SECONDS, "n": secrets.token_hex(16)},
        separators=(",", ":"),
    )
    encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{encoded}.{_mac(secret, encoded)}"


def read(cookie: str | None, secret_for: SecretFor, now: float) -> Session | None:
    """The session a cookie carries, or None: absent, forged, expired, or its key deleted."""
    if not cookie or cookie.count(".") != 1:
        return None
    encoded, mac = cookie.split(".")
    try:
        payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        access_key, expires, nonce = str(payload["k"]), int(payload["e"]), str(payload["n"])
    except (ValueError, KeyError, TypeError):
        return None
    found = secret_for(access_key)
    if found is None:
        return None
    account_id, secret = found
    if not hmac.compare_digest(mac, _mac(secret, encoded)) or expires <= now:
        return None
    return Session(account_id, access_key, expires, nonce, secret)
