"""What the marker (`sync/marker.py`) costs a run: SFTP requests and wall time of `sync`
against the SFTP sandbox, with the marker and with its guard made a no-op.

Three runs each: the first sync (every object), a run after one bill was edited, and a
run with nothing to send. Asserts nothing.

    python bench/bench_marker.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paramiko  # noqa: E402

from fbstampli.cli import run as cli_run  # noqa: E402
from fbstampli.options import Options  # noqa: E402
from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from fbstampli.services.sandbox import connect_home  # noqa: E402
from fbstampli.sync import marker  # noqa: E402

requests = [0]
_original = paramiko.SFTPClient._async_request


def _counted(self: paramiko.SFTPClient, *args: object) -> object:
    requests[0] += 1
    return _original(self, *args)


paramiko.SFTPClient._async_request = _counted  # type: ignore[method-assign]


@contextmanager
def without_marker() -> Iterator[None]:
    saved = marker.MarkerGuard.before_upload, marker.MarkerGuard.after_delivered
    marker.MarkerGuard.before_upload = lambda self, transport: None  # type: ignore[method-assign]
    marker.MarkerGuard.after_delivered = lambda self, transport: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        marker.MarkerGuard.before_upload, marker.MarkerGuard.after_delivered = saved


def measure(home: Path, fb: FreshBooksSandbox) -> list[tuple[str, int, float]]:
    rows = []
    bill = sorted(fb.data.bills)[0]
    for label, change in (("first sync", None), ("one bill edited", "EDITED"), ("no change", None)):
        if change:
            fb.update_bill(bill, bill_number=change)
        requests[0] = 0
        started = time.perf_counter()
        code = cli_run(["--home", str(home), "-q", "sync"])
        rows.append((f"{label} (exit {code})", requests[0], time.perf_counter() - started))
    return rows


def main() -> None:
    results = {}
    for name in ("with the marker", "without"):
        with tempfile.TemporaryDirectory() as folder, FreshBooksSandbox() as fb:
            root = Path(folder) / "sftp"
            for sub in ("inbound", "outbound"):
                (root / sub).mkdir(parents=True)
            fb.seed(vendors=20, bills=200, payments=60, seed=3)
            with SftpServer(root) as sftp:
                home = Path(folder) / "home"
                connect_home(Options(home=home, env={}), fb, sftp, business="bench")
                if name == "without":
                    with without_marker():
                        results[name] = measure(home, fb)
                else:
                    results[name] = measure(home, fb)
    for name, rows in results.items():
        print(name)
        for label, count, seconds in rows:
            print(f"  {label:28} {count:5d} SFTP requests  {seconds:6.2f} s")


if __name__ == "__main__":
    main()
