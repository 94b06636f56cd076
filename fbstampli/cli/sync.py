"""Commands that move data: push-bills, pull-stampli, reconcile, retry and sync."""

from pathlib import Path
from typing import Annotated

import typer

from fbstampli.cli.acknowledge import reconcile_app
from fbstampli.cli.app import (
    MAX_ID,
    FriendlyCommand,
    JsonFlag,
    ReportFormat,
    app,
    examples,
    finish,
    in_range,
    json_or_format,
    log_outcome,
    options_of,
)
from fbstampli.errors import ConfigError

MAX_JOBS = 64  # each job is a process with its own connections: beyond this, a typo


@app.command(
    "push-bills",
    cls=FriendlyCommand,
    short_help="Send new and changed vendors, bills and payments.",
    epilog=examples("fbstampli push-bills --dry-run", "fbstampli push-bills --since 2026-01-01"),
)
def push_bills(
    ctx: typer.Context,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Plan and write the files to <home>/dry-run/; upload nothing."
        ),
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Re-list everything in FreshBooks now (a full sweep).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="First backfill: only bills issued on or after this date (YYYY-MM-DD)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send new and changed FreshBooks vendors, bills and bill payments to Stampli's inbound."""
    from fbstampli.cli import progress_bars
    from fbstampli.services import sync as services

    with progress_bars.stages(options_of(ctx), enabled=not as_json) as shown:
        report = services.push_bills(
            options_of(ctx), dry_run=dry_run, full=full, since=since, progress=shown
        )
    finish(ctx, report, as_json=as_json)


@app.command(
    "pull-stampli",
    cls=FriendlyCommand,
    short_help="Read Stampli's new export files.",
    epilog=examples("fbstampli pull-stampli --now"),
)
def pull_stampli(
    ctx: typer.Context,
    now: Annotated[
        bool, typer.Option("--now", help="Poll even if the pull interval has not passed yet.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Download new Stampli export files, parse them and store them against their bills."""
    from fbstampli.services import sync as services

    finish(ctx, services.pull_stampli(options_of(ctx), now=now), as_json=as_json)


@reconcile_app.callback()  # the group's own help, examples and `acknowledge`: cli/acknowledge.py
def reconcile(
    ctx: typer.Context,
    output_format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="table (a table on a terminal, tab-separated text in a pipe), csv or json.",
        ),
    ] = ReportFormat.TABLE,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            dir_okay=False,
            help="Write the report to this file instead of stdout (replaced atomically); "
            "without --format, a .csv or .json name picks that format, any other tab-separated.",
        ),
    ] = None,
    fail_on_mismatch: Annotated[
        bool,
        typer.Option(
            "--fail-on-mismatch", help="Exit 1 when any bill needs attention (for alerting)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Match FreshBooks bill payments with Stampli's payment exports and report the differences.

    FreshBooks' side is what push-bills last read (`sync` pushes first), so a
    reconcile sends FreshBooks no request of its own.
    """
    if ctx.invoked_subcommand is not None:
        return
    from fbstampli.services import sync as services

    output_format = json_or_format(as_json, output_format)
    if output_file is not None:
        from fbstampli.paths import file_place_problem

        problem = file_place_problem(output_file, options_of(ctx).paths())
        if problem is not None:
            raise ConfigError(f"--output {output_file}: {problem}")
    from fbstampli.cli import output

    options = options_of(ctx)
    report = services.reconcile(
        options,
        lambda report, rows: output.show_reconciliation(
            report, rows, options, output_format, output_file
        ),
    )
    code = 1 if (fail_on_mismatch and report.attention) else int(report.exit_code)
    log_outcome(report, code)
    raise typer.Exit(code)


@app.command(
    "retry",
    cls=FriendlyCommand,
    short_help="Send failed or chosen deliveries again.",
    epilog=examples("fbstampli retry --failed", "fbstampli retry --bill 1234 --force"),
)
def retry(
    ctx: typer.Context,
    bill: Annotated[
        list[int] | None,
        typer.Option(
            "--bill",
            metavar="ID",
            callback=in_range(1, MAX_ID),
            help="FreshBooks bill id to re-send (repeatable).",
        ),
    ] = None,
    vendor: Annotated[
        list[int] | None,
        typer.Option(
            "--vendor",
            metavar="ID",
            callback=in_range(1, MAX_ID),
            help="FreshBooks vendor id to re-send (repeatable).",
        ),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Re-queue every failed delivery now.")
    ] = False,
    dead: Annotated[
        bool, typer.Option("--dead", help="Re-queue deliveries that used up their attempts.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Re-send even when the current version was already delivered."
        ),
    ] = False,
    queue_only: Annotated[
        bool, typer.Option("--queue-only", help="Only re-queue; the next run sends.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Re-queue deliveries by hand and, unless --queue-only, send them now."""
    from fbstampli.services import sync as services

    report = services.retry(
        options_of(ctx),
        bills=bill or [],
        vendors=vendor or [],
        failed=failed,
        dead=dead,
        force=force,
        queue_only=queue_only,
    )
    finish(ctx, report, as_json=as_json)


@app.command(
    "sync",
    cls=FriendlyCommand,
    short_help="Push, pull and reconcile: what cron runs.",
    epilog=examples(
        "fbstampli sync",
        "fbstampli sync --all   (every business of the installation)",
        "fbstampli sync --dry-run   (the files it would send, in <home>/dry-run/)",
        "fbstampli sync --all --jobs 4   (four businesses at a time)",
        "*/15 * * * *  fbstampli -q sync   (crontab)",
    ),
)
def sync(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    all_businesses: Annotated[
        bool,
        typer.Option("--all", help="Every business of the installation, each alone."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Plan and write the files to <home>/dry-run/ as push-bills --dry-run does; "
            "upload nothing, and read no Stampli export (pull and reconcile would change the "
            "state).",
        ),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            metavar="N",
            callback=in_range(1, MAX_JOBS),
            help="With --all: run up to N businesses at once (default 1).",
        ),
    ] = None,
) -> None:
    """push-bills, pull-stampli and reconcile under one lock: what cron runs every 15 minutes."""
    from fbstampli.cli import progress_bars

    if dry_run:
        if all_businesses:
            raise ConfigError("sync --dry-run runs one business: give --business NAME, not --all")
        from fbstampli.services import sync as services

        with progress_bars.stages(options_of(ctx), enabled=not as_json) as shown:
            report = services.push_bills(
                options_of(ctx), dry_run=True, full=False, since=None, progress=shown
            )
        report.notes.append(
            "dry run: pull-stampli and reconcile were not run; `fbstampli sync` runs all three"
        )
        finish(ctx, report, as_json=as_json)
    if all_businesses:
        from fbstampli.cli.business import sync_all

        sync_all(ctx, as_json=as_json, jobs=jobs or 1)
    if jobs is not None:
        raise ConfigError("--jobs runs several businesses at once: give it with --all")
    from fbstampli.services import sync as services

    with progress_bars.stages(options_of(ctx), enabled=not as_json) as shown:
        report = services.sync(options_of(ctx), progress=shown)
    finish(ctx, report, as_json=as_json)
