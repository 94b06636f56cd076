"""Set-up and operating commands: init, status, doctor, audit, demo, templates, state, key."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from fbstampli.cli.app import (
    MAX_ID,
    FriendlyCommand,
    GroupedHelp,
    JsonFlag,
    KeySourceChoice,
    ReportFormat,
    app,
    examples,
    finish,
    in_range,
    json_or_format,
    options_of,
)


@app.command(
    "init",
    cls=FriendlyCommand,
    short_help="Create the home, its config, key and encrypted state.",
    epilog=examples(
        "fbstampli init", "FBSTAMPLI_HOME=/var/lib/fbstampli fbstampli init --key-source file"
    ),
)
def init(
    ctx: typer.Context,
    key_source: Annotated[
        KeySourceChoice,
        typer.Option(
            "--key-source",
            case_sensitive=False,
            help="Where the state key lives: auto (env if FBSTAMPLI_DB_KEY is set, the OS keyring "
            "on a desktop, else a 0600 file), env, keyring or file.",
        ),
    ] = KeySourceChoice.AUTO,
    as_json: JsonFlag = False,
) -> None:
    """Create the home folder, a commented config, the state key and the encrypted state."""
    from fbstampli.services import admin

    report = admin.init_home(options_of(ctx), key_source=key_source.value)
    finish(ctx, report, as_json=as_json)


@app.command(
    "status",
    cls=FriendlyCommand,
    short_help="Did every bill reach Stampli, and what is stuck?",
    epilog=examples(
        "fbstampli status",
        "fbstampli status --stuck",
        "fbstampli status --all   (one line per business)",
        "fbstampli status --all --attention   (only those that need attention)",
        "fbstampli -q status || echo 'needs attention'",
    ),
)
def status(
    ctx: typer.Context,
    stuck: Annotated[
        bool,
        typer.Option(
            "--stuck", help="List every failing item and quarantined file, with its whole error."
        ),
    ] = False,
    as_json: JsonFlag = False,
    all_businesses: Annotated[
        bool, typer.Option("--all", help="One line per business of the installation.")
    ] = False,
    attention_only: Annotated[
        bool,
        typer.Option("--attention", help="With --all: only the businesses that need attention."),
    ] = False,
) -> None:
    """Did every bill reach Stampli, and what is stuck? Exit 1 when something needs attention."""
    from fbstampli.cli import output

    if all_businesses:
        from fbstampli.cli.business import status_all

        status_all(ctx, as_json=as_json, attention_only=attention_only)
    if attention_only:
        from fbstampli.errors import ConfigError

        raise ConfigError("--attention picks among the businesses: give it with --all")
    from fbstampli.services.status import status as home_status

    found = home_status(options_of(ctx))
    quiet = options_of(ctx).quiet
    if not quiet or as_json:
        output.show_status(found, as_json=as_json, stuck=stuck)
    if found.attention and (quiet or not output.stdout_is_terminal()):
        # Under cron (-q, or stdout to a file) exit 1 still says why, in the one mailed line.
        output.problem_line("needs attention: " + "; ".join(found.attention))
    raise typer.Exit(1 if found.attention else 0)


@app.command(
    "doctor",
    cls=FriendlyCommand,
    short_help="Check every part of the set-up and say how to fix it.",
    epilog=examples(
        "fbstampli doctor",
        "fbstampli doctor --json",
        "fbstampli doctor --all   (every business, one section each)",
        "fbstampli doctor --api-report report.json",
    ),
)
def doctor(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    api_report: Annotated[
        Path | None,
        typer.Option(
            "--api-report",
            metavar="FILE",
            help="Also probe FreshBooks and write what it answered to FILE (requests, statuses, "
            "rate-limit headers, body shapes and conclusions; no token, no account values).",
            dir_okay=False,
        ),
    ] = None,
    all_businesses: Annotated[
        bool, typer.Option("--all", help="Every business of the installation, one section each.")
    ] = False,
) -> None:
    """Check config, key, state, FreshBooks token and SFTP reachability; say how to fix each."""
    from fbstampli.cli import output
    from fbstampli.services import admin

    if all_businesses:
        from fbstampli.cli.business import doctor_all

        doctor_all(ctx, as_json=as_json, api_report=api_report)

    if api_report is not None:  # before any work, as `reconcile --output` and `state backup`
        from fbstampli.errors import ConfigError
        from fbstampli.paths import file_place_problem

        problem = file_place_problem(api_report, options_of(ctx).paths())
        if problem is not None:
            raise ConfigError(f"--api-report {api_report}: {problem}")
    if as_json:
        checks = admin.doctor(options_of(ctx))
        output.show_checks(checks, as_json=True)
    else:
        checks = admin.doctor(options_of(ctx), tell=output.show_check)
    if api_report is not None:
        probes = admin.api_report(options_of(ctx), api_report)
        if not as_json:
            output.banner_line(f"Wrote {probes} FreshBooks probes to {api_report}.")
    raise typer.Exit(0 if all(check.ok for check in checks) else 1)


@app.command(
    "audit",
    cls=FriendlyCommand,
    short_help="The audit trail of one bill or all, in time order.",
    epilog=examples(
        "fbstampli audit --bill 1234", "fbstampli audit --since 2026-01-01 --format csv > audit.csv"
    ),
)
def audit(
    ctx: typer.Context,
    bill: Annotated[
        int | None,
        typer.Option(
            "--bill",
            metavar="ID",
            callback=in_range(1, MAX_ID),
            help="Only this FreshBooks bill id.",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only entries on or after YYYY-MM-DD.")
    ] = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", case_sensitive=False, help="table, csv or json.")
    ] = ReportFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """The audit trail of one bill or all, in time order."""
    from fbstampli.cli import output
    from fbstampli.services import admin

    output_format = json_or_format(as_json, output_format)
    rows = admin.audit_trail(options_of(ctx), bill=bill, since=since)
    output.show_audit(rows, output_format)


template_app = typer.Typer(
    help="Stampli file templates.", no_args_is_help=True, rich_markup_mode=None, cls=GroupedHelp
)
app.add_typer(template_app, name="template")


@template_app.command(
    "check",
    cls=FriendlyCommand,
    short_help="Validate a Stampli template file.",
    epilog=examples("fbstampli template check my-template.toml"),
)
def template_check(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Template TOML file to check.")],
    as_json: JsonFlag = False,
) -> None:
    """Validate a Stampli template file and name any bad field."""
    from fbstampli.services import admin

    finish(ctx, admin.template_check(file), as_json=as_json)


state_app = typer.Typer(
    help="Back up and restore the encrypted state.",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=GroupedHelp,
)
app.add_typer(state_app, name="state")


@state_app.command(
    "backup",
    cls=FriendlyCommand,
    short_help="Write an encrypted copy of the state.",
    epilog=examples("fbstampli state backup /backups/fbstampli-$(date +%F).db"),
)
def state_backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write the encrypted copy.")],
    as_json: JsonFlag = False,
) -> None:
    """Write an encrypted copy of the state (same key) to FILE."""
    from fbstampli.services import admin

    finish(ctx, admin.state_backup(options_of(ctx), file), as_json=as_json)


@state_app.command(
    "restore",
    cls=FriendlyCommand,
    short_help="Replace the state with a backup.",
    epilog=examples(
        "fbstampli state restore /backups/fbstampli-2026-01-31.db",
        "fbstampli state restore --yes   (the newest automatic backup the marker accepts)",
    ),
)
def state_restore(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(
            help="An encrypted copy made by `state backup`; without it, the newest automatic "
            "backup in <home>/backups that the marker on the SFTP server accepts."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a state that is newer than the backup.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Without FILE: restore the one chosen without asking.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Replace the state with a backup (refuses to replace a newer state without --force)."""
    from fbstampli.services import admin

    confirm = None
    if file is None:
        confirm = _asking(
            yes, "state restore without FILE offers the newest backup the marker accepts"
        )
    finish(
        ctx,
        admin.state_restore(options_of(ctx), file, force=force, confirm=confirm),
        as_json=as_json,
    )


