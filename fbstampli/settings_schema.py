"""The one description of every setting, from which the commented `config.toml` (packaged and
in `examples/`) and the settings table in `docs/SETTINGS.md` are generated.

Defaults are read from the dataclasses in `config.py`, never written twice; the
words are written here only. `tests/unit/test_settings_schema.py` fails when a
generated file drifts from this or a setting is missing from it; regenerate with
`python -m fbstampli.settings_schema --write`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from fbstampli.config import Settings, env_name

COMMENT_COLUMN = 29  # where an inline comment starts, so the notes line up


@dataclass(frozen=True, slots=True)
class Key:
    """One setting: `before` comment lines above it, `after` its inline comment (continued on
    further lines), `shown` an example value in place of the default, `in_file` False for a
    setting so rarely changed that the file leaves it out (the table still lists it), `words`
    what the table says when the comments say nothing."""

    name: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    shown: str | None = None
    in_file: bool = True
    words: str = ""  # for the table, where the file's comments say nothing


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    keys: tuple[Key, ...]
    intro: tuple[str, ...] = ()


HEADER = (
    "fbstampli configuration. Every setting can also be given as an environment",
    "variable FBSTAMPLI_<SECTION>_<KEY> (e.g. FBSTAMPLI_SYNC_MAX_ATTEMPTS=5), which",
    "wins over this file. Secrets (tokens, SFTP passwords) are NOT kept here: they",
    "live in the encrypted state file (see `fbstampli auth login` / `auth sftp`).",
)

SCHEMA = (
    Section(
        "freshbooks",
        (
            Key(
                "client_id",
                before=(
                    "Your FreshBooks app's credentials (developer portal). The environment",
                    "variables FRESHBOOKS_CLIENT_ID / FRESHBOOKS_CLIENT_SECRET work too, and keep",
                    "the secret out of this file.",
                ),
            ),
            Key(
                "client_secret",
                words="the app's client secret; better given as FRESHBOOKS_CLIENT_SECRET",
            ),
            Key(
                "redirect_uri",
                before=(
                    "Must match a redirect URI registered on the app; FreshBooks requires https",
                    "and no query string. After consent, paste the URL the browser lands on.",
                ),
            ),
            Key("api_url", words="FreshBooks API base URL (https; plain http only for 127.0.0.1)"),
            Key(
                "auth_url",
                words="FreshBooks sign-in base URL (https; plain http only for 127.0.0.1)",
            ),
            Key("scopes", after=("OAuth scopes asked for at login",), in_file=False),
            Key("timeout_seconds", words="seconds to wait for one FreshBooks request"),
            Key("max_retries", after=("per request, for 429/5xx/network errors",)),
        ),
    ),
    Section(
        "stampli",
        (
            Key(
                "template",
                before=(
                    "Column layout agreed with Stampli at onboarding; empty = the packaged",
                    "example template (see examples/stampli-template.toml).",
                ),
                shown='"/etc/fbstampli/stampli-template.toml"',
            ),
            Key("inbound_dir", after=("where Stampli picks up our files",)),
            Key("outbound_dir", after=("where Stampli leaves its exports",)),
            Key("archive_dir", after=("move processed exports here; empty = leave them",)),
            Key("business", after=("short name in file names; empty = FreshBooks account id",)),
        ),
    ),
    Section(
        "sftp",
        (
            Key("timeout_seconds", words="seconds to wait for the SFTP server"),
            Key("upload_attempts", after=('tries within one run before a delivery is "failed"',)),
        ),
    ),
    Section(
        "sync",
        (
            Key("max_attempts", after=('runs that may fail before a delivery is "dead"',)),
            Key(
                "backoff_initial_minutes",
                words="first wait before a failed delivery is tried again",
            ),
            Key("backoff_max_hours", words="longest wait between two tries of a failed delivery"),
            Key(
                "full_sweep_hours",
                after=(
                    "a full re-listing of FreshBooks (deleted objects too) at least",
                    "this often; other runs read vendors and bills newest first and",
                    "stop at the last change seen (all of them if FreshBooks ignores",
                    "the sort), and read the payments of only the bills that moved",
                    "(every payment once a sweep proves payments do not move a bill)",
                ),
            ),
            Key("max_rows_per_file", words="most rows in one file sent to Stampli"),
            Key(
                "deleted_bills",
                after=(
                    "void (a VOID row to Stampli and the audit trail), report (audit",
                    "trail only) or ignore; for bills, payments and vendors",
                ),
            ),
            Key("send_payments", words="send bill payments to Stampli too"),
            Key(
                "document_max_mb",
                after=(
                    "largest bill document sent, in MB; a larger one is",
                    "left out and the bill's Document Status says too_large",
                ),
            ),
            Key(
                "business_budget_seconds",
                before=(
                    "`sync --all`: a business still running after this long is stopped",
                    "(safely) and goes first at the next run; the others go on",
                ),
            ),
            Key(
                "document_retention_days",
                before=(
                    "days a delivered bill document's copy stays in the home's",
                    "documents/ folder (0600); 0: removed once delivered",
                ),
            ),
            Key(
                "coding_lists_hours",
                after=(
                    "how often the coding lists (expense categories, taxes: sent before",
                    "the vendors) are read: a request each a read; 0 = never read nor sent",
                ),
            ),
        ),
    ),
    Section(
        "pull",
        (
            Key("interval_minutes", after=("pull-stampli does nothing more often unless --now",)),
            Key("max_file_mb", words="largest Stampli export read, in MB"),
        ),
    ),
    Section(
        "reconcile",
        (
            Key(
                "approved_unpaid_days",
                after=("approved in Stampli but unpaid in FreshBooks after this",),
            ),
            Key("uncaptured_hours", after=("delivered but not captured by Stampli after this",)),
            Key(
                "since",
                before=(
                    "The go-live baseline: bills FreshBooks paid before this day (YYYY-MM-DD), or",
                    "before fbstampli first sent them when empty, are history: reported, never",
                    "needing attention. `fbstampli reconcile acknowledge` quiets one bill.",
                ),
                shown='""',
            ),
            Key(
                "tolerance_amount",
                before=(
                    "Per-payment matching: a FreshBooks payment and a Stampli payment pair by",
                    "reference, else by amount within a tolerance and date within a window;",
                    "never across currencies. A difference within either tolerance matches.",
                ),
                after=('in the bill\'s currency, e.g. "0.05"',),
            ),
            Key("tolerance_percent", after=('of the payment, e.g. "0.5"',)),
            Key("payment_window_days", after=("days apart two payments may be dated",)),
        ),
    ),
    Section(
        "digest",
        (
            Key("enabled", after=("sent by the first `sync` at or after `send_at` each day",)),
            Key("send_at", after=("HH:MM, in `timezone`",)),
            Key("timezone", after=("an IANA name, such as America/Toronto",)),
            Key("to", after=("one address, or several separated by commas",)),
            Key("sender", after=("the From address",)),
            Key("top_items", after=("bills listed under each kind of exception",)),
            Key("stuck_hours", after=("a delivery still not in Stampli this long is stuck",)),
        ),
        intro=(
            "The daily digest e-mail (`fbstampli digest`); the SMTP relay and its login are",
            "kept in the encrypted state by `fbstampli auth smtp`.",
        ),
    ),
    Section(
        "webhook",
        (
            Key("host", after=("keep it on loopback behind a TLS reverse proxy",)),
            Key("port", words="port the webhook listener binds"),
            Key(
                "debounce_seconds",
                words="wait after an event before pushing, to gather the next ones",
            ),
            Key("max_body_bytes", words="largest webhook body accepted"),
            Key(
                "max_open_businesses",
                in_file=False,
                words="`serve-webhook --all`: business states open at once; past it the least "
                "recently used idle one is closed (one with a push running or due stays open)",
            ),
            Key(
                "idle_close_seconds",
                in_file=False,
                words="`serve-webhook --all`: a business's state is closed after this long "
                "without a callback, and opened again by its next one",
            ),
            Key(
                "pushes_at_once",
                in_file=False,
                words="`serve-webhook --all`: businesses whose workers push at once; the "
                "others' events wait queued for a turn",
            ),
        ),
    ),
    Section(
        "monitoring",
        (
            Key(
                "ping_url",
                before=(
                    "healthchecks-style URL: /start before sync, the URL on success, /fail on "
                    "failure",
                ),
            ),
            Key(
                "quiet_transient_hours",
                after=(
                    "under -q, a remote unreachable or the lock held is only logged",
                    "until it lasts this long; then each run says since when (0: at once)",
                ),
            ),
            Key(
                "failing_attention_hours",
                after=(
                    "`status` exits 1 for a run that ended 1 or 75, or a delivery waiting to",
                    "retry, only once it has lasted this long (0: at once); the rest at once",
                ),
            ),
        ),
    ),
    Section(
        "state",
        (
            Key(
                "backup_hours",
                after=(
                    "`sync` writes an encrypted backup of the state to <home>/backups/",
                    "when the newest there is older than this",
                ),
            ),
            Key("backups_kept", after=("the newest this many are kept (0: none written)",)),
        ),
    ),
)


def default_of(section: str, key: str) -> object:
    """The setting's default, from the `Settings` dataclasses themselves."""
    return getattr(getattr(Settings(), section), key)


