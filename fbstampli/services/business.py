"""Several businesses, one installation: `business add|list|remove`, `sync --all` and
`status --all` (the commands of `cli/business.py`).

Each business is run in its own home exactly as a single-home command would
be (its own lock, key, state, Stampli target and log); this module only walks
the list, keeps one business's failure from stopping the others, and sums up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fbstampli.errors import ConfigError, ExitCode, FbstampliError
from fbstampli.installation import (
    BusinessHome,
    Installation,
    business_options,
    check_name,
)
from fbstampli.options import Options
from fbstampli.paths import expanded
from fbstampli.report import RunReport

if TYPE_CHECKING:
    from fbstampli.listener import InstallationListener, Worker, WorkerState

log = logging.getLogger(__name__)

# How bad an exit code is, for the one code `sync --all` ends with. Not numeric order:
# 75 (try later) heals by itself and 1 (records queued for retry) nearly so, while 3, 2
# and 4 each wait for a person, and 70 is a bug.
SEVERITY = (
    ExitCode.OK,
    ExitCode.TEMPFAIL,
    ExitCode.PARTIAL,
    ExitCode.AUTH,
    ExitCode.USAGE,
    ExitCode.STATE,
    ExitCode.INTERNAL,
)


def worst(codes: list[int]) -> int:
    """The most serious of `codes` (0 for none); an unknown code counts as a bug."""
    rank = {int(code): index for index, code in enumerate(SEVERITY)}
    return max(codes, key=lambda code: rank.get(code, len(SEVERITY)), default=0)


def _installation(options: Options) -> Installation:
    return Installation(options.installation_folder())


def _all(options: Options) -> list[BusinessHome]:
    if options.config is not None:
        raise ConfigError("--all runs each business with its own config; drop --config")
    installation = _installation(options)
    businesses = installation.businesses()
    if not businesses:
        if Options(home=installation.folder).paths().state.is_file():
            raise ConfigError(
                f"{installation.folder} is a single home with no businesses listed; run plain "
                "`fbstampli sync`, or list it first with `fbstampli business add NAME --adopt "
                f"{installation.folder}`"
            )
        raise ConfigError(
            f"no businesses in {installation.folder}; add one with `fbstampli business add NAME` "
            "(or give --installation DIR)"
        )
    return businesses


# -- business add | list | remove ----------------------------------------------------------------


def _next_steps(options: Options, name: str) -> list[str]:
    """The commands to run next, spelt so that they find this installation again."""
    from fbstampli.installation import INSTALLATION_ENV
    from fbstampli.paths import default_home

    folder = options.installation_folder()
    found_anyway = folder == default_home(options.env) or options.env.get(INSTALLATION_ENV) == str(
        folder
    )
    run = "fbstampli" + ("" if found_anyway else f" --installation {folder}")
    run += f" --business {name}"
    return [
        f"next: `{run} auth login` (choose this business's FreshBooks business)",
        f"then: `{run} auth sftp --host HOST --username USER --accept-host-key SHA256:… "
        "--password-stdin` "
        "(this business's Stampli SFTP target)",
        f"webhooks (optional): `{run} webhooks register --url "
        f"https://YOUR-HOST/webhooks/freshbooks/{name}` with serve-webhook running",
    ]


def business_add(
    options: Options,
    name: str,
    *,
    adopt: Path | None = None,
    key_source: str = "auto",
    config_from: Path | None = None,
) -> RunReport:
    """Create a business home under the installation (or adopt an existing home) and list it.

    A new home is made by `init` in `<installation>/businesses/<name>/`; an
    adopted home is recorded by its absolute path, untouched and unmoved.
    """
    from fbstampli.services.admin import init_home

    check_name(name)
    installation = _installation(options)
    known = installation.businesses()
    if any(b.name == name for b in known):
        raise ConfigError(f"business {name!r} exists already in {installation.folder}")
    report = RunReport("business add")
    if adopt is not None:
        if config_from is not None:
            raise ConfigError("--adopt keeps the home's own config; drop --config-from")
        home = expanded(adopt, "--adopt").absolute()
        if not Options(home=home).paths().state.exists():
            raise ConfigError(
                f"nothing to adopt at {home}: it holds no fbstampli state; give the folder of "
                f"an existing home, or create one there first with `fbstampli --home {home} init`"
            )
        business = BusinessHome(name, home, adopted=True)
        installation.record(business)
        report.notes.append(f"adopted {home} as business {name}; nothing in it was changed")
        report.add("adopted")
        return report
    home = installation.new_home(name)
    if home.exists() and any(home.iterdir()):
        raise ConfigError(
            f"{home} exists and is not empty; adopt it with `fbstampli business add {name} "
            f"--adopt {home}`, or choose another name"
        )
    inner = business_options(options, BusinessHome(name, home, adopted=False))
    if config_from is not None:
        from fbstampli.runtime import load_options_settings

        source = expanded(config_from, "--config-from")
        load_options_settings(Options(config=source, env=options.env))  # refuse a bad one first
        inner.paths().ensure()
        inner.paths().config.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
        report.notes.append(f"config copied from {source}")
    made = init_home(inner, key_source=key_source)
    report.notes.extend(made.notes)
    installation.record(BusinessHome(name, home, adopted=False))
    report.add("created")
    report.notes.append(f"business {name} added to {installation.file}")
    report.notes.extend(_next_steps(options, name))
    return report


def business_list(options: Options) -> list[dict[str, Any]]:
    """The installation's businesses, without opening any state (no key needed)."""
    rows = []
    for business in _installation(options).businesses():
        paths = Options(home=business.home).paths()
        try:
            state = "ok" if paths.state.is_file() else "missing: run `fbstampli init` there"
        except OSError as error:
            state = f"unreadable ({error.strerror})"
        rows.append(
            {
                "name": business.name,
                "home": str(business.home),
                "adopted": business.adopted,
                "state": state,
            }
        )
    return rows


