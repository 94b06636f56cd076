"""Backups without remembering to take them.

`sync` writes an encrypted copy of the state (the state's own key, as `state backup`)
to `<home>/backups/state-<UTC time>.db` when the newest there is older than
`state.backup_hours`, atomically and 0600, and keeps the newest `state.backups_kept`.
`doctor` lists them; `state restore` without a file picks the newest one the marker on
the SFTP server accepts (`sync.marker`): one that knows every batch Stampli received.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fbstampli.config import Settings
from fbstampli.errors import (
    ConfigError,
    FbstampliError,
    RemoteError,
    RemoteUnavailableError,
    StateDamagedError,
)
from fbstampli.options import Options
from fbstampli.paths import Paths, private_folder
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime
from fbstampli.store import Store
from fbstampli.store.keys import StateKey
from fbstampli.sync.marker import Marker, StateNotMarkedError, refusal

log = logging.getLogger(__name__)

FOLDER = "backups"
_NAME = re.compile(r"^state-(\d{8}T\d{6}Z)\.db$")
_TIME = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    taken_at: datetime
    size: int


def backups_folder(paths: Paths) -> Path:
    return paths.home / FOLDER


def list_backups(paths: Paths) -> list[Backup]:
    """The automatic backups, newest first (their time is in their name, in UTC)."""
    folder = backups_folder(paths)
    found: list[Backup] = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        matched = _NAME.match(path.name)
        if matched is None or path.is_symlink() or not path.is_file():
            continue
        taken_at = datetime.strptime(matched.group(1), _TIME).replace(tzinfo=UTC)
        found.append(Backup(path, taken_at, path.stat().st_size))
    return sorted(found, key=lambda backup: backup.taken_at, reverse=True)


def backup_if_due(rt: Runtime) -> RunReport:
    """Write a backup when the newest is older than `state.backup_hours`; keep the newest N.

    A backup that cannot be written (a full disk) is one problem line; the run's work stands.
    """
    report = RunReport("backup")
    kept = rt.settings.state.backups_kept
    now = rt.clock.now()
    found = list_backups(rt.paths)
    due = timedelta(hours=rt.settings.state.backup_hours)
    if kept == 0 or (found and now - found[0].taken_at < due):
        return report
    target = private_folder(rt.paths.home, FOLDER) / f"state-{now.astimezone(UTC):{_TIME}}.db"
    try:
        rt.store.backup_to(target, rt.key, rt.paths)
        with rt.store.transaction():
            rt.store.audit("state_backup", detail=f"{target} (automatic)")
    except FbstampliError as error:
        report.problems.append(f"the automatic state backup was not written: {error}")
        return report
    log.info("wrote the automatic state backup %s", target)
    for old in list_backups(rt.paths)[kept:]:
        old.path.unlink(missing_ok=True)
    return report


def age_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def describe_backups(paths: Paths, now: datetime, backup_hours: float) -> tuple[bool, str]:
    """`doctor`'s line: each backup with its age and size; not ok when the newest is stale."""
    found = list_backups(paths)
    if not found:
        return True, f"none in {backups_folder(paths)} yet: the next `sync` writes one"
    listed = ", ".join(
        f"{b.path.name} ({age_text((now - b.taken_at).total_seconds())} old, "
        f"{b.size / 1_000_000:.1f} MB)"
        for b in found
    )
    fresh = now - found[0].taken_at < timedelta(hours=2 * backup_hours)
    return fresh, f"{len(found)} in {backups_folder(paths)}: {listed}"


# -- state restore without a file ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Remote:
    marker: Marker | None  # None: no marker on the server (any backup is accepted)
    where: str


@contextmanager
def _opened_copy(path: Path, key: StateKey) -> Iterator[Store]:
    """A backup opened from a private copy beside it (opening writes a WAL), then removed."""
    from fbstampli.atomic import fresh_temporary
    from fbstampli.clock import SystemClock

    copy = fresh_temporary(path)
    try:
        copy.write_bytes(path.read_bytes())
        store = Store.open(copy, key, SystemClock())
        try:
            yield store
        finally:
            store.close()
    finally:
        for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            leftover.unlink(missing_ok=True)


