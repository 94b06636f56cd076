"""Which versions a slice's changes queue, each with its Action and Version cells filled in.

A new object goes out as NEW, a change as UPDATE, a restore as RESTORE, and a
deletion as VOID (when `sync.deleted_bills = "void"`, and only for an object
Stampli was sent before). The version number is one more than the versions
queued before (`store.object_versions`). Runs inside the ingest transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fbstampli.models import Kind, VisState
from fbstampli.store import Store
from fbstampli.store.deliveries import Queued
from fbstampli.store.identity import version_floor
from fbstampli.store.object_versions import versions_queued
from fbstampli.sync.plan import Change, Decision, Snapshot
from fbstampli.sync.ports import Renderer

ACTION_OF_CHANGE = {
    Change.NEW: "new",
    Change.UPDATED: "update",
    Change.DELETED: "void",
    Change.RESTORED: "restore",
}
# A void's rows may hash as its last version did (a layout without a status column);
# the prefix keeps it a version of its own.
VOID_PREFIX = "void:"


def versions_to_queue(
    store: Store,
    renderer: Renderer,
    decisions: Sequence[Decision],
    *,
    send_payments: bool,
    void_deleted: bool,
) -> list[tuple[Decision, Queued]]:
    """The decisions that send a version, each with the version to queue, in decision order."""
    wanted = [
        d
        for d in decisions
        if (d.change is not Change.DELETED or void_deleted)
        and (d.observed.kind is not Kind.PAYMENT or send_payments)
    ]
    if not wanted:
        return []
    earlier = versions_queued(store, ((d.observed.kind, d.observed.fb_id) for d in wanted))
    floor = version_floor(store)  # above what another state sent, after `adopt-remote`
    queued: list[tuple[Decision, Queued]] = []
    for decision in wanted:
        item = decision.observed
        count = earlier.get((item.kind, item.fb_id), 0)
        if decision.change is Change.DELETED and count == 0:
            continue  # Stampli never had it: nothing to void
        action = ACTION_OF_CHANGE[decision.change]
        rows = renderer.stamp(item.kind, item.rows, action=action, version=floor + count + 1)
        content_hash = (
            VOID_PREFIX + item.content_hash
            if decision.change is Change.DELETED
            else item.content_hash
        )
        queued.append((decision, Queued(item.kind, item.fb_id, content_hash, rows)))
    return queued


def lifecycle_audit(
    now: str,
    run_id: int | None,
    decisions: Sequence[Decision],
    stored: Mapping[tuple[Kind, int], Snapshot],
) -> list[tuple[object, ...]]:
    """An audit row for each restore and each archive (deletions have theirs in `ingest`)."""
    rows: list[tuple[object, ...]] = []
    for decision in decisions:
        item = decision.observed
        known = stored.get((item.kind, item.fb_id))
        if decision.change is Change.RESTORED:
            action, detail = "restored_in_freshbooks", "restored in FreshBooks; sent as RESTORE"
        elif (
            item.vis_state == VisState.ARCHIVED
            and known is not None
            and known.vis_state != VisState.ARCHIVED
        ):
            action, detail = "archived_in_freshbooks", "archived in FreshBooks; sent as UPDATE"
        else:
            continue
        rows.append((now, run_id, item.kind.value, item.fb_id, action, detail))
    return rows