def business_remove(options: Options, name: str) -> RunReport:
    """Forget one business; its home, state and key stay where they are."""
    gone = _installation(options).forget(check_name(name))
    report = RunReport("business remove")
    report.add("removed")
    report.notes.append(
        f"business {name} is no longer part of the installation; its home {gone.home} "
        "was left as it is"
    )
    return report


# -- sync --all ----------------------------------------------------------------------------------


@dataclass(slots=True)
class BusinessOutcome:
    """How one business's run ended: its report when it ran, else the error that stopped it."""

    name: str
    home: Path
    exit_code: int
    report: RunReport | None = None
    error: str | None = None

    def line(self) -> str:
        """One line for a failing business: its name, exit code and first reason."""
        reason = self.error or (self.report.problems[0] if self.report else "") or "failed"
        more = len(self.report.problems) - 1 if self.report and not self.error else 0
        tail = f" (and {more} more problems: see its log)" if more > 0 else ""
        return f"business {self.name}: exit {self.exit_code}: {reason}{tail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "business": self.name,
            "home": str(self.home),
            "exit_code": self.exit_code,
            "error": self.error,
            "report": self.report.as_dict() if self.report else None,
        }


@dataclass(slots=True)
class AllReport:
    command: str
    outcomes: list[BusinessOutcome] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return worst([outcome.exit_code for outcome in self.outcomes])

    @property
    def failing(self) -> list[BusinessOutcome]:
        return [outcome for outcome in self.outcomes if outcome.exit_code != 0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "businesses": [outcome.as_dict() for outcome in self.outcomes],
        }


def _business_log(business: BusinessHome) -> Path | None:
    try:
        return Options(home=business.home).paths().existing_log_file()
    except ConfigError:
        return None


def _log_outcome(command: str, outcome: BusinessOutcome) -> None:
    """The business's outcome into its own log file, as a single-home run writes it."""
    from fbstampli.logs import FILE_ONLY

    report = outcome.report
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()) if v) if report else ""
    log.info(
        "%s (--all, business %s): exit %d; %s",
        command,
        outcome.name,
        outcome.exit_code,
        outcome.error or counts or "nothing to do",
        extra=FILE_ONLY,
    )
    for problem in report.problems if report else []:
        log.warning("%s: %s", command, problem, extra=FILE_ONLY)


def run_one(business: BusinessHome, work: Any) -> BusinessOutcome:
    """`work()` in one business, every failure turned into that business's outcome only.

    A bug in one business is logged with its traceback and counts as exit 70
    for it; the others still run. Ctrl-C and SIGTERM still stop everything.
    """
    from fbstampli.logs import CRASH_LOGGER, redact

    try:
        report = work()
    except FbstampliError as error:
        return BusinessOutcome(
            business.name, business.home, int(error.exit_code), error=redact(str(error))
        )
    except Exception as error:
        logging.getLogger(CRASH_LOGGER).exception("internal error in business %s", business.name)
        reason = f"internal error ({type(error).__name__}); this is a bug: see its log"
        return BusinessOutcome(business.name, business.home, int(ExitCode.INTERNAL), error=reason)
    return BusinessOutcome(business.name, business.home, int(report.exit_code), report=report)


