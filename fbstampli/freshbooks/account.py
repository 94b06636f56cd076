"""Logging in and out of FreshBooks, and the cheapest authenticated probe.

HTTP only: where the token pair is kept is the caller's `TokenStore`, so this
package never touches the state store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests

from fbstampli.config import FreshBooksSettings
from fbstampli.errors import ConfigError, FbstampliError
from fbstampli.freshbooks.client import FreshBooksClient
from fbstampli.freshbooks.oauth import (
    TokenManager,
    exchange_code,
    parse_redirect,
    revoke,
)
from fbstampli.freshbooks.parse import BusinessMembership
from fbstampli.models.token import TokenStore

Now = Callable[[], datetime]
Sleep = Callable[[float], None]


def require_app(settings: FreshBooksSettings) -> None:
    """The app registration's id and secret are set, or one error naming both settings."""
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


def log_in(
    settings: FreshBooksSettings,
    tokens: TokenStore,
    redirect_or_code: str,
    state: str | None,
    *,
    now: Now,
    sleep: Sleep,
) -> list[BusinessMembership]:
    """Exchange the code, save the token pair, and return the user's business memberships."""
    token = exchange_code(
        requests.Session(), settings, parse_redirect(redirect_or_code, state, settings.scopes)
    )
    tokens.save(token)
    manager = TokenManager(settings, tokens, now=now)
    client = FreshBooksClient(settings, manager, "", sleep=sleep)
    try:
        return list(client.me())
    finally:
        client.close()


def log_out(settings: FreshBooksSettings, tokens: TokenStore) -> str:
    """Revoke at FreshBooks when it answers; return what happened, in words.

    The caller forgets the pair locally whatever this says.
    """
    token = tokens.load()
    if token is None:
        return "no FreshBooks token was stored"
    try:
        revoke(requests.Session(), settings, token)
    except FbstampliError as error:
        return f"could not revoke at FreshBooks ({error}); forgotten here"
    return "FreshBooks revoked the token"


def probe_login(
    settings: FreshBooksSettings,
    tokens: TokenStore,
    *,
    account_id: str,
    now: Now,
    sleep: Sleep,
    on_server_time: Callable[[datetime], None],
) -> list[BusinessMembership]:
    """Make the cheapest authenticated call, reporting when FreshBooks says it answered.

    Token expiry and webhook timestamps are judged by FreshBooks' clock, so the
    `Date` header of each answer (errors included: a clock far off can be why the
    call failed) goes to `on_server_time`, for `doctor` to compare the local clock with.
    """

    def note_date(response: requests.Response, *args: object, **kwargs: object) -> None:
        moment = parse_http_date(response.headers.get("Date"))
        if moment is not None:
            on_server_time(moment)

    session = requests.Session()
    session.hooks["response"].append(note_date)
    manager = TokenManager(settings, tokens, now=now)
    client = FreshBooksClient(settings, manager, account_id, session=session, sleep=sleep)
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
