"""The listener's connection budget and request limits, over real sockets on 127.0.0.x.

Linux routes all of 127.0.0.0/8 to the loopback, so a client bound to
127.0.0.2 is, to the listener, another address than one on 127.0.0.1.
"""

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from fbstampli.clock import SystemClock
from fbstampli.listener import HEALTH_PATH, WEBHOOK_PATH, Listener
from fbstampli.listener.gate import Limits
from fbstampli.listener.http import MAX_HEADER_BYTES, MAX_HEADER_LINES
from fbstampli.store import Store

LIMITS = Limits()


@pytest.fixture
def clock() -> SystemClock:
    return SystemClock()  # the listener's timeouts are real


@pytest.fixture
def listener(store: Store) -> Iterator[Listener]:
    # A long request timeout: idle connections keep their places unless the gate cuts them.
    served = Listener(store, wake=lambda: None, port=0, request_timeout=8.0).start()
    yield served
    served.stop(grace=1.0)


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def health_request(sock: socket.socket) -> bytes:
    sock.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.01)


@contextlib.contextmanager
def idle_connections(port: int, sources: list[str], each: int) -> Iterator[list[socket.socket]]:
    socks = [connect(port, source) for source in sources for _ in range(each)]
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_every_answer_closes_the_connection_so_no_client_keeps_a_slot(
    listener: Listener,
) -> None:
    with connect(listener.address[1]) as sock:
        answer = health_request(sock)  # read_all returns only once the server has closed
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in answer
    with connect(listener.address[1]) as sock:
        body = b"verifier=forged&object_id=5"
        sock.sendall(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
            + body
        )
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 202")  # an unwanted handshake: answered, then closed
    assert b"Connection: close" in answer


def test_headers_over_the_byte_budget_are_refused_431_before_they_are_read_whole(
    listener: Listener,
) -> None:
    with connect(listener.address[1]) as sock:
        sock.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: x\r\n".encode())
        with contextlib.suppress(OSError):  # the server may close while we still send
            for n in range(98):
                sock.sendall(f"X-Pad-{n}: ".encode() + b"a" * 65_000 + b"\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431")
    assert listener.stats.rejected[431] == 1


def test_more_header_lines_than_allowed_are_refused_431(listener: Listener) -> None:
    lines = "".join(f"X-Line-{n}: 1\r\n" for n in range(MAX_HEADER_LINES + 1))
    assert len(lines) < MAX_HEADER_BYTES  # the line count, not the bytes, is what refuses it
    with connect(listener.address[1]) as sock:
        sock.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\n{lines}\r\n".encode())
        assert read_all(sock).startswith(b"HTTP/1.1 431")


def test_a_request_line_over_the_budget_is_refused_431(listener: Listener) -> None:
    with connect(listener.address[1]) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /" + b"a" * (MAX_HEADER_BYTES + 10) + b" HTTP/1.1\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 431")


def test_one_address_runs_its_share_its_next_connections_wait_and_others_are_served(
    listener: Listener,
) -> None:
    port = listener.address[1]
    listener._served().gate.limits = replace(LIMITS, slow_after=60.0)  # none cut here
    with idle_connections(port, ["127.0.0.2"], LIMITS.per_address) as idle:
        wait_for(lambda: listener._served().gate.reading_count() == LIMITS.per_address)
        with connect(port, "127.0.0.2") as queued, connect(port) as other:
            queued.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert health_request(other).startswith(b"HTTP/1.1 200")  # served at once
            queued.settimeout(0.5)
            with pytest.raises(TimeoutError):
                queued.recv(1)  # waiting its turn behind its address's 16
            idle[0].close()
            queued.settimeout(5)
            assert read_all(queued).startswith(b"HTTP/1.1 200")  # served once one ended


def test_full_reading_slots_refuse_a_newcomer_until_a_slow_one_can_be_cut(
    listener: Listener,
) -> None:
    port = listener.address[1]
    sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert len(sources) * LIMITS.per_address == LIMITS.reading
    gate = listener._served().gate
    gate.limits = replace(LIMITS, slow_after=60.0)
    with idle_connections(port, sources, LIMITS.per_address):
        wait_for(lambda: gate.reading_count() == LIMITS.reading)
        with connect(port) as early:  # none of them has been slow for long yet: no room
            assert health_request(early) == b""
        assert listener.stats.rejected[503] == 1
        gate.limits = replace(LIMITS, slow_after=0.2)
        time.sleep(0.3)
        with connect(port) as later:  # now the slowest is cut for it
            assert health_request(later).startswith(b"HTTP/1.1 200")
        assert gate.cut == 1


def test_a_new_connection_of_an_address_at_its_share_cuts_that_address_slowest_reader(
    listener: Listener,
) -> None:
    port = listener.address[1]
    gate = listener._served().gate
    gate.limits = replace(LIMITS, slow_after=0.2)
    with idle_connections(port, ["127.0.0.2"], LIMITS.per_address):
        wait_for(lambda: gate.reading_count() == LIMITS.per_address)
        time.sleep(0.3)
        with connect(port, "127.0.0.2") as newcomer:
            assert health_request(newcomer).startswith(b"HTTP/1.1 200")
        assert gate.cut == 1
