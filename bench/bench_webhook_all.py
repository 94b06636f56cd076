"""`serve-webhook --all` for 10, 50 and 200 businesses: startup, memory idle and after a callback
to each, opened on demand (this code) against every business opened at start (the eager design
of the commit before, run from a copy of its files in the same run).

For each size the businesses are made as in bench_firm.py (one FreshBooks sandbox login, one
SFTP server, a home each) and each gets a confirmed verifier. Each design runs as a real
`fbstampli serve-webhook --all` process: startup is the time until /healthz answers; memory is
the process's RSS (VmRSS) once idle, how fast each event was answered (the first to a
business opens it, in the on-demand design), after one signed `bill.update` to every business (sent
one after another at once; each queued, then pushed by its worker: the businesses had no
first sync, so each push stops at rendering, after its FreshBooks request) and the run's peak
(VmHWM). The on-demand design runs twice: with its default of 4 businesses pushing at once,
and with pushes unbounded (as the eager design pushes). The sandboxes run in
this process and share the machine. Prints figures and the load average; asserts nothing.
Run: python bench/bench_webhook_all.py [sizes, default 10,50,200] [eager commit, default
the first parent of the commit that made the listener open businesses on demand]
"""

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_firm import environment, fbstampli  # noqa: E402
from fbstampli.clock import SystemClock  # noqa: E402
from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, sign  # noqa: E402
from fbstampli.sandbox.fb_data import Business  # noqa: E402
from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from fbstampli.store import events as hooks  # noqa: E402
from fbstampli.store import open_state  # noqa: E402
from tests.support.firm import add_businesses, firm_accounts  # noqa: E402
from tests.support.local_http import free_port  # noqa: E402

VERIFIER = "bench-verifier"
EAGER_COMMIT = "3d66fdc"  # the last commit whose serve-webhook --all opened every business at start


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def post_event(port: int, name: str, account: Business) -> int:
    pairs = (("name", "bill.update"), ("object_id", "1"), ("account_id", account.account_id))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        SIGNATURE_HEADER: sign(pairs, VERIFIER),
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", f"/webhooks/freshbooks/{name}", urlencode(pairs), headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def memory_mib(pid: int) -> dict[str, float]:
    figures = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                number = int(value.split()[0])
                figures[key] = number / 1024 if key != "Threads" else number
    return figures


def pushed_everywhere(port: int) -> bool:
    """Every business's worker has run (or failed) once."""
    businesses = get(port, "/healthz")[1]["businesses"]
    if not isinstance(businesses, dict):
        raise TypeError(f"/healthz gave no businesses: {businesses!r}")
    return all(
        each.get("worker", {}).get("runs", 0) + each.get("worker", {}).get("failures", 0) >= 1
        for each in businesses.values()
    )


def one_design(
    label: str, code: Path, firm: Path, accounts: dict[str, Business], **settings: str
) -> None:
    port = free_port()
    extra = {f"FBSTAMPLI_WEBHOOK_{key.upper()}": value for key, value in settings.items()}
    env = environment(firm, {"PYTHONPATH": str(code), **extra})
    started = time.perf_counter()
    process = subprocess.Popen(
        fbstampli("-q", "serve-webhook", "--all", "--port", str(port)),
        env=env,
        cwd=code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.02)
        startup = time.perf_counter() - started
        time.sleep(1.0)
        idle = memory_mib(process.pid)
        sent = time.perf_counter()
        statuses, answered = [], []
        for name, account in accounts.items():
            posted = time.perf_counter()
            statuses.append(post_event(port, name, account))
            answered.append(time.perf_counter() - posted)
        while not pushed_everywhere(port):
            time.sleep(0.2)
        pushed = time.perf_counter() - sent
        time.sleep(6.0)  # the idle sweep (every 5 s) closes what is over the bound
        after = memory_mib(process.pid)
        health = get(port, "/healthz")[1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=300)
    accepted = sum(1 for status in statuses if status == 200)
    print(
        f"  {label}: startup {startup:.2f} s, idle RSS {idle['VmRSS']:.0f} MiB"
        f" ({idle['Threads']:.0f} threads); one event to each: {accepted}/{len(accounts)} accepted,"
        f" answered in {1000 * statistics.median(answered):.0f} ms median,"
        f" {1000 * max(answered):.0f} ms max,"
        f" all pushed in {pushed:.1f} s, then RSS {after['VmRSS']:.0f} MiB"
        f" ({after['Threads']:.0f} threads, open {health.get('open', len(accounts))}),"
        f" peak {after['VmHWM']:.0f} MiB; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def confirm_verifiers(homes: dict[str, Path]) -> None:
    for home in homes.values():
        store, _ = open_state(home / "state.db", {}, SystemClock())
        try:
            hooks.confirm_verifier(store, 1, VERIFIER)
        finally:
            store.close()


def eager_copy(commit: str, folder: Path) -> Path:
    """The package as it was at `commit`, to run the eager design beside this one."""
    copy = folder / "eager"
    copy.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "fbstampli"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(copy)], input=archive, check=True)
    return copy


def one_size(size: int, eager: Path, folder: Path) -> None:
    names = [f"client-{index:03d}" for index in range(size)]
    accounts = dict(zip(names, firm_accounts(names), strict=True))
    root = folder / "stampli"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    with FreshBooksSandbox(businesses=list(accounts.values())) as fb, SftpServer(root) as sftp:
        made = time.perf_counter()
        homes = add_businesses(folder / "firm", fb, sftp, accounts, bills=1)
        confirm_verifiers(homes)
        print(f"{size} businesses made in {time.perf_counter() - made:.1f} s", flush=True)
        firm = folder / "firm"
        one_design("on demand, 32 open, 4 pushing at most", REPO, firm, accounts)
        one_design(
            "on demand, 32 open, pushes unbounded", REPO, firm, accounts, pushes_at_once="1000"
        )
        one_design("eager (all opened at start)", eager, firm, accounts)


def main() -> None:
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "10,50,200").split(",")]
    commit = sys.argv[2] if len(sys.argv) > 2 else EAGER_COMMIT
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    import logging

    logging.disable(logging.ERROR)  # the SFTP server reports every client hang-up
    with tempfile.TemporaryDirectory(prefix="fbstampli-webhook-all-") as scratch:
        eager = eager_copy(commit, Path(scratch))
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="fbstampli-firm-") as folder:
                one_size(size, eager, Path(folder))


if __name__ == "__main__":
    main()
