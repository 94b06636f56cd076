"""Reading a listing ahead in a worker thread: same items, same order, same errors, no strays."""

import threading
from collections.abc import Iterator
from contextlib import closing

import pytest

from fbstampli.errors import AuthRequiredError, RemoteUnavailableError
from fbstampli.store import Store
from fbstampli.sync import fetch
from fbstampli.sync.prefetch import read_ahead
from tests.support.fakes import ListSource
from tests.unit.test_push_engine import bill, payment, vendor

WAIT = 10.0  # seconds a test waits for the worker before calling it stuck (never in a pass)


class Pages:
    """An iterator that records how far it was read, and whether it was closed and where."""

    def __init__(self, count: int, *, fail_at: int | None = None, error: Exception | None = None):
        self.count = count
        self.fail_at = fail_at
        self.error = error or RemoteUnavailableError("FreshBooks did not answer; try again later")
        self.read = 0
        self.read_event: dict[int, threading.Event] = {i: threading.Event() for i in range(count)}
        self.closed_in: str | None = None

    def __iter__(self) -> Iterator[int]:
        try:
            for page in range(self.count):
                if page == self.fail_at:
                    raise self.error
                self.read = page + 1
                self.read_event[page].set()
                yield page
        finally:
            self.closed_in = threading.current_thread().name


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "test-read-ahead"]


def test_every_item_arrives_once_in_order() -> None:
    assert list(read_ahead(iter(Pages(50)), name="test-read-ahead")) == list(range(50))
    assert workers() == []


def test_the_next_item_is_read_while_the_consumer_holds_the_last() -> None:
    pages = Pages(5)
    with closing(read_ahead(iter(pages), ahead=1, name="test-read-ahead")) as ahead:
        assert next(ahead) == 0
        # The consumer is busy with page 0; the worker has read page 1 meanwhile.
        assert pages.read_event[1].wait(WAIT)
        assert list(ahead) == [1, 2, 3, 4]


def test_reading_ahead_stays_bounded() -> None:
    pages = Pages(20)
    with closing(read_ahead(iter(pages), ahead=2, name="test-read-ahead")) as ahead:
        assert next(ahead) == 0
        assert pages.read_event[3].wait(WAIT)  # 1 and 2 queued, 3 waiting to be handed over
        assert not pages.read_event[5].wait(0.2)
        assert pages.read <= 4


def test_an_error_reaches_the_consumer_unchanged_after_the_items_before_it() -> None:
    error = RemoteUnavailableError("FreshBooks at x did not answer bills (page 3); try again later")
    got: list[int] = []
    ahead = read_ahead(iter(Pages(9, fail_at=3, error=error)), name="test-read-ahead")
    with pytest.raises(RemoteUnavailableError) as raised:
        got.extend(ahead)
    assert raised.value is error
    assert str(raised.value) == str(error)
    assert got == [0, 1, 2]
    assert workers() == []


def test_closing_early_stops_the_worker_and_closes_the_iterator_in_its_thread() -> None:
    pages = Pages(1000)
    with closing(read_ahead(iter(pages), ahead=1, name="test-read-ahead")) as ahead:
        assert next(ahead) == 0
        assert next(ahead) == 1
    assert workers() == []  # joined before `closing` returned
    assert pages.closed_in == "test-read-ahead"
    assert pages.read <= 4


def test_an_error_in_the_consumer_stops_the_worker() -> None:
    pages = Pages(1000)

    class Boom(Exception):
        pass

    def consume() -> None:
        with closing(read_ahead(iter(pages), name="test-read-ahead")) as ahead:
            for page in ahead:
                if page == 2:
                    raise Boom

    with pytest.raises(Boom):
        consume()
    assert workers() == []
    assert pages.read < 10


def test_an_auth_error_mid_listing_reaches_the_streamed_sync_as_itself() -> None:
    class FailingSource(ListSource):
        def list_bills(self, *, vis_state: object = None) -> Iterator:  # type: ignore[override]
            yield from self.bills[:3]
            raise AuthRequiredError(
                "FreshBooks rejected the access token; run `fbstampli auth login`"
            )

    source = FailingSource(
        vendors=[vendor(1)], bills=[bill(10 + i, 1) for i in range(6)], payments=[]
    )
    seen: list[int] = []
    threads: set[str] = set()

    def advance(amount: int) -> None:
        seen.append(amount)
        threads.add(threading.current_thread().name)

    slices = fetch.fetch_all_chunks(source, include_deleted=False, advance=advance, size=2)
    with pytest.raises(AuthRequiredError, match="run `fbstampli auth login`"):
        list(slices)
    assert threads == {threading.current_thread().name}  # progress told in the caller's thread
    assert seen == [1, 2]  # the vendor, then the one full slice of bills before the error


def test_streamed_slices_hold_every_object_once_in_listing_order() -> None:
    source = ListSource(
        vendors=[vendor(v) for v in range(1, 8)],
        bills=[bill(10 + i, 1) for i in range(13)],
        payments=[payment(100 + i, 10 + i) for i in range(11)],
    )
    advanced: list[int] = []
    slices = list(
        fetch.fetch_all_chunks(source, include_deleted=False, advance=advanced.append, size=3)
    )
    assert [v.fb_id for s in slices for v in s.vendors] == list(range(1, 8))
    assert [b.fb_id for s in slices for b in s.bills] == [10 + i for i in range(13)]
    assert [p.fb_id for s in slices for p in s.payments] == [100 + i for i in range(11)]
    assert all(len(list(s.objects())) <= 3 for s in slices)
    assert sum(advanced) == 7 + 13 + 11


def test_a_write_from_the_reading_thread_is_not_undone_by_the_consumers_rollback(
    store: Store,
) -> None:
    """A token refreshed by the worker mid-listing must be committed on its own: had it joined
    the consumer's open slice transaction, that slice's rollback would lose the spent token."""
    inside = threading.Event()
    written = threading.Event()

    def worker() -> None:
        assert inside.wait(WAIT)
        with store.transaction():
            store.put_value("token", "new")
        written.set()

    thread = threading.Thread(target=worker)
    thread.start()

    class Rollback(Exception):
        pass

    def half_a_slice() -> None:
        with store.transaction():
            store.put_value("slice", "half")
            inside.set()
            assert not written.wait(0.3)  # the worker waits for this transaction to end
            raise Rollback

    with pytest.raises(Rollback):
        half_a_slice()
    thread.join(WAIT)
    assert written.is_set()
    assert store.get_value("token") == "new"
    assert store.get_value("slice") is None
