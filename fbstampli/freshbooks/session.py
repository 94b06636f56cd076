"""Wiring FreshBooks to the state store: the token pair lives encrypted, saved before use.

`StateTokenStore.save` commits in its own transaction, so by the time a new
access token is used, the refresh token that replaced the spent one is
durable. The run lock (held by every command that talks to FreshBooks) keeps
two processes from spending the same refresh token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from fbstampli.errors import AuthRequiredError, ConfigError
from fbstampli.freshbooks.oauth import LOGIN_HINT, Token, TokenManager
from fbstampli.freshbooks.parse import BusinessMembership
from fbstampli.logs import register_secret
from fbstampli.store import Store

if TYPE_CHECKING:
    import requests

    from fbstampli.config import FreshBooksSettings
    from fbstampli.freshbooks.client import FreshBooksClient
    from fbstampli.runtime import Runtime

TOKEN_SECRET = "freshbooks.token"  # noqa: S105 - the name of a secret, not one


class StateTokenStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    def load(self) -> Token | None:
        text = self._store.get_secret(TOKEN_SECRET)
        if text is None:
            return None
        data = json.loads(text)
        register_secret(data["access_token"])
        register_secret(data["refresh_token"])
        return Token(
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
            scope=data.get("scope", ""),
        )

    def save(self, token: Token) -> None:
        register_secret(token.access_token)
        register_secret(token.refresh_token)
        text = json.dumps(
            {
                "access_token": token.access_token,
                "refresh_token": token.refresh_token,
                "expires_at": token.expires_at.isoformat(),
                "scope": token.scope,
            }
        )
        with self._store.transaction():
            self._store.put_secret(TOKEN_SECRET, text)

    def forget(self) -> None:
        with self._store.transaction():
            self._store.delete_secret(TOKEN_SECRET)


def require_app(settings: FreshBooksSettings) -> None:
    missing = [
        name
        for name, value in (
            ("freshbooks.client_id (or FRESHBOOKS_CLIENT_ID)", settings.client_id),
            ("freshbooks.client_secret (or FRESHBOOKS_CLIENT_SECRET)", settings.client_secret),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"set {' and '.join(missing)} from your FreshBooks app registration")


def open_client(rt: Runtime, *, session: requests.Session | None = None) -> FreshBooksClient:
    from fbstampli.freshbooks.client import FreshBooksClient

    settings = rt.settings.freshbooks
    require_app(settings)
    account_id = rt.store.get_value("freshbooks.account_id")
    if not account_id:
        raise AuthRequiredError(f"no FreshBooks business chosen yet; {LOGIN_HINT}")
    from fbstampli.lock import holds_run_lock

    manager = TokenManager(
        settings,
        StateTokenStore(rt.store),
        now=rt.clock.now,
        may_refresh=lambda: holds_run_lock(rt.paths.lock),  # single-use: only under the lock
    )
    return FreshBooksClient(settings, manager, account_id, session=session, sleep=rt.clock.sleep)


def probe_login(
    rt: Runtime, *, on_server_time: Callable[[datetime], None]
) -> list[BusinessMembership]:
    """Make the cheapest authenticated call, reporting when FreshBooks says it answered.

    Token expiry and webhook timestamps are judged by FreshBooks' clock, so the
    `Date` header of each answer (errors included: a clock far off can be why the
    call failed) goes to `on_server_time`, for `doctor` to compare the local clock with.
    """
    import requests

    def note_date(response: requests.Response, *args: object, **kwargs: object) -> None:
        moment = parse_http_date(response.headers.get("Date"))
        if moment is not None:
            on_server_time(moment)

    session = requests.Session()
    session.hooks["response"].append(note_date)
    client = open_client(rt, session=session)
    try:
        return client.me()
    finally:
        client.close()


def parse_http_date(text: str | None) -> datetime | None:
    """An RFC 9110 `Date` header as an aware UTC datetime; None for anything else."""
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000" means UTC without saying so
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def log_in(rt: Runtime, redirect_or_code: str, state: str | None) -> list[Any]:
    """Exchange the code, save the token pair, and return the user's business memberships."""
    import requests

    from fbstampli.freshbooks.client import FreshBooksClient
    from fbstampli.freshbooks.oauth import exchange_code, parse_redirect

    settings = rt.settings.freshbooks
    token = exchange_code(requests.Session(), settings, parse_redirect(redirect_or_code, state))
    tokens = StateTokenStore(rt.store)
    tokens.save(token)
    manager = TokenManager(settings, tokens, now=rt.clock.now)
    client = FreshBooksClient(settings, manager, "", sleep=rt.clock.sleep)
    return list(client.me())


def log_out(rt: Runtime) -> str:
    """Revoke at FreshBooks when it answers; forget the pair here whatever happens."""
    import requests

    from fbstampli.errors import FbstampliError
    from fbstampli.freshbooks.oauth import revoke

    tokens = StateTokenStore(rt.store)
    token = tokens.load()
    note = "no FreshBooks token was stored"
    if token is not None:
        try:
            revoke(requests.Session(), rt.settings.freshbooks, token)
            note = "FreshBooks revoked the token"
        except FbstampliError as error:
            note = f"could not revoke at FreshBooks ({error}); forgotten here"
    tokens.forget()
    return note


def login_summary(store: Store, now: datetime) -> dict[str, Any]:
    """Who is logged in and until when; never the token itself."""
    token = StateTokenStore(store).load()
    account = store.get_value("freshbooks.account_id")
    if token is None or not account:
        return {"logged_in": False}
    return {
        "logged_in": True,
        "account_id": account,
        "business_id": store.get_value("freshbooks.business_id"),
        "business_name": store.get_value("freshbooks.business_name"),
        "access_token_expires_at": token.expires_at.isoformat(),
        "access_token_expired": token.expires_at <= now,
    }
