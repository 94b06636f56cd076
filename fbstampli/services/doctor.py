"""`fbstampli doctor`: every check an operator needs, each with its own failure and fix.

Checks run in order; when one fails, those that depend on it are named as
skipped with why, and every other one still runs (`doctor_local`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from fbstampli.clock import from_utc_text
from fbstampli.errors import (
    AuthRequiredError,
    ConfigError,
    FbstampliError,
    LockHeldError,
    TemplateError,
    TemporaryError,
)
from fbstampli.options import Options
from fbstampli.services.doctor_local import CheckResult as CheckResult

if TYPE_CHECKING:
    from fbstampli.runtime import Runtime

# FreshBooks' clock decides when tokens expire and stamps webhook events; NTP keeps a
# machine within a second of it, so minutes off means the clock is not synchronised at all.
CLOCK_TOLERANCE = timedelta(minutes=5)
EARLIEST_PLAUSIBLE = datetime(2024, 1, 1, tzinfo=UTC)  # before this version was written
CLOCK_FIX = "set the system clock and keep it synchronised (NTP, e.g. `timedatectl set-ntp true`)"
MAX_PROBLEMS_SHOWN = 3


class _Told(list[CheckResult]):
    """The results list that also tells each result as it is added, so `doctor` prints every
    check when it finishes instead of a blank screen until the slowest one."""

    def __init__(self, tell: Callable[[CheckResult], None]) -> None:
        super().__init__()
        self._tell = tell

    def append(self, result: CheckResult) -> None:
        super().append(result)
        self._tell(result)

    def extend(self, results: Iterable[CheckResult]) -> None:
        for result in results:
            self.append(result)


def _check(
    name: str, fix: str, probe: Callable[[], str], *, unreachable_fix: str | None = None
) -> CheckResult:
    """Run one probe; a failure carries `fix`, or `unreachable_fix` when the far end was down."""
    try:
        return CheckResult(name, True, probe())
    except TemporaryError as error:
        return CheckResult(name, False, str(error), unreachable_fix or fix)
    except AuthRequiredError as error:
        return CheckResult(name, False, str(error), fix)
    except TemplateError as error:
        return CheckResult(name, False, str(error), fix)
    except ConfigError as error:
        # A setting or file problem: its message names the fix; a generic one beside it
        # (e.g. "run auth login" for a missing client id) would contradict it.
        return CheckResult(name, False, str(error), "")
    except FbstampliError as error:
        return CheckResult(name, False, str(error), fix)
    except OSError as error:
        from fbstampli.access import access_error

        denied = access_error(error)
        if denied is not None:
            detail, _, access_fix = str(denied).partition("; ")
            return CheckResult(name, False, detail, access_fix)
        return CheckResult(name, False, f"{type(error).__name__}: {error.strerror}", fix)


def run_checks(
    options: Options,
    *,
    now: Callable[[], datetime] | None = None,
    tell: Callable[[CheckResult], None] = lambda result: None,
) -> list[CheckResult]:
    """Every check, in order; `tell` hears each result as soon as it is known. A failure
    never ends the list: what cannot be checked after it is named as skipped, with why."""
    from fbstampli.runtime import open_runtime
    from fbstampli.services.doctor_local import open_failure, without_the_state

    clock = now or (lambda: datetime.now(UTC))
    results = _Told(tell)
    _local_checks(options, results)
    failed = next((result.name for result in results if not result.ok), None)
    if failed is not None:
        results.extend(without_the_state(options, f"the {failed} check failed"))
        results.append(clock_check(clock()))
        return results
    try:
        stack = open_runtime(options, lock=False)
        rt = stack.__enter__()
    except FbstampliError as error:
        results.append(open_failure(error, options.paths()))
        results.extend(without_the_state(options, "the state could not be opened"))
        results.append(clock_check(clock()))
        return results
    try:
        _check_the_state(rt, clock, results)
    finally:
        stack.__exit__(None, None, None)
    return results


def _local_checks(options: Options, results: _Told) -> None:
    """The checks of this machine that need no opened state: settings, state file, home, disk."""
    from fbstampli.runtime import load_options_settings, require_home
    from fbstampli.services.doctor_local import disk_check

    results.extend(
        [
            _check(
                "config",
                "fix the named settings in config.toml or the FBSTAMPLI_* environment",
                lambda: _settings_valid(options, load_options_settings),
            ),
            _check(
                "state file",
                "run `fbstampli init`",
                lambda: _state_exists(options, require_home),
            ),
            _home_private(options),
            disk_check(options.paths()),
        ]
    )


def _check_the_state(rt: Runtime, clock: Callable[[], datetime], results: _Told) -> None:
    """The checks that need the opened state: key, integrity, template, FreshBooks, SFTP,
    clock; each added to `results` (and so told) the moment it is known."""
    results.append(CheckResult("key", True, f"the state key comes from {rt.key.source.value}"))
    results.append(_integrity(rt))
    results.append(
        _check(
            "template",
            "fix the named field, then `fbstampli template check FILE`",
            lambda: (rt.renderer(), "the Stampli template is valid")[1],
        )
    )
    readings: list[tuple[datetime, datetime]] = []  # (local, FreshBooks) at its answer
    results.append(
        _check(
            "FreshBooks",
            "run `fbstampli auth login`",
            lambda: _freshbooks_under_lock(rt, clock, readings),
            # Logging in again cannot help while FreshBooks does not answer at all.
            unreachable_fix="check the network and freshbooks.api_url; runs retry on their own",
        )
    )
    results.extend(_behaviour(rt))
    results.extend(_sftp_checks(rt))
    results.append(_backups(rt, clock()))
    if readings:
        local, reference = readings[-1]
        results.append(clock_check(local, freshbooks_time=reference))
    else:
        results.append(clock_check(clock(), last_run=_last_run(rt)))


def _behaviour(rt: Runtime) -> list[CheckResult]:
    """What the runs learnt of FreshBooks' unconfirmed behaviours, one line each. A fallback
    is no failure (the runs stay correct, at the cost the line names): these always pass."""
    from fbstampli.models.behaviour import describe
    from fbstampli.store.api_facts import load_facts
    from fbstampli.sync.payments import as_fact

    try:
        facts = {**load_facts(rt.store), **as_fact(rt.store)}
    except FbstampliError as error:
        return [CheckResult("FreshBooks behaviour", False, str(error), "see the state checks")]
    if not facts:
        return [CheckResult("FreshBooks behaviour", True, "not checked yet: the first sync does")]
    return [
        CheckResult(f"FreshBooks {label}", True, detail)
        for label, _, detail in (line.partition(": ") for line in describe(facts))
        if not detail.startswith("not checked")
    ]


def _backups(rt: Runtime, now: datetime) -> CheckResult:
    from fbstampli.services.backups import describe_backups

    ok, detail = describe_backups(rt.paths, now, rt.settings.state.backup_hours)
    return CheckResult("backups", ok, detail, "" if ok else "is cron running `fbstampli sync`?")


def _home_private(options: Options) -> CheckResult:
    """The home 0700 and state.key 0600: what another local user could read of ours."""
    import stat

    from fbstampli.paths import check_home

    paths = options.paths()
    try:
        check_home(paths, allow_foreign=options.allow_foreign_home)
    except FbstampliError as error:
        detail, _, fix = str(error).partition("; ")
        return CheckResult("home", False, detail, fix or "fix it as the message says")
    open_to_others = []
    for path, wanted in ((paths.home, 0o700), (paths.key_file, 0o600)):
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue
        except OSError as error:
            return CheckResult("home", False, f"cannot look at {path} ({error.strerror})")
        if mode & 0o077:
            open_to_others.append((path, mode, wanted))
    if open_to_others:
        shown = ", ".join(f"{path} is {mode:04o}" for path, mode, _ in open_to_others)
        fix = "; ".join(f"chmod {wanted:o} {path}" for path, _, wanted in open_to_others)
        return CheckResult("home", False, f"other users can look in: {shown}", fix)
    return CheckResult("home", True, f"{paths.home} and its key are private to their owner")


def _integrity(rt: Runtime) -> CheckResult:
    from fbstampli.store import integrity_problems_of

    fix = "restore the last good backup with `fbstampli state restore FILE`"
    try:
        problems = integrity_problems_of(rt.paths.state, rt.key, rt.clock)
    except FbstampliError as error:
        return CheckResult("state integrity", False, str(error), fix)
    shown = problems[:MAX_PROBLEMS_SHOWN]
    if len(problems) > len(shown):
        shown.append(f"and {len(problems) - len(shown)} more")
    return CheckResult(
        "state integrity", not problems, "; ".join(shown) or "cipher and page checks ok", fix
    )


def clock_check(
    local: datetime, *, freshbooks_time: datetime | None = None, last_run: datetime | None = None
) -> CheckResult:
    """Judge the local clock: against FreshBooks' when it answered, else for plausibility.

    Without FreshBooks' `Date` only gross errors show: a date before this program
    existed, or one earlier than a run the state has already recorded (the clock
    went backwards, so backoff and pull intervals would wait far too long).
    """
    said = f"the clock says {_time_text(local)}"
    if freshbooks_time is not None:
        skew = (local - freshbooks_time).total_seconds()
        direction = "ahead of" if skew > 0 else "behind"
        gap = f"{duration_text(abs(skew))} {direction} FreshBooks ({_time_text(freshbooks_time)})"
        if abs(skew) > CLOCK_TOLERANCE.total_seconds():
            return CheckResult(
                "clock",
                False,
                f"{said}, {gap}: token expiry and webhook times depend on it",
                CLOCK_FIX,
            )
        if abs(skew) < 1:
            return CheckResult("clock", True, f"{said}, in step with FreshBooks")
        return CheckResult("clock", True, f"{said}, {gap}")
    if local < EARLIEST_PLAUSIBLE:
        return CheckResult("clock", False, f"{said}, which cannot be right", CLOCK_FIX)
    if last_run is not None and local < last_run - CLOCK_TOLERANCE:
        return CheckResult(
            "clock",
            False,
            f"{said}, before the last recorded run ({_time_text(last_run)}): it went backwards",
            CLOCK_FIX,
        )
    return CheckResult(
        "clock",
        True,
        f"skipped: not compared with FreshBooks (no answer with a date); {said}",
        skipped=True,
    )


def _last_run(rt: Runtime) -> datetime | None:
    """When the newest recorded run started; None when there is none or it cannot be read."""
    from fbstampli.store.runs import last_run_started_at

    try:
        started = last_run_started_at(rt.store)
    except FbstampliError:
        return None  # the state integrity check reports that
    return from_utc_text(started) if started else None


def _time_text(moment: datetime) -> str:
    """A time in a check's sentence: for people, so local with its zone, as in every command
    (to the second: the clock check is about seconds)."""
    from fbstampli.clock import local_text

    return local_text(moment, seconds=True)


def duration_text(seconds: float) -> str:
    """'45 s', '7 min 3 s', '2 h 5 min', '3 d 4 h': the two largest units, whole seconds."""
    whole = round(seconds)
    parts = [(whole // 86400, "d"), (whole % 86400 // 3600, "h"), (whole % 3600 // 60, "min")]
    parts.append((whole % 60, "s"))
    first = next((index for index, (value, _) in enumerate(parts) if value), None)
    if first is None:
        return "0 s"
    return " ".join(f"{value} {unit}" for value, unit in parts[first : first + 2] if value)


def _settings_valid(options: Options, load: Callable[[Options], object]) -> str:
    load(options)
    return "settings are valid"


def _state_exists(options: Options, require_home: Callable[..., None]) -> str:
    require_home(options.paths())
    return f"{options.paths().state} exists"


def _freshbooks(
    rt: Runtime, clock: Callable[[], datetime], readings: list[tuple[datetime, datetime]]
) -> str:
    """One identity call; each answer's `Date` is kept with the local time it arrived at."""
    from fbstampli.freshbooks.account import probe_login, require_app
    from fbstampli.runtime import require_account
    from fbstampli.store.credentials import StateTokenStore

    require_app(rt.settings.freshbooks)
    account = require_account(rt.store)
    memberships = probe_login(
        rt.settings.freshbooks,
        StateTokenStore(rt.store),
        account_id=account,
        now=rt.clock.now,
        sleep=rt.clock.sleep,
        on_server_time=lambda moment: readings.append((clock(), moment)),
    )
    if not any(m.account_id == account for m in memberships):
        raise FbstampliError(f"this login no longer reaches account {account}")
    missing = _missing_scopes(rt)
    if missing:
        raise FbstampliError(
            f"the login was granted without {', '.join(missing)}, which sync reads; run "
            "`fbstampli auth login` and grant them (the app registration must offer them)"
        )
    return f"the token works for account {account}{_optional_scopes(rt)}"


