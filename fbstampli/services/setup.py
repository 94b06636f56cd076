"""Setting up: init, key rotation and state backup; and what every service module shares."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from fbstampli.errors import ConfigError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import load_options_settings
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
        report.notes.append(f"wrote {paths.config}")
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
        report.notes.append(f"{paths.state} exists (key from {key.source.value}); left unchanged")
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
    report.notes.append(f"created {paths.state}; key kept in {source.value}")
    if source is KeySource.FILE:
        report.notes.append(
            f"{paths.key_file} protects a state file copied alone (backups); keep it out of "
            f"those backups, or use the OS keyring or {KEY_ENV} for more protection"
        )
    return report


def not_built(what: str) -> Any:
    from fbstampli.errors import NotBuiltError

    raise NotBuiltError(f"`fbstampli {what}` is not built yet in this version")


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
    report.notes.append(
        "backups taken before now open only with the old key, which is gone: "
        "take a new one with `fbstampli state backup FILE`"
    )
    return report


def state_backup(options: Options, destination: Path) -> RunReport:
    from fbstampli.runtime import open_runtime

    report = RunReport("state backup")
    with open_runtime(options, lock=False) as rt:
        rt.store.backup_to(destination, rt.key, rt.paths)
        rt.store.audit("state_backup", detail=str(destination))
    report.notes.append(f"wrote {destination} (encrypted with the current state key)")
    report.add("written")
    return report
