"""`sync`'s stages, each standing alone: one outage stops only the stage that needs it.

FreshBooks down: what is queued still goes to Stampli, Stampli's exports are
still read and reconcile still runs (saying how old its FreshBooks facts are).
SFTP down: FreshBooks is still read and its changes queued. The run's exit code
is the worst stage's, and each stage's outcome is one sentence of the summary.

One cron-mail rule for conditions that pass by themselves (exit 75): under -q
they are only logged until they have lasted `monitoring.quiet_transient_hours`,
then each run says them in one line with since when; `status` always shows them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from fbstampli.clock import from_utc_text, local_text, to_utc_text
from fbstampli.errors import AuthRequiredError, ExitCode, RemoteError, TemporaryError
from fbstampli.logs import FILE_ONLY
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime
from fbstampli.store.runs import recorded_run
from fbstampli.sync.connection import Connection
from fbstampli.sync.deliver import deliver

log = logging.getLogger(__name__)

TRANSIENT_SINCE_KEY = "transient.since"
# What a stage may be stopped by while the others go on; anything else stops the run.
_STAGE_ERRORS = (TemporaryError, AuthRequiredError, RemoteError)


def run_stage(
    report: RunReport, outcomes: list[str], name: str, work: Callable[[], RunReport]
) -> bool:
    """Run one stage into `report`; an outage of its remote ends only this stage."""
    try:
        report.merge(work())
    except _STAGE_ERRORS as error:
        line = str(error)
        report.problems.append(line)
        if isinstance(error, TemporaryError):
            report.unreachable = True
            report.transient.append(line)
        elif isinstance(error, AuthRequiredError):
            report.stopped_with = ExitCode.AUTH
        outcomes.append(f"{name}: stopped ({error}).")
        return False
    outcomes.append(f"{name}: done.")
    return True


def deliver_queued(rt: Runtime, business: str) -> RunReport:
    """What is queued already, to Stampli, when FreshBooks could not be read."""
    report = RunReport("deliver")
    with recorded_run(rt.store, "deliver", report) as run:
        deliver(
            rt.store,
            Connection(rt.transport),
            rt.renderer(),
            settings=rt.settings,
            business=business,
            clock=rt.clock,
            run_id=run.id,
            report=report,
            documents=rt.paths.documents,
        )
    return report


def facts_age(rt: Runtime, read_at: str | None) -> str:
    """How old reconcile's FreshBooks side is, as a sentence."""
    if read_at is None:
        return "Reconcile: FreshBooks has not been read yet, so no bill could be compared."
    minutes = int((rt.clock.now() - from_utc_text(read_at)).total_seconds() // 60)
    return (
        f"Reconcile: compared against FreshBooks as read at {local_text(read_at)} "
        f"({minutes // 60} h {minutes % 60} min ago)."
    )


def quiet_transient(rt: Runtime, report: RunReport, *, quiet: bool) -> None:
    """Record since when a transient condition lasts; under -q, say it only once it lasted."""
    now = rt.clock.now()
    since_text = rt.store.get_value(TRANSIENT_SINCE_KEY)
    with rt.store.transaction():
        if report.exit_code is not ExitCode.TEMPFAIL:
            rt.store.delete_value(TRANSIENT_SINCE_KEY)
            return
        if since_text is None:
            since_text = to_utc_text(now)
            rt.store.put_value(TRANSIENT_SINCE_KEY, since_text)
    if not quiet or not report.transient:
        return
    since = from_utc_text(since_text)
    log.info("transient since %s", since_text, extra=FILE_ONLY)
    report.silenced.extend(report.transient)  # the log has them (log_outcome)
    hours = rt.settings.monitoring.quiet_transient_hours
    if (now - since).total_seconds() >= hours * 3600:  # 0: said at once, as before
        first = report.problems.index(report.transient[0])
        report.problems[first] = lasted_line(report.transient[0], since, now)


def lasted_line(first: str, since: datetime, now: datetime) -> str:
    minutes = int((now - since).total_seconds() // 60)
    return (
        f"{first}; failing since {local_text(since)} "
        f"({minutes // 60} h {minutes % 60} min); runs keep trying"
    )


def run_stages(
    rt: Runtime,
    *,
    quiet: bool,
    business: str,
    push: Callable[[], RunReport],
    pull: Callable[[], RunReport],
    reconcile: Callable[[], RunReport],
    stage: Callable[[str], object],
) -> RunReport:
    """push-bills, then pull-stampli and reconcile, each going on whatever befell the others."""
    from fbstampli.sync.push import READ_AT_KEY

    report = RunReport("sync")
    outcomes: list[str] = []
    read = run_stage(report, outcomes, "FreshBooks", push)
    if not read:  # what was queued before still goes
        run_stage(report, outcomes, "Uploads to Stampli", lambda: deliver_queued(rt, business))
    stage("Reading Stampli's exports")
    run_stage(report, outcomes, "Stampli's exports", pull)
    stage("Reconciling")
    rt.on_page = None  # only a bill never read is asked for; no page bar
    if run_stage(report, outcomes, "Reconcile", reconcile) and not read:
        outcomes[-1] = facts_age(rt, rt.store.get_value(READ_AT_KEY))
    stage("")
    if any("stopped" in outcome for outcome in outcomes):
        report.summary = outcomes
    quiet_transient(rt, report, quiet=quiet)
    return report
