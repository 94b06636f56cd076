"""push-bills, pull-stampli, reconcile, retry and sync: the commands of `cli/sync.py`.

Each opens a runtime, records its run, and hands the work to the engine in
`sync/`; `sync` runs the three in turn under one lock, as cron does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from fbstampli.clock import from_utc_text, local_text, to_utc_text
from fbstampli.models import Kind
from fbstampli.options import Options
from fbstampli.progress import Progress
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime, open_runtime
from fbstampli.services.digest import send_if_due as send_digest_if_due
from fbstampli.store import outbox
from fbstampli.store.credentials import account_id
from fbstampli.store.deliveries import delivery_rows
from fbstampli.store.outbox import DeliveryStatus, queue_delivery
from fbstampli.store.runs import recorded_run
from fbstampli.sync.connection import Connection
from fbstampli.sync.deliver import deliver
from fbstampli.sync.push import PushContext, push
from fbstampli.sync.reconcile_inputs import VersionCells

Advance = Callable[[int], None]

LAST_PULL_KEY = "pull.last_run"


def business_name(rt: Runtime) -> str:
    return rt.settings.stampli.business or account_id(rt.store) or "business"


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
        documents=rt.paths.documents,
    )


# -- push-bills ----------------------------------------------------------------------------------


def run_push(
    rt: Runtime,
    *,
    dry_run: bool = False,
    full: bool = False,
    since: str | None = None,
    only_events: bool = False,
    advance: Advance = lambda amount: None,
    stage: Callable[[str], Callable[[int], object]] = lambda label: lambda amount: None,
) -> RunReport:
    """One push; a dry run writes its files locally and records nothing, not even its run."""
    if dry_run:
        return push(
            push_context(rt, None),
            full=full,
            since=since,
            dry_run_folder=rt.paths.dry_run,
            advance=advance,
        )
    with recorded_run(rt.store, "push-bills", RunReport("push-bills")) as run:
        run.report = push(
            push_context(rt, run.id),
            full=full,
            since=since,
            only_events=only_events,
            advance=advance,
            stage=stage,
        )
    return run.report


def push_bills(
    options: Options,
    *,
    dry_run: bool,
    full: bool,
    since: str | None,
    advance: Advance = lambda amount: None,
    progress: Progress | None = None,
) -> RunReport:
    with open_runtime(options) as rt:
        if progress is None:
            return run_push(rt, dry_run=dry_run, full=full, since=since, advance=advance)
        rt.on_page = progress.page
        report = run_push(
            rt, dry_run=dry_run, full=full, since=since, advance=advance, stage=progress.stage
        )
        progress.stage("")
        return report


# -- retry ---------------------------------------------------------------------------------------


def _requeue(rt: Runtime, kind: Kind, fb_id: int, *, force: bool, report: RunReport) -> None:
    store = rt.store
    latest = outbox.latest_delivery(store, kind, fb_id)
    label = f"{kind.value} {fb_id}"
    if latest is None:
        report.problems.append(f"{label} has not been seen in FreshBooks yet; run push-bills")
        return
    status = DeliveryStatus(latest["status"])
    if status in (DeliveryStatus.FAILED, DeliveryStatus.DEAD, DeliveryStatus.HELD):
        outbox.requeue_delivery(store, latest["id"])
        report.notes.append(f"{label}: re-queued its {status} delivery")
    elif status in (DeliveryStatus.PENDING, DeliveryStatus.PLANNED):
        report.notes.append(f"{label}: already queued")
        return
    elif force:
        queue_delivery(
            store,
            kind=kind,
            fb_id=fb_id,
            content_hash=latest["content_hash"],
            rows=list(delivery_rows(latest["rows"])),
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
            for status, wanted in ((DeliveryStatus.FAILED, failed), (DeliveryStatus.DEAD, dead)):
                if not wanted:
                    continue
                rows = outbox.requeue_all(store, status)
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
        with recorded_run(store, "retry", report) as run:
            deliver(
                store,
                Connection(rt.transport),
                rt.renderer(),
                settings=rt.settings,
                business=business_name(rt),
                clock=rt.clock,
                run_id=run.id,
                report=report,
                documents=rt.paths.documents,
            )
    return report


# -- pull-stampli and reconcile ------------------------------------------------------------------


def run_pull(rt: Runtime, *, now: bool = False) -> RunReport:
    """One poll of the outbound folder, unless the interval has not passed (`now` overrides)."""
    from fbstampli.sync.pull import PullContext, is_due, pull

    report = RunReport("pull-stampli")
    last = rt.store.get_value(LAST_PULL_KEY)
    interval = timedelta(minutes=rt.settings.pull.interval_minutes)
    if not now and not is_due(from_utc_text(last) if last else None, rt.clock.now(), interval):
        report.add("not_due")  # said first, in place of "No new Stampli exports" (summaries.py)
        return report
    with recorded_run(rt.store, "pull-stampli", report) as run:
        context = PullContext(
            template=rt.template(),
            settings=rt.settings,
            folder=rt.paths.stampli_files,
            quarantine=rt.paths.quarantine,
            run_id=run.id,
        )
        pull(rt.store, Connection(rt.transport), context, report)
        with rt.store.transaction():
            rt.store.put_value(LAST_PULL_KEY, to_utc_text(rt.clock.now()))
    return report


def pull_stampli(options: Options, *, now: bool) -> RunReport:
    with open_runtime(options) as rt:
        return run_pull(rt, now=now)


def _version_cells(rt: Runtime) -> VersionCells | None:
    """Where the template's bill rows hold the total: how reconcile reads the versions sent."""
    from fbstampli.sync.reconcile_inputs import version_cells

    try:
        return version_cells(rt.template())
    except TypeError:  # a runtime whose renderer is no template (tests): no versions read
        return None


