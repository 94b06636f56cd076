"""The one rule for "needs attention": what `status`, `status --all` and their exit codes
act on, judged from a `status` document alone.

Pure (no store, no clock), so the single-home and the installation views cannot
disagree about the same state: both call `reasons` on the same document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The commands a cron `sync` records; the newest of them is "the last run".
SYNC_COMMANDS = ("push-bills", "pull-stampli", "reconcile", "retry")


def reasons(document: Mapping[str, Any]) -> list[str]:
    """What a person should act on, one short phrase each; empty when all is well."""
    found: list[str] = []
    if not document["freshbooks"].get("logged_in"):
        found.append("not logged in to FreshBooks")
    if not document["sftp"].get("configured"):
        found.append("no Stampli SFTP login")
    failed_runs = [
        name
        for name, run in document["runs"].items()
        if name in SYNC_COMMANDS and run["exit_code"] not in (None, 0)
    ]
    if failed_runs:
        found.append("the last " + " and ".join(sorted(failed_runs)) + " did not end well")
    failing = document["deliveries"]["failing"]
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


def unreadable(error: str) -> list[str]:
    """The one reason for a business whose state cannot be opened at all."""
    return [f"cannot read its state: {error}"]
