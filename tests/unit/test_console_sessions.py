"""The console's session cookie and CSRF token: signed with the account's own secret key."""

from __future__ import annotations

from mlmarket.console import sessions

KEYS = {"AKIAEXAMPLE": ("123456789012", "the-secret")}


def secret_for(key: str) -> tuple[str, str] | None:
    return KEYS.get(key)


def test_a_session_is_read_back_for_its_account_until_it_expires() -> None:
    cookie = sessions.issue("AKIAEXAMPLE", "the-secret", now=1000.0)
    session = sessions.read(cookie, secret_for, now=1001.0)
    assert session is not None
    assert (session.account_id, session.access_key) == ("123456789012", "AKIAEXAMPLE")
    assert session.expires == 1000 + sessions.LIFETIME_SECONDS
    assert sessions.read(cookie, secret_for, now=1000.0 + sessions.LIFETIME_SECONDS) is None


def test_a_forged_tampered_or_orphaned_cookie_is_no_session() -> None:
    cookie = sessions.issue("AKIAEXAMPLE", "the-secret", now=1000.0)
    payload, mac = cookie.split(".")
    assert sessions.read(f"{payload}.{'0' * len(mac)}", secret_for, 1001.0) is None
    assert sessions.read(f"{payload[:-2]}xx.{mac}", secret_for, 1001.0) is None
    forged = sessions.issue("AKIAEXAMPLE", "a-guess", now=1000.0)
    assert sessions.read(forged, secret_for, 1001.0) is None
    assert sessions.read(cookie, lambda key: None, 1001.0) is None  # its key deleted
    for junk in (None, "", "no-dot", "a.b.c", "!!!.???"):
        assert sessions.read(junk, secret_for, 1001.0) is None


def test_the_csrf_token_is_the_sessions_own() -> None:
    first = sessions.read(sessions.issue("AKIAEXAMPLE", "the-secret", 1.0), secret_for, 2.0)
    second = sessions.read(sessions.issue("AKIAEXAMPLE", "the-secret", 1.0), secret_for, 2.0)
    assert first is not None and second is not None
    assert first.accepts(first.csrf)
    assert not first.accepts(second.csrf)  # each session has its nonce
    assert not first.accepts(None) and not first.accepts("")
