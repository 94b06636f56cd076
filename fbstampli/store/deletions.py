"""Objects deleted in FreshBooks, as `status` counts them: on a line of their own.

A bill deleted in FreshBooks is not "in Stampli" any more, whatever reached
Stampli before: it counts among the deleted, and among the voided once its VOID
row was delivered. Reads only.
"""

from __future__ import annotations

from fbstampli.models import VisState
from fbstampli.store import Store
from fbstampli.store.deliveries import DeliveryStatus


def deleted_in_freshbooks(store: Store) -> dict[str, dict[str, int]]:
    """Per kind: objects Stampli was sent that FreshBooks now has deleted, and how many of
    them were voided in Stampli (their VOID row delivered)."""
    rows = store.query(
        "SELECT s.kind AS kind, count(*) AS deleted, "
        "sum(EXISTS (SELECT 1 FROM deliveries AS d WHERE d.kind = s.kind AND d.fb_id = s.fb_id "
        "AND d.status = ? AND d.content_hash LIKE 'void:%')) AS voided "
        "FROM source_objects AS s WHERE s.vis_state = ? AND EXISTS "
        "(SELECT 1 FROM deliveries AS d WHERE d.kind = s.kind AND d.fb_id = s.fb_id) "
        "GROUP BY s.kind",
        (DeliveryStatus.DELIVERED, int(VisState.DELETED)),
    )
    return {
        str(row["kind"]): {"deleted": int(row["deleted"]), "voided": int(row["voided"] or 0)}
        for row in rows
    }