def run_reconcile(rt: Runtime) -> RunReport:
    """Classify each bill from push's snapshots and Stampli's stored exports; store and report."""
    from fbstampli.store.runs import last_success_started_at
    from fbstampli.sync.push import READ_AT_KEY
    from fbstampli.sync.reconcile import reconcile_state

    report = RunReport("reconcile")
    with recorded_run(rt.store, "reconcile", report) as run:
        reconcile_state(
            rt.store,
            rt.freshbooks,
            rt.settings.reconcile,
            now=rt.clock.now(),
            run_id=run.id,
            report=report,
            cells=_version_cells(rt),
        )
    # Read by a push whatever became of its uploads; older states know only the runs.
    pushed = rt.store.get_value(READ_AT_KEY) or last_success_started_at(rt.store, "push-bills")
    if pushed is None:
        report.notes.append(
            "FreshBooks' bills and payments have not been read yet: run `fbstampli sync`, "
            "which pushes, then reconciles"
        )
    elif rt.clock.now() - from_utc_text(pushed) > FRESH_FOR:
        report.notes.append(
            f"FreshBooks' bills and payments are as push-bills last read them "
            f"({local_text(pushed)}): "
            "run `fbstampli sync` to reconcile against newer ones"
        )
    return report


# FreshBooks' side of a reconcile is what push-bills last read; older than this, it is said.
FRESH_FOR = timedelta(hours=1)

ReconciliationShower = Callable[[RunReport, Iterator[Mapping[str, Any]]], None]


def reconcile(options: Options, show: ReconciliationShower) -> RunReport:
    """Reconcile under the run lock, then hand every current outcome to `show`: streamed from
    the store, never held whole, and without the lock, so a report read slowly (a pager, a
    full disk's retries) never holds up the cron runs."""
    from fbstampli.reconcile_rows import report_row
    from fbstampli.store.reconcile_report import report_rows
    from fbstampli.sync.matching import VOID_STATUSES

    with open_runtime(options) as rt:
        report = run_reconcile(rt)
    with open_runtime(options, lock=False) as rt:
        show(report, (report_row(dict(row)) for row in report_rows(rt.store, VOID_STATUSES)))
    return report


# -- sync: the cron entry ------------------------------------------------------------------------


def sync(
    options: Options,
    advance: Advance = lambda amount: None,
    progress: Progress | None = None,
) -> RunReport:
    """push-bills, then pull-stampli and reconcile, under one lock: the cron entry."""
    from fbstampli.monitoring import monitored
    from fbstampli.progress import NoProgress
    from fbstampli.runtime import load_options_settings

    shown = progress or NoProgress()

    def run() -> RunReport:
        from fbstampli.services.backups import backup_if_due
        from fbstampli.services.stages import run_stages

        with open_runtime(options) as rt:
            rt.on_page = shown.page
            report = run_stages(
                rt,
                quiet=options.quiet,
                business=business_name(rt),
                push=lambda: run_push(rt, advance=advance, stage=shown.stage),
                pull=lambda: run_pull(rt),
                reconcile=lambda: run_reconcile(rt),
                stage=shown.stage,
            )
            report.merge(send_digest_if_due(rt))
            report.merge(backup_if_due(rt))
            return report

    return monitored(load_options_settings(options).monitoring.ping_url, run)