def toml_value(value: object) -> str:
    """A default as TOML: `30.0` as `30`, text quoted, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _key_lines(section: str, key: Key) -> list[str]:
    lines = [f"# {line}" for line in key.before]
    assignment = f"# {key.name} = {key.shown or toml_value(default_of(section, key.name))}"
    if not key.after:
        return [*lines, assignment]
    lines.append(f"{assignment.ljust(COMMENT_COLUMN)}# {key.after[0]}")
    lines.extend(f"{'#'.ljust(COMMENT_COLUMN)}# {more}" for more in key.after[1:])
    return lines


def config_text() -> str:
    """The commented `config.toml` that `init` writes: every setting, at its default."""
    lines = [f"# {line}" for line in HEADER]
    for section in SCHEMA:
        lines += ["", f"[{section.name}]", *(f"# {line}" for line in section.intro)]
        for key in section.keys:
            if key.in_file:
                lines += _key_lines(section.name, key)
    return "\n".join(lines) + "\n"


TABLE_START = "<!-- settings table: generated by `python -m fbstampli.settings_schema --write` -->"
TABLE_END = "<!-- end of settings table -->"


def settings_table() -> str:
    """The Markdown table of every setting, its default, its variable and what it is for."""
    rows = [
        "| Setting | Default | Environment variable | What it is for |",
        "|---|---|---|---|",
    ]
    for section in SCHEMA:
        for key in section.keys:
            dotted = f"{section.name}.{key.name}"
            words = " ".join((*key.before, *key.after)) or key.words
            default = toml_value(default_of(section.name, key.name))
            rows.append(f"| `{dotted}` | `{default}` | `{env_name(dotted)}` | {words} |")
    return "\n".join([TABLE_START, *rows, TABLE_END])


def with_table(document: str) -> str:
    """`document` with the text between its table markers replaced by the table as generated."""
    before, _, rest = document.partition(TABLE_START)
    _, _, after = rest.partition(TABLE_END)
    return before + settings_table() + after


def described() -> set[str]:
    return {f"{section.name}.{key.name}" for section in SCHEMA for key in section.keys}


def every_setting() -> set[str]:
    return {
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(Settings)
        for f in dataclasses.fields(getattr(Settings(), section.name))
    }


REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGED_CONFIG = Path(__file__).resolve().parent / "templates" / "config.toml"
EXAMPLE_CONFIG = REPOSITORY / "examples" / "config.toml"
SETTINGS_DOC = REPOSITORY / "docs" / "SETTINGS.md"


def main(argv: list[str]) -> int:
    """`--write` regenerates the three files; without it, exit 1 naming any that drifted."""
    wanted = {
        PACKAGED_CONFIG: config_text(),
        EXAMPLE_CONFIG: config_text(),
        SETTINGS_DOC: with_table(SETTINGS_DOC.read_text(encoding="utf-8")),
    }
    drifted = [path for path, text in wanted.items() if path.read_text(encoding="utf-8") != text]
    if "--write" in argv:
        for path in drifted:
            path.write_text(wanted[path], encoding="utf-8")
        return 0
    for path in drifted:
        sys.stderr.write(f"{path} differs from fbstampli/settings_schema.py\n")
    return 1 if drifted else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
