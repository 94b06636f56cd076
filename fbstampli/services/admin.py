"""Setting up and looking after a home: init, status, doctor, audit, template check, state
backup and restore, key rotation (the commands of `cli/admin.py`).

The reading commands open the state without the run lock (WAL lets a reader
see the last commit while a run writes), so `status` answers even mid-sync.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from fbstampli.errors import ConfigError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import load_options_settings, open_runtime
from fbstampli.services.doctor import CheckResult
from fbstampli.store.keys import KEY_ENV, KeySource


def default_config_text() -> str:
    return resources.files("fbstampli").joinpath("templates/config.toml").read_text()


def requested_key_source(requested: str) -> KeySource | None:
    """The source asked for by `--key-source`, None for `auto`; anything else is a usage error."""
    if requested == "auto":
        return None
    try:
        return KeySource(requested)
    except ValueError:
        raise ConfigError("--key-source must be auto, env, keyring or file") from None


def choose_key_source(requested: str, options: Options) -> KeySource:
    """`auto`: env when set, keyring on an interactive desktop, else a 0600 key file."""
    explicit = requested_key_source(requested)
    if explicit is not None:
        return explicit
    if options.env.get(KEY_ENV):
        return KeySource.ENV
    from fbstampli.store.keys import keyring_usable

    if sys.stdin.isatty() and keyring_usable():
        return KeySource.KEYRING
    return KeySource.FILE


def init_home(options: Options, *, key_source: str = "auto") -> RunReport:
    """Create the home, a commented config, the key and the state; safe to run twice.

    An existing config, key or state file is never overwritten; an existing
    state is opened to prove that its key still works.
    """
    from fbstampli.clock import SystemClock
    from fbstampli.store import Store, open_state
    from fbstampli.store.keys import create_key

    report = RunReport("init")
    wanted = requested_key_source(key_source)  # a bad value fails even on a second run
    paths = options.paths()
    paths.ensure()
    if options.config is None and not paths.config.exists():
        from fbstampli.atomic import write_atomic

        write_atomic(paths.config, default_config_text().encode("utf-8"))
    load_options_settings(options)  # a broken config fails init, not the first cron run
    if paths.state.exists():
        store, key = open_state(paths.state, options.env, SystemClock(), recover=False)
        store.close()
        if wanted is not None and wanted is not key.source:
            raise ConfigError(
                f"{paths.state} exists with its key in {key.source.value}, not {wanted.value}; "
                "init never replaces a key: run it without --key-source, or with "
                f"--key-source {key.source.value}"
            )
        report.summary.append(
            f"{paths.home} is set up already (key in {key.source.value}); nothing changed."
        )
        return report
    if paths.key_file.exists():
        raise ConfigError(
            f"{paths.key_file} exists but {paths.state} does not; move the key away "
            "if you really want a new, empty state"
        )
    source = choose_key_source(key_source, options)
    key = create_key(paths.state, source, options.env)
    Store.create(paths.state, key, SystemClock()).close()
    report.add("created")
    report.summary.append(
        f"Created {paths.home}: a commented config.toml, the state key (in {source.value}) and "
        "the encrypted state. Next: `fbstampli auth login`."
    )
    if source is KeySource.FILE:
        report.notes.append(
            f"{paths.key_file} protects a state file copied alone (backups); keep it out of "
            f"those backups, or use the OS keyring or {KEY_ENV} for more protection"
        )
    return report


def key_rotate(options: Options) -> RunReport:
    """Re-encrypt the state under a new key so that a kill at any instant loses neither.

    Never SQLCipher's in-place rekey: a kill in the middle of it can leave a
    file that opens with neither key. Instead the new key is staged, an
    encrypted copy is written beside the state under it, the old connection
    is closed (emptying its WAL), the copy replaces the state atomically, and
    only then is the staged key promoted. `open_state` finishes or undoes a
    rotation from whichever of those points a killed run reached.
    """
    from fbstampli.clock import SystemClock
    from fbstampli.lock import listener_lock, run_lock
    from fbstampli.runtime import require_home
    from fbstampli.store import open_state, replace_state
    from fbstampli.store.keys import promote_key, stage_new_key

    paths = options.paths()
    require_home(paths)
    report = RunReport("key rotate")
    rotating = paths.state.with_name("state.db.rotating")
    with run_lock(paths.lock), listener_lock(paths.listener_lock, holder="key rotate"):
        store, key = open_state(paths.state, options.env, SystemClock())
        try:
            new_key = stage_new_key(paths.state, key.source)
            with store.transaction():
                store.audit("key_rotated", detail=f"key kept in {new_key.source.value}")
            store.backup_to(rotating, new_key)
        finally:
            store.close()
        replace_state(rotating, paths.state)
        promote_key(paths.state, new_key)
    report.add("rotated")
    report.summary.append(
        "Re-encrypted the state under a new key. Backups taken before now open only with the "
        "old key, which is gone: take a new one with `fbstampli state backup FILE`."
    )
    return report


def state_backup(options: Options, destination: Path) -> RunReport:
    from fbstampli.runtime import open_runtime

    report = RunReport("state backup")
    with open_runtime(options, lock=False) as rt:
        rt.store.backup_to(destination, rt.key, rt.paths)
        rt.store.audit("state_backup", detail=str(destination))
    report.summary.append(f"Wrote an encrypted backup of the state to {destination}.")
    report.add("written")
    return report


def audit_trail(options: Options, *, bill: int | None, since: str | None) -> list[dict[str, Any]]:
    """Audit rows in time order; one bill's trail includes its payments' rows."""
    from fbstampli.store.audit import audit_rows

    since_date: date | None = None
    if since:
        try:
            since_date = date.fromisoformat(since)
        except ValueError:
            raise ConfigError(f"--since {since!r}: expected a date like 2026-01-31") from None
    with open_runtime(options, lock=False) as rt:
        return audit_rows(rt.store, bill=bill, since=since_date)


def doctor(
    options: Options, tell: Callable[[CheckResult], None] = lambda result: None
) -> list[CheckResult]:
    from fbstampli.services.doctor import run_checks

    return run_checks(options, tell=tell)


def api_report(options: Options, destination: Path) -> int:
    """Probe FreshBooks and write the sanitised report (`freshbooks/api_report.py`).

    The probes learn in memory only: writing a report changes nothing the runs act on.
    """
    from fbstampli.freshbooks.api_report import report_for
    from fbstampli.runtime import open_client, require_account
    from fbstampli.store.api_facts import load_facts

    with open_runtime(options) as rt:
        return report_for(
            lambda session: open_client(rt, session=session),
            destination,
            require_account(rt.store),
            load_facts(rt.store),
        )


def template_check(file: Path) -> RunReport:
    from fbstampli.stampli.template import load_template

    load_template(file)
    report = RunReport("template check")
    report.summary.append(f"{file} is a valid Stampli template.")
    report.add("valid")
    return report


def state_restore(
    options: Options,
    source: Path | None,
    *,
    force: bool,
    confirm: Callable[[str], bool] | None = None,
) -> RunReport:
    """Replace the state with a backup made by `state backup`, atomically, under the run lock.

    The backup must open with the current key (it was written with it); a
    state that changed after the backup was taken is kept unless `force`.
    Without `source`, the newest automatic backup the marker accepts
    (`services.backups`), offered through `confirm` (None: agreed already).
    """
    chosen = ""
    if source is None:
        from fbstampli.services.backups import choose_backup

        source, replaceable, chosen = choose_backup(options)
        force = force or replaceable
        if confirm is not None and not confirm(f"Restore {source}, {chosen}?"):
            raise ConfigError("nothing was restored")
    from fbstampli.clock import SystemClock
    from fbstampli.errors import StateDamagedError
    from fbstampli.lock import listener_lock, run_lock
    from fbstampli.runtime import require_home
    from fbstampli.store import open_state
    from fbstampli.store.audit import last_change

    paths = options.paths()
    require_home(paths)
    if not source.is_file():
        raise ConfigError(f"no backup at {source}")
    if source.resolve() in paths.own_files():
        raise ConfigError(f"{source} is fbstampli's own file, not a backup of it")
    report = RunReport("state restore")
    with run_lock(paths.lock), listener_lock(paths.listener_lock, holder="state restore"):
        try:
            current, key = open_state(paths.state, options.env, SystemClock())
        except StateDamagedError:  # nothing in it to keep: the backup replaces it
            from fbstampli.store.keys import resolve_key

            current_change, key = "", resolve_key(paths.state, options.env)
        else:
            try:
                current_change = last_change(current)
                current.checkpoint()
            finally:
                current.close()
        backup_change = _replace_from_copy(paths.state, source, key, current_change, force=force)
        for suffix in ("-wal", "-shm"):
            Path(f"{paths.state}{suffix}").unlink(missing_ok=True)
    report.add("restored")
    report.summary.append(
        f"Restored the state from {source} (its last change: {backup_change or 'none'})."
    )
    if chosen:
        report.notes.append(f"chosen as {chosen}")
    return report


def _replace_from_copy(
    state: Path, source: Path, key: Any, current_change: str, *, force: bool
) -> str:
    """Put the backup at `source` in place of `state`; its last change. The backup is only
    read, into a private copy beside the state; the copy is what is opened (WAL, migrations)
    and renamed over, so the backup keeps its bytes and mode."""
    from fbstampli.atomic import fresh_temporary, replace_with
    from fbstampli.clock import SystemClock
    from fbstampli.store import Store
    from fbstampli.store.audit import last_change

    copy = fresh_temporary(state)
    try:
        with source.open("rb") as reader, copy.open("wb") as writer:
            while chunk := reader.read(1 << 20):
                writer.write(chunk)
        backup = Store.open(copy, key, SystemClock())
        try:
            backup_change = last_change(backup)
            backup.checkpoint()
        finally:
            backup.close()
        if current_change > backup_change and not force:
            raise ConfigError(
                f"the state changed after this backup (last change {current_change}, backup "
                f"{backup_change or 'empty'}); add --force to replace it anyway"
            )
        replace_with(copy, state)
    finally:
        for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            leftover.unlink(missing_ok=True)
    return backup_change
