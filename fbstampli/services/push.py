"""push-bills, retry and sync: the commands that send FreshBooks data to Stampli."""

from __future__ import annotations

import json
from collections.abc import Callable

from fbstampli.models import Kind
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime, open_runtime
from fbstampli.store.outbox import queue_delivery
from fbstampli.store.runs import finish_failed_run, finish_run, start_run
from fbstampli.sync.connection import Connection
from fbstampli.sync.deliver import deliver
from fbstampli.sync.push import PushContext, push

Advance = Callable[[int], None]


def business_name(rt: Runtime) -> str:
    return rt.settings.stampli.business or rt.store.get_value("freshbooks.account_id") or "business"


def push_context(rt: Runtime, run_id: int | None) -> PushContext:
    return PushContext(
        store=rt.store,
        settings=rt.settings,
        clock=rt.clock,
        source=rt.freshbooks,
        transport=rt.transport,
        renderer=rt.renderer(),
        business=business_name(rt),
        run_id=run_id,
    )


def run_push(
    rt: Runtime,
    *,
    dry_run: bool = False,
    full: bool = False,
    since: str | None = None,
    only_events: bool = False,
    advance: Advance = lambda amount: None,
) -> RunReport:
    run_id = None if dry_run else start_run(rt.store, "push-bills")
    report = RunReport("push-bills")
    try:
        report = push(
            push_context(rt, run_id),
            full=full,
            since=since,
            dry_run_folder=rt.paths.outbox if dry_run else None,
            only_events=only_events,
            advance=advance,
        )
    except BaseException as error:
        if run_id is not None:
            finish_failed_run(rt.store, run_id, report, error)
        raise
    if run_id is not None:
        finish_run(rt.store, run_id, report)
    return report


def push_bills(
    options: Options,
    *,
    dry_run: bool,
    full: bool,
    since: str | None,
    advance: Advance = lambda amount: None,
) -> RunReport:
    with open_runtime(options) as rt:
        return run_push(rt, dry_run=dry_run, full=full, since=since, advance=advance)


def _requeue(rt: Runtime, kind: Kind, fb_id: int, *, force: bool, report: RunReport) -> None:
    store = rt.store
    latest = store.query_one(
        "SELECT id, status, content_hash, rows FROM deliveries WHERE kind = ? AND fb_id = ? "
        "AND status != 'superseded' ORDER BY id DESC LIMIT 1",
        (kind.value, fb_id),
    )
    label = f"{kind.value} {fb_id}"
    if latest is None:
        report.problems.append(f"{label} has not been seen in FreshBooks yet; run push-bills")
        return
    status = latest["status"]
    if status in ("failed", "dead"):
        store.execute(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
            "updated_at = ? WHERE id = ?",
            (store.now_text(), latest["id"]),
        )
        report.notes.append(f"{label}: re-queued its {status} delivery")
    elif status in ("pending", "planned"):
        report.notes.append(f"{label}: already queued")
        return
    elif force:
        queue_delivery(
            store,
            kind=kind,
            fb_id=fb_id,
            content_hash=latest["content_hash"],
            rows=[tuple(row) for row in json.loads(latest["rows"])],
            force=True,
        )
        report.notes.append(f"{label}: queued again although delivered (--force)")
    else:
        report.notes.append(f"{label}: already delivered; add --force to send it again")
        return
    store.audit("retry_requested", kind=kind.value, fb_id=fb_id, detail=status)
    report.add("requeued")


def retry(
    options: Options,
    *,
    bills: list[int],
    vendors: list[int],
    failed: bool,
    dead: bool,
    force: bool,
    queue_only: bool,
) -> RunReport:
    """Re-queue by hand; unless `queue_only`, deliver now (vendors first, as always)."""
    report = RunReport("retry")
    with open_runtime(options) as rt:
        store = rt.store
        with store.transaction():
            for status, wanted in (("failed", failed), ("dead", dead)):
                if not wanted:
                    continue
                rows = store.query("SELECT kind, fb_id FROM deliveries WHERE status = ?", (status,))
                store.execute(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, "
                    "next_attempt_at = NULL, updated_at = ? WHERE status = ?",
                    (store.now_text(), status),
                )
                for row in rows:
                    store.audit(
                        "retry_requested", kind=row["kind"], fb_id=row["fb_id"], detail=status
                    )
                report.add("requeued", len(rows))
                report.notes.append(f"re-queued {len(rows)} {status} deliveries")
            for kind, ids in ((Kind.VENDOR, vendors), (Kind.BILL, bills)):
                for fb_id in ids:
                    _requeue(rt, kind, fb_id, force=force, report=report)
        if queue_only or not report.counts.get("requeued"):
            return report
        run_id = start_run(store, "retry")
        try:
            deliver(
                store,
                Connection(rt.transport),
                rt.renderer(),
                settings=rt.settings,
                business=business_name(rt),
                clock=rt.clock,
                run_id=run_id,
                report=report,
            )
        except BaseException as error:
            finish_failed_run(store, run_id, report, error)
            raise
        finish_run(store, run_id, report)
    return report


def sync(options: Options, advance: Advance = lambda amount: None) -> RunReport:
    """push-bills, then pull-stampli and reconcile, under one lock: the cron entry."""
    from fbstampli.monitoring import monitored
    from fbstampli.runtime import load_options_settings

    def run() -> RunReport:
        report = RunReport("sync")
        with open_runtime(options) as rt:
            report.merge(run_push(rt, advance=advance))
            from fbstampli.services import pull

            for step in pull.sync_steps():
                report.merge(step(rt))
        return report

    return monitored(load_options_settings(options).monitoring.ping_url, run)