def _optional_scopes(rt: Runtime) -> str:
    """The coding lists' scopes the grant lacks: named, no failure (the bills flow)."""
    from fbstampli.freshbooks.client.coding import lacking_scopes_note
    from fbstampli.store.credentials import StateTokenStore

    token = StateTokenStore(rt.store).load()
    return lacking_scopes_note(token.scope if token else "", rt.settings.sync.coding_lists_hours)


# doctor waits this long for a running sync; past it, the token is reported, not refreshed.
DOCTOR_LOCK_WAIT_SECONDS = 3.0


def _freshbooks_under_lock(
    rt: Runtime, clock: Callable[[], datetime], readings: list[tuple[datetime, datetime]]
) -> str:
    """The FreshBooks probe under the run lock, since it may refresh the single-use token.

    A refresh beside a running sync spends the refresh token that sync holds in
    memory, and the sync then fails as if logged out. When another run keeps
    the lock, the stored token's state is told instead of calling FreshBooks.
    """
    from fbstampli.lock import run_lock

    try:
        with run_lock(rt.paths.lock, wait_seconds=DOCTOR_LOCK_WAIT_SECONDS):
            return _freshbooks(rt, clock, readings)
    except LockHeldError:
        pass
    from fbstampli.store.credentials import StateTokenStore

    token = StateTokenStore(rt.store).load()
    if token is None:
        raise AuthRequiredError("not logged in to FreshBooks")
    return (
        "not called: another run holds the run lock, and a token refresh beside it would "
        f"break that run; the stored access token expires at {_time_text(token.expires_at)}"
    )


