"""OAuth pieces: redirect parsing, token expiry, and TokenManager's save-before-use contract."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from http.client import RemoteDisconnected
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, SSLError

from fbstampli.config import FreshBooksSettings
from fbstampli.errors import AuthRequiredError, ConfigError, RemoteUnavailableError
from fbstampli.freshbooks.oauth import (
    AnswerLostError,
    TokenManager,
    authorize_url,
    exchange_code,
    parse_redirect,
    token_from_response,
)
from fbstampli.models.token import Token

API = "https://api.fb.test"
TOKEN_URL = f"{API}/auth/oauth/token"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SETTINGS = FreshBooksSettings(
    api_url=API,
    auth_url="https://auth.fb.test",
    client_id="cid",
    client_secret="csecret",
    redirect_uri="https://localhost:8765/callback",
)


def token_body(access: str, refresh: str, expires_in: int = 43200) -> dict[str, object]:
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": expires_in,
        "created_at": int(NOW.timestamp()),
        "scope": "user:bills:read",
        "token_type": "Bearer",
    }


class RecordingStore:
    """Remembers the order of events so a test can see save happen before use."""

    def __init__(self, token: Token | None, events: list[str], fail_save: bool = False) -> None:
        self.token = token
        self.events = events
        self.fail_save = fail_save

    def load(self) -> Token | None:
        return self.token

    def save(self, token: Token) -> None:
        if self.fail_save:
            raise OSError("disk full")
        self.events.append(f"save {token.access_token}")
        self.token = token


def test_authorize_url_carries_client_redirect_scope_and_state() -> None:
    url = authorize_url(SETTINGS, "st4te")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://auth.fb.test/oauth/authorize"
    query = parse_qs(parts.query)
    assert query["client_id"] == ["cid"]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["https://localhost:8765/callback"]
    assert query["state"] == ["st4te"]
    assert "user:bills:read" in query["scope"][0]
    assert "csecret" not in url


def test_parse_redirect_reads_the_code_from_a_pasted_url() -> None:
    url = "https://localhost:8765/callback?code=abc123&state=st4te"
    assert parse_redirect(url, state="st4te") == "abc123"


def test_parse_redirect_accepts_a_bare_code() -> None:
    assert parse_redirect("  abc123\n") == "abc123"


def test_parse_redirect_refuses_a_foreign_state() -> None:
    with pytest.raises(AuthRequiredError, match="state mismatch"):
        parse_redirect("https://localhost/callback?code=abc&state=other", state="mine")


def test_parse_redirect_reports_a_denied_consent() -> None:
    with pytest.raises(AuthRequiredError, match="access_denied"):
        parse_redirect("https://localhost/callback?error=access_denied&state=s", state="s")


def test_parse_redirect_without_code_requires_login() -> None:
    with pytest.raises(AuthRequiredError, match="no `code`"):
        parse_redirect("https://localhost/callback?state=s", state="s")


def test_expiry_is_created_at_plus_expires_in_not_now() -> None:
    body = token_body("a", "r", expires_in=600)
    body["created_at"] = int((NOW - timedelta(hours=1)).timestamp())
    token = token_from_response(body, NOW)
    assert token.expires_at == NOW - timedelta(minutes=50)
    assert token.expires_at.tzinfo is UTC


def test_token_repr_hides_both_tokens() -> None:
    token = Token("ACCESS-SECRET", "REFRESH-SECRET", NOW, "s")
    assert "SECRET" not in repr(token)


def test_exchange_code_posts_the_code_and_returns_a_token(requests_mock: rm.Mocker) -> None:
    requests_mock.post(TOKEN_URL, json=token_body("a1", "r1"))
    token = exchange_code(requests.Session(), SETTINGS, "thecode", now=lambda: NOW)
    assert (token.access_token, token.refresh_token) == ("a1", "r1")
    assert requests_mock.last_request is not None
    sent = requests_mock.last_request.json()
    assert sent["grant_type"] == "authorization_code"
    assert sent["code"] == "thecode"
    assert sent["redirect_uri"] == SETTINGS.redirect_uri


def test_exchange_with_a_spent_code_requires_login(requests_mock: rm.Mocker) -> None:
    requests_mock.post(TOKEN_URL, status_code=400, json={"error": "invalid_grant"})
    with pytest.raises(AuthRequiredError, match="authorization code"):
        exchange_code(requests.Session(), SETTINGS, "spent")


def test_wrong_client_secret_is_a_config_error(requests_mock: rm.Mocker) -> None:
    requests_mock.post(TOKEN_URL, status_code=401, json={"error": "invalid_client"})
    with pytest.raises(ConfigError, match="client id or secret") as raised:
        exchange_code(requests.Session(), SETTINGS, "c")
    assert "csecret" not in str(raised.value)


def test_unreachable_token_endpoint_is_temporary(requests_mock: rm.Mocker) -> None:
    requests_mock.post(TOKEN_URL, exc=requests.ConnectTimeout("x"))
    with pytest.raises(RemoteUnavailableError, match=r"api\.fb\.test"):
        exchange_code(requests.Session(), SETTINGS, "c")


def test_manager_returns_a_fresh_token_without_refreshing(requests_mock: rm.Mocker) -> None:
    events: list[str] = []
    store = RecordingStore(Token("a0", "r0", NOW + timedelta(hours=1)), events)
    manager = TokenManager(SETTINGS, store, now=lambda: NOW)
    assert manager.access_token() == "a0"
    assert requests_mock.call_count == 0
    assert events == []


def test_manager_refreshes_within_the_margin_and_saves_before_returning(
    requests_mock: rm.Mocker,
) -> None:
    events: list[str] = []
    store = RecordingStore(Token("a0", "r0", NOW + timedelta(minutes=4)), events)

    def answer(request: object, context: object) -> dict[str, object]:
        events.append("token endpoint")
        return token_body("a1", "r1")

    requests_mock.post(TOKEN_URL, json=answer)
    manager = TokenManager(SETTINGS, store, now=lambda: NOW)
    access = manager.access_token()
    events.append(f"use {access}")
    assert events == ["token endpoint", "save a1", "use a1"]
    assert requests_mock.last_request is not None
    assert requests_mock.last_request.json()["refresh_token"] == "r0"


def test_manager_never_hands_out_a_token_it_could_not_save(requests_mock: rm.Mocker) -> None:
    store = RecordingStore(Token("a0", "r0", NOW), [], fail_save=True)
    requests_mock.post(TOKEN_URL, json=token_body("a1", "r1"))
    manager = TokenManager(SETTINGS, store, now=lambda: NOW)
    with pytest.raises(OSError, match="disk full"):
        manager.access_token()


def test_second_401_for_an_already_replaced_token_does_not_spend_another_refresh(
    requests_mock: rm.Mocker,
) -> None:
    events: list[str] = []
    store = RecordingStore(Token("a0", "r0", NOW + timedelta(hours=5)), events)
    requests_mock.post(TOKEN_URL, json=token_body("a1", "r1"))
    manager = TokenManager(SETTINGS, store, now=lambda: NOW)
    assert manager.refresh_after_unauthorized("a0") == "a1"
    assert manager.refresh_after_unauthorized("a0") == "a1"
    assert requests_mock.call_count == 1
    assert events == ["save a1"]


def lost_answer() -> requests.ConnectionError:
    """What requests raises when FreshBooks closes the socket before answering."""
    return requests.ConnectionError(
        ProtocolError("Connection aborted.", RemoteDisconnected("no answer"))
    )


def never_connected() -> requests.ConnectionError:
    """What requests raises when no connection was made at all."""
    cause = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, TOKEN_URL, cause))  # type: ignore[arg-type]


def expiring_manager(events: list[str]) -> TokenManager:
    store = RecordingStore(Token("a0", "r0", NOW + timedelta(minutes=1)), events)
    return TokenManager(SETTINGS, store, now=lambda: NOW)


def test_a_refresh_whose_answer_was_lost_is_asked_once_more(requests_mock: rm.Mocker) -> None:
    events: list[str] = []
    requests_mock.post(TOKEN_URL, [{"exc": lost_answer()}, {"json": token_body("a1", "r1")}])
    assert expiring_manager(events).access_token() == "a1"
    assert requests_mock.call_count == 2
    assert events == ["save a1"]


def test_a_refresh_that_never_left_is_not_asked_again_in_this_run(
    requests_mock: rm.Mocker,
) -> None:
    requests_mock.post(TOKEN_URL, exc=never_connected())
    with pytest.raises(RemoteUnavailableError, match="cannot reach FreshBooks") as raised:
        expiring_manager([]).access_token()
    assert not isinstance(raised.value, AnswerLostError)
    assert requests_mock.call_count == 1


def test_a_refresh_spent_by_a_lost_answer_says_so_and_asks_for_login(
    requests_mock: rm.Mocker,
) -> None:
    spent = {"error": "invalid_grant", "error_description": "already used"}
    requests_mock.post(TOKEN_URL, [{"exc": lost_answer()}, {"status_code": 400, "json": spent}])
    with pytest.raises(AuthRequiredError, match=r"lost on the way.*fbstampli auth login"):
        expiring_manager([]).access_token()


def test_another_refusal_after_a_lost_answer_keeps_freshbooks_own_reason(
    requests_mock: rm.Mocker,
) -> None:
    refused = {"error": "access_denied", "error_description": "the app was disconnected"}
    requests_mock.post(TOKEN_URL, [{"exc": lost_answer()}, {"status_code": 400, "json": refused}])
    with pytest.raises(AuthRequiredError, match="the app was disconnected") as raised:
        expiring_manager([]).access_token()
    assert "lost" not in str(raised.value)


def test_a_refused_certificate_is_not_taken_for_a_lost_answer(requests_mock: rm.Mocker) -> None:
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrapped = MaxRetryError(None, TOKEN_URL, SSLError(refused))  # type: ignore[arg-type]
    requests_mock.post(TOKEN_URL, exc=requests.exceptions.SSLError(wrapped))
    with pytest.raises(RemoteUnavailableError, match="cannot reach FreshBooks") as raised:
        expiring_manager([]).access_token()
    assert not isinstance(raised.value, AnswerLostError)
    assert requests_mock.call_count == 1


def test_a_tls_failure_after_sending_is_taken_for_a_lost_answer(
    requests_mock: rm.Mocker,
) -> None:
    cut = MaxRetryError(None, TOKEN_URL, SSLError("EOF occurred in violation of protocol"))  # type: ignore[arg-type]
    requests_mock.post(
        TOKEN_URL,
        [{"exc": requests.exceptions.SSLError(cut)}, {"json": token_body("a1", "r1")}],
    )
    assert expiring_manager([]).access_token() == "a1"
    assert requests_mock.call_count == 2


def test_two_lost_answers_are_temporary_and_name_the_login_fix_for_later(
    requests_mock: rm.Mocker,
) -> None:
    requests_mock.post(TOKEN_URL, exc=lost_answer())
    with pytest.raises(AnswerLostError, match=r"try again later.*fbstampli auth login") as raised:
        expiring_manager([]).access_token()
    assert raised.value.exit_code == 75
    assert requests_mock.call_count == 2


def test_a_bare_code_pasted_into_an_interactive_login_is_refused_for_lack_of_state() -> None:
    # The state check proves the login started here; a bare code cannot carry it.
    with pytest.raises(AuthRequiredError, match="whole address"):
        parse_redirect("abc123", state="expected-state")
    url = "https://localhost:8765/callback?code=abc123&state=expected-state"
    assert parse_redirect(url, state="expected-state") == "abc123"
