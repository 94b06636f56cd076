"""Webhook signatures follow docs/FRESHBOOKS-BEHAVIOUR.md §3.5 and never raise on hostile input."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fbstampli.freshbooks import webhooks
from fbstampli.freshbooks.webhooks import (
    parse_event,
    parse_verification,
    sign,
    verify_signature,
)
from tests.support.summary import fuzz_case

BODY = (
    b"name=bill.update&object_id=123&account_id=ABC123&business_id=6543&identity_id=1234&user_id=1"
)
VERIFIER = "sEcReT-verifier"
# Computed outside Python with:
# printf '%s' '{"name": "bill.update", "object_id": "123", "account_id": "ABC123",
#   "business_id": "6543", "identity_id": "1234", "user_id": "1"}'
#   | openssl dgst -sha256 -hmac 'sEcReT-verifier' -binary | base64
KNOWN_SIGNATURE = "Bdet06mfMI2a8pERIi4IG85mTmu225SZ31bct+z98H4="

# json.dumps escapes non-ASCII as \uXXXX; openssl was given that escaped text and key "k".
NON_ASCII_BODY = b"name=bill_vendor.create&note=Caf%C3%A9+%E2%80%93+ok&empty="
NON_ASCII_SIGNATURE = "ZMIuWFsoJyhFZQ4lu5Asdlzy4TYmkO4p+PdHO4242+A="


def test_known_vector_verifies() -> None:
    assert verify_signature(BODY, KNOWN_SIGNATURE, VERIFIER)


def test_sign_reproduces_the_known_vector() -> None:
    pairs = [
        ("name", "bill.update"),
        ("object_id", "123"),
        ("account_id", "ABC123"),
        ("business_id", "6543"),
        ("identity_id", "1234"),
        ("user_id", "1"),
    ]
    assert sign(pairs, VERIFIER) == KNOWN_SIGNATURE


def test_non_ascii_and_blank_values_are_signed_as_json_dumps_renders_them() -> None:
    assert verify_signature(NON_ASCII_BODY, NON_ASCII_SIGNATURE, "k")
    assert not verify_signature(NON_ASCII_BODY.replace(b"&empty=", b""), NON_ASCII_SIGNATURE, "k")


def test_tampered_field_is_rejected() -> None:
    assert not verify_signature(
        BODY.replace(b"object_id=123", b"object_id=124"), KNOWN_SIGNATURE, VERIFIER
    )


def test_reordered_fields_are_rejected() -> None:
    reordered = b"object_id=123&name=bill.update" + BODY[len(b"name=bill.update&object_id=123") :]
    assert not verify_signature(reordered, KNOWN_SIGNATURE, VERIFIER)


def test_wrong_key_is_rejected() -> None:
    assert not verify_signature(BODY, KNOWN_SIGNATURE, "another-verifier")


def test_missing_or_empty_header_is_rejected() -> None:
    assert not verify_signature(BODY, None, VERIFIER)
    assert not verify_signature(BODY, "", VERIFIER)


def test_empty_verifier_never_verifies() -> None:
    assert not verify_signature(b"a=b", sign([("a", "b")], ""), "")


def test_hex_digest_instead_of_base64_is_rejected() -> None:
    assert not verify_signature(BODY, KNOWN_SIGNATURE.encode().hex(), VERIFIER)


def test_non_utf8_body_is_rejected_without_raising() -> None:
    assert not verify_signature(b"name=\xff\xfe", KNOWN_SIGNATURE, VERIFIER)
    assert not verify_signature(b"name=%FF%FE", KNOWN_SIGNATURE, VERIFIER)


def test_non_ascii_header_is_rejected_without_raising() -> None:
    assert not verify_signature(BODY, "Bdet06mf\u00e9", VERIFIER)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=40)),
        min_size=1,
        max_size=8,
        unique_by=lambda pair: pair[0],
    ),
    st.text(min_size=1, max_size=30),
)
def test_any_form_signed_by_sign_verifies_from_its_encoded_body(
    pairs: list[tuple[str, str]], verifier: str
) -> None:
    body = urlencode(pairs).encode("utf-8")
    assert verify_signature(body, sign(pairs, verifier), verifier)


@given(st.binary(max_size=200), st.text(max_size=60), st.text(max_size=20))
@fuzz_case
def test_garbage_never_raises(body: bytes, header: str, verifier: str) -> None:
    assert verify_signature(body, header, verifier) in (True, False)
    parse_event(body)
    parse_verification(body)


def test_parse_event_reads_every_documented_field() -> None:
    event = parse_event(BODY)
    assert event is not None
    assert (event.name, event.object_id, event.account_id) == ("bill.update", 123, "ABC123")
    assert (event.business_id, event.identity_id, event.user_id) == (6543, 1234, 1)
    assert event.resource == "bill"


def test_parse_event_rejects_a_body_without_object_id() -> None:
    assert parse_event(b"name=bill.update&account_id=ABC123") is None


def test_parse_verification_keeps_the_verifier_out_of_repr() -> None:
    request = parse_verification(b"verifier=abcDEF123&object_id=77")
    assert request is not None
    assert request.callback_id == 77
    assert request.verifier == "abcDEF123"
    assert "abcDEF123" not in repr(request)


def test_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """An `==` would leak, byte by byte, how much of a forged signature is right."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", recording)
    good = sign(parse_qsl(BODY.decode()), VERIFIER)
    assert verify_signature(BODY, good, VERIFIER)
    assert not verify_signature(BODY, "A" + good[1:], VERIFIER)
    assert [given for _, given in compared] == [good.encode(), ("A" + good[1:]).encode()]
