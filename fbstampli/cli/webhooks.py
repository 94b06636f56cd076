"""`fbstampli webhooks …` and `serve-webhook`: FreshBooks callbacks, registered and received."""

from typing import Annotated

import typer

from fbstampli.cli.app import (
    MAX_ID,
    MAX_PORT,
    FriendlyCommand,
    GroupedHelp,
    JsonFlag,
    app,
    examples,
    finish,
    in_range,
    options_of,
)

webhooks_app = typer.Typer(
    help="Register, list, verify and delete FreshBooks callbacks.",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=GroupedHelp,
)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command(
    "register",
    cls=FriendlyCommand,
    short_help="Register bill and vendor callbacks for a URL.",
    epilog=examples("fbstampli webhooks register --url https://hooks.example.com/fbstampli"),
)
def register(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", help="Public https URL that reaches serve-webhook.")],
    as_json: JsonFlag = False,
) -> None:
    """Register callbacks for bill and bill_vendor events pointing at URL."""
    from fbstampli.services import webhooks as services

    finish(ctx, services.webhooks_register(options_of(ctx), url=url), as_json=as_json)


@webhooks_app.command(
    "list",
    cls=FriendlyCommand,
    short_help="List FreshBooks' callbacks for this account.",
    epilog=examples("fbstampli webhooks list"),
)
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the callbacks FreshBooks has for this account."""
    from fbstampli.cli import output
    from fbstampli.services import webhooks as services

    output.show_rows(
        "FreshBooks callbacks", services.webhooks_list(options_of(ctx)), as_json=as_json
    )


@webhooks_app.command(
    "delete",
    cls=FriendlyCommand,
    short_help="Delete one callback and forget its verifier.",
    epilog=examples("fbstampli webhooks delete 42"),
)
def delete(
    ctx: typer.Context,
    callback_id: Annotated[
        int,
        typer.Argument(metavar="CALLBACK_ID", callback=in_range(1, MAX_ID), help="Callback id."),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Delete one callback in FreshBooks and forget its verifier."""
    from fbstampli.services import webhooks as services

    finish(ctx, services.webhooks_delete(options_of(ctx), callback_id), as_json=as_json)


@webhooks_app.command(
    "verify",
    cls=FriendlyCommand,
    short_help="Finish one callback's verification by hand.",
    epilog=examples(
        "fbstampli webhooks verify 42 --verifier CODE", "fbstampli webhooks verify 42 --resend"
    ),
)
def verify(
    ctx: typer.Context,
    callback_id: Annotated[
        int,
        typer.Argument(metavar="CALLBACK_ID", callback=in_range(1, MAX_ID), help="Callback id."),
    ],
    verifier: Annotated[
        str | None,
        typer.Option(
            "--verifier",
            help="Verification code FreshBooks sent, if you have it; give - to read it from "
            "stdin, which keeps it out of ps and shell history.",
        ),
    ] = None,
    resend: Annotated[
        bool, typer.Option("--resend", help="Ask FreshBooks to send the verification code again.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Complete (or restart) FreshBooks' verification handshake for one callback by hand."""
    from fbstampli.cli.auth import secret_from_stdin
    from fbstampli.services import webhooks as services

    if verifier == "-":
        verifier = secret_from_stdin("--verifier")
    finish(
        ctx,
        services.webhooks_verify(options_of(ctx), callback_id, verifier=verifier, resend=resend),
        as_json=as_json,
    )


@app.command(
    "serve-webhook",
    cls=FriendlyCommand,
    short_help="Receive FreshBooks webhooks and push within seconds.",
    epilog=examples("fbstampli serve-webhook --port 8787"),
)
def serve_webhook(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            metavar="PORT",
            callback=in_range(1, MAX_PORT),
            help="Port to listen on (default 8787).",
        ),
    ] = None,
    all_businesses: Annotated[
        bool,
        typer.Option(
            "--all", help="Every business of the installation, at /webhooks/freshbooks/<name>."
        ),
    ] = False,
) -> None:
    """Listen for FreshBooks webhooks, verify them and push the named bills within seconds."""
    from fbstampli.services import webhooks as services

    if all_businesses:
        from fbstampli.cli.business import refuse_selected
        from fbstampli.services import webhooks_all

        refuse_selected(ctx)
        finish(ctx, webhooks_all.serve_webhook_all(options_of(ctx), host=host, port=port))

    finish(ctx, services.serve_webhook(options_of(ctx), host=host, port=port))
