"""Read ahead: run an iterator in a worker thread, a bounded number of items ahead.

A whole listing is network-bound (one request per 100 objects) while its
consumer is CPU-bound (render, hash, write each slice). Reading the next pages
while the last slice is ingested overlaps the two. The iterator itself runs in
one thread only, so its requests stay one after another in FreshBooks' order,
with its own sort checks, 429 backoff and token refresh unchanged.

What the worker may not do: commit sync state. It only reads FreshBooks and
hands parsed objects over; every snapshot and delivery is still written by the
consumer, slice by slice, so a kill at any moment loses nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterable
from typing import Generic, TypeVar

from fbstampli.signals import stopping

log = logging.getLogger(__name__)

Item = TypeVar("Item")

# Items read ahead of the consumer: enough to keep the network busy while one slice is
# ingested, few enough that memory still follows the slice, not the account.
AHEAD = 1


class _Ended:
    """The worker's last word: the iterator ran out, or raised `error`."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Handover(Generic[Item]):
    """The queue between the worker and the consumer, and the consumer's request to stop."""

    def __init__(self, ahead: int) -> None:
        self.items: queue.Queue[Item | _Ended] = queue.Queue(maxsize=ahead)
        self.stop = threading.Event()

    def drain(self) -> None:
        """Empty the queue, so a worker blocked handing an item over can go on and see `stop`."""
        while True:
            try:
                self.items.get_nowait()
            except queue.Empty:
                return


def _work(items: Iterable[Item], handover: _Handover[Item]) -> None:
    iterator = iter(items)
    try:
        while not handover.stop.is_set():
            try:
                item = next(iterator)
            except StopIteration:
                handover.items.put(_Ended())
                return
            except BaseException as error:  # noqa: BLE001 - handed to the consumer unchanged
                handover.items.put(_Ended(error))
                return
            handover.items.put(item)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()  # a generator's own cleanup runs here, in the thread that ran it
            except Exception:  # the consumer has stopped; nobody to tell
                log.debug("closing a read-ahead iterator failed", exc_info=True)


def read_ahead(
    items: Iterable[Item], *, ahead: int = AHEAD, name: str = "read-ahead"
) -> Generator[Item]:
    """`items` in order, read by a worker thread up to `ahead` items before they are asked for.

    An exception raised by `items` reaches the consumer as itself (same type,
    same message), after the items before it. When the consumer stops early
    (closes this generator, or raises while it is suspended here and the
    generator is closed), the worker is told to stop, finishes the item it is
    reading (a request is bounded by the client's own timeout and retries) and
    is joined: no thread outlives the listing. The worker is a daemon all the
    same, so an interrupted join (Ctrl-C) never keeps the process alive.
    Close this generator deterministically (`contextlib.closing`) rather than
    leaving it to the garbage collector, or the worker reads on meanwhile.
    """
    if ahead < 1:
        raise ValueError("ahead must be at least 1")
    handover: _Handover[Item] = _Handover(ahead)
    worker = threading.Thread(target=_work, args=(items, handover), name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = handover.items.get()
            if isinstance(item, _Ended):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        handover.stop.set()
        # After `stop`, the worker hands over at most one more item: room for it is made here.
        handover.drain()
        if not stopping():  # a process being stopped ends soon: its daemon is not waited for
            worker.join()
        handover.drain()
