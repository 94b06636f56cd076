"""What the go-live baseline reads, and the acknowledgements an accountant records.

Queries only; `sync/baseline.py` decides what they mean. An acknowledgement is kept in
`kv` under `reconcile.ack.<bill id>` (a handful per business, read once per reconcile
through the key's index) with the facts it was given for, so that a change of those
facts brings the bill back; each is also an audit line with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date

from fbstampli.store import Store

ACK_PREFIX = "reconcile.ack."
_ACK_END = "reconcile.ack/"  # "/" sorts right after "."": every ack key lies between the two


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An accountant's "seen, and fine" for one bill's outcome, as its facts stood."""

    outcome: str
    detail: str
    bill_hash: str  # the bill snapshot's content hash when acknowledged
    reason: str
    at: str


def latest_paid_dates(store: Store, ids: Iterable[int]) -> dict[int, date]:
    """Bill id -> the latest date FreshBooks says it was paid, for those of `ids` with a
    live payment (found through the index on a payment's bill id)."""
    rows = store.iterate(
        "SELECT json_extract(payload, '$.bill_id') AS bill_id, "
        "max(json_extract(payload, '$.paid_date')) AS paid FROM source_objects "
        "INDEXED BY source_objects_payment_bill WHERE kind = 'bill_payment' AND vis_state != 1 "
        "AND json_extract(payload, '$.bill_id') IN (SELECT value FROM json_each(?)) GROUP BY 1",
        (json.dumps(sorted(ids)),),
    )
    paid = {}
    for row in rows:
        if row["bill_id"] is not None and row["paid"]:
            paid[int(row["bill_id"])] = date.fromisoformat(str(row["paid"])[:10])
    return paid


def bill_hashes(store: Store, ids: Iterable[int]) -> dict[int, str]:
    """Bill id -> its snapshot's content hash."""
    return {
        int(row["fb_id"]): str(row["content_hash"])
        for row in store.iterate(
            "SELECT fb_id, content_hash FROM source_objects WHERE kind = 'bill' "
            "AND fb_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(ids)),),
        )
    }


def acknowledgements(store: Store) -> dict[int, Acknowledgement]:
    """Every bill's acknowledgement, by bill id."""
    acks = {}
    for row in store.iterate(
        "SELECT name, value FROM kv WHERE name > ? AND name < ?", (ACK_PREFIX, _ACK_END)
    ):
        bill_id = str(row["name"])[len(ACK_PREFIX) :]
        if bill_id.lstrip("-").isdigit():
            acks[int(bill_id)] = Acknowledgement(**json.loads(row["value"]))
    return acks


def current_outcome(store: Store, bill_id: int) -> tuple[str, str] | None:
    """The bill's current (outcome, detail), or None when it has none."""
    row = store.query_one(
        "SELECT outcome, detail FROM reconcile_outcomes WHERE fb_bill_id = ? "
        "ORDER BY stampli_invoice_id DESC LIMIT 1",
        (bill_id,),
    )
    return None if row is None else (str(row["outcome"]), str(row["detail"]))


def record_acknowledgement(
    store: Store, bill_id: int, ack: Acknowledgement, *, outcome: str, detail: str
) -> None:
    """Keep `ack`, set the bill's current outcome to (`outcome`, `detail`) at once (status
    stops counting it before the next reconcile), and audit the reason; one transaction."""
    with store.transaction():
        store.put_value(f"{ACK_PREFIX}{bill_id}", json.dumps(asdict(ack), sort_keys=True))
        store.execute(
            "UPDATE reconcile_outcomes SET outcome = ?, detail = ? WHERE fb_bill_id = ?",
            (outcome, detail, bill_id),
        )
        store.audit(
            "reconcile_acknowledged",
            kind="bill",
            fb_id=bill_id,
            detail=f"{ack.outcome} acknowledged: {ack.reason}",
        )
