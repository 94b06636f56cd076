"""Version numbers: how many versions of each object were queued for Stampli so far.

A version's number is one more than the versions queued before it, whatever became of
them; numbers only grow, so Stampli can tell which row of an object is the newest.
Runs inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from fbstampli.models import Kind
from fbstampli.store import Store


def versions_queued(store: Store, keys: Iterable[tuple[Kind, int]]) -> dict[tuple[Kind, int], int]:
    """Deliveries recorded per object (one query a kind); objects never queued are left out."""
    by_kind: dict[Kind, set[int]] = {}
    for kind, fb_id in keys:
        by_kind.setdefault(kind, set()).add(fb_id)
    counts: dict[tuple[Kind, int], int] = {}
    for kind, ids in by_kind.items():
        for row in store.iterate(
            "SELECT fb_id, count(*) AS n FROM deliveries WHERE kind = ? "
            "AND fb_id IN (SELECT value FROM json_each(?)) GROUP BY fb_id",
            (kind.value, json.dumps(sorted(ids))),
        ):
            counts[(kind, int(row["fb_id"]))] = int(row["n"])
    return counts
