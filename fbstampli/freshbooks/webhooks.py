"""FreshBooks webhook signatures and payloads (docs/FRESHBOOKS-BEHAVIOUR.md §3.4-3.5).

Pure: no network, no clock. Verification never raises on hostile input; it
answers False, so the listener can reply 401 and move on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

SIGNATURE_HEADER = "X-FreshBooks-Hmac-SHA256"


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A change notice; it names the object but carries none of its data, so re-fetch it."""

    name: str  # e.g. "bill.update"
    object_id: int
    account_id: str
    business_id: int | None = None
    identity_id: int | None = None
    user_id: int | None = None

    @property
    def resource(self) -> str:
        """`bill` for `bill.update`: what to re-fetch."""
        return self.name.partition(".")[0]


@dataclass(frozen=True, slots=True)
class VerificationRequest:
    """FreshBooks' handshake POST: PUT `verifier` back to callback `callback_id` to enable it."""

    callback_id: int
    verifier: str = field(repr=False)  # the HMAC key of every later delivery


def _message(pairs: Sequence[tuple[str, str]]) -> bytes:
    # FreshBooks signs json.dumps of the form as a dict: body order, default separators,
    # ASCII escapes. A repeated key keeps its first position and its last value, as dict() does.
    return json.dumps(dict(pairs)).encode("utf-8")


def sign(form_pairs: Sequence[tuple[str, str]], verifier: str) -> str:
    """The header value FreshBooks sends with a body made of `form_pairs` in that order."""
    digest = hmac.new(verifier.encode("utf-8"), _message(form_pairs), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _form_pairs(raw_body: bytes) -> list[tuple[str, str]] | None:
    try:
        text = raw_body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        return None


def verify_signature(raw_body: bytes, signature_header: str | None, verifier: str) -> bool:
    """True only if `signature_header` is FreshBooks' HMAC of exactly this body under `verifier`."""
    if not signature_header or not verifier:
        return False
    pairs = _form_pairs(raw_body)
    if pairs is None:
        return False
    expected = sign(pairs, verifier).encode("ascii")
    try:
        given = signature_header.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


_ID = re.compile(r"[0-9]{1,19}")


def _optional_int(value: str | None) -> int | None:
    """An id as FreshBooks sends it: ASCII digits that fit SQLite. `str.isdigit` is not
    enough: it accepts "²", which int() refuses, and any length, which SQLite refuses."""
    if value is None or not _ID.fullmatch(value.strip()):
        return None
    number = int(value)
    return number if number < 2**63 else None


def parse_event(raw_body: bytes) -> WebhookEvent | None:
    """The event a delivery announces, or None if the body is not a well-formed event."""
    pairs = _form_pairs(raw_body)
    if pairs is None:
        return None
    form = dict(pairs)
    name = form.get("name", "")
    object_id = _optional_int(form.get("object_id"))
    account_id = form.get("account_id", "")
    if "." not in name or object_id is None or not account_id:
        return None
    return WebhookEvent(
        name=name,
        object_id=object_id,
        account_id=account_id,
        business_id=_optional_int(form.get("business_id")),
        identity_id=_optional_int(form.get("identity_id")),
        user_id=_optional_int(form.get("user_id")),
    )


def parse_verification(raw_body: bytes) -> VerificationRequest | None:
    """The handshake, recognised by its `verifier` field (whether it also has `name` is unknown)."""
    pairs = _form_pairs(raw_body)
    if pairs is None:
        return None
    form = dict(pairs)
    verifier = form.get("verifier", "")
    callback_id = _optional_int(form.get("object_id"))
    if not verifier or callback_id is None:
        return None
    return VerificationRequest(callback_id=callback_id, verifier=verifier)
