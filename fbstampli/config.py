"""Settings: defaults, a TOML file, `FBSTAMPLI_*` environment and flags, merged once.

Precedence is flag > environment > file > default. `load_settings` reads no
global state (the environment is passed in) and raises one `ConfigError`
listing every bad key by its dotted name, so an operator fixes them all in one
go. Secrets that live in the encrypted state (tokens, SFTP passwords) are not
settings; the FreshBooks client secret may be, because it comes with the app
registration.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fbstampli.config_values import (
    LOOPBACK_HOSTS,
    convert,
    digest_problems,
    host_of,
    tolerance_problems,
)
from fbstampli.errors import ConfigError

# The coding lists' scopes (expense categories, taxes): a grant without them sends the bills.
CODING_SCOPES = ("user:expenses:read", "user:taxes:read")
DEFAULT_SCOPES = (
    "user:profile:read user:bills:read user:bill_vendors:read user:bill_payments:read "
    "user:expenses:read user:taxes:read"
)


@dataclass(frozen=True, slots=True)
class FreshBooksSettings:
    api_url: str = "https://api.freshbooks.com"
    auth_url: str = "https://auth.freshbooks.com"
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    redirect_uri: str = "https://localhost:8765/callback"
    scopes: str = DEFAULT_SCOPES
    timeout_seconds: float = 30.0
    max_retries: int = 5


@dataclass(frozen=True, slots=True)
class StampliSettings:
    template: str = ""  # empty: the packaged default template
    inbound_dir: str = "inbound"
    outbound_dir: str = "outbound"
    archive_dir: str = ""  # empty: leave processed exports where they are
    business: str = ""  # short name used in file names; empty: the FreshBooks account id


@dataclass(frozen=True, slots=True)
class SftpSettings:
    timeout_seconds: float = 30.0
    upload_attempts: int = 3  # within one run, before a delivery is marked failed


@dataclass(frozen=True, slots=True)
class SyncSettings:
    max_attempts: int = 8
    backoff_initial_minutes: int = 15
    backoff_max_hours: int = 24
    full_sweep_hours: int = 24
    max_rows_per_file: int = 5000
    deleted_bills: str = "void"  # void (VOID row + audit), report (audit only) or ignore
    send_payments: bool = True
    document_max_mb: int = 25  # a bill's document larger than this goes unsent, flagged
    business_budget_seconds: int = 600  # one business of `sync --all`; then it is stopped
    document_retention_days: int = 0  # a delivered document's copy kept this long; 0: none
    coding_lists_hours: int = 24  # categories and taxes are read this often; 0: never sent


@dataclass(frozen=True, slots=True)
class PullSettings:
    interval_minutes: int = 15
    max_file_mb: int = 512


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    approved_unpaid_days: int = 7
    uncaptured_hours: int = 24
    # YYYY-MM-DD: bills paid in FreshBooks before it are history (reported, never attention).
    # Empty: before the day fbstampli first sent each bill to Stampli.
    since: str = ""
    tolerance_amount: str = "0.00"  # a payment differing by no more than either still matches
    tolerance_percent: str = "0"  # ... (a percent of the payment)
    payment_window_days: int = 5  # days apart two payments may be dated and still pair


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """The daily digest e-mail; the SMTP relay and its login are in the state (`auth smtp`)."""

    enabled: bool = False  # sent by the first `sync` at or after `send_at` each day
    send_at: str = "07:00"  # HH:MM, in `timezone`
    timezone: str = "UTC"  # an IANA name, such as America/Toronto
    to: str = ""  # one address, or several separated by commas
    sender: str = ""  # the From address
    top_items: int = 5  # bills listed under each kind of exception
    stuck_hours: int = 24  # a delivery not delivered this long after it was queued is stuck


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    host: str = "127.0.0.1"
    port: int = 8787
    debounce_seconds: float = 2.0
    max_body_bytes: int = 65536
    max_open_businesses: int = 32  # `serve-webhook --all`: states open at once, busy ones apart
    idle_close_seconds: int = 600  # `serve-webhook --all`: a business's state closed when idle
    pushes_at_once: int = 4  # `serve-webhook --all`: businesses whose workers push at once


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    ping_url: str = ""
    quiet_transient_hours: float = 2.0
    failing_attention_hours: float = 2.0  # `status` exits 1 for a failure lasting this long


@dataclass(frozen=True, slots=True)
class StateSettings:
    backup_hours: float = 24.0
    backups_kept: int = 7


@dataclass(frozen=True, slots=True)
class Settings:
    freshbooks: FreshBooksSettings = field(default_factory=FreshBooksSettings)
    stampli: StampliSettings = field(default_factory=StampliSettings)
    sftp: SftpSettings = field(default_factory=SftpSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    pull: PullSettings = field(default_factory=PullSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    state: StateSettings = field(default_factory=StateSettings)


# Names FreshBooks' own SDKs and docs use, accepted beside our FBSTAMPLI_* ones.
ENV_ALIASES = {
    "FRESHBOOKS_CLIENT_ID": "freshbooks.client_id",
    "FRESHBOOKS_CLIENT_SECRET": "freshbooks.client_secret",
}

_SECTIONS: dict[str, type[Any]] = {
    f.name: f.type if isinstance(f.type, type) else globals()[str(f.type)]
    for f in dataclasses.fields(Settings)
}


# FBSTAMPLI_* variables that are not settings, read elsewhere (the home, the state key), and
# prefixes kept for tests, benchmarks and the sandboxes: none of them is a typo.
# Variables that are not settings but global options or the key (read before any setting).
OTHER_ENV = frozenset(
    {
        "FBSTAMPLI_HOME",
        "FBSTAMPLI_CONFIG",
        "FBSTAMPLI_DB_KEY",
        "FBSTAMPLI_INSTALLATION",
        "FBSTAMPLI_ALLOW_FOREIGN_HOME",
        "FBSTAMPLI_COLOR",
    }
)
RESERVED_ENV_PREFIXES = ("FBSTAMPLI_TEST_", "FBSTAMPLI_BENCH_", "FBSTAMPLI_SANDBOX_")


def known_env_names() -> list[str]:
    names = [
        env_name(f"{section}.{f.name}")
        for section, section_type in _SECTIONS.items()
        for f in dataclasses.fields(section_type)
    ]
    return sorted({*names, *OTHER_ENV})


def unknown_env_problems(env: Mapping[str, str]) -> list[str]:
    """An FBSTAMPLI_* variable that names no setting is a typo that would be ignored silently
    (the same typo in config.toml is refused): each one, with the nearest real name."""
    import difflib

    known = set(known_env_names())
    problems = []
    for name in sorted(env):
        if not name.startswith("FBSTAMPLI_") or name in known:
            continue
        if name.startswith(RESERVED_ENV_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else "; unset it"
        problems.append(f"environment variable {_shown(name)}: no such setting{hint}")
    return problems


def _nearest(wrong: str, known: Iterable[str]) -> str:
    """ "; did you mean X?" for a misspelt key or section, as for an environment variable."""
    import difflib

    close = difflib.get_close_matches(wrong, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def env_name(dotted: str) -> str:
    return "FBSTAMPLI_" + dotted.replace(".", "_").upper()


def _url_problems(fb: FreshBooksSettings) -> list[str]:
    """FreshBooks' URLs: https, plain http only to this machine; a redirect FreshBooks takes."""
    problems: list[str] = []
    for key, url in (("freshbooks.api_url", fb.api_url), ("freshbooks.auth_url", fb.auth_url)):
        scheme, host = host_of(url)
        local = host in LOOPBACK_HOSTS
        if scheme not in ("https", "http") or not host:
            problems.append(f"{key}: must be an https URL")
        elif scheme == "http" and not local:
            problems.append(f"{key}: must be an https URL (plain http only for 127.0.0.1)")
    scheme, host = host_of(fb.redirect_uri)
    if not host or not (scheme == "https" or (scheme == "http" and host in LOOPBACK_HOSTS)):
        # Compared whole: "http://127." as a prefix let http://127.evil.com through.
        problems.append(
            "freshbooks.redirect_uri: FreshBooks requires an https URL "
            "(plain http only for 127.0.0.1 or localhost)"
        )
    if "?" in fb.redirect_uri:
        problems.append("freshbooks.redirect_uri: FreshBooks forbids a query string here")
    return problems


