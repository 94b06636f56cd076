"""`serve-webhook --all` for a firm of many businesses: each business's state is opened by its
first callback, closed again when idle, and one that cannot be opened fails alone.

Real parts: 30 business homes with real encrypted states (made through the services
`business add` uses, against the FreshBooks sandbox and a real SFTP server), the
installation's listener on a real port, requests over HTTP. What is open is read from
the listener's own health document, never inferred from timing.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from fbstampli.clock import SystemClock
from fbstampli.errors import LockHeldError
from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, sign
from fbstampli.listener import InstallationListener
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.sandbox.fb_data import Business
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.services.webhooks import serve_webhook
from fbstampli.services.webhooks_all import installation_listener
from fbstampli.store import events as hooks
from fbstampli.store import open_state
from tests.support.firm import add_businesses, firm_accounts
from tests.support.local_http import request_json, wait_for

pytestmark = pytest.mark.slow  # 30 homes are made once for the module: seconds

SIZE = 30
VERIFIER = "firm-verifier-of-callback-1"


@dataclass
class Firm:
    folder: Path
    freshbooks: FreshBooksSandbox
    accounts: dict[str, Business]
    homes: dict[str, Path]


@pytest.fixture(scope="module")
def firm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firm]:
    """30 businesses on one sandbox login and one SFTP server; the first one's callback
    verified (its verifier stored as `webhooks register` would)."""
    tmp_path = tmp_path_factory.mktemp("firm")
    names = [f"client-{index:02d}" for index in range(SIZE)]
    accounts = dict(zip(names, firm_accounts(names), strict=True))
    root = tmp_path / "stampli"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    with (
        FreshBooksSandbox(businesses=list(accounts.values())) as freshbooks,
        SftpServer(root) as sftp,
    ):
        homes = add_businesses(tmp_path / "firm", freshbooks, sftp, accounts, bills=1)
        store, _ = open_state(homes[names[0]] / "state.db", {}, SystemClock())
        try:
            hooks.confirm_verifier(store, 1, VERIFIER)
        finally:
            store.close()
        yield Firm(tmp_path / "firm", freshbooks, accounts, homes)


@contextmanager
def serving(
    firm: Firm, report: RunReport | None = None, **settings: str
) -> Iterator[InstallationListener]:
    """`serve-webhook --all` for the firm, in this process, with the given settings."""
    env = {f"FBSTAMPLI_WEBHOOK_{key.upper()}": value for key, value in settings.items()}
    options = Options(home=firm.folder, env=env)
    with installation_listener(
        options, host="127.0.0.1", port=0, report=report or RunReport("serve-webhook")
    ) as listener:
        yield listener


def health(listener: InstallationListener) -> dict[str, Any]:
    status, document = request_json(listener.address[1], "GET", "/healthz")
    assert status == 200
    return document


def open_ones(listener: InstallationListener) -> list[str]:
    businesses = health(listener)["businesses"]
    return sorted(name for name, each in businesses.items() if each.get("open"))


def handshake(listener: InstallationListener, name: str) -> int:
    """A verification POST nobody awaits: it needs the business's state, and changes nothing."""
    body = urlencode({"verifier": "nobody-asked", "object_id": "9"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    path = f"/webhooks/freshbooks/{name}"
    return request_json(listener.address[1], "POST", path, body, headers)[0]


def test_a_callback_for_one_business_opens_that_business_only(firm: Firm) -> None:
    name = "client-00"
    with serving(firm) as listener:
        before = health(listener)
        assert (before["known"], before["open"]) == (SIZE, 0)
        assert before["status"] == "ok"
        pairs = (
            ("name", "bill.update"),
            ("object_id", "1"),
            ("account_id", firm.accounts[name].account_id),
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: sign(pairs, VERIFIER),
        }
        status, answer = request_json(
            listener.address[1],
            "POST",
            f"/webhooks/freshbooks/{name}",
            urlencode(pairs).encode(),
            headers,
        )
        assert (status, answer) == (200, {"result": "queued"})  # its verifier, read on demand
        assert open_ones(listener) == [name]
        wait_for(lambda: health(listener)["businesses"][name]["worker"]["runs"] >= 1)
        after = health(listener)
        assert after["open"] == 1
        assert after["businesses"][name]["accepted"] == 1
        assert after["businesses"]["client-01"]["open"] is False


def test_idle_businesses_are_closed_and_their_next_callback_opens_them_again(firm: Firm) -> None:
    with serving(firm, idle_close_seconds="1") as listener:
        for name in ("client-03", "client-04", "client-05"):
            assert handshake(listener, name) == 202
        assert open_ones(listener) == ["client-03", "client-04", "client-05"]
        wait_for(lambda: open_ones(listener) == [])
        assert handshake(listener, "client-04") == 202
        assert open_ones(listener) == ["client-04"]
        assert health(listener)["businesses"]["client-04"]["handshakes_ignored"] == 2


def test_no_more_than_max_open_businesses_stay_open_the_least_recently_used_closed_first(
    firm: Firm,
) -> None:
    names = [f"client-{index:02d}" for index in range(10, 20)]
    with serving(firm, max_open_businesses="4") as listener:
        for index, name in enumerate(names):
            assert handshake(listener, name) == 202
            assert len(open_ones(listener)) == min(index + 1, 4)
        assert open_ones(listener) == names[-4:]
        assert handshake(listener, names[-4]) == 202  # used again: now the most recent
        assert handshake(listener, names[0]) == 202
        assert open_ones(listener) == sorted([names[-4], names[-2], names[-1], names[0]])


def test_a_business_whose_state_cannot_be_opened_answers_503_and_the_others_are_served(
    firm: Firm, tmp_path: Path
) -> None:
    broken = firm.homes["client-07"] / "state.key"
    shutil.move(broken, tmp_path / "state.key")  # its key lost since the listener started
    report = RunReport("serve-webhook")
    try:
        with serving(firm, report) as listener:
            assert health(listener)["status"] == "ok"  # not known to be broken before a callback
            assert handshake(listener, "client-07") == 503
            assert handshake(listener, "client-08") == 202
            document = health(listener)
            assert document["status"] == "degraded"
            assert document["businesses"]["client-07"]["status"] == "unavailable"
            assert "key" in document["businesses"]["client-07"]["reason"]
            assert open_ones(listener) == ["client-08"]
            assert handshake(listener, "client-07") == 503  # not retried at every request
            assert document["businesses"]["client-07"]["open"] is False
        assert [p for p in report.problems if "client" in p] == [
            f"business client-07 not served: {document['businesses']['client-07']['reason']}"
        ]
    finally:
        shutil.move(tmp_path / "state.key", broken)


def test_a_business_not_yet_opened_is_still_locked_against_a_second_listener(firm: Firm) -> None:
    with serving(firm) as listener:
        assert open_ones(listener) == []
        single = Options(home=firm.homes["client-09"], env={})
        with pytest.raises(LockHeldError, match="serve-webhook"):
            serve_webhook(single, host="127.0.0.1", port=0)


def test_events_left_queued_are_pushed_when_their_business_is_next_opened(firm: Firm) -> None:
    name = "client-20"
    store, _ = open_state(firm.homes[name] / "state.db", {}, SystemClock())
    try:
        hooks.enqueue_event(store, "bill.update", 1, firm.accounts[name].account_id)
    finally:
        store.close()
    with serving(firm) as listener:
        assert health(listener)["businesses"][name]["worker"]["runs"] == 0  # not opened yet
        assert handshake(listener, name) == 202
        wait_for(lambda: health(listener)["businesses"][name]["worker"]["runs"] >= 1)
        assert health(listener)["businesses"][name]["queued_events"] == 0
