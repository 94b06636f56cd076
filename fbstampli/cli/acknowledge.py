"""`fbstampli reconcile` as a group, so that `reconcile acknowledge` can live beside it.

The report itself is still `fbstampli reconcile [--format …]` (its body is in
`cli/sync.py`); this module holds the group and the `acknowledge` command.
"""

from typing import Annotated

import typer

from fbstampli.cli.app import (
    MAX_ID,
    CommandLikeGroup,
    FriendlyCommand,
    JsonFlag,
    app,
    examples,
    finish,
    in_range,
    options_of,
)

reconcile_app = typer.Typer(
    cls=CommandLikeGroup,
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(
    reconcile_app,
    name="reconcile",
    short_help="Compare FreshBooks and Stampli payments, bill by bill.",
    epilog=examples(
        "fbstampli reconcile",
        "fbstampli reconcile --format csv --output reconcile.csv",
        "fbstampli -q reconcile --fail-on-mismatch",
        'fbstampli reconcile acknowledge --bill 1234 --reason "paid by cheque in March"',
    ),
)


@reconcile_app.command(
    "acknowledge",
    cls=FriendlyCommand,
    short_help="Record why one bill's outcome is fine; it stops needing attention.",
    epilog=examples(
        'fbstampli reconcile acknowledge --bill 1234 --reason "credit note 88 covers it"'
    ),
)
def acknowledge(
    ctx: typer.Context,
    bill: Annotated[
        int,
        typer.Option(
            "--bill", metavar="ID", callback=in_range(1, MAX_ID), help="FreshBooks bill id."
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why it is fine, for the audit trail.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Record a reason for one bill's reconcile outcome in the audit trail. The bill no longer
    needs attention; it does again as soon as its payments, its Stampli records or the bill
    itself change."""
    from fbstampli.services import baseline as services

    finish(ctx, services.acknowledge(options_of(ctx), bill_id=bill, reason=reason), as_json=as_json)
