"""FreshBooks' answers mapped to errors: each HTTP status and error body to one kind.

Every FreshBooks error body stops here and leaves as an `fbstampli.errors` error of
one line built from hosts, paths and ids, never from headers or bodies carrying secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

from fbstampli.errors import AuthRequiredError, RemoteError
from fbstampli.freshbooks.parse import error_message, error_number

MAX_RETRY_AFTER = 120.0  # seconds; a longer Retry-After is cut to this, the run stays bounded
ERRNO_ACCESS_DENIED = 1003
# The read scope each resource needs, named in the message when FreshBooks answers 403.
READ_SCOPES = {
    "bills": "user:bills:read",
    "bill_vendors": "user:bill_vendors:read",
    "bill_payments": "user:bill_payments:read",
}
_SCOPE = re.compile(r"user:[a-z_]+:(?:read|write)")


class NotFoundError(RemoteError):
    """HTTP 404: the object (or the account) does not exist for this login."""


class BadRequestError(RemoteError):
    """HTTP 400: FreshBooks refused a parameter (an unsupported sort or filter, say)."""


class TransientError(Exception):
    """Worth another try within this call (429, 5xx, 409, network, unreadable body)."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class UnauthorizedError(Exception):
    """HTTP 401: the access token is stale; the caller refreshes once."""


class FilterIgnoredError(Exception):
    """A listing by ids named an object not asked for: the filter was not applied."""


def retry_after_seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def interpret(response: requests.Response, what: str, scopes: str) -> object:
    """The body of a usable answer; every other answer raised as the error it means.

    `scopes` are the ones configured, named when a refusal does not say which is missing.
    """
    status = response.status_code
    if status == 204:
        return None
    try:
        body: object = response.json()
    except ValueError:
        body = None
    message = error_message(body) or f"HTTP {status}"
    if 300 <= status < 400:
        raise RemoteError(
            f"FreshBooks answered {what} with a redirect (HTTP {status}); not followed: "
            "a request carrying the token goes nowhere else (check freshbooks.api_url)"
        )
    if status == 401:
        raise UnauthorizedError(message)
    if status == 429:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        raise TransientError("rate limited (HTTP 429)", status=429, retry_after=retry_after)
    if status >= 500 or status == 409:
        raise TransientError(f"HTTP {status}", status=status)
    if status == 403:
        raise AuthRequiredError(scope_message(what, message, response.url, scopes))
    if status == 404:
        raise NotFoundError(f"FreshBooks found no {what}: {message} (HTTP 404)")
    if status == 400:
        raise BadRequestError(f"FreshBooks refused {what}: {message} (HTTP 400)")
    if status >= 400:
        raise RemoteError(f"FreshBooks refused {what}: {message} (HTTP {status})")
    if body is None:
        raise TransientError("unreadable JSON response", status=status)
    _raise_embedded(body, what)
    return body


def _raise_embedded(body: object, what: str) -> None:
    """FreshBooks may report an error with HTTP 200 (docs/FRESHBOOKS-BEHAVIOUR.md §4.3, §5.12)."""
    if isinstance(body, Mapping) and "result" not in (body.get("response") or {}):
        embedded = error_message(body)
        if embedded is not None:
            if error_number(body) == ERRNO_ACCESS_DENIED:
                raise AuthRequiredError(f"FreshBooks refused {what}: {embedded}")
            raise RemoteError(f"FreshBooks refused {what}: {embedded}")


def scope_message(what: str, message: str, url: str, configured: str) -> str:
    """One line naming the scope to enable: FreshBooks' own "Needed:" list, else the
    read scope of the resource asked for."""
    needed = message.partition("Needed")[2] if "Needed" in message else ""
    scopes = _SCOPE.findall(needed)
    if not scopes:
        path = urlsplit(url).path
        scopes = [scope for resource, scope in READ_SCOPES.items() if f"/{resource}/" in path]
    if not scopes:
        return (
            f"FreshBooks refused {what}: the login lacks a permission or scope ({message}); "
            f"run `fbstampli auth login` granting: {configured}"
        )
    named = ", ".join(dict.fromkeys(scopes))
    return (
        f"FreshBooks refused {what}: the login lacks the scope {named}; enable it on your "
        "FreshBooks app (Developer Portal, the app's Scopes), then run `fbstampli auth login`"
    )
