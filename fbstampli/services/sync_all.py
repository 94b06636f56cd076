"""`sync --all`: every business of an installation in one tick, each in a process of its
own (`services/tick.py`), its outcome in the shapes of `services/business.py`."""

from __future__ import annotations

from fbstampli.errors import ConfigError, ExitCode
from fbstampli.installation import BusinessHome, business_options
from fbstampli.options import Options
from fbstampli.services.business import (
    AllReport,
    BusinessOutcome,
    _business_log,
    _installation,
    _log_outcome,
    every_business,
    refused,
    run_one,
)


def sync_all(options: Options, *, jobs: int = 1) -> AllReport:
    """`sync` in every business, at most `jobs` at once, each in a process of its own under
    its own lock and within the installation's time budget; a failure stops only its own.

    A business past its budget is stopped (safely: see `services/tick.py`), said once,
    and starts first at the next tick. The outcomes come back in name order whatever the
    order they ran in. A kill between two businesses loses nothing: each business's
    `sync` is resumable on its own, and the next `sync --all` simply runs them all again.
    """
    from fbstampli.runtime import load_options_settings
    from fbstampli.services import tick

    businesses = every_business(options)
    folder = _installation(options).folder
    budget = load_options_settings(options).sync.business_budget_seconds
    _preload()
    work = tick.Work(
        run=lambda business: _sync_one(options, business),
        cut=lambda business, why: _logged(business, _cut(business, why)),
        lost=lambda business, why: _logged(business, _lost(business, why)),
    )
    done = tick.run_bounded(tick.tick_order(folder, businesses), work, jobs=jobs, budget=budget)
    tick.remember_first(folder, done.cut)
    result = AllReport("sync")
    result.outcomes = [done.outcomes[business.name] for business in businesses]
    return result


def _preload() -> None:
    """Import here, once, what each business's `sync` imports on first use: the forked
    processes then share these pages instead of each importing them again (half a second
    of CPU per business, most of a quiet business's tick, measured in bench/bench_firm.py)."""
    import netrc  # noqa: F401 - requests reads ~/.netrc on its first request
    import time
    import xml.etree.ElementTree  # noqa: F401

    import fbstampli.freshbooks.account
    import fbstampli.freshbooks.client
    import fbstampli.freshbooks.oauth
    import fbstampli.monitoring
    import fbstampli.services.sync
    import fbstampli.sftp
    import fbstampli.sftp.transport
    import fbstampli.stampli.files
    import fbstampli.stampli.parse
    import fbstampli.stampli.render
    import fbstampli.store.reconciliations
    import fbstampli.store.stampli_files
    import fbstampli.sync.pull
    import fbstampli.sync.reconcile  # noqa: F401

    time.strptime("2000", "%Y")  # strptime imports its own module on its first call


def _sync_one(options: Options, business: BusinessHome) -> BusinessOutcome:
    """One business's `sync`, in its own process: logged to its own log file."""
    from fbstampli.errors import BudgetExceeded
    from fbstampli.logs import also_logging_to
    from fbstampli.services.sync import sync

    try:
        inner = business_options(options, business)  # its home checked before its log opens
    except ConfigError as error:
        return refused(business, error)
    with also_logging_to(_business_log(business)):
        try:
            outcome = run_one(business, lambda: sync(inner))
        except BudgetExceeded as stopped:
            outcome = _cut(business, str(stopped))
        _log_outcome("sync", outcome)
    return outcome


def _cut(business: BusinessHome, why: str) -> BusinessOutcome:
    reason = f"stopped after {why}; nothing is lost, and it goes first at the next run"
    return BusinessOutcome(business.name, business.home, int(ExitCode.TEMPFAIL), error=reason)


def _lost(business: BusinessHome, why: str) -> BusinessOutcome:
    reason = f"{why} before it finished; the next run finishes its work (see its log)"
    return BusinessOutcome(business.name, business.home, int(ExitCode.INTERNAL), error=reason)


def _logged(business: BusinessHome, outcome: BusinessOutcome) -> BusinessOutcome:
    """An outcome told here for a business whose process could not: into its log too."""
    from fbstampli.logs import also_logging_to

    with also_logging_to(_business_log(business)):
        _log_outcome("sync", outcome)
    return outcome