def _bound_problems(settings: Settings) -> list[str]:
    """Each number outside its bounds: above the upper bound a value is a typo, and would
    overflow a timedelta, a socket timeout or SQLite long before it meant anything."""
    fb, problems = settings.freshbooks, []
    positive = {
        "freshbooks.timeout_seconds": (fb.timeout_seconds, 3600),
        "sftp.timeout_seconds": (settings.sftp.timeout_seconds, 3600),
        "sftp.upload_attempts": (settings.sftp.upload_attempts, 100),
        "sync.max_attempts": (settings.sync.max_attempts, 10_000),
        "sync.backoff_initial_minutes": (settings.sync.backoff_initial_minutes, 7 * 24 * 60),
        "sync.backoff_max_hours": (settings.sync.backoff_max_hours, 365 * 24),
        "sync.full_sweep_hours": (settings.sync.full_sweep_hours, 365 * 24),
        "sync.max_rows_per_file": (settings.sync.max_rows_per_file, 1_000_000),
        "sync.document_max_mb": (settings.sync.document_max_mb, 10_000),
        "sync.business_budget_seconds": (settings.sync.business_budget_seconds, 24 * 3600),
        "pull.interval_minutes": (settings.pull.interval_minutes, 365 * 24 * 60),
        "pull.max_file_mb": (settings.pull.max_file_mb, 1_000_000),
        "webhook.max_body_bytes": (settings.webhook.max_body_bytes, 100 * 1024 * 1024),
        "webhook.max_open_businesses": (settings.webhook.max_open_businesses, 100_000),
        "webhook.idle_close_seconds": (settings.webhook.idle_close_seconds, 7 * 24 * 3600),
        "webhook.pushes_at_once": (settings.webhook.pushes_at_once, 1000),
        "reconcile.approved_unpaid_days": (settings.reconcile.approved_unpaid_days, 3650),
        "reconcile.uncaptured_hours": (settings.reconcile.uncaptured_hours, 3650 * 24),
        "digest.top_items": (settings.digest.top_items, 1000),
        "digest.stuck_hours": (settings.digest.stuck_hours, 3650 * 24),
        "state.backup_hours": (settings.state.backup_hours, 365 * 24),
    }
    for key, (value, most) in positive.items():
        if value is not None and not 0 < value <= most:
            problems.append(f"{key}: must be greater than 0 and at most {most}")
    from_zero = {  # where 0 means none or never
        "freshbooks.max_retries": (fb.max_retries, 100),
        "sync.coding_lists_hours": (settings.sync.coding_lists_hours, 365 * 24),
        "state.backups_kept": (settings.state.backups_kept, 1000),
        "webhook.debounce_seconds": (settings.webhook.debounce_seconds, 3600),
        "sync.document_retention_days": (settings.sync.document_retention_days, 3650),
    }
    for key, (value, most) in from_zero.items():
        if not 0 <= value <= most:
            problems.append(f"{key}: must be between 0 and {most}")
    return problems


