"""`demo` and `sandbox`: the whole flow, and the stand-ins for FreshBooks and Stampli."""

from pathlib import Path
from typing import Annotated

import typer

from fbstampli.cli.app import (
    MAX_PORT,
    CommandLikeGroup,
    FriendlyCommand,
    GroupedHelp,
    app,
    examples,
    in_range,
)
from fbstampli.sandbox.realities import ALL as ALL_REALITIES
from fbstampli.sandbox.realities import REALITIES


@app.command(
    "demo",
    cls=FriendlyCommand,
    short_help="The whole flow against local stand-ins, in one go.",
    epilog=examples("fbstampli demo", "fbstampli demo --bills 200 --keep"),
)
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary home folder afterwards.")
    ] = False,
    bills: Annotated[
        int,
        typer.Option(
            "--bills",
            metavar="N",
            callback=in_range(3, 10_000),
            help="How many bills the sandbox starts with (3 or more: some get paid).",
        ),
    ] = 40,
    businesses: Annotated[
        int,
        typer.Option(
            "--businesses",
            min=1,
            max=5,
            help="2 or more: several businesses, each with its own Stampli, one listener.",
        ),
    ] = 1,
) -> None:
    """Run the whole flow against an embedded FreshBooks sandbox and an in-process SFTP server."""
    from fbstampli.cli import output
    from fbstampli.services.sandbox import Show, run_demo
    from fbstampli.services.sandbox_businesses import run_business_demo

    show = Show(step=output.demo_step, note=output.demo_note, table=output.table)
    if businesses > 1:
        raise typer.Exit(
            run_business_demo(keep=keep, bills=bills, businesses=businesses, show=show)
        )
    raise typer.Exit(run_demo(keep=keep, bills=bills, show=show))


sandbox_app = typer.Typer(
    help="Local stand-ins for FreshBooks and Stampli.",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=GroupedHelp,
)
app.add_typer(sandbox_app, name="sandbox")


freshbooks_app = typer.Typer(
    no_args_is_help=False,
    rich_markup_mode=None,
    cls=CommandLikeGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
sandbox_app.add_typer(
    freshbooks_app,
    name="freshbooks",
    short_help="Serve a FreshBooks-like API with seeded bills; change it while it runs.",
)


_HostOption = Annotated[str, typer.Option("--host", help="Address to listen on.")]
_PortOption = Annotated[
    int,
    typer.Option(
        "--port",
        metavar="PORT",
        callback=in_range(0, MAX_PORT),
        help="Port to listen on (0: any free).",
    ),
]
_BillsOption = Annotated[
    int,
    typer.Option("--bills", metavar="N", callback=in_range(0, 100_000), help="Bills to seed."),
]
_VendorsOption = Annotated[
    int,
    typer.Option("--vendors", metavar="N", callback=in_range(0, 100_000), help="Vendors to seed."),
]
_WriteConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--write-config",
        help="Also write the sandbox's address and app login into this home's config.toml "
        "(created if needed), so nothing needs exporting.",
    ),
]
_PaymentsOption = Annotated[
    int,
    typer.Option(
        "--payments", metavar="N", callback=in_range(0, 100_000), help="Bill payments to seed."
    ),
]
_RealityOption = Annotated[
    str,
    typer.Option(
        "--reality",
        help="Act out unconfirmed FreshBooks behaviours, comma-separated: "
        f"{', '.join(REALITIES)}; or all (every one but "
        f"{' and '.join(name for name in REALITIES if name not in ALL_REALITIES)}).",
    ),
]
_BusinessesOption = Annotated[
    int,
    typer.Option(
        "--businesses",
        metavar="N",
        callback=in_range(1, 9),
        help="Serve N businesses on the one login, each with its own seeded data "
        "(`auth login` then asks which one).",
    ),
]


@freshbooks_app.callback(
    invoke_without_command=True,
    epilog=examples(
        "fbstampli sandbox freshbooks",
        "fbstampli sandbox freshbooks --write-config ~/fbstampli-sandbox",
        "fbstampli sandbox freshbooks --businesses 2",
        "fbstampli sandbox freshbooks edit-bill --bill 5 --amount 12.50",
    ),
)
def sandbox_freshbooks(
    ctx: typer.Context,
    host: _HostOption = "127.0.0.1",
    port: _PortOption = 8765,
    bills: _BillsOption = 500,
    vendors: _VendorsOption = 50,
    write_config: _WriteConfigOption = None,
    payments: _PaymentsOption = 250,
    reality: _RealityOption = "",
    businesses: _BusinessesOption = 1,
) -> None:
    """Serve a FreshBooks-compatible sandbox API until Ctrl-C (try fbstampli without an account).

    While it runs, the commands below change its data from another terminal, as someone
    working in FreshBooks would, and FreshBooks' webhook goes to every registered callback.
    """
    if ctx.invoked_subcommand is not None:
        return
    from functools import partial

    from fbstampli.paths import expanded
    from fbstampli.sandbox.freshbooks import run_sandbox
    from fbstampli.services.sandbox import write_sandbox_config

    writer = None
    if write_config is not None:
        writer = partial(write_sandbox_config, expanded(write_config, "--write-config"))
    run_sandbox(
        host, port, vendors, bills, payments, reality, write_config=writer, businesses=businesses
    )


@sandbox_app.command(
    "sftp",
    cls=FriendlyCommand,
    short_help="Serve a Stampli-like SFTP folder.",
    epilog=examples("fbstampli sandbox sftp --root ~/stampli-sandbox"),
)
def sandbox_sftp(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            metavar="PORT",
            callback=in_range(0, MAX_PORT),
            help="Port to listen on (0: any free).",
        ),
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
