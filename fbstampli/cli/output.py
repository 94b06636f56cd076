"""The only printer: reports, tables and JSON on stdout, one-line problems on stderr.

Success under cron prints nothing: a report is shown on a terminal, with
`--json`, or with `-v`; never with `-q`. Progress bars appear only on a
terminal and never with `--json` or `-q`.

Much of what is shown came from outside (Stampli export fields, remote file
names, FreshBooks text), so everything printed goes through `clean` (control
characters that could retitle the terminal, plant OSC 8 links or hide text
are replaced; Rich never reads it as markup) and every CSV cell through the
same formula guard as the files we upload.
"""

import itertools
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fbstampli.cli.text import clean
from fbstampli.errors import ConfigError, TemporaryError
from fbstampli.options import Options
from fbstampli.paths import out_of_room
from fbstampli.report import RunReport
from fbstampli.services.report_rows import csv_safe, needs_attention

if TYPE_CHECKING:
    from fbstampli.services.business import BusinessStatus
    from fbstampli.services.status import Status


def write_csv(out: Any, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """The one CSV writer of reports: header, then each row through the formula guard."""
    import csv

    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)


def problem_line(text: str) -> None:
    """One `fbstampli: …` line on stderr; it may quote a remote name, so it is cleaned."""
    sys.stderr.write(f"fbstampli: {clean(text)}\n")


def write_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, one_line: bool = False
) -> None:
    """A rich table on a terminal; tab-separated text when piped. `one_line`: a row never
    wraps on a terminal (a long cell is cut with an ellipsis), for lists of hundreds."""
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        rich_table = Table(title=Text(clean(title)), title_justify="left")
        for column in columns:
            rich_table.add_column(Text(clean(column)), no_wrap=one_line)
        for row in rows:
            rich_table.add_row(*(Text(clean(cell)) for cell in row))  # Text: never markup
        Console().print(rich_table)
        return
    sys.stdout.write("\t".join(clean(column) for column in columns) + "\n")
    for row in rows:
        sys.stdout.write("\t".join(clean(cell) for cell in row) + "\n")


def show_report(report: RunReport, options: Options, *, as_json: bool = False) -> None:
    if as_json:
        write_json(report.as_dict())
        return
    for problem in report.problems:
        problem_line(problem)
    if options.quiet or not (stdout_is_terminal() or options.verbose):
        return
    from fbstampli.summaries import sentences

    sys.stdout.write(clean(" ".join(sentences(report))) + "\n")
    for note in report.notes:
        sys.stdout.write(f"  {clean(note)}\n")


