"""`fbstampli doctor`: every check an operator needs, each with its own failure and fix.

Checks run in order and later ones are skipped (reported as such) when an
earlier one they depend on failed, so one root cause shows as one failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fbstampli.errors import FbstampliError
from fbstampli.options import Options

if TYPE_CHECKING:
    from fbstampli.runtime import Runtime

MAX_PROBLEMS_SHOWN = 3


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _check(name: str, fix: str, probe: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, probe())
    except FbstampliError as error:
        return CheckResult(name, False, str(error), fix)
    except OSError as error:
        return CheckResult(name, False, f"{type(error).__name__}: {error.strerror}", fix)


def run_checks(options: Options, *, now: Callable[[], datetime] | None = None) -> list[CheckResult]:
    from fbstampli.runtime import load_options_settings, open_runtime, require_home

    clock = now or (lambda: datetime.now(UTC))
    results = [
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
    ]
    if not all(result.ok for result in results):
        return results
    try:
        stack = open_runtime(options, lock=False)
        rt = stack.__enter__()
    except FbstampliError as error:
        results.append(
            CheckResult("key and state", False, str(error), "restore the key or a backup (exit 4)")
        )
        return results
    try:
        results.append(CheckResult("key", True, f"the state key comes from {rt.key.source.value}"))
        results.append(_integrity(rt))
        results.append(
            _check(
                "template",
                "fix the named field, then `fbstampli template check FILE`",
                lambda: (rt.renderer(), "the Stampli template is valid")[1],
            )
        )
        results.append(_check("FreshBooks", "run `fbstampli auth login`", lambda: _freshbooks(rt)))
        results.extend(_sftp_checks(rt))
        year = clock().year
        results.append(
            CheckResult(
                "clock",
                year >= 2024,
                f"the clock says {clock().isoformat(timespec='seconds')}",
                "set the system clock (enable NTP)",
            )
        )
    finally:
        stack.__exit__(None, None, None)
    return results


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


def _settings_valid(options: Options, load: Callable[[Options], object]) -> str:
    load(options)
    return "settings are valid"


def _state_exists(options: Options, require_home: Callable[..., None]) -> str:
    require_home(options.paths())
    return f"{options.paths().state} exists"


def _freshbooks(rt: Runtime) -> str:
    from fbstampli.freshbooks.client import FreshBooksClient

    client = rt.freshbooks()
    if not isinstance(client, FreshBooksClient):
        return "a FreshBooks stand-in is configured"
    memberships = client.me()
    account = rt.store.get_value("freshbooks.account_id")
    if not any(m.account_id == account for m in memberships):
        raise FbstampliError(f"this login no longer reaches account {account}")
    return f"the token works for account {account}"


def _sftp_checks(rt: Runtime) -> list[CheckResult]:
    from fbstampli.sync.ports import part_name

    settings = rt.settings
    connect = _check(
        "SFTP login",
        "check `fbstampli auth sftp` (host, password, pinned key)",
        lambda: (rt.transport(), "connected with the pinned host key")[1],
    )
    if not connect.ok:
        return [connect]
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
