"""serve-webhook latency and throughput against the FreshBooks sandbox and a real SFTP server.

Latency: a bill is created in the sandbox, which POSTs the signed `bill.create`
webhook to `fbstampli serve-webhook` (a real process, default 2 s debounce);
the clock stops when a bills file naming that bill has its final name in the
SFTP inbound folder. One event at a time, N times (default 100): median, p95,
max. Throughput: signed events for distinct ids from 8 keep-alive clients,
accepted (200) requests per second. Prints figures, asserts nothing.
Run: python bench/bench_webhook.py [events] [throughput_requests]
"""

import csv
import http.client
import io
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, sign  # noqa: E402
from fbstampli.options import Options  # noqa: E402
from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from fbstampli.services.sandbox import connect_home  # noqa: E402

CLIENTS = 8


def connect(home: Path, fb: FreshBooksSandbox, sftp: SftpServer) -> Options:
    options = Options(home=home, env={})
    connect_home(options, fb, sftp, business="bench")
    return options


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def health(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def bills_in(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {row["FreshBooks Bill ID"] for row in csv.DictReader(io.StringIO(text))}


def wait_for_bill(inbound: Path, bill_id: int, seen: set[str], deadline: float) -> float | None:
    """The moment a final-named bills file naming `bill_id` is seen (polled every 5 ms)."""
    wanted = str(bill_id)
    while time.perf_counter() < deadline:
        for path in inbound.iterdir():
            if path.name in seen or not path.name.endswith("-bills.csv"):
                continue
            seen.add(path.name)
            if wanted in bills_in(path):
                return time.perf_counter()
        time.sleep(0.005)
    return None


def latency(fb: FreshBooksSandbox, inbound: Path, events: int) -> list[float]:
    vendor = min(i for i, v in fb.data.vendors.items() if v.get("vis_state", 0) == 0)
    seen = {path.name for path in inbound.iterdir()}
    figures: list[float] = []
    for n in range(events):
        started = time.perf_counter()
        bill_id = fb.create_bill(vendor, bill_number=f"LAT-{n}")  # POSTs bill.create to us
        arrived = wait_for_bill(inbound, bill_id, seen, started + 60)
        if arrived is None:
            print(f"  bill {bill_id}: not delivered within 60 s", file=sys.stderr)
            continue
        figures.append(arrived - started)
    return figures


def throughput(fb: FreshBooksSandbox, port: int, total: int) -> tuple[float, int]:
    verifier = next(c.verifier for c in fb.callbacks[fb.account_id].values() if c.event == "bill")
    accepted = [0] * CLIENTS

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in range(index, total, CLIENTS):
            form = (
                ("name", "bill.update"),
                ("object_id", str(900_000_000 + n)),
                ("account_id", fb.account_id),
            )
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                SIGNATURE_HEADER: sign(form, verifier),
            }
            connection.request("POST", "/webhooks/freshbooks", urlencode(form), headers)
            response = connection.getresponse()
            response.read()
            accepted[index] += response.status == 200
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return sum(accepted) / elapsed, sum(accepted)


def main() -> None:
    events, requests = (int(a) for a in ([*sys.argv[1:], "100", "2000"])[:2])
    folder = Path(tempfile.mkdtemp(prefix="fbstampli-bench-webhook-"))
    root = folder / "sftp"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    with FreshBooksSandbox(emit_events=True) as fb, SftpServer(root) as sftp:
        fb.seed(vendors=20, bills=200, payments=50, seed=5)
        logging.disable(logging.ERROR)  # the SFTP server reports every client hang-up
        home = folder / "home"
        options = connect(home, fb, sftp)
        from fbstampli.services import webhooks as freshbooks
        from fbstampli.services.sync import push_bills

        push_bills(options, dry_run=False, full=False, since=None)
        port = free_port()
        env = {**os.environ, "FBSTAMPLI_HOME": str(home), "PYTHONPATH": str(REPO)}
        with (folder / "serve-webhook.log").open("wb") as log:
            listener = subprocess.Popen(
                [sys.executable, "-m", "fbstampli", "serve-webhook", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            while not health(port):
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port}/webhooks/freshbooks"
            report = freshbooks.webhooks_register(options, url=url)
            print(f"callbacks registered: {report.counts}")
            figures = latency(fb, root / "inbound", events)
            if figures:
                ordered = sorted(figures)
                p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
                print(
                    f"webhook POST -> final file on SFTP, {len(figures)}/{events} events, "
                    f"debounce 2 s: median {statistics.median(ordered):.2f} s, "
                    f"p95 {p95:.2f} s, max {ordered[-1]:.2f} s (target p95 < 5 s)"
                )
            rate, accepted = throughput(fb, port, requests)
            print(
                f"listener: {accepted}/{requests} signed events accepted at {rate:.0f} requests/s "
                f"({CLIENTS} keep-alive clients, one fsync'd insert each)"
            )
        finally:
            listener.send_signal(signal.SIGTERM)
            code = listener.wait(timeout=120)
            print(f"serve-webhook stopped on SIGTERM with exit code {code}")


if __name__ == "__main__":
    main()