def show_mapping(title: str, data: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        write_json(data)
        return
    table(title, ["", ""], list(data.items()))


def show_rows(title: str, rows: Sequence[Any], *, as_json: bool) -> None:
    """Services' row dataclasses as a table, or as a JSON list of objects (fields in order)."""
    import dataclasses

    documents = [dataclasses.asdict(row) for row in rows]
    if as_json:
        write_json(documents)
        return
    columns = list(documents[0]) if documents else []
    table(title, columns, [[row.get(column) for column in columns] for row in documents])


def demo_step(text: str) -> None:
    sys.stdout.write(f"==> {clean(text)}\n")
    sys.stdout.flush()


def banner_line(text: str) -> None:
    """One line of a long-running command's banner, flushed so a pipe sees it at once."""
    sys.stdout.write(f"{clean(text)}\n")
    sys.stdout.flush()


def demo_note(text: str) -> None:
    sys.stdout.write(f"    {clean(text)}\n")


def show_status(status: "Status", *, as_json: bool, stuck: bool = False) -> None:
    """Status as JSON (stable, versioned) or as the one-screen summary of `cli/status_view.py`,
    both drawn from the same document."""
    document = status.to_json()
    if as_json:
        write_json(document)
        return
    from fbstampli.cli.status_view import status_lines, stuck_lines

    lines = stuck_lines(document) if stuck else status_lines(document)
    sys.stdout.write("".join(f"{line}\n" for line in lines))


def show_checks(checks: Sequence[Any], *, as_json: bool) -> None:
    if as_json:
        write_json(
            [
                {
                    "name": c.name,
                    "ok": c.ok,
                    "skipped": getattr(c, "skipped", False),
                    "detail": c.detail,
                    "fix": "" if c.ok else c.fix,  # an ok check needs no fix
                }
                for c in checks
            ]
        )
        return
    for check in checks:
        show_check(check)


def check_line(check: Any) -> str:
    """`ok`, `skip` or `FAIL`, the check, what it found, and a fix it does not already say."""
    skipped = getattr(check, "skipped", False)
    mark = "skip" if skipped else "ok  " if check.ok else "FAIL"
    line = f"{mark} {check.name}: {check.detail}"
    commands = re.findall(r"`[^`]+`", check.fix or "")
    said = any(command in check.detail for command in commands)
    if not check.ok and check.fix and not said:
        line += f" -> {check.fix}"
    return clean(line)


def show_check(check: Any) -> None:
    """One check, printed and flushed as soon as it is known."""
    sys.stdout.write(check_line(check) + "\n")
    sys.stdout.flush()


def show_audit(rows: list[dict[str, Any]], output_format: str) -> None:
    columns = ["at", "kind", "fb_id", "action", "detail", "run_id"]
    if output_format == "json":
        write_json(rows)
    elif output_format == "csv":
        write_csv(sys.stdout, columns, rows)
    else:
        table("audit trail", columns, [[row.get(c) for c in columns] for row in rows])


RECONCILE_COLUMNS = ["fb_bill_id", "stampli_invoice_id", "outcome", "detail"]


TERMINAL_ROWS = 200


def show_reconciliation(
    report: RunReport,
    rows: Iterator[Mapping[str, Any]],
    options: Options,
    output_format: str,
    output_file: Path | None,
) -> None:
    """The reconciliation as a table (terminal), CSV or JSON, to stdout or a file.

    Written row by row as the store yields them: a report of 250,000 bills is
    never held whole. On a terminal only the bills that need attention are
    listed (all of them with --verbose).
    """
    for problem in report.problems:
        problem_line(problem)
    if output_format == "table" and output_file is None:
        if not options.quiet:
            _reconciliation_on_screen(report, rows, options)
        return
    if output_file is None:
        _write_reconciliation(sys.stdout, report, rows, output_format)
        return
    _reconciliation_to_file(report, rows, output_format, output_file)


def _reconciliation_on_screen(
    report: RunReport, rows: Iterator[Mapping[str, Any]], options: Options
) -> None:
    shown = rows if options.verbose else (r for r in rows if needs_attention(r))
    # A terminal gets the first screenfuls; a pipe gets every row, a line at a time.
    if not stdout_is_terminal():
        table("reconciliation", RECONCILE_COLUMNS, [])  # the header line
        _write_reconciliation(sys.stdout, report, shown, "tsv")
    else:
        listed = [[r[c] for c in RECONCILE_COLUMNS] for r in itertools.islice(shown, TERMINAL_ROWS)]
        table("reconciliation", RECONCILE_COLUMNS, listed)
    more = sum(1 for _ in shown)
    if more:
        sys.stdout.write(
            f"and {more:,} more: `fbstampli reconcile --format csv --output reconcile.csv` "
            "lists every bill\n"
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
    sys.stdout.write(f"reconcile: {counts or 'nothing to reconcile'}\n")
    for note in report.notes:
        sys.stdout.write(f"  {clean(note)}\n")


def _reconciliation_to_file(
    report: RunReport, rows: Iterator[Mapping[str, Any]], output_format: str, output_file: Path
) -> None:
    import io

    from fbstampli.atomic import atomic_writer

    try:
        with atomic_writer(output_file) as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
            _write_reconciliation(text, report, rows, output_format)
            text.flush()
            text.detach()
    except OSError as error:
        if out_of_room(error):
            raise TemporaryError(
                f"cannot write the report to {output_file}: the disk is full; the results "
                "are kept: free some space and run reconcile again"
            ) from None
        raise ConfigError(
            f"cannot write the report to {output_file} ({error.strerror}); the results "
            "are kept: choose another --output and run reconcile again"
        ) from None


def _write_reconciliation(
    out: Any, report: RunReport, rows: Iterator[Mapping[str, Any]], output_format: str
) -> None:
    """JSON (one item per line), CSV or tab-separated text, a row at a time."""
    if output_format == "json":
        head = {"counts": dict(sorted(report.counts.items())), "notes": report.notes}
        out.write(json.dumps(head, sort_keys=True)[:-1] + ', "items": [')
        for index, row in enumerate(rows):
            out.write(("," if index else "") + "\n  " + json.dumps(dict(row), sort_keys=True))
        out.write("\n]}\n")
    elif output_format == "csv":
        write_csv(out, RECONCILE_COLUMNS, rows)
    else:
        for row in rows:
            out.write("\t".join(clean(row[c]) for c in RECONCILE_COLUMNS) + "\n")


# ---- several businesses (`business add`, `sync --all`, `status --all`) --------------------------


def show_steps(report: RunReport, options: Options, *, as_json: bool = False) -> None:
    """A set-up report whose notes are the next steps: shown even when piped (not with -q)."""
    if as_json:
        write_json(report.as_dict())
        return
    for problem in report.problems:
        problem_line(problem)
    if options.quiet:
        return
    for note in report.notes:
        sys.stdout.write(f"{clean(note)}\n")


def show_all(result: Any, options: Options, *, as_json: bool = False) -> None:
    """One line on stderr per failing business (what cron mails); a line per business that
    went well on a terminal or with -v; the whole per-business document with --json."""
    from fbstampli.summaries import sentences

    if as_json:
        write_json(result.as_dict())
    for outcome in result.failing:
        problem_line(outcome.line())
    if as_json or options.quiet or not (stdout_is_terminal() or options.verbose):
        return
    for outcome in result.outcomes:
        if outcome.exit_code == 0 and outcome.report is not None:
            said = " ".join(sentences(outcome.report))
            sys.stdout.write(clean(f"business {outcome.name}: {said}") + "\n")


def show_status_all(summaries: Sequence["BusinessStatus"], *, as_json: bool) -> None:
    """`status --all`: one row per business, or every business's full document with --json."""
    if as_json:
        write_json({"schema": 1, "businesses": [summary.to_json() for summary in summaries]})
        return
    rows = []
    for summary in summaries:
        last = summary.last_run
        when = f"{last['command']} {last['started_at']} exit {last['exit_code']}" if last else ""
        attention = "; ".join(summary.needs_attention) or "no"
        rows.append([summary.business, summary.bills_in_stampli, summary.failing, when, attention])
    columns = ["business", "bills in Stampli", "failing", "last run", "needs attention"]
    table("fbstampli status --all", columns, rows, one_line=True)
