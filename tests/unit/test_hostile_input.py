"""Hostile input: every parser answers garbage with its own clear error, never a traceback.

Each property feeds arbitrary data to one boundary and accepts exactly two
outcomes: a result, or the boundary's documented error type. Every example is
counted for the run's `fuzz cases tried` line.
"""

import io
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fbstampli.config import load_settings
from fbstampli.errors import ConfigError, ExportParseError, RemoteError, TemplateError
from fbstampli.freshbooks.parse import parse_bill, parse_bill_payment, parse_vendor
from fbstampli.freshbooks.webhooks import parse_event, parse_verification, verify_signature
from fbstampli.sandbox.sftp_server import generate_key_text
from fbstampli.sftp import private_key_kind
from fbstampli.stampli.parse import parse_export
from fbstampli.stampli.template import load_template, parse_template
from tests.support.summary import fuzz_case

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
BILL_KEYS = [
    "id",
    "vendorid",
    "bill_number",
    "issue_date",
    "due_date",
    "currency_code",
    "amount",
    "total_amount",
    "tax_amount",
    "outstanding",
    "paid",
    "status",
    "lines",
    "vis_state",
    "updated_at",
    "created_at",
]


def failure_of(call: Callable[[], object], expected: type[Exception]) -> Exception | None:
    """Run `call`; return the expected error it raised, or None. Anything else propagates."""
    try:
        call()
    except expected as error:
        return error
    return None


bill_like = st.fixed_dictionaries({}, optional=dict.fromkeys(BILL_KEYS, json_values))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(bill_like)
@fuzz_case
def test_freshbooks_bill_json_parses_or_raises_remote_error(data: dict) -> None:
    failure_of(lambda: parse_bill(data), RemoteError)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(json_values)
@fuzz_case
def test_freshbooks_vendor_and_payment_json_parse_or_raise_remote_error(data: object) -> None:
    failure_of(lambda: parse_vendor(data), RemoteError)
    failure_of(lambda: parse_bill_payment(data), RemoteError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.one_of(st.none(), st.text(max_size=60)))
@example(b"name=bill.create&object_id=%C2%B2&account_id=A", None)  # "²" is a digit
@example(("name=bill.create&account_id=A&object_id=" + "9" * 5000).encode(), None)
@example(("verifier=v&object_id=" + "9" * 23).encode(), None)
@fuzz_case
def test_webhook_garbage_is_never_valid_and_never_raises(body: bytes, header: str | None) -> None:
    assert verify_signature(body, header, "a-verifier-of-some-length") is False
    parse_event(body)
    parse_verification(body)


@pytest.mark.parametrize("object_id", ["²", "9" * 5000, "9" * 23, "-1"])
def test_an_event_id_that_is_no_storable_id_makes_no_event(object_id: str) -> None:
    body = urlencode({"name": "bill.create", "object_id": object_id, "account_id": "A"})
    assert parse_event(body.encode()) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
@fuzz_case
def test_stampli_export_bytes_parse_or_raise_export_parse_error(data: bytes) -> None:
    template = load_template(None)
    for name in ("stampli_capture_1.csv", "stampli_payment_1.csv", "stampli_approval_1.xml"):
        error = failure_of(
            lambda name=name: list(parse_export(template, name, io.BytesIO(data))), ExportParseError
        )
        assert error is None or name in str(error)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
@fuzz_case
def test_template_text_loads_or_raises_template_error(text: str) -> None:
    error = failure_of(lambda: parse_template(text, origin="fuzz.toml"), TemplateError)
    assert error is None or "\n" not in str(error)


URLISH = ["http://[::1", "https://h:99999/", "https://:80", "ftp://x", "http://127.0.0.1:1/"]
toml_scalars = st.one_of(
    st.integers(),
    st.booleans(),
    st.text(max_size=20),
    st.floats(allow_nan=False),
    st.sampled_from(["", " ", *URLISH]),
)
# Real keys, so that values reach the checks behind them, and made-up ones.
setting_keys = st.sampled_from(
    ["api_url", "auth_url", "redirect_uri", "ping_url", "host", "port", "max_attempts",
     "timeout_seconds", "inbound_dir", "outbound_dir", "deleted_bills", "max_body_bytes"]
) | st.text(min_size=1, max_size=15)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["freshbooks", "sync", "sftp", "webhook", "pull", "bogus", "stampli", "monitoring"]
        ),
        st.dictionaries(setting_keys, toml_scalars, max_size=4),
        max_size=4,
    ),
    st.dictionaries(
        st.sampled_from(
            [
                "FBSTAMPLI_SYNC_MAX_ATTEMPTS",
                "FBSTAMPLI_WEBHOOK_PORT",
                "FBSTAMPLI_FRESHBOOKS_API_URL",
                "FBSTAMPLI_SYNC_SEND_PAYMENTS",
            ]
        ),
        st.text(max_size=20),
        max_size=3,
    ),
)
@example(sections={"freshbooks": {"\n": 0}}, env={})  # a quoted TOML key may hold a newline
@example(sections={"freshbooks": {"api_url": "http://[::1"}}, env={})  # once a ValueError
@example(sections={"monitoring": {"ping_url": "https://h:99999/"}}, env={})
@example(sections={"webhook": {"host": ""}}, env={})  # once bound every interface
@fuzz_case
def test_config_loads_or_raises_one_config_error(
    tmp_path_factory, sections: dict, env: dict
) -> None:
    path: Path = tmp_path_factory.mktemp("cfg") / "config.toml"
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{json.dumps(key)} = {json.dumps(value)}" for key, value in values.items())
    path.write_text("\n".join(lines))
    error = failure_of(lambda: load_settings({}, env, path), ConfigError)
    assert error is None or "\n" not in str(error)


KEY_TEXTS = [
    generate_key_text("ed25519"),
    generate_key_text("ed25519", passphrase="pass phrase"),
    generate_key_text("ecdsa"),
]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(KEY_TEXTS),
    st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from("AZaz09+/=\n-")), max_size=4),
    st.integers(0, 400),
)
@fuzz_case
def test_a_damaged_private_key_file_is_told_unreadable_never_a_crash(
    text: str, edits: list[tuple[int, str]], cut: int
) -> None:
    damaged = list(text[: len(text) - cut])
    for position, char in edits:
        if damaged:
            damaged[position % len(damaged)] = char
    assert private_key_kind("".join(damaged)) in ("plain", "encrypted", "unreadable")


def test_non_finite_and_absurd_numbers_are_named_setting_errors() -> None:
    env = {
        "FBSTAMPLI_FRESHBOOKS_TIMEOUT_SECONDS": "nan",  # passes every comparison
        "FBSTAMPLI_SFTP_TIMEOUT_SECONDS": "inf",
        "FBSTAMPLI_SYNC_BACKOFF_MAX_HOURS": "99999999999999",  # overflows a timedelta
    }
    error = failure_of(lambda: load_settings({}, env, None), ConfigError)
    assert error is not None
    for key in ("freshbooks.timeout_seconds", "sftp.timeout_seconds", "sync.backoff_max_hours"):
        assert key in str(error)


def test_a_config_file_that_is_not_utf8_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xff\xfe[sync]\n")
    error = failure_of(lambda: load_settings({}, {}, path), ConfigError)
    assert error is not None
    assert "not UTF-8" in str(error)
