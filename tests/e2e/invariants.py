"""What "nothing lost, nothing sent twice" means, checked on the SFTP server's folders.

Shared by the fault-rate and concurrency tests. A bill's version is its
`(FreshBooks id, bill number)`: the tests only ever move a bill number forward
(`B<id>-V<n>`), so a pair seen twice was delivered twice, and a bill whose
current number is missing lost an update. Stampli may take delivered files away
(`archive/`), so both folders count.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fbstampli.clock import SystemClock
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.store import open_state

# Failed deliveries wait in backoff (15 minutes, doubling) and the pull runs every 15
# minutes: the tests make that time pass by moving those two clocks back, not by sleeping.
PAST = "2000-01-01T00:00:00.000000Z"


def bill_versions_delivered(sftp_root: Path) -> Counter[tuple[str, str]]:
    """(bill id, bill number) -> how many files carry it, over inbound/ and archive/."""
    seen: Counter[tuple[str, str]] = Counter()
    for folder in (sftp_root / "inbound", sftp_root / "archive"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.endswith("-bills.csv"):
                rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
                seen.update({(r["FreshBooks Bill ID"], r["Invoice Number"]) for r in rows})
    return seen


def active_bills(freshbooks: FreshBooksSandbox) -> dict[int, str]:
    """Every bill FreshBooks has not deleted, with its current number."""
    with freshbooks.data.lock:
        return {
            bill_id: str(bill["bill_number"])
            for bill_id, bill in freshbooks.data.bills.items()
            if bill.get("vis_state", 0) == 0
        }


@dataclass(frozen=True)
class PushOutcome:
    lost: list[tuple[str, str]]  # current versions that never arrived
    duplicated: list[tuple[str, str]]  # versions that arrived more than once
    versions: int  # distinct versions delivered


def check_push(freshbooks: FreshBooksSandbox, sftp_root: Path) -> PushOutcome:
    seen = bill_versions_delivered(sftp_root)
    current = {(str(b), number) for b, number in active_bills(freshbooks).items()}
    return PushOutcome(
        lost=sorted(current - set(seen)),
        duplicated=sorted(pair for pair, count in seen.items() if count > 1),
        versions=len(seen),
    )


def let_time_pass(home: Path) -> None:
    """As if the next cron slot were hours away: backoffs are due and the pull is due."""
    store, _ = open_state(home / "state.db", {}, SystemClock())
    try:
        with store.transaction():
            store.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE status = 'failed'", (PAST,)
            )
            store.execute("DELETE FROM kv WHERE name = 'pull.last_run'")
    finally:
        store.close()


@dataclass(frozen=True)
class PullOutcome:
    lost: list[str]  # exports on the server whose content was never processed
    duplicated: list[str]  # contents processed more than once
    record_difference: int  # records stored minus rows in the processed contents
    processed: int  # distinct contents processed


def check_pull(home: Path, sftp_root: Path, exports: list[tuple[str, bytes]]) -> PullOutcome:
    """Every export still on the server was processed, each content once, each row once.

    `exports` is every (name, bytes) Stampli wrote, to count the rows a content holds.
    An export Stampli deleted before any poll saw it is not ours to lose.
    """
    rows_in = {
        hashlib.sha256(data).hexdigest(): len(data.decode("utf-8").splitlines()) - 1
        for _, data in exports
    }
    store, _ = open_state(home / "state.db", {}, SystemClock())
    try:
        processed = Counter(
            str(row["sha256"])
            for row in store.query("SELECT sha256 FROM stampli_files WHERE state = 'processed'")
        )
        records = int(store.query("SELECT count(*) AS n FROM stampli_records")[0]["n"])
    finally:
        store.close()
    outbound = sftp_root / "outbound"
    present = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in outbound.iterdir()
        if not path.name.startswith(".")
    }
    return PullOutcome(
        lost=sorted(name for name, digest in present.items() if digest not in processed),
        duplicated=sorted(digest for digest, count in processed.items() if count > 1),
        record_difference=records - sum(rows_in.get(digest, 0) for digest in processed),
        processed=len(processed),
    )
