"""FreshBooks OAuth 2.0: authorize URL, code exchange, refresh, revoke, and the token hand-out.

Owns the single-use refresh-token rule (docs/FRESHBOOKS-BEHAVIOUR.md §1.6): a refreshed pair
is given to `TokenStore.save` before its access token is used, so a crash can
lose at most a pair nobody has used. It must not log or put tokens in errors.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from fbstampli.config import FreshBooksSettings
from fbstampli.errors import (
    AuthRequiredError,
    ConfigError,
    LockHeldError,
    RemoteError,
    RemoteUnavailableError,
)
from fbstampli.freshbooks.parse import error_message
from fbstampli.models.token import Token, TokenStore

log = logging.getLogger(__name__)

LOGIN_HINT = "run `fbstampli auth login`"
REFRESH_MARGIN = timedelta(minutes=5)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def authorize_url(settings: FreshBooksSettings, state: str) -> str:
    """The page the operator opens to grant access; FreshBooks redirects back with `code`."""
    query = {
        "client_id": settings.client_id,
        "response_type": "code",
        "redirect_uri": settings.redirect_uri,
        "state": state,
    }
    if settings.scopes:
        query["scope"] = settings.scopes
    return f"{settings.auth_url.rstrip('/')}/oauth/authorize?{urlencode(query)}"


def parse_redirect(text: str, state: str | None = None, scopes: str = "") -> str:
    """The authorization code from a pasted redirect URL (or a bare code).

    When `state` is given and the URL carries parameters, the URL's `state`
    must match it: a mismatch means the redirect was not for this login.
    `scopes` (those asked for) are named when FreshBooks refuses them: its own
    "requested scope is invalid" does not say that the app must offer them.
    """
    text = text.strip()
    if not text:
        raise AuthRequiredError(f"no authorization code given; {LOGIN_HINT} and paste the URL")
    if "?" not in text and "=" not in text and "/" not in text:
        if any(ch.isspace() for ch in text):
            raise AuthRequiredError(f"that does not look like an authorization code; {LOGIN_HINT}")
        if state is not None:
            # Only the redirected URL carries `state`, the proof that this login started
            # here and not in a link someone sent (login CSRF): a bare code cannot be checked.
            raise AuthRequiredError(
                "paste the whole address your browser landed on, not the code alone: its "
                "`state` proves the login started here (a bare code works only with --code)"
            )
        return text
    query = parse_qs(urlsplit(text).query if "?" in text else text)
    if "error" in query:
        reason = query.get("error_description", query["error"])[0]
        if query["error"][0] == "invalid_scope" and scopes:
            raise AuthRequiredError(
                f"FreshBooks refused the scopes asked for ({reason}); enable {scopes} on "
                "your FreshBooks app (Developer Portal, the app's Scopes), then "
                "`fbstampli auth login` again"
            )
        raise AuthRequiredError(f"FreshBooks did not grant access ({reason}); {LOGIN_HINT}")
    if state is not None and query.get("state", [None])[0] != state:
        raise AuthRequiredError(
            f"the pasted URL belongs to a different login attempt (state mismatch); {LOGIN_HINT}"
        )
    codes = query.get("code")
    if not codes or not codes[0].strip():
        raise AuthRequiredError(f"the pasted URL has no `code` parameter; {LOGIN_HINT}")
    return codes[0].strip()


def token_from_response(body: object, now: datetime) -> Token:
    """A `Token` from the token endpoint's JSON; `created_at` (epoch seconds) wins over `now`."""
    if not isinstance(body, Mapping):
        raise RemoteError("FreshBooks' token endpoint answered with something that is not JSON")
    access = body.get("access_token")
    refresh = body.get("refresh_token")
    expires_in = body.get("expires_in")
    created_at = body.get("created_at")
    if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
        raise RemoteError("FreshBooks' token endpoint answered without an access/refresh token")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise RemoteError("FreshBooks' token endpoint answered without a numeric expires_in")
    issued = now
    if isinstance(created_at, int) and not isinstance(created_at, bool) and created_at > 0:
        issued = datetime.fromtimestamp(created_at, UTC)
    scope = body.get("scope")
    return Token(
        access_token=access,
        refresh_token=refresh,
        expires_at=issued + timedelta(seconds=expires_in),
        scope=scope if isinstance(scope, str) else "",
    )


def _token_url(settings: FreshBooksSettings) -> str:
    return f"{settings.api_url.rstrip('/')}/auth/oauth/token"


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


