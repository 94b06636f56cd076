"""What FreshBooks was seen to do (`freshbooks.behaviour`), kept in the state's `kv` table.

One JSON document under one name: the facts are few and always read together.
Each fact is committed the moment it is learnt, so a conclusion (and the
warning that came with it) is not repeated by the next run even if this one
fails later.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from fbstampli.clock import from_utc_text
from fbstampli.models.behaviour import Fact
from fbstampli.store import Store

FACTS_KEY = "freshbooks.behaviour"


def load_facts(store: Store) -> dict[str, Fact]:
    raw = store.get_json(FACTS_KEY)
    facts: dict[str, Fact] = {}
    if isinstance(raw, dict):
        for name, data in raw.items():
            fact = Fact.from_json(data) if isinstance(data, dict) else None
            if fact is not None:
                facts[str(name)] = fact
    return facts


def save_fact(store: Store, name: str, fact: Fact) -> None:
    with store.transaction():
        raw = store.get_json(FACTS_KEY)
        document = raw if isinstance(raw, dict) else {}
        document[name] = fact.to_json()
        store.put_json(FACTS_KEY, document)


def event_arrivals(
    store: Store, name_prefix: str, ids: Collection[int]
) -> dict[int, list[datetime]]:
    """object id -> when each still-unprocessed event naming it arrived (UTC), oldest first."""
    arrivals: dict[int, list[datetime]] = {}
    wanted = set(ids)
    for row in store.query(
        "SELECT object_id, received_at FROM events WHERE processed_at IS NULL "
        "AND substr(name, 1, ?) = ? ORDER BY id",
        (len(name_prefix), name_prefix),
    ):
        object_id = int(row["object_id"])
        if object_id in wanted:
            arrivals.setdefault(object_id, []).append(from_utc_text(str(row["received_at"])))
    return arrivals