@state_app.command(
    "adopt-remote",
    cls=FriendlyCommand,
    short_help="Take what Stampli already has as delivered, sending none of it.",
    epilog=examples("fbstampli state adopt-remote", "fbstampli state adopt-remote --yes"),
)
def state_adopt_remote(
    ctx: typer.Context,
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask; needed when not run in a terminal.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Record what Stampli already received without sending it: every vendor, bill and payment
    FreshBooks has now is taken as delivered; only later changes are sent. For a state the
    marker on the SFTP server refuses (new, emptied, or an older backup)."""
    from fbstampli.services import adopt

    confirm = _asking(
        yes, "state adopt-remote takes every current FreshBooks object as already in Stampli"
    )
    finish(ctx, adopt.adopt_remote(options_of(ctx), confirm=confirm), as_json=as_json)


def _asking(yes: bool, what: str) -> Callable[[str], bool] | None:
    """How a command that changes what Stampli is taken to hold asks first: not at all with
    --yes, on the terminal otherwise, and refused (saying what it would do) without one."""
    import sys

    from fbstampli.errors import ConfigError

    if yes:
        return None
    if not sys.stdin.isatty():
        raise ConfigError(f"{what}: confirm with --yes when not run in a terminal")
    return lambda question: bool(typer.confirm(question, err=True))


key_app = typer.Typer(
    help="The state encryption key.", no_args_is_help=True, rich_markup_mode=None, cls=GroupedHelp
)
app.add_typer(key_app, name="key")


@key_app.command(
    "rotate",
    cls=FriendlyCommand,
    short_help="Re-encrypt the state under a new key.",
    epilog=examples("fbstampli key rotate && fbstampli state backup NEW-BACKUP.db"),
)
def key_rotate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Re-encrypt the state under a new key, crash-safely."""
    from fbstampli.services import admin

    finish(ctx, admin.key_rotate(options_of(ctx)), as_json=as_json)
