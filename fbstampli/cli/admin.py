"""Set-up and operating commands: init, status, doctor, audit, demo, templates, state, key."""

from pathlib import Path
from typing import Annotated

import typer

from fbstampli.cli import MAX_ID, MAX_PORT, JsonFlag, ReportFormat, app, finish, options_of


@app.command("init")
def init(
    ctx: typer.Context,
    key_source: Annotated[
        str,
        typer.Option(
            "--key-source",
            help="Where the state key lives: auto (env if FBSTAMPLI_DB_KEY is set, the OS keyring "
            "on a desktop, else a 0600 file), env, keyring or file.",
        ),
    ] = "auto",
) -> None:
    """Create the home folder, a commented config, the state key and the encrypted state."""
    from fbstampli.services import setup

    finish(ctx, setup.init_home(options_of(ctx), key_source=key_source))


@app.command("status")
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Health at a glance: login, SFTP target, last runs, queues, Stampli files, reconciliation."""
    from fbstampli.cli import output
    from fbstampli.services import ops

    output.show_status(ops.status(options_of(ctx)), as_json=as_json)


@app.command("doctor")
def doctor(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    api_report: Annotated[
        Path | None,
        typer.Option(
            "--api-report",
            help="Also probe FreshBooks and write what it answered to FILE (requests, statuses, "
            "rate-limit headers, body shapes and conclusions; no token, no account values).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Check config, key, state, FreshBooks token and SFTP reachability; say how to fix each."""
    from fbstampli.cli import output
    from fbstampli.services import ops

    checks = ops.doctor(options_of(ctx))
    output.show_checks(checks, as_json=as_json)
    if api_report is not None:
        probes = ops.api_report(options_of(ctx), api_report)
        if not as_json:
            output.banner_line(f"wrote {probes} FreshBooks probes to {api_report}")
    raise typer.Exit(0 if all(check.ok for check in checks) else 1)


@app.command("audit")
def audit(
    ctx: typer.Context,
    bill: Annotated[
        int | None, typer.Option("--bill", min=1, max=MAX_ID, help="Only this FreshBooks bill id.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only entries on or after YYYY-MM-DD.")
    ] = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", case_sensitive=False, help="table, csv or json.")
    ] = ReportFormat.TABLE,
) -> None:
    """The audit trail of one bill or all, in time order."""
    from fbstampli.cli import output
    from fbstampli.services import ops

    rows = ops.audit_trail(options_of(ctx), bill=bill, since=since)
    output.show_audit(rows, output_format)


@app.command("demo")
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary home folder afterwards.")
    ] = False,
    bills: Annotated[
        int,
        typer.Option(
            "--bills",
            min=3,
            max=10_000,
            help="How many bills the sandbox starts with (3 or more: some get paid).",
        ),
    ] = 40,
) -> None:
    """Run the whole flow against an embedded FreshBooks sandbox and an in-process SFTP server."""
    from fbstampli.cli import output
    from fbstampli.sandbox.demo import Show, run_demo

    show = Show(step=output.demo_step, note=output.demo_note, table=output.table)
    raise typer.Exit(run_demo(keep=keep, bills=bills, show=show))


template_app = typer.Typer(
    help="Stampli file templates.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(template_app, name="template")


@template_app.command("check")
def template_check(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Template TOML file to check.")]
) -> None:
    """Validate a Stampli template file and name any bad field."""
    from fbstampli.services import sftp

    finish(ctx, sftp.template_check(file))


sandbox_app = typer.Typer(
    help="Local stand-ins for FreshBooks and Stampli.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("freshbooks")
def sandbox_freshbooks(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=MAX_PORT, help="Port to listen on (0: any free).")
    ] = 8765,
    bills: Annotated[int, typer.Option("--bills", min=0, max=100_000, help="Bills to seed.")] = 500,
    vendors: Annotated[
        int, typer.Option("--vendors", min=0, max=100_000, help="Vendors to seed.")
    ] = 50,
    payments: Annotated[
        int, typer.Option("--payments", min=0, max=100_000, help="Bill payments to seed.")
    ] = 250,
    reality: Annotated[
        str,
        typer.Option(
            "--reality",
            help="Act out unconfirmed FreshBooks behaviours, comma-separated: sort-ignored, "
            "sort-rejected, vendor-ids-ignored, vendor-ids-rejected, lines-omitted, "
            "vendor-times-ny, empty-pages-zero, scope-missing; or all (every one but "
            "scope-missing).",
        ),
    ] = "",
) -> None:
    """Serve a FreshBooks-compatible sandbox API until Ctrl-C (try fbstampli without an account)."""
    from fbstampli.sandbox.freshbooks import run_sandbox

    run_sandbox(host, port, vendors, bills, payments, reality)


@sandbox_app.command("sftp")
def sandbox_sftp(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=MAX_PORT, help="Port to listen on (0: any free).")
    ] = 2222,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Folder to serve, kept afterwards (default: a temporary one, removed on exit).",
        ),
    ] = None,
) -> None:
    """Serve an SFTP folder with inbound/ and outbound/ until Ctrl-C (a Stampli stand-in)."""
    from fbstampli.cli import output
    from fbstampli.sandbox.sftp_sandbox import run_sftp_sandbox

    run_sftp_sandbox(host=host, port=port, root=root, show=output.banner_line)


state_app = typer.Typer(
    help="Back up and restore the encrypted state.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(state_app, name="state")


@state_app.command("backup")
def state_backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write the encrypted copy.")],
) -> None:
    """Write an encrypted copy of the state (same key) to FILE."""
    from fbstampli.services import setup

    finish(ctx, setup.state_backup(options_of(ctx), file))


@state_app.command("restore")
def state_restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="An encrypted copy made by `state backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a state that is newer than the backup.")
    ] = False,
) -> None:
    """Replace the state with a backup (refuses to replace a newer state without --force)."""
    from fbstampli.services import ops

    finish(ctx, ops.state_restore(options_of(ctx), file, force=force))


key_app = typer.Typer(help="The state encryption key.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(key_app, name="key")


@key_app.command("rotate")
def key_rotate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Re-encrypt the state under a new key, crash-safely."""
    from fbstampli.services import setup

    finish(ctx, setup.key_rotate(options_of(ctx)), as_json=as_json)
