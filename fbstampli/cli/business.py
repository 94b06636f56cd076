"""`fbstampli business …`, `sync --all` and `status --all`: several businesses, one installation."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from fbstampli.cli.app import (
    COMMANDLINE,
    FriendlyCommand,
    GroupedHelp,
    JsonFlag,
    KeySourceChoice,
    app,
    examples,
    options_of,
)
from fbstampli.errors import ConfigError

if TYPE_CHECKING:
    from fbstampli.installation import BusinessHome
    from fbstampli.services.doctor import CheckResult

business_app = typer.Typer(
    help="Several FreshBooks businesses, each in a home of its own.",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=GroupedHelp,
)
app.add_typer(business_app, name="business")


@business_app.command(
    "add",
    cls=FriendlyCommand,
    short_help="Create a business home, or adopt an existing one.",
    epilog=examples(
        "fbstampli business add acme",
        "fbstampli business add main --adopt ~/.config/fbstampli",
    ),
)
def add(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(metavar="NAME", help="Short name: lower-case letters, digits, dashes."),
    ],
    adopt: Annotated[
        Path | None,
        typer.Option(
            "--adopt",
            metavar="HOME",
            help="Record this existing home as the business (nothing moves).",
        ),
    ] = None,
    key_source: Annotated[
        KeySourceChoice,
        typer.Option(
            "--key-source",
            case_sensitive=False,
            help="Where the new home's state key lives, as for init.",
        ),
    ] = KeySourceChoice.AUTO,
    config_from: Annotated[
        Path | None,
        typer.Option(
            "--config-from",
            metavar="FILE",
            help="Start the new home's config.toml as a copy of this.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a business home under the installation (or adopt one), then say how to log in."""
    from fbstampli.cli import output
    from fbstampli.services import business as services

    refuse_selected(ctx)
    options = options_of(ctx)
    report = services.business_add(
        options, name, adopt=adopt, key_source=key_source.value, config_from=config_from
    )
    output.show_steps(report, options, as_json=as_json)
    raise typer.Exit(int(report.exit_code))


@business_app.command(
    "list",
    cls=FriendlyCommand,
    short_help="The businesses and where their homes are.",
    epilog=examples("fbstampli business list", "fbstampli business list --json"),
)
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The businesses of the installation and where their homes are."""
    from fbstampli.cli import output
    from fbstampli.services import business as services

    refuse_selected(ctx)
    rows = services.business_list(options_of(ctx))
    output.show_rows("fbstampli businesses", rows, as_json=as_json)


@business_app.command(
    "remove",
    cls=FriendlyCommand,
    short_help="Forget a business; its home is left untouched.",
    epilog=examples("fbstampli business remove acme"),
)
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The business to forget.")],
    as_json: JsonFlag = False,
) -> None:
    """Forget a business (its home, state and key are left untouched)."""
    from fbstampli.cli import output
    from fbstampli.services import business as services

    refuse_selected(ctx)
    report = services.business_remove(options_of(ctx), name)
    output.show_steps(report, options_of(ctx), as_json=as_json)
    raise typer.Exit(int(report.exit_code))


def refuse_selected(ctx: typer.Context) -> None:
    """`--business` picks one home; the installation-wide commands take none."""
    if ctx.find_root().params.get("business"):
        raise ConfigError("this command works on the whole installation; drop --business")


def sync_all(ctx: typer.Context, *, as_json: bool, jobs: int = 1) -> NoReturn:
    """`sync --all`: every business, `jobs` at a time; exit with the worst code."""
    from fbstampli.cli import output
    from fbstampli.services.sync_all import sync_all as sync_every

    refuse_selected(ctx)
    result = sync_every(options_of(ctx), jobs=jobs)
    output.show_all(result, options_of(ctx), as_json=as_json)
    raise typer.Exit(result.exit_code)


def status_all(ctx: typer.Context, *, as_json: bool, attention_only: bool = False) -> NoReturn:
    """`status --all`: one line per business, those that need attention first (--json keeps
    name order); `--attention` shows only those. Exit 1 when any needs attention."""
    from fbstampli.cli import output
    from fbstampli.services import business as services

    refuse_selected(ctx)
    summaries = services.status_all(options_of(ctx))
    quiet = options_of(ctx).quiet
    shown = summaries if as_json else services.attention_first(summaries)
    if attention_only:
        shown = [summary for summary in shown if summary.needs_attention]
    if not quiet or as_json:
        output.show_status_all(shown, as_json=as_json)
    attention = [
        f"business {s.business}: {', '.join(s.needs_attention)}"
        for s in summaries
        if s.needs_attention
    ]
    if attention and quiet and not as_json:  # -q: the one line cron mails, as `-q status`
        output.problem_line("needs attention: " + "; ".join(attention))
    raise typer.Exit(1 if attention else 0)


def doctor_all(ctx: typer.Context, *, as_json: bool, api_report: Path | None) -> NoReturn:
    """`doctor --all`: a section per business, each check printed as it is known and its
    hints naming the business; a line on stderr per business with a failure; exit with the
    worst business's code."""
    from fbstampli.cli import output
    from fbstampli.services import doctor_all as services

    refuse_selected(ctx)
    if api_report is not None:
        raise ConfigError("--api-report probes one business: give --business NAME, not --all")
    given = ctx.find_root().get_parameter_source("installation") == COMMANDLINE
    installation = options_of(ctx).installation if given else None
    sections: list[str] = []

    def begin(business: "BusinessHome") -> None:
        output.hints_for_business(business.name, installation=installation)
        if not as_json:
            if sections:
                output.banner_line("")
            output.banner_line(f"business {business.name} ({business.home})")
        sections.append(business.name)

    def tell(check: "CheckResult") -> None:
        if not as_json:
            output.banner_line(output.keep_business(output.check_line(check)))

    found = services.doctor_all(options_of(ctx), begin=begin, tell=tell)
    output.hints_for_business(None)
    if as_json:
        output.write_json(services.as_document(found, output.check_document))
    for business in found:
        if business.error is not None:
            output.problem_line(
                f"business {business.name}: exit {business.exit_code}: {business.error}"
            )
        elif business.failed:
            output.problem_line(
                f"business {business.name}: doctor found {', '.join(business.failed)} failing: "
                f"`fbstampli --business {business.name} doctor` says how to fix each"
            )
    raise typer.Exit(services.exit_code(found))
