"""Bill documents through FreshBooks' uploads API: `GET /uploads/attachments/<jwt>`.

The path is the one FreshBooks' own Python SDK uses (`freshbooks/api/uploads.py`): the
answer's body is the file's bytes; an error is JSON with a status of 400 or more. The
scope the login needs is documented nowhere, so a refusal (401 after a token refresh, or
403) is learnt as the fact `DOCUMENTS` and the bill goes without its document, flagged;
the refusal is believed for a day before FreshBooks is asked again.

A document is streamed to a new 0600 file (never read whole, never over a size limit) and
judged by its first bytes; nothing FreshBooks says about it is used as a path or a name.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import cast
from urllib.parse import quote

import requests

from fbstampli.atomic import create_exclusive
from fbstampli.errors import RemoteUnavailableError
from fbstampli.freshbooks.client.errors import (
    TransientError,
    UnauthorizedError,
    retry_after_seconds,
)
from fbstampli.freshbooks.client.session import Session
from fbstampli.models.behaviour import DOCUMENTS
from fbstampli.models.documents import (
    SNIFF_BYTES,
    Document,
    DocumentOutcome,
    DocumentProblem,
    sniff,
)

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
# A JWT is three base64url parts; anything else is not put into a URL.
_JWT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,2}$")


class _Refused(Exception):
    """The login may not read uploads (401 after a refresh, or 403)."""


class Uploads(Session):
    """Downloading a bill's document, for the client that lists the bills."""

    def download_document(self, jwt: str, dest: Path, *, max_bytes: int) -> DocumentOutcome:
        """Stream the document `jwt` names into the new file `dest` (0600).

        `dest` exists afterwards only when a `Document` is returned; every problem is
        an outcome, never an exception, so one bill's document never stops the others.
        """
        if not _JWT.fullmatch(jwt) or len(jwt) > 4096:
            return DocumentOutcome(jwt, problem=DocumentProblem.MISSING, detail="not a token")
        if self.learnt.stands(DOCUMENTS, "refused"):
            return DocumentOutcome(jwt, problem=DocumentProblem.SCOPE_MISSING)
        path = f"/uploads/attachments/{quote(jwt, safe='')}"
        try:
            outcome = self._download(path, jwt, dest, max_bytes)
        except _Refused as refused:
            self.learnt.learn(DOCUMENTS, "refused", str(refused))
            return DocumentOutcome(jwt, problem=DocumentProblem.SCOPE_MISSING)
        except RemoteUnavailableError as error:
            return DocumentOutcome(jwt, problem=DocumentProblem.DOWNLOAD_FAILED, detail=str(error))
        if outcome.problem is not DocumentProblem.MISSING:
            self.learnt.learn(DOCUMENTS, "allowed", "a document was downloaded")
        return outcome

    def _download(self, path: str, jwt: str, dest: Path, max_bytes: int) -> DocumentOutcome:
        access = self._tokens.access_token()
        what = "a bill's document"
        for refreshed in (False, True):

            def attempt(access: str = access) -> DocumentOutcome:
                return self._fetch_once(path, access, jwt, dest, max_bytes)

            try:
                return cast(
                    DocumentOutcome, self._with_retries(attempt, idempotent=True, what=what)
                )
            except UnauthorizedError:
                if refreshed:
                    raise _Refused("HTTP 401 on /uploads/attachments after a refresh") from None
                access = self._tokens.refresh_after_unauthorized(access)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch_once(
        self, path: str, access: str, jwt: str, dest: Path, max_bytes: int
    ) -> DocumentOutcome:
        try:
            with self._sending:
                response = self._session.get(
                    self._base + path,
                    headers={"Authorization": f"Bearer {access}", "Accept": "*/*"},
                    timeout=self._settings.timeout_seconds,
                    allow_redirects=False,  # the bearer token goes to the configured host only
                    stream=True,
                )
                with response:
                    return _answer(response, jwt, dest, max_bytes)
        except requests.Timeout:
            raise TransientError("timed out") from None
        except requests.RequestException as error:
            raise TransientError(f"connection failed: {type(error).__name__}") from None


def _answer(response: requests.Response, jwt: str, dest: Path, max_bytes: int) -> DocumentOutcome:
    status = response.status_code
    if status == 401:
        raise UnauthorizedError("HTTP 401")
    if status == 403:
        raise _Refused("HTTP 403 on /uploads/attachments")
    if status == 404:
        return DocumentOutcome(jwt, problem=DocumentProblem.MISSING, detail="HTTP 404")
    if status == 429 or status >= 500:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        raise TransientError(f"HTTP {status}", status=status, retry_after=retry_after)
    if status != 200:
        detail = f"HTTP {status}"
        return DocumentOutcome(jwt, problem=DocumentProblem.DOWNLOAD_FAILED, detail=detail)
    stated = response.headers.get("Content-Length", "")
    if stated.isdigit() and int(stated) > max_bytes:
        return DocumentOutcome(jwt, problem=DocumentProblem.TOO_LARGE, detail=f"{stated} bytes")
    return _stream(response, jwt, dest, max_bytes)


def _stream(response: requests.Response, jwt: str, dest: Path, max_bytes: int) -> DocumentOutcome:
    """Write the body to `dest` chunk by chunk; remove it again on any problem."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    problem: DocumentProblem | None = None
    try:
        with create_exclusive(dest) as out:
            for chunk in response.iter_content(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    problem = DocumentProblem.TOO_LARGE
                    break
                if len(head) < SNIFF_BYTES:
                    head += chunk[:SNIFF_BYTES]
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    media = sniff(head)
    if problem is None and media is None:
        problem = DocumentProblem.REFUSED_TYPE
    if problem is not None or media is None:
        dest.unlink(missing_ok=True)
        detail = f"more than {max_bytes} bytes" if problem is DocumentProblem.TOO_LARGE else ""
        return DocumentOutcome(jwt, problem=problem, detail=detail)
    return DocumentOutcome(jwt, document=Document(digest.hexdigest(), size, media))