def _check(settings: Settings, problems: list[str]) -> None:
    fb = settings.freshbooks
    problems.extend(_url_problems(fb))
    problems.extend(_bound_problems(settings))
    if settings.sync.deleted_bills not in ("void", "report", "ignore"):
        problems.append("sync.deleted_bills: must be 'void', 'report' or 'ignore'")
    if not 0 < settings.webhook.port < 65536:
        problems.append("webhook.port: must be between 1 and 65535")
    for key, directory in (
        ("stampli.inbound_dir", settings.stampli.inbound_dir),
        ("stampli.outbound_dir", settings.stampli.outbound_dir),
    ):
        if not directory:
            problems.append(f"{key}: must not be empty")
    ping = settings.monitoring.ping_url
    if ping and (host_of(ping)[0] not in ("https", "http") or not host_of(ping)[1]):
        problems.append("monitoring.ping_url: must be an http(s) URL")
    problems.extend(digest_problems(settings.digest))
    if settings.reconcile.since:
        try:
            date.fromisoformat(settings.reconcile.since)
        except ValueError:
            problems.append("reconcile.since: must be a date as YYYY-MM-DD, or empty")
    problems.extend(tolerance_problems(settings.reconcile))
    if not settings.webhook.host.strip():
        problems.append(
            "webhook.host: must not be empty (write 0.0.0.0 to listen on every interface)"
        )


