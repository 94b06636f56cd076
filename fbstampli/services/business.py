"""Several businesses, one installation: `business add|list|remove`, `sync --all` and
`status --all` (the commands of `cli/business.py`).

Each business is run in its own home exactly as a single-home command would
be (its own lock, key, state, Stampli target and log); this module only walks
the list, keeps one business's failure from stopping the others, and sums up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fbstampli import attention
from fbstampli.errors import ConfigError, ExitCode, FbstampliError, LockHeldError
from fbstampli.installation import (
    BusinessHome,
    Installation,
    business_options,
    check_name,
)
from fbstampli.options import Options
from fbstampli.paths import expanded
from fbstampli.report import RunReport

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
    from fbstampli.installation import of

    return of(options)


def every_business(options: Options) -> list[BusinessHome]:
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
        return _adopt(options, installation, name, adopt, report)
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
        from fbstampli.atomic import write_atomic

        write_atomic(inner.paths().config, source.read_bytes())  # never through a planted link
        report.notes.append(f"config copied from {source}")
    made = init_home(inner, key_source=key_source)
    report.notes.extend(made.notes)
    installation.record(BusinessHome(name, home, adopted=False))
    report.add("created")
    report.notes.append(f"business {name} added to {installation.file}")
    report.notes.extend(_next_steps(options, name))
    return report


def _adopt(
    options: Options, installation: Installation, name: str, adopt: Path, report: RunReport
) -> RunReport:
    """Record an existing home as business `name`, untouched and unmoved."""
    from fbstampli.paths import check_home

    home = expanded(adopt, "--adopt").absolute()
    # Every later run there will be checked too; refuse now what those would refuse.
    check_home(Options(home=home).paths(), allow_foreign=options.allow_foreign_home)
    if not Options(home=home).paths().state.exists():
        raise ConfigError(
            f"nothing to adopt at {home}: it holds no fbstampli state; give the folder of "
            f"an existing home, or create one there first with `fbstampli --home {home} init`"
        )
    installation.record(BusinessHome(name, home, adopted=True))
    report.notes.append(f"adopted {home} as business {name}; nothing in it was changed")
    report.add("adopted")
    return report


@dataclass(frozen=True, slots=True)
class BusinessRow:
    """One business of `business list`: where its home is and whether its state is there."""

    name: str
    home: str
    adopted: bool
    state: str


def business_list(options: Options) -> list[BusinessRow]:
    """The installation's businesses, without opening any state (no key needed)."""
    rows = []
    for business in _installation(options).businesses():
        paths = Options(home=business.home).paths()
        try:
            state = "ok" if paths.state.is_file() else "missing: run `fbstampli init` there"
        except OSError as error:
            state = f"unreadable ({error.strerror})"
        rows.append(BusinessRow(business.name, str(business.home), business.adopted, state))
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
    # A transient condition (exit 75) not yet lasted `monitoring.quiet_transient_hours`:
    # under -q only its log has it, as in a single-home run.
    young_transient: bool = False

    def line(self) -> str:
        """One line for a failing business: its name, exit code and first reason (the first
        that -q did not silence)."""
        problems = self.report.problems if self.report else []
        said = [p for p in problems if self.report and p not in self.report.silenced]
        first = (said or problems or [""])[0]
        reason = self.error or first or "failed"
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


def refused(business: BusinessHome, error: FbstampliError) -> BusinessOutcome:
    """A business not run at all (its home refused): its outcome, and a line in our log."""
    from fbstampli.logs import redact

    log.warning("business %s not run: %s", business.name, error)
    return BusinessOutcome(
        business.name, business.home, int(error.exit_code), error=redact(str(error))
    )


def run_one(business: BusinessHome, work: Any) -> BusinessOutcome:
    """`work()` in one business, every failure turned into that business's outcome only.

    A bug in one business is logged with its traceback and counts as exit 70
    for it; the others still run. Ctrl-C and SIGTERM still stop everything.
    """
    from fbstampli.logs import CRASH_LOGGER, redact

    try:
        report = work()
    except FbstampliError as error:
        young = isinstance(error, LockHeldError) and error.held_seconds < error.quiet_seconds
        return BusinessOutcome(
            business.name,
            business.home,
            int(error.exit_code),
            error=redact(str(error)),
            young_transient=young,
        )
    except Exception as error:
        logging.getLogger(CRASH_LOGGER).exception("internal error in business %s", business.name)
        reason = f"internal error ({type(error).__name__}); this is a bug: see its log"
        return BusinessOutcome(business.name, business.home, int(ExitCode.INTERNAL), error=reason)
    silenced = not set(report.problems) - set(report.silenced)
    young = report.exit_code is ExitCode.TEMPFAIL and silenced
    return BusinessOutcome(
        business.name, business.home, int(report.exit_code), report=report, young_transient=young
    )


# -- status --all --------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class BusinessStatus:
    """One business's line of `status --all`: its figures and full `status` document, or
    (when its state cannot be read) only why not."""

    business: str
    home: str
    needs_attention: list[str]
    bills_in_stampli: int | None = None
    failing: int | None = None
    last_run: dict[str, Any] | None = None
    status: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def status_all(options: Options) -> list[BusinessStatus]:
    """One summary per business and its full `status` document (None when it cannot be read).

    Built on `services.status.status`, so the per-business document is exactly
    what `fbstampli --business NAME status --json` prints, and its attention is the same.
    """
    from fbstampli.services.status import status

    summaries: list[BusinessStatus] = []
    for business in every_business(options):
        try:
            inner = business_options(options, business)
            document = status(inner).to_json()
            bills = _bills_in_stampli(inner)
        except FbstampliError as error:
            from fbstampli.logs import redact

            reason = attention.unreadable(redact(str(error)))
            summaries.append(BusinessStatus(business.name, str(business.home), reason))
            continue
        summaries.append(
            BusinessStatus(
                business.name,
                str(business.home),
                document["attention"],
                bills_in_stampli=bills,
                failing=_failing(document),
                last_run=last_run(document),
                status=document,
            )
        )
    return summaries


def attention_first(summaries: list[BusinessStatus]) -> list[BusinessStatus]:
    """Those whose state cannot be read, then those that need attention, then the rest;
    each group in name order: what an AP lead reads first is what to act on."""
    return sorted(
        summaries,
        key=lambda s: (s.status is not None, not s.needs_attention, s.business),
    )
