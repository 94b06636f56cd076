"""Deciding what to send: compare what FreshBooks has now with the last snapshot.

Pure: takes snapshots and observed objects, returns decisions. A delivery is
planned only when an object's content hash differs from the snapshot, so a
webhook that fires twice, a poll that overlaps or a re-run adds nothing, and a
real change is delivered once as an update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from fbstampli.models import Kind, VisState


class Change(StrEnum):
    NEW = "new"
    UPDATED = "updated"
    DELETED = "deleted"
    RESTORED = "restored"


@dataclass(frozen=True, slots=True)
class Snapshot:
    content_hash: str
    vis_state: int


@dataclass(frozen=True, slots=True)
class Observed:
    """One object as FreshBooks has it now, already rendered and hashed."""

    kind: Kind
    fb_id: int
    content_hash: str
    vis_state: int
    rows: tuple[tuple[str, ...], ...]
    updated_at: str | None
    # The hash an earlier release gave the same rows: a snapshot holding it is no change.
    legacy_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    observed: Observed
    change: Change

    @property
    def sends(self) -> bool:
        """Deleted objects are reported, never sent: Stampli cannot delete an invoice."""
        return self.change is not Change.DELETED


def plan_changes(
    observed: Iterable[Observed],
    snapshots: Mapping[tuple[Kind, int], Snapshot],
) -> list[Decision]:
    """What changed since the snapshots; unchanged objects produce nothing."""
    decisions: list[Decision] = []
    for item in observed:
        known = snapshots.get((item.kind, item.fb_id))
        deleted = item.vis_state == VisState.DELETED
        if known is None:
            if not deleted:
                decisions.append(Decision(item, Change.NEW))
            continue
        was_deleted = known.vis_state == VisState.DELETED
        if deleted and not was_deleted:
            decisions.append(Decision(item, Change.DELETED))
        elif not deleted and was_deleted:
            decisions.append(Decision(item, Change.RESTORED))
        elif not deleted and known.content_hash not in (item.content_hash, item.legacy_hash):
            decisions.append(Decision(item, Change.UPDATED))
    return decisions