def _shown(name: str) -> str:
    """A key from the file or the environment as it may appear in our one-line error: quoted
    (with escapes) when it holds anything unprintable, such as a newline in a quoted TOML key."""
    return name if name.isprintable() else repr(name)


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML at `path`, opened without following a link (`--config` was resolved before):
    a link planted as the home's config.toml must not make root read another file."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        with os.fdopen(os.open(path, flags), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError(f"{path}: not a plain file; give a config file")
            os.set_blocking(handle.fileno(), True)
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"{path}: not valid TOML ({error}); fix it at that line (`fbstampli init` never "
            "rewrites an existing config)"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ConfigError(
                f"{path} is a symbolic link; remove it, or give the file it points to as --config"
            ) from None
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None


def load_settings(
    flags: Mapping[str, object],
    env: Mapping[str, str],
    config_path: Path | None,
) -> Settings:
    """Merge every source into one validated `Settings`, or raise one `ConfigError`.

    `flags` maps dotted keys (`"freshbooks.api_url"`) to values given on the
    command line; `None` values are ignored.
    """
    problems: list[str] = []
    file_data = read_config_file(config_path) if config_path else {}
    sections = _file_sections(file_data, problems)
    env_values, from_env = _env_values(env)
    problems.extend(unknown_env_problems(env))

    flag_values = {k: v for k, v in flags.items() if v is not None}
    for dotted in flag_values:
        from_env.pop(dotted, None)
    overrides = {**env_values, **flag_values}
    for dotted, value in overrides.items():
        section_name, _, key = dotted.partition(".")
        if section_name not in _SECTIONS:
            problems.append(f"{_shown(dotted)}: unknown setting")
            continue
        sections.setdefault(section_name, {})[key] = value

    settings = _build(sections, problems)
    _check(settings, problems)
    if problems:
        raise ConfigError(_settings_problem(problems, from_env, set(flag_values), config_path))
    return settings


def _file_sections(file_data: dict[str, Any], problems: list[str]) -> dict[str, dict[str, object]]:
    sections: dict[str, dict[str, object]] = {}
    for section_name, section_value in file_data.items():
        if section_name not in _SECTIONS:
            problems.append(
                f"{_shown(section_name)}: unknown section{_nearest(section_name, _SECTIONS)}"
            )
            continue
        if not isinstance(section_value, dict):
            problems.append(f"{section_name}: must be a table")
            continue
        sections[section_name] = dict(section_value)
    return sections


def _env_values(env: Mapping[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    """The settings the environment gives, and for each dotted key the variable that set it."""
    env_values: dict[str, object] = {}
    from_env: dict[str, str] = {}
    for name, dotted in ENV_ALIASES.items():
        if name in env:
            env_values[dotted] = env[name]
            from_env[dotted] = name
    for section_name, section_type in _SECTIONS.items():
        for f in dataclasses.fields(section_type):
            dotted = f"{section_name}.{f.name}"
            if env_name(dotted) in env:
                env_values[dotted] = env[env_name(dotted)]
                from_env[dotted] = env_name(dotted)
    return env_values, from_env


def _build(sections: dict[str, dict[str, object]], problems: list[str]) -> Settings:
    built: dict[str, object] = {}
    for section_name, section_type in _SECTIONS.items():
        given = sections.get(section_name, {})
        known = {f.name: f for f in dataclasses.fields(section_type)}
        values: dict[str, object] = {}
        for key, raw in given.items():
            dotted = f"{section_name}.{key}"
            if key not in known:
                problems.append(f"{_shown(dotted)}: unknown setting{_nearest(key, known)}")
                continue
            value = convert(raw, known[key].type, dotted, problems)
            if value is not None:
                values[key] = value
        built[section_name] = section_type(**values)
    return Settings(**built)  # type: ignore[arg-type]


def _settings_problem(
    problems: list[str], from_env: Mapping[str, str], flags: set[str], config_path: Path | None
) -> str:
    """One line naming each problem's real source: the variable that set a value, or the file."""
    named: list[str] = []
    in_file = False
    for problem in problems:
        key, _, rest = problem.partition(": ")
        if key in from_env:
            named.append(f"{from_env[key]} (environment, for {key}): {rest}")
        elif problem.startswith("environment variable ") or key in flags:
            named.append(problem)
        else:
            named.append(problem)
            in_file = True
    where = f" in {config_path}" if in_file and config_path else ""
    return f"invalid settings{where}: " + "; ".join(named)
