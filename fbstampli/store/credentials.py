"""Everything this home logs in with, in one place: the FreshBooks token pair and business, and
the Stampli SFTP login with its pinned host key.

Secrets (tokens, the SFTP password, private key and passphrase) live in the
encrypted `credentials` table and are registered with the log redactor the
moment they are read or written; the non-secret description of the SFTP
target is kept in `kv` so that `status` can show it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fbstampli.clock import to_utc_text
from fbstampli.errors import ExitCode
from fbstampli.logs import register_secret
from fbstampli.models.token import Token
from fbstampli.store import Store

TOKEN_SECRET = "freshbooks.token"  # noqa: S105 - the name of a secret, not one
_ACCOUNT_KEY = "freshbooks.account_id"
_BUSINESS_ID_KEY = "freshbooks.business_id"
_BUSINESS_NAME_KEY = "freshbooks.business_name"
SFTP_TARGET_KEY = "sftp.target"
_SFTP_SECRETS = ("sftp.password", "sftp.private_key", "sftp.passphrase")


# -- FreshBooks ------------------------------------------------------------------------------


class StateTokenStore:
    """The token pair, saved in its own transaction before the new access token is used.

    By the time a refreshed access token is sent, the refresh token that
    replaced the spent one is durable; the run lock keeps two processes from
    spending the same refresh token.
    """

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


@dataclass(frozen=True, slots=True)
class Business:
    """The FreshBooks business this home syncs; `account_id` keys the accounting paths."""

    account_id: str
    business_id: str
    name: str


def chosen_business(store: Store) -> Business | None:
    account = store.get_value(_ACCOUNT_KEY)
    if not account:
        return None
    return Business(
        account_id=account,
        business_id=store.get_value(_BUSINESS_ID_KEY) or "",
        name=store.get_value(_BUSINESS_NAME_KEY) or "",
    )


def account_id(store: Store) -> str | None:
    """The chosen business's accounting account id, or None before `auth login`."""
    return store.get_value(_ACCOUNT_KEY) or None


def choose_business(store: Store, business: Business) -> None:
    store.put_value(_ACCOUNT_KEY, business.account_id)
    store.put_value(_BUSINESS_ID_KEY, business.business_id)
    store.put_value(_BUSINESS_NAME_KEY, business.name)


def forget_business(store: Store) -> None:
    for name in (_ACCOUNT_KEY, _BUSINESS_ID_KEY, _BUSINESS_NAME_KEY):
        store.delete_value(name)


# -- Stampli SFTP ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SftpLogin:
    """The stored SFTP login; secrets are kept out of `repr`.

    `inbound`/`outbound` are set only when `auth sftp` was given them: a login
    stored without them leaves the config file in charge of the folders.
    """

    host: str
    port: int
    username: str
    host_key_type: str
    host_key_base64: str
    host_key_fingerprint: str
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)
    passphrase: str = field(default="", repr=False)
    inbound: str | None = None
    outbound: str | None = None

    @property
    def auth(self) -> str:
        return "key" if self.private_key else "password"


def sftp_description(store: Store) -> dict[str, Any] | None:
    """The SFTP target without its secrets (address, folders, host key), or None."""
    value = store.get_json(SFTP_TARGET_KEY)
    return value if isinstance(value, dict) else None


def load_sftp_login(store: Store) -> SftpLogin | None:
    described = sftp_description(store)
    if described is None:
        return None
    secrets = {name: store.get_secret(name) or "" for name in _SFTP_SECRETS}
    for value in secrets.values():
        register_secret(value)
    return SftpLogin(
        host=described["host"],
        port=int(described["port"]),
        username=described["username"],
        host_key_type=described["host_key_type"],
        host_key_base64=described["host_key_base64"],
        host_key_fingerprint=described.get("host_key_fingerprint", ""),
        password=secrets["sftp.password"],
        private_key=secrets["sftp.private_key"],
        passphrase=secrets["sftp.passphrase"],
        inbound=described.get("inbound"),
        outbound=described.get("outbound"),
    )


def save_sftp_login(store: Store, login: SftpLogin) -> None:
    """Store the login whole, in one transaction, with an audit row naming the pinned key."""
    description = {
        "host": login.host,
        "port": login.port,
        "username": login.username,
        "inbound": login.inbound,
        "outbound": login.outbound,
        "host_key_type": login.host_key_type,
        "host_key_base64": login.host_key_base64,
        "host_key_fingerprint": login.host_key_fingerprint,
        "auth": login.auth,
    }
    with store.transaction():
        store.put_json(SFTP_TARGET_KEY, description)
        for name, value in zip(
            _SFTP_SECRETS, (login.password, login.private_key, login.passphrase), strict=True
        ):
            if value:
                store.put_secret(name, value)
            else:
                store.delete_secret(name)
        store.audit(
            "sftp_login_stored",
            detail=f"{login.username}@{login.host}:{login.port} {login.host_key_fingerprint}",
        )


def login_refused_at(store: Store) -> str | None:
    """When a run that started after the token was last saved ended with "authentication
    needed" (a refused refresh token, a revoked grant): the stored token is dead then, even
    though it is still there to be revoked by `auth logout`."""
    row = store.query_one(
        "SELECT r.started_at FROM runs AS r, credentials AS c WHERE c.name = ? "
        "AND r.exit_code = ? AND r.started_at >= c.updated_at ORDER BY r.id DESC LIMIT 1",
        (TOKEN_SECRET, int(ExitCode.AUTH)),
    )
    return None if row is None else str(row["started_at"])


def login_summary(store: Store, now: datetime) -> dict[str, Any]:
    """Who is logged in and until when; never the token itself."""
    token = StateTokenStore(store).load()
    business = chosen_business(store)
    if token is None or business is None:
        return {"logged_in": False}
    refused = login_refused_at(store)
    if refused is not None:
        return {
            "logged_in": False,
            "refused_at": refused,
            "account_id": business.account_id,
            "business_id": business.business_id or None,
            "business_name": business.name or None,
            "fix": "FreshBooks refused this login; run `fbstampli auth login`",
        }
    return {
        "logged_in": True,
        "account_id": business.account_id,
        "business_id": business.business_id or None,
        "business_name": business.name or None,
        "access_token_expires_at": to_utc_text(token.expires_at),  # as every JSON time
        "access_token_expired": token.expires_at <= now,
    }