def sync_all(options: Options) -> AllReport:
    """`sync` in every business in turn, each under its own lock; a failure stops only its own.

    A kill between two businesses loses nothing: each business's `sync` is
    resumable on its own, and the next `sync --all` simply runs them all again.
    """
    from fbstampli.logs import also_logging_to
    from fbstampli.services.sync import sync

    result = AllReport("sync")
    for business in _all(options):
        inner = business_options(options, business)
        with also_logging_to(_business_log(business)):
            outcome = run_one(business, lambda inner=inner: sync(inner))
            _log_outcome("sync", outcome)
        result.outcomes.append(outcome)
    return result


# -- status --all --------------------------------------------------------------------------------


def attention_reasons(document: dict[str, Any]) -> list[str]:
    """Why a business's `status` document needs a person; empty when it does not."""
    reasons: list[str] = []
    if not document.get("freshbooks", {}).get("logged_in"):
        reasons.append("not logged in to FreshBooks")
    if not document.get("sftp", {}).get("configured"):
        reasons.append("no Stampli SFTP login")
    deliveries = document.get("deliveries", {})
    waiting = deliveries.get("waiting", {})
    for status in ("failed", "dead"):
        count = waiting.get(status, {}).get("count", 0)
        if count:
            reasons.append(f"{count} {status} deliveries")
    if deliveries.get("stuck_batches"):
        reasons.append(f"{deliveries['stuck_batches']} stuck batches")
    quarantined = document.get("stampli_files", {}).get("quarantined") or []
    if quarantined:
        reasons.append(f"{len(quarantined)} quarantined Stampli files")
    mismatches = _reconcile_attention(document.get("reconciliation", {}))
    if mismatches:
        reasons.append(f"{mismatches} bills to reconcile")
    last = last_run(document)
    if last and last["exit_code"] not in (None, 0, int(ExitCode.TEMPFAIL)):
        reasons.append(f"last {last['command']} exited {last['exit_code']}")
    return reasons


def _reconcile_attention(reconciliation: dict[str, Any]) -> int:
    """Bills the last reconcile found needing a look: not those merely still in progress."""
    from fbstampli.sync.matching import Outcome

    outcomes = reconciliation.get("outcomes")
    if not isinstance(outcomes, dict):
        return int(reconciliation.get("needs_attention") or 0)
    known = {outcome.value: outcome for outcome in Outcome}
    return sum(
        int(count)
        for name, count in outcomes.items()
        if name not in known or known[name].needs_attention
    )


def last_run(document: dict[str, Any]) -> dict[str, Any] | None:
    """The newest run of any command in a status document."""
    runs = document.get("runs", {})
    if not runs:
        return None
    command, run = max(runs.items(), key=lambda item: str(item[1].get("started_at")))
    return {"command": command, **run}


def _failing(document: dict[str, Any]) -> int:
    waiting = document.get("deliveries", {}).get("waiting", {})
    return sum(int(waiting.get(status, {}).get("count", 0)) for status in ("failed", "dead"))


def _bills_in_stampli(options: Options) -> int:
    from fbstampli.models import Kind
    from fbstampli.runtime import open_runtime
    from fbstampli.store.outbox import delivered_object_count

    with open_runtime(options, lock=False) as rt:
        return delivered_object_count(rt.store, Kind.BILL)


def status_all(options: Options) -> list[dict[str, Any]]:
    """One summary per business and its full `status` document (None when it cannot be read).

    Built on `services.admin.status`, so the per-business document is exactly
    what `fbstampli --business NAME status --json` prints.
    """
    from fbstampli.services.admin import status

    summaries: list[dict[str, Any]] = []
    for business in _all(options):
        inner = business_options(options, business)
        summary: dict[str, Any] = {"business": business.name, "home": str(business.home)}
        try:
            document = status(inner)
            bills = _bills_in_stampli(inner)
        except FbstampliError as error:
            from fbstampli.logs import redact

            reason = f"cannot read its state: {redact(str(error))}"
            summary.update(
                bills_in_stampli=None,
                failing=None,
                last_run=None,
                needs_attention=[reason],
                status=None,
            )
        else:
            summary.update(
                bills_in_stampli=bills,
                failing=_failing(document),
                last_run=last_run(document),
                needs_attention=attention_reasons(document),
                status=document,
            )
        summaries.append(summary)
    return summaries


# -- serve-webhook --all -------------------------------------------------------------------------


def _worker_state(worker: Worker) -> WorkerState:
    return worker.state


