"""What the daily digest reads from the state, and the SMTP login it is sent with.

Queries only; `services/digest.py` decides what they mean and `digest.py`
says it. The SMTP relay is described in `kv` (host, port, security, user:
`status` may show it) and its password is a secret in the encrypted
`credentials` table, registered with the log redactor as it is read or
written, as the SFTP login is (`store/credentials.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fbstampli.logs import register_secret
from fbstampli.store import Row, Store

LAST_DIGEST_KEY = "digest.last"  # what the last digest said: when, the run it saw, its funnel
SMTP_TARGET_KEY = "smtp.target"
SMTP_PASSWORD_SECRET = "smtp.password"  # noqa: S105 - the name of a secret, not one


def funnel_counts(store: Store, void_statuses: Iterable[str]) -> dict[str, int]:
    """Live FreshBooks bills (not deleted), and how many of them were sent, captured, approved
    (their latest approval says so) and paid (a payment not later reported void)."""
    voids = json.dumps(sorted(void_statuses))
    queries = {
        "in_freshbooks": (
            "SELECT count(*) AS n FROM source_objects WHERE kind = 'bill' AND vis_state != 1",
            (),
        ),
        "sent": (
            "SELECT count(DISTINCT d.fb_id) AS n FROM deliveries AS d WHERE d.kind = 'bill' "
            "AND d.status = 'delivered' "
            "AND EXISTS (SELECT 1 FROM source_objects AS s WHERE s.kind = 'bill' "
            "AND s.fb_id = d.fb_id AND s.vis_state != 1)",
            (),
        ),
        "captured": (
            "SELECT count(DISTINCT r.fb_bill_id) AS n FROM stampli_records AS r "
            "WHERE r.export_kind = 'capture' "
            "AND EXISTS (SELECT 1 FROM source_objects AS s WHERE s.kind = 'bill' "
            "AND s.fb_id = r.fb_bill_id AND s.vis_state != 1)",
            (),
        ),
        "approved": (
            "SELECT count(*) AS n FROM stampli_records AS r WHERE r.id IN "
            "(SELECT max(id) FROM stampli_records WHERE export_kind = 'approval' "
            "AND fb_bill_id IS NOT NULL GROUP BY fb_bill_id) "
            "AND lower(r.status) = 'approved' "
            "AND EXISTS (SELECT 1 FROM source_objects AS s WHERE s.kind = 'bill' "
            "AND s.fb_id = r.fb_bill_id AND s.vis_state != 1)",
            (),
        ),
        "paid": (
            "SELECT count(DISTINCT r.fb_bill_id) AS n FROM stampli_records AS r "
            "WHERE r.export_kind = 'payment' AND lower(r.status) NOT IN "
            "(SELECT value FROM json_each(?)) "
            "AND EXISTS (SELECT 1 FROM source_objects AS s WHERE s.kind = 'bill' "
            "AND s.fb_id = r.fb_bill_id AND s.vis_state != 1)",
            (voids,),
        ),
    }
    counts = {}
    for name, (sql, params) in queries.items():
        row = store.query_one(sql, params)
        counts[name] = 0 if row is None else int(row["n"])
    return counts


def outcomes_with_bills(store: Store, outcomes: Iterable[str]) -> Iterator[Row]:
    """The current outcomes of the kinds named, each with its bill's number, total, currency
    and vendor name (empty when FreshBooks has no such bill), streamed."""
    yield from store.iterate(
        "SELECT o.fb_bill_id, o.stampli_invoice_id, o.outcome, o.detail, o.run_id, "
        "json_extract(b.payload, '$.bill_number') AS bill_number, "
        "json_extract(b.payload, '$.total_amount') AS total_amount, "
        "json_extract(b.payload, '$.currency_code') AS currency_code, "
        "json_extract(v.payload, '$.name') AS vendor "
        "FROM reconcile_outcomes AS o "
        "LEFT JOIN source_objects AS b ON b.kind = 'bill' AND b.fb_id = o.fb_bill_id "
        "LEFT JOIN source_objects AS v ON v.kind = 'vendor' "
        "AND v.fb_id = json_extract(b.payload, '$.vendor_id') "
        "WHERE o.outcome IN (SELECT value FROM json_each(?)) "
        "ORDER BY o.outcome, o.fb_bill_id, o.stampli_invoice_id",
        (json.dumps(sorted(outcomes)),),
    )


def outcomes_changed_after(store: Store, run_id: int) -> dict[str, int]:
    """Outcome -> how many bills reached it in a run after `run_id`."""
    return {
        str(row["outcome"]): int(row["n"])
        for row in store.query(
            "SELECT outcome, count(*) AS n FROM reconcile_outcomes WHERE run_id > ? "
            "GROUP BY outcome",
            (run_id,),
        )
    }


def reconciled_at(store: Store) -> str | None:
    """When the last reconcile that finished, finished (UTC text), or None."""
    row = store.query_one(
        "SELECT finished_at FROM runs WHERE command = 'reconcile' AND finished_at IS NOT NULL "
        "ORDER BY id DESC LIMIT 1"
    )
    return None if row is None else str(row["finished_at"])


def last_run_id(store: Store) -> int:
    row = store.query_one("SELECT max(id) AS id FROM runs")
    return 0 if row is None or row["id"] is None else int(row["id"])


_STUCK = (
    "SELECT d.kind, d.fb_id, d.status, d.attempts, d.last_error, d.created_at, "
    "json_extract(b.payload, '$.bill_number') AS bill_number "
    "FROM deliveries AS d LEFT JOIN source_objects AS b ON d.kind = 'bill' AND b.kind = 'bill' "
    "AND b.fb_id = d.fb_id "
    "WHERE d.status IN ('failed', 'dead') "
    "OR (d.status IN ('pending', 'planned') AND d.created_at < ?) "
    "ORDER BY d.status = 'dead' DESC, d.created_at, d.id"
)


def stuck_deliveries(store: Store, queued_before: str, limit: int) -> tuple[int, list[Row]]:
    """How many deliveries failed, used up their attempts, or were queued before
    `queued_before` and are not delivered yet; and the first `limit` of them, dead first."""
    row = store.query_one(
        "SELECT count(*) AS n FROM deliveries WHERE status IN ('failed', 'dead') "
        "OR (status IN ('pending', 'planned') AND created_at < ?)",
        (queued_before,),
    )
    total = 0 if row is None else int(row["n"])
    return total, store.query(_STUCK + " LIMIT ?", (queued_before, limit))


def last_digest(store: Store) -> dict[str, Any] | None:
    value = store.get_json(LAST_DIGEST_KEY)
    return value if isinstance(value, dict) else None


def remember_digest(store: Store, value: dict[str, Any], *, audit_detail: str) -> None:
    """What this digest said, for the next one's "since the last digest"; audited."""
    with store.transaction():
        store.put_json(LAST_DIGEST_KEY, value)
        store.audit("digest_sent", detail=audit_detail)