def _state_marker(store: Store) -> Marker:
    from fbstampli.store.identity import last_delivered_batch, state_id

    return Marker(state_id(store), last_delivered_batch(store))


def _remote_marker(store: Store, settings: Settings) -> Remote:
    """The marker on the SFTP server, reached with the login `store` holds."""
    from fbstampli.runtime import sftp_target, with_stored_folders
    from fbstampli.sftp import SftpTransport
    from fbstampli.store.credentials import account_id, load_sftp_login
    from fbstampli.sync.marker import MAX_MARKER_BYTES, marker_name, parse_marker

    settings = with_stored_folders(settings, store)
    business = account_id(store) or settings.stampli.business or "business"
    directory, name = settings.stampli.inbound_dir, marker_name(business)
    login = load_sftp_login(store)
    try:
        if login is None:
            raise ConfigError("the backup holds no SFTP login")
        target = sftp_target(login, settings)
        with SftpTransport.connect(target, timeout=settings.sftp.timeout_seconds) as transport:
            data = transport.read_file(directory, name, max_bytes=MAX_MARKER_BYTES)
    except (RemoteError, RemoteUnavailableError, ConfigError) as error:
        raise RemoteUnavailableError(
            f"cannot read the marker on the SFTP server to choose a backup ({error}); "
            "try again, or name the backup: `fbstampli state restore FILE`"
        ) from None
    marker = None if data is None else parse_marker(data)
    return Remote(marker, f"the marker {directory}/{name}")


def _current_refused(options: Options, remote: Remote) -> bool:
    """Whether the state in place may be replaced without --force: damaged, or itself
    refused by the marker (a new or older state is worth nothing to keep)."""
    from fbstampli.runtime import open_runtime

    try:
        with open_runtime(options, lock=False) as rt:
            current = _state_marker(rt.store)
    except StateDamagedError:
        return True
    return refusal(current, remote.marker, remote.where) is not None


def choose_backup(options: Options) -> tuple[Path, bool, str]:
    """The newest automatic backup the marker accepts, whether the current state may be
    replaced without --force, and why that one was chosen."""
    from fbstampli.runtime import load_options_settings, require_home
    from fbstampli.store.keys import resolve_key

    paths = options.paths()
    require_home(paths)
    found = list_backups(paths)
    if not found:
        raise ConfigError(
            f"no automatic backups in {backups_folder(paths)}: name one with "
            "`fbstampli state restore FILE`, or run `fbstampli state adopt-remote`"
        )
    key = resolve_key(paths.state, options.env)
    settings = load_options_settings(options)
    with _opened_copy(found[0].path, key) as store:  # its login: the state may be damaged
        newest, remote = _state_marker(store), _remote_marker(store, settings)
    replaceable = _current_refused(options, remote)
    for backup in found:
        state = newest
        if backup is not found[0]:
            with _opened_copy(backup.path, key) as store:
                state = _state_marker(store)
        if refusal(state, remote.marker, remote.where) is None:
            return backup.path, replaceable, _why(backup, state, remote.marker)
    sent = remote.marker
    raise StateNotMarkedError(
        f"none of the {len(found)} backups in {backups_folder(paths)} is accepted by "
        f"{remote.where} on the SFTP server (the newest knows batch {newest.last_batch} of "
        f"state {newest.state_id}; Stampli received batch {sent.last_batch if sent else 0} "
        f"of state {sent.state_id if sent else '?'}): restore the newest, "
        f"`fbstampli state restore {found[0].path}`, then run `fbstampli state adopt-remote`"
    )


def _why(backup: Backup, state: Marker, remote: Marker | None) -> str:
    taken = backup.taken_at.strftime("%Y-%m-%d %H:%M UTC")
    if remote is None:
        return f"the newest backup, taken {taken} (no marker on the SFTP server to check it by)"
    return (
        f"the newest backup the marker accepts, taken {taken}, "
        f"knowing batch {state.last_batch} of {remote.last_batch}"
    )