def serve_webhook_all(options: Options, *, host: str | None, port: int | None) -> RunReport:
    """Serve every business's callbacks on one port until SIGTERM/SIGINT (`serve-webhook --all`).

    Events arrive into each business's store at once; its own worker pushes
    them `debounce_seconds` later under its own run lock. On shutdown the
    listener stops accepting first, then each push in progress may finish.
    """
    import threading

    from fbstampli.signals import stop_signals

    stop = threading.Event()
    report = RunReport("serve-webhook")
    with (
        installation_listener(options, host=host, port=port, report=report) as listener,
        stop_signals(stop),
    ):
        for name in listener.listeners:
            log.info("business %s: listening on %s", name, listener.url(name))
        while not stop.wait(0.5):
            pass
    return report


@contextmanager
def installation_listener(
    options: Options, *, host: str | None, port: int | None, report: RunReport
) -> Iterator[InstallationListener]:
    """The one listener of an installation, started, with a worker per business; stopped (and
    its figures added to `report`) on the way out.

    Each business gets what a single-home `serve-webhook` would hold: its
    listener lock, its open state, its own worker draining under its own run
    lock. One that cannot be opened (another listener has it, a lost key) is
    left out with a warning and answers 503, so FreshBooks keeps its events
    for later; the others are served. Host and port come from the arguments,
    else from the installation folder's own config (127.0.0.1:8787 by default).
    """
    from contextlib import ExitStack
    from functools import partial

    from fbstampli.listener import InstallationListener, Listener, Worker
    from fbstampli.lock import listener_lock
    from fbstampli.runtime import load_options_settings, open_runtime, require_home
    from fbstampli.services.webhooks import (
        LISTENER_WRITE_WAIT_SECONDS,
        SHUTDOWN_GRACE_SECONDS,
        drain,
    )
    from fbstampli.store import events as hooks

    businesses = _all(options)
    front = load_options_settings(options).webhook
    with ExitStack() as stack:
        listeners: dict[str, Listener] = {}
        workers: dict[str, Worker] = {}
        unavailable: dict[str, str] = {}
        leftovers: list[str] = []
        refusals: list[FbstampliError] = []
        for business in businesses:
            inner = business_options(options, business)
            try:
                require_home(inner.paths())
                opened = ExitStack()
                with opened:
                    opened.enter_context(
                        listener_lock(inner.paths().listener_lock, holder="serve-webhook")
                    )
                    rt = opened.enter_context(open_runtime(inner, lock=False))
                    rt.store.wait_for_writers(LISTENER_WRITE_WAIT_SECONDS)
                    stack.enter_context(opened.pop_all())
            except FbstampliError as error:
                unavailable[business.name] = str(error)
                refusals.append(error)
                report.problems.append(f"business {business.name} not served: {error}")
                log.warning("business %s is not served: %s", business.name, error)
                continue
            worker = Worker(partial(drain, inner), debounce=rt.settings.webhook.debounce_seconds)
            workers[business.name] = worker
            listeners[business.name] = Listener(
                rt.store,
                wake=worker.wake,
                max_body_bytes=rt.settings.webhook.max_body_bytes,
                worker_state=partial(_worker_state, worker),
                serve=False,
                refuse_other_accounts=True,
            )
            if hooks.queue_state(rt.store).queued or hooks.pending_verifiers(rt.store):
                leftovers.append(business.name)
        if refusals and not listeners:  # e.g. a second `serve-webhook --all`: say why, now
            raise refusals[0]
        bind_host = host or front.host
        bind_port = front.port if port is None else port
        try:
            listener = InstallationListener(
                listeners,
                unavailable=unavailable,
                host=bind_host,
                port=bind_port,
                max_body_bytes=max(
                    (each.max_body_bytes for each in listeners.values()),
                    default=front.max_body_bytes,
                ),
            )
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {bind_host}:{bind_port} ({error.strerror}); "
                "choose another --host/--port or stop what uses it"
            ) from None
        for worker in workers.values():
            worker.start()
        listener.start()
        for name in leftovers:
            workers[name].wake()  # left over from before a restart
        try:
            yield listener
        finally:
            listener.stop()
            for name, worker in workers.items():
                if not worker.stop(SHUTDOWN_GRACE_SECONDS):
                    log.warning("business %s: a push was still running at shutdown", name)
        for name, each in listeners.items():
            stats = each.stats
            report.add("events_accepted", stats.accepted)
            report.add("events_duplicate", stats.duplicates)
            report.add("handshakes", stats.handshakes)
            report.add("rejected", sum(stats.rejected.values()))
            report.add("push_runs", workers[name].state.runs)
        report.add("rejected", sum(listener.stats.rejected.values()))
