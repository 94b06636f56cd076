"""The one rule for "needs attention": what `status`, `status --all` and their exit codes
act on, judged from a `status` document alone.

Pure (no store, no clock: "now" is the document's), so the single-home and the
installation views cannot disagree about the same state: both call `reasons` on the
same document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

# The commands a cron `sync` records; the newest of them is "the last run".
SYNC_COMMANDS = ("push-bills", "pull-stampli", "reconcile", "retry")
# Exit codes of a run whose failure may pass by itself (records queued for retry, a remote
# unreachable): attention only once it has lasted (`monitoring.failing_attention_hours`).
PASSING_CODES = (1, 75)


def reasons(document: Mapping[str, Any], *, failing_after_hours: float = 0.0) -> list[str]:
    """What a person should act on, one short phrase each; empty when all is well.

    A failure that may pass by itself (a run that ended 1 or 75, a delivery waiting to
    retry) counts only once it has lasted `failing_after_hours`; every other reason at once.
    """
    found: list[str] = []
    if not document["freshbooks"].get("logged_in"):
        found.append("not logged in to FreshBooks")
    if not document["sftp"].get("configured"):
        found.append("no Stampli SFTP login")
    lasted = _lasted(document["now"], failing_after_hours)
    failed_runs = [
        name
        for name, run in document["runs"].items()
        if name in SYNC_COMMANDS
        and run["exit_code"] not in (None, 0)
        and (run["exit_code"] not in PASSING_CODES or lasted(run.get("failing_since")))
    ]
    if failed_runs:
        found.append("the last " + " and ".join(sorted(failed_runs)) + " did not end well")
    failing = [
        item
        for item in document["deliveries"]["failing"]
        if item["status"] != "failed" or lasted(item.get("queued_at"))
    ]
    if failing:
        found.append(f"{len(failing)} not in Stampli yet after failing")
    without = document["deliveries"].get("without_document", {}).get("count", 0)
    if without:
        found.append(f"{without} bill(s) in Stampli without their document")
    if document["deliveries"]["stuck_batches"]:
        found.append(f"{document['deliveries']['stuck_batches']} stuck upload(s)")
    quarantined = document["stampli_files"]["quarantined"]
    if quarantined:
        found.append(f"{len(quarantined)} quarantined export file(s)")
    if document["reconciliation"]["needs_attention"]:
        found.append(f"{document['reconciliation']['needs_attention']} bill(s) to reconcile")
    return found


def _lasted(now: str, hours: float) -> Callable[[str | None], bool]:
    """Whether a failure that began at a given UTC time has lasted `hours` by `now` (one with
    no known start has)."""
    moment = datetime.fromisoformat(now)

    def judge(since: str | None) -> bool:
        if since is None:
            return True
        started = datetime.fromisoformat(since.replace("Z", "+00:00"))
        return (moment - started).total_seconds() >= hours * 3600

    return judge


def unreadable(error: str) -> list[str]:
    """The one reason for a business whose state cannot be opened at all."""
    return [f"cannot read its state: {error}"]
