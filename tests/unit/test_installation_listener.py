"""One port for several businesses: routing by path, each business's own verifiers and account.

Real HTTP on 127.0.0.1 and two real encrypted stores; the push is not run
(`wake` only counts), so these pin down what reaches which store.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from fbstampli.clock import SystemClock
from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, sign
from fbstampli.listener import InstallationListener, Listener
from fbstampli.store import Store, credentials
from fbstampli.store import events as hooks
from fbstampli.store.keys import KeySource, StateKey, new_key_hex
from tests.support.local_http import request_json


@dataclass(frozen=True)
class Side:
    account: str
    business_id: str
    verifier: str


ALPHA = Side("ALPHA1", "111000", "alpha-verifier")
BETA = Side("BETA22", "222000", "beta-verifier")


def event(account: str, business_id: str | None, object_id: int = 7) -> tuple[tuple[str, str], ...]:
    pairs = [("name", "bill.update"), ("object_id", str(object_id)), ("account_id", account)]
    if business_id is not None:
        pairs.append(("business_id", business_id))
    return tuple(pairs)


@dataclass
class Front:
    listener: InstallationListener
    stores: dict[str, Store]

    def post(self, path: str, pairs: tuple[tuple[str, str], ...], verifier: str) -> int:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: sign(pairs, verifier),
        }
        port = self.listener.address[1]
        return request_json(port, "POST", path, urlencode(pairs).encode(), headers)[0]

    def queued(self, name: str) -> list[tuple[int, str]]:
        rows = self.stores[name].query("SELECT object_id, account_id FROM events")
        return [(int(row["object_id"]), str(row["account_id"])) for row in rows]


def _store(folder: Path, side: Side, *, logged_in: bool = True) -> Store:
    store = Store.create(
        folder / f"{side.account}.db", StateKey(new_key_hex(), KeySource.FILE), SystemClock()
    )
    with store.transaction():
        if logged_in:
            credentials.choose_business(
                store, credentials.Business(side.account, side.business_id, side.account)
            )
        hooks.save_pending_verifier(store, 1, side.verifier)
        hooks.confirm_verifier(store, 1, side.verifier)
    return store


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    stores = {"alpha": _store(tmp_path, ALPHA), "beta": _store(tmp_path, BETA)}
    listeners = {
        name: Listener(store, wake=lambda: None, serve=False, refuse_other_accounts=True)
        for name, store in stores.items()
    }
    listener = InstallationListener(listeners, unavailable={"gamma": "its key is missing"})
    listener.start()
    try:
        yield Front(listener, stores)
    finally:
        listener.stop()
        for store in stores.values():
            store.close()


def test_each_business_path_queues_into_that_business_only(front: Front) -> None:
    alpha = front.post("/webhooks/freshbooks/alpha", event("ALPHA1", "111000", 1), "alpha-verifier")
    beta = front.post("/webhooks/freshbooks/beta", event("BETA22", "222000", 2), "beta-verifier")
    assert (alpha, beta) == (200, 200)
    assert front.queued("alpha") == [(1, "ALPHA1")]
    assert front.queued("beta") == [(2, "BETA22")]


def test_a_verifier_of_one_business_cannot_queue_for_another(front: Front) -> None:
    forged = event("BETA22", "222000")
    assert front.post("/webhooks/freshbooks/alpha", forged, "alpha-verifier") == 403
    assert front.post("/webhooks/freshbooks/beta", forged, "alpha-verifier") == 401
    wrong_business = event("ALPHA1", "222000")
    assert front.post("/webhooks/freshbooks/alpha", wrong_business, "alpha-verifier") == 403
    assert front.queued("alpha") == front.queued("beta") == []


def test_an_event_without_a_business_id_is_judged_by_its_account(front: Front) -> None:
    assert front.post("/webhooks/freshbooks/alpha", event("ALPHA1", None), "alpha-verifier") == 200
    assert front.queued("alpha") == [(7, "ALPHA1")]


def test_unknown_and_unavailable_businesses_and_other_paths(front: Front) -> None:
    pairs = event("ALPHA1", "111000")
    assert front.post("/webhooks/freshbooks/nobody", pairs, "alpha-verifier") == 404
    assert front.post("/webhooks/freshbooks/gamma", pairs, "alpha-verifier") == 503
    assert front.post("/webhooks/freshbooks", pairs, "alpha-verifier") == 404  # no bare path
    port = front.listener.address[1]
    assert request_json(port, "GET", "/webhooks/freshbooks/alpha")[0] == 405
    status, health = request_json(port, "GET", "/healthz")
    assert status == 200
    assert health["status"] == "degraded"
    businesses = health["businesses"]
    assert isinstance(businesses, dict)
    assert set(businesses) == {"alpha", "beta", "gamma"}
    assert front.queued("alpha") == []


def test_a_business_with_no_login_yet_takes_no_events(tmp_path: Path) -> None:
    store = _store(tmp_path, ALPHA, logged_in=False)
    listener = InstallationListener(
        {"alpha": Listener(store, wake=lambda: None, serve=False, refuse_other_accounts=True)}
    ).start()
    try:
        served = Front(listener, {"alpha": store})
        pairs = event("ALPHA1", "111000")
        assert served.post("/webhooks/freshbooks/alpha", pairs, "alpha-verifier") == 403
        assert served.queued("alpha") == []
    finally:
        listener.stop()
        store.close()