def _missing_scopes(rt: Runtime) -> list[str]:
    """Read scopes sync needs that the stored grant lacks; the identity call works without them,
    and the first sync would only then fail with exit 3."""
    from fbstampli.store.credentials import StateTokenStore

    token = StateTokenStore(rt.store).load()
    if token is None or not token.scope:  # FreshBooks did not say: nothing to judge by
        return []
    needed = ["user:bills:read", "user:bill_vendors:read"]
    if rt.settings.sync.send_payments:
        needed.append("user:bill_payments:read")
    granted = set(token.scope.split())
    return [scope for scope in needed if scope not in granted]


def _sftp_checks(rt: Runtime) -> list[CheckResult]:
    from fbstampli.models.remote import part_name

    settings = rt.settings
    connect = _check(
        "SFTP login",
        "check `fbstampli auth sftp` (host, password, pinned key)",
        lambda: (rt.transport(), "connected with the pinned host key")[1],
        # The password cannot be judged while the server does not answer at all.
        unreachable_fix="server not reachable: check the host, port and network (runs retry "
        "on their own)",
    )
    if not connect.ok:
        why = "skipped: the SFTP login did not work"
        return [
            connect,
            CheckResult("SFTP inbound writable", True, why, skipped=True),
            CheckResult("SFTP outbound listable", True, why, skipped=True),
        ]
    transport = rt.transport()
    probe = f"fbstampli-probe-{uuid.uuid4().hex[:12]}.csv"

    def inbound() -> str:
        transport.write_part(settings.stampli.inbound_dir, probe, b"probe\r\n")
        transport.remove(settings.stampli.inbound_dir, part_name(probe))
        return f"wrote and removed {part_name(probe)} in {settings.stampli.inbound_dir}"

    def outbound() -> str:
        files = transport.list_files(settings.stampli.outbound_dir)
        return f"{len(files)} files in {settings.stampli.outbound_dir}"

    return [
        connect,
        _check(
            "SFTP inbound writable", "ask Stampli for write access to the inbound folder", inbound
        ),
        _check(
            "SFTP outbound listable", "check stampli.outbound_dir and its permissions", outbound
        ),
    ]
