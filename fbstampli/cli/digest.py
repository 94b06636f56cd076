"""`fbstampli digest` (the daily e-mail an AP lead reads) and `fbstampli auth smtp` (its relay)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from fbstampli.cli.app import (
    MAX_PORT,
    FriendlyCommand,
    JsonFlag,
    app,
    examples,
    finish,
    in_range,
    options_of,
)
from fbstampli.cli.auth import auth_app
from fbstampli.errors import ConfigError


@app.command(
    "digest",
    cls=FriendlyCommand,
    short_help="The daily digest: pipeline, exceptions, stuck deliveries.",
    epilog=examples(
        "fbstampli digest   (the text part, on the terminal)",
        "fbstampli digest --output digest.html",
        "fbstampli digest --send",
        "fbstampli digest --send --all   (one per business of the installation)",
    ),
)
def digest(
    ctx: typer.Context,
    send: Annotated[
        bool,
        typer.Option(
            "--send", help="E-mail it to digest.to now, through the relay of `auth smtp`."
        ),
    ] = False,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            dir_okay=False,
            help="Write its HTML to this file (replaced atomically); nothing is sent.",
        ),
    ] = None,
    all_businesses: Annotated[
        bool,
        typer.Option("--all", help="With --send: one digest per business of the installation."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The digest an AP lead reads each morning: the pipeline funnel (in FreshBooks, sent,
    captured, approved, paid), the bills that need attention by kind with their totals, stuck
    deliveries, and what changed since the last digest. Read from the state alone.

    `sync` sends it once a day by itself when [digest] enabled = true in config.toml.
    """
    if all_businesses:
        if not send or output_file is not None:
            raise ConfigError("--all sends one digest per business: give --send, not --output")
        from fbstampli.cli import output
        from fbstampli.cli.business import refuse_selected
        from fbstampli.services.digest_all import digest_all

        refuse_selected(ctx)
        every = digest_all(options_of(ctx))
        output.show_all(every, options_of(ctx), as_json=as_json)
        raise typer.Exit(every.exit_code)
    if output_file is not None:
        from fbstampli.paths import file_place_problem

        problem = file_place_problem(output_file, options_of(ctx).paths())
        if problem is not None:
            raise ConfigError(f"--output {output_file}: {problem}")
    from fbstampli.services import digest as services

    result = services.digest(options_of(ctx), send_it=send, output=output_file)
    if not send and output_file is None and not as_json:
        from fbstampli.digest import render_text

        if not options_of(ctx).quiet:
            sys.stdout.write(render_text(result.digest))
        raise typer.Exit(0)
    finish(ctx, result.report, as_json=as_json)


@auth_app.command(
    "smtp",
    cls=FriendlyCommand,
    short_help="Store the SMTP relay the digest is sent through.",
    epilog=examples(
        "fbstampli auth smtp --host smtp.example.com --username ap-robot",
        "pass smtp | fbstampli auth smtp --host H --username U --password-stdin",
        "fbstampli auth smtp --host smtp.example.com --port 465 --security tls --username U",
    ),
)
def smtp(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="SMTP relay host name.")],
    username: Annotated[
        str, typer.Option("--username", help="Login name at the relay (empty: no login).")
    ] = "",
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            metavar="PORT",
            callback=in_range(1, MAX_PORT),
            help="Relay port (default: 587 for starttls, 465 for tls).",
        ),
    ] = None,
    security: Annotated[
        str,
        typer.Option(
            "--security",
            metavar="<starttls|tls|none>",
            help="starttls, tls (implicit), or none (only to a relay on this machine).",
        ),
    ] = "starttls",
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            metavar="FILE",
            help="Trust the relay's certificate through this CA file instead of the system's.",
        ),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from standard input (on a terminal it is asked for).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Store the digest's SMTP relay in the encrypted state; the password is asked for, never
    shown or logged."""
    from fbstampli.services import digest as services

    password = ""
    if username and password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif username and sys.stdin.isatty():
        password = str(typer.prompt("SMTP password", hide_input=True, err=True))
    report = services.auth_smtp(
        options_of(ctx),
        host=host,
        port=port,
        security=security.lower(),
        username=username,
        password=password,
        ca_file=ca_file,
    )
    finish(ctx, report, as_json=as_json)
