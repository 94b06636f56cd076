"""Workers of several businesses sharing push slots (`webhook.pushes_at_once` of
`serve-webhook --all`): no more push at once than the slots, each business still pushes, and a
worker waiting for a slot stops at once."""

import threading
import time

from fbstampli.listener import Worker
from tests.support.local_http import wait_for


class Pushes:
    """Drains that take a while and record how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.done = 0

    def __call__(self) -> int:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.1)
        with self.lock:
            self.now -= 1
            self.done += 1
        return 0


def test_businesses_sharing_two_slots_never_push_more_than_two_at_once() -> None:
    pushes = Pushes()
    slots = threading.Semaphore(2)
    workers = [Worker(pushes, debounce=0.0, slots=slots).start() for _ in range(6)]
    try:
        for worker in workers:
            worker.wake()
        wait_for(lambda: all(worker.state.runs == 1 for worker in workers))
        assert pushes.done == 6
        assert pushes.most == 2
    finally:
        for worker in workers:
            assert worker.stop(5)


def test_a_worker_waiting_for_a_slot_stops_at_once_without_pushing() -> None:
    pushes = Pushes()
    slots = threading.Semaphore(0)  # every slot taken, for ever
    worker = Worker(pushes, debounce=0.0, slots=slots).start()
    worker.wake()
    wait_for(lambda: worker.state.running)
    started = time.monotonic()
    assert worker.stop(5)
    assert time.monotonic() - started < 2
    assert pushes.done == 0
    assert worker.idle()
