"""`fbstampli status`: health at a glance, gathered from the store into one `Status`.

Its JSON form is a stable, versioned document (`STATUS_SCHEMA`); the screen of
`cli/status_view.py` is drawn from that same document.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fbstampli import attention
from fbstampli.attention import SYNC_COMMANDS
from fbstampli.clock import from_utc_text, to_utc_text
from fbstampli.options import Options
from fbstampli.runtime import Runtime, open_runtime

# 2: counts by kind, the failing items by name, quarantined files' copies, "attention",
# and what FreshBooks was seen to do (freshbooks_behaviour).
STATUS_SCHEMA = 2
WITHOUT_DOCUMENT_LISTED = 50  # bill ids listed under deliveries.without_document


@dataclass(frozen=True, slots=True)
class Status:
    """One home's health. The parts are the documented JSON objects themselves, so that
    `to_json` is the schema-2 document byte for byte; `attention` is `attention.reasons`."""

    home: str
    now: str
    timezone: str
    freshbooks: dict[str, Any]
    sftp: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    deliveries: dict[str, Any]
    stampli_files: dict[str, Any]
    reconciliation: dict[str, Any]
    webhooks: dict[str, Any]
    freshbooks_behaviour: dict[str, Any]
    attention: list[str]
    schema: int = STATUS_SCHEMA

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _age_seconds(rt: Runtime, text: str | None) -> int | None:
    if not text:
        return None
    return int((rt.clock.now() - from_utc_text(text)).total_seconds())


def _sftp(rt: Runtime) -> dict[str, Any]:
    from fbstampli.store.credentials import sftp_description
    from fbstampli.store.outbox import last_upload_at

    described = sftp_description(rt.store)
    if described is None:
        return {"configured": False}
    return {
        "configured": True,
        "address": f"{described['username']}@{described['host']}:{described['port']}",
        "inbound": rt.settings.stampli.inbound_dir,
        "outbound": rt.settings.stampli.outbound_dir,
        "host_key": f"{described['host_key_type']} {described['host_key_fingerprint']}",
        "auth": described.get("auth", "password"),
        "last_upload_at": last_upload_at(rt.store),
    }


def _deliveries(rt: Runtime) -> dict[str, Any]:
    from fbstampli.store.deletions import deleted_in_freshbooks
    from fbstampli.store.held import queued_deliveries
    from fbstampli.store.outbox import delivery_summary, failing_deliveries, objects_in_stampli

    summary = delivery_summary(rt.store)
    waiting = {
        status: {"count": count, "oldest_age_seconds": _age_seconds(rt, oldest)}
        for status, (count, oldest) in summary["waiting"].items()
    }
    return {
        **summary,
        "waiting": waiting,
        "by_kind": objects_in_stampli(rt.store),
        "deleted": deleted_in_freshbooks(rt.store),
        "failing": failing_deliveries(rt.store),
        "queued": queued_deliveries(rt.store),
        "without_document": _without_document(rt),
    }


def _without_document(rt: Runtime) -> dict[str, Any]:
    """The bills in Stampli without their document (missing, too large, of a refused type):
    how many, why, and the first ids (`audit --bill ID` says more)."""
    from fbstampli.store.documents import bills_without_documents

    rows = bills_without_documents(rt.store)
    reasons: dict[str, int] = {}
    for row in rows:
        reasons[str(row["problem"])] = reasons.get(str(row["problem"]), 0) + 1
    return {
        "count": len(rows),
        "by_reason": dict(sorted(reasons.items())),
        "bills": [int(row["fb_bill_id"]) for row in rows[:WITHOUT_DOCUMENT_LISTED]],
    }


def _start_of_local_day(rt: Runtime) -> str:
    local = rt.clock.now().astimezone()
    return to_utc_text(local.replace(hour=0, minute=0, second=0, microsecond=0))


def _stampli_files(rt: Runtime) -> dict[str, Any]:
    from fbstampli.store.stampli_files import last_processed, open_quarantine, processed_since

    return {
        "last_processed": last_processed(rt.store),
        "read_today": processed_since(rt.store, _start_of_local_day(rt)),
        "quarantined": open_quarantine(rt.store),
    }


def _reconciliation(rt: Runtime) -> dict[str, Any]:
    from fbstampli.models.outcome import Outcome
    from fbstampli.store.reconcile_report import run_finished_at
    from fbstampli.store.reconciliations import latest_outcomes

    run_id, outcomes = latest_outcomes(rt.store)
    if run_id is None:
        return {"last_run": None, "outcomes": {}, "needs_attention": 0}
    attention = sum(n for outcome, n in outcomes.items() if Outcome(outcome).needs_attention)
    return {
        "last_run": run_id,
        "finished_at": run_finished_at(rt.store, run_id),
        "outcomes": outcomes,
        "needs_attention": attention,
    }


def _webhooks(rt: Runtime) -> dict[str, Any]:
    from fbstampli.store.events import queue_state

    queue = queue_state(rt.store)
    return {"last_event_at": queue.last_event_at, "queued_events": queue.queued}


def _behaviour(rt: Runtime) -> dict[str, Any]:
    """What FreshBooks was seen to do where its documentation is silent, and since when."""
    from fbstampli.models.behaviour import as_status
    from fbstampli.store.api_facts import load_facts
    from fbstampli.sync.payments import as_fact

    return as_status({**load_facts(rt.store), **as_fact(rt.store)})


def zone_name(now: datetime) -> str:
    """The local zone as people read it: `UTC`, or `CET, UTC+01:00`."""
    local = now.astimezone()
    offset = local.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if offset else "+00:00"
    name = local.strftime("%Z")
    if offset == "+00:00" and name in ("UTC", "GMT", ""):
        return "UTC"
    return f"{name}, UTC{offset}" if name and not name.startswith(("+", "-")) else f"UTC{offset}"


def _last_run(runs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """When cron's `sync` last ran, and how its parts ended: the newest start, with the
    command and exit code of the newest run of each part that did not end well (0 if all did).
    """
    recorded = {name: run for name, run in runs.items() if name in SYNC_COMMANDS}
    if not recorded:
        return None
    newest = max(run["started_at"] for run in recorded.values())
    unwell = sorted(
        (name for name, run in recorded.items() if run["exit_code"] != 0),
        key=lambda name: recorded[name]["started_at"],
    )
    if not unwell:
        return {"started_at": newest, "command": None, "exit_code": 0}
    worst = unwell[-1]
    return {"started_at": newest, "command": worst, "exit_code": recorded[worst]["exit_code"]}


def status(options: Options) -> Status:
    """Health at a glance, as a stable document (`schema` changes when keys do).

    `attention` lists what a person should act on; the command exits 1 when it
    is not empty, so a monitor can alert on `fbstampli status -q`. A failure that may
    pass by itself counts once it lasted `monitoring.failing_attention_hours`.
    """
    from fbstampli.store.credentials import login_summary
    from fbstampli.store.runs import latest_runs

    with open_runtime(options, lock=False) as rt:
        runs = with_failing_since(rt, latest_runs(rt.store))
        failing_after = rt.settings.monitoring.failing_attention_hours
        now = rt.clock.now()
        document: dict[str, Any] = {
            "home": str(rt.paths.home),
            "now": to_utc_text(now),  # as every JSON time
            "timezone": zone_name(now),
            "freshbooks": {**login_summary(rt.store, now), "last_run": _last_run(runs)},
            "sftp": _sftp(rt),
            "runs": runs,
            "deliveries": _deliveries(rt),
            "stampli_files": _stampli_files(rt),
            "reconciliation": _reconciliation(rt),
            "webhooks": _webhooks(rt),
            "freshbooks_behaviour": _behaviour(rt),
        }
    found = attention.reasons(document, failing_after_hours=failing_after)
    return Status(**document, attention=found)


def with_failing_since(rt: Runtime, runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each run that did not end well, with when its command's failing streak began."""
    from fbstampli.store.runs import failing_since

    since = failing_since(rt.store)
    for name, run in runs.items():
        if run["exit_code"] not in (None, 0):
            run["failing_since"] = since.get(name, run["started_at"])
    return runs