# -- the SMTP relay ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmtpLogin:
    """The relay the digest goes through; the password is kept out of `repr`.

    `security`: "starttls" (port 587), "tls" (implicit, port 465), or "none"
    (allowed only to a relay on this machine). `ca_file`: a CA bundle to trust
    instead of the system's, for a relay with a private certificate.
    """

    host: str
    port: int
    security: str
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""


def smtp_description(store: Store) -> dict[str, Any] | None:
    """The relay without its password, or None before `auth smtp`."""
    value = store.get_json(SMTP_TARGET_KEY)
    return value if isinstance(value, dict) else None


def load_smtp_login(store: Store) -> SmtpLogin | None:
    described = smtp_description(store)
    if described is None:
        return None
    password = store.get_secret(SMTP_PASSWORD_SECRET) or ""
    register_secret(password)
    return SmtpLogin(
        host=str(described["host"]),
        port=int(described["port"]),
        security=str(described["security"]),
        username=str(described.get("username", "")),
        password=password,
        ca_file=str(described.get("ca_file", "")),
    )


def save_smtp_login(store: Store, login: SmtpLogin) -> None:
    """Store the relay whole, in one transaction, with an audit row naming it (not the
    password)."""
    register_secret(login.password)
    description = {
        "host": login.host,
        "port": login.port,
        "security": login.security,
        "username": login.username,
        "ca_file": login.ca_file,
    }
    with store.transaction():
        store.put_json(SMTP_TARGET_KEY, description)
        if login.password:
            store.put_secret(SMTP_PASSWORD_SECRET, login.password)
        else:
            store.delete_secret(SMTP_PASSWORD_SECRET)
        who = f"{login.username}@" if login.username else ""
        store.audit(
            "smtp_login_stored", detail=f"{who}{login.host}:{login.port} ({login.security})"
        )