class AnswerLostError(RemoteUnavailableError):
    """The request may have reached FreshBooks, but no answer came back.

    For a refresh this matters: FreshBooks may have spent the refresh token and
    issued a pair that never arrived.
    """


class SpentGrantError(AuthRequiredError):
    """FreshBooks answered `invalid_grant`: the code or refresh token is spent or revoked."""


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is in the chain requests and urllib3 wrap a network failure in."""
    seen: list[object] = [error]
    for _ in range(8):  # the chains are short; this only bounds a cycle
        current = seen[-1]
        if isinstance(current, kind):
            return True
        args = getattr(current, "args", ())
        following = (
            getattr(current, "reason", None)
            or (args[0] if args and isinstance(args[0], BaseException) else None)
            or getattr(current, "__cause__", None)
            or getattr(current, "__context__", None)
        )
        if following is None or following in seen:
            return False
        seen.append(following)
    return False


def _may_have_arrived(error: requests.RequestException) -> bool:
    """False only when no connection was made, so FreshBooks cannot have acted on the request."""
    if isinstance(error, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return False  # no connection, or the proxy never reached FreshBooks
    if isinstance(error, requests.exceptions.SSLError):
        # A refused certificate stops the handshake before the request is sent; other
        # TLS failures (an EOF while reading) can come after FreshBooks acted on it.
        return not _caused_by(error, ssl.SSLCertVerificationError)
    if isinstance(error, requests.ConnectionError):
        cause = error.args[0] if error.args else None
        cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the cause
        return not isinstance(cause, NewConnectionError)
    return True


def _post(
    session: requests.Session, url: str, payload: Mapping[str, Any], timeout: float, action: str
) -> tuple[int, object]:
    """POST JSON once, never replayed here; return status and parsed body."""
    try:
        # Never redirected: the body holds the client secret and a refresh token or code.
        response = session.post(url, json=dict(payload), timeout=timeout, allow_redirects=False)
    except requests.RequestException as error:
        if _may_have_arrived(error):
            raise AnswerLostError(
                f"FreshBooks at {_host(url)} did not answer the request to {action}; "
                "try again later"
            ) from None
        raise RemoteUnavailableError(
            f"cannot reach FreshBooks at {_host(url)} to {action}; try again later"
        ) from None
    if 300 <= response.status_code < 400:
        raise RemoteError(
            f"FreshBooks at {_host(url)} answered the request to {action} with a redirect "
            f"(HTTP {response.status_code}); not followed, since it carries the client secret: "
            "check freshbooks.auth_url"
        )
    try:
        body: object = response.json()
    except ValueError:
        body = None
    return response.status_code, body


def _raise_for_token_error(status: int, body: object, url: str, action: str, spent: str) -> None:
    if status == 429 or status >= 500:
        raise RemoteUnavailableError(
            f"FreshBooks at {_host(url)} could not {action} (HTTP {status}); try again later"
        )
    error = body.get("error") if isinstance(body, Mapping) else None
    if status < 400 and error is None:
        return
    if error == "invalid_grant":
        raise SpentGrantError(f"FreshBooks rejected the {spent}; {LOGIN_HINT}")
    if error in ("invalid_client", "unauthorized_client"):
        raise ConfigError(
            "FreshBooks rejected the client id or secret; check freshbooks.client_id and "
            "freshbooks.client_secret"
        )
    message = error_message(body) or f"HTTP {status}"
    raise AuthRequiredError(f"FreshBooks refused to {action}: {message}; {LOGIN_HINT}")


def _request_token(
    session: requests.Session,
    settings: FreshBooksSettings,
    payload: Mapping[str, str],
    action: str,
    spent: str,
    now: datetime,
) -> Token:
    url = _token_url(settings)
    status, body = _post(session, url, payload, settings.timeout_seconds, action)
    _raise_for_token_error(status, body, url, action, spent)
    return token_from_response(body, now)


def exchange_code(
    session: requests.Session,
    settings: FreshBooksSettings,
    code: str,
    *,
    now: Callable[[], datetime] = _utc_now,
) -> Token:
    payload = {
        "grant_type": "authorization_code",
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "redirect_uri": settings.redirect_uri,
        "code": code,
    }
    spent = "authorization code (it lasts 5 minutes and works once)"
    return _request_token(session, settings, payload, "log in", spent, now())


def refresh_token(
    session: requests.Session,
    settings: FreshBooksSettings,
    token: Token,
    *,
    now: Callable[[], datetime] = _utc_now,
) -> Token:
    """Spend `token.refresh_token` for a new pair; the old refresh token is dead afterwards.

    When the answer is lost on the way back, the refresh is asked for once more.
    That is safe either way: if FreshBooks never took the first request the
    second works; if it did, the token is already spent and the second can only
    be refused, which is then said plainly rather than as a mystery.
    """
    payload = {
        "grant_type": "refresh_token",
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "redirect_uri": settings.redirect_uri,
        "refresh_token": token.refresh_token,
    }
    action = "refresh the access token"
    try:
        return _request_token(session, settings, payload, action, "refresh token", now())
    except AnswerLostError:
        log.info("the answer to a token refresh was lost; asking FreshBooks once more")
    try:
        return _request_token(session, settings, payload, action, "refresh token", now())
    except AnswerLostError:
        raise AnswerLostError(
            f"FreshBooks at {_host(_token_url(settings))} twice did not answer a token "
            "refresh; try again later, and if the next run says the refresh token was "
            f"rejected, {LOGIN_HINT}"
        ) from None
    except SpentGrantError:
        raise AuthRequiredError(
            "FreshBooks rejected the refresh token after the answer to the first refresh was "
            f"lost on the way: that refresh probably spent it; {LOGIN_HINT}"
        ) from None


def revoke(session: requests.Session, settings: FreshBooksSettings, token: Token) -> None:
    """Tell FreshBooks to forget the grant; the caller forgets the token whatever happens."""
    url = f"{settings.api_url.rstrip('/')}/auth/oauth/revoke"
    payload = {
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "token": token.refresh_token,
    }
    status, body = _post(session, url, payload, settings.timeout_seconds, "revoke the token")
    if status == 429 or status >= 500:
        raise RemoteUnavailableError(
            f"FreshBooks at {_host(url)} could not revoke the token (HTTP {status}); "
            "try again later"
        )
    if status >= 400:
        message = error_message(body) or f"HTTP {status}"
        raise RemoteError(f"FreshBooks refused to revoke the token: {message}")


class TokenManager:
    """Hands out a usable access token, refreshing it before expiry or after a 401.

    Contract: every new pair goes to `store.save` before its access token is
    returned, because the refresh token it replaced is already spent. The
    caller (the run lock) keeps two processes from refreshing at once; the
    internal lock does the same for threads. `may_refresh` says whether this
    process holds that run lock: without it a refresh is refused, never made.
    """

    def __init__(
        self,
        settings: FreshBooksSettings,
        store: TokenStore,
        *,
        session: requests.Session | None = None,
        now: Callable[[], datetime] = _utc_now,
        margin: timedelta = REFRESH_MARGIN,
        may_refresh: Callable[[], bool] | None = None,
    ) -> None:
        self._may_refresh = may_refresh
        self._settings = settings
        self._store = store
        self._session = session or requests.Session()
        self._now = now
        self._margin = margin
        self._lock = threading.Lock()
        self._token: Token | None = None

    def _current(self) -> Token:
        if self._token is None:
            self._token = self._store.load()
        if self._token is None:
            raise AuthRequiredError(f"not logged in to FreshBooks; {LOGIN_HINT}")
        return self._token

    def _refresh(self, token: Token) -> Token:
        if self._may_refresh is not None and not self._may_refresh():
            # The refresh token is single-use: spent here, it is spent for the run that
            # holds the lock too, and that run then fails as if logged out.
            raise LockHeldError(
                "the FreshBooks access token needs a refresh, which only a run holding the "
                "run lock may do; try again when the other run has finished"
            )
        new = refresh_token(self._session, self._settings, token, now=self._now)
        self._store.save(new)
        self._token = new
        log.info("refreshed the FreshBooks access token; it expires at %s", new.expires_at)
        return new

    def access_token(self) -> str:
        """A token valid for at least the margin, refreshed (and saved) first if need be."""
        with self._lock:
            token = self._current()
            if token.expires_within(self._margin, self._now()):
                token = self._refresh(token)
            return token.access_token

    def refresh_after_unauthorized(self, rejected_access_token: str) -> str:
        """A fresh access token after FreshBooks answered 401 to `rejected_access_token`.

        If another thread already replaced the rejected token, its successor is
        returned without spending another refresh token.
        """
        with self._lock:
            token = self._current()
            if token.access_token != rejected_access_token:
                return token.access_token
            return self._refresh(token).access_token
